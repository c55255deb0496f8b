//! The YAML file model: serde structs that mirror `gateway.yaml` and reject unknown keys.
//!
//! Values that need checking beyond their YAML type are kept as `Spanned` strings, so the
//! compiler can check them all and report every problem with its line and column at once.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

pub type Text = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    /// Required, unless `decision` is set (a decision service forwards nothing).
    #[serde(default)]
    pub listeners: Option<Spanned<Vec<Spanned<ListenerFile>>>>,
    #[serde(default)]
    pub issuers: Vec<Spanned<IssuerFile>>,
    /// Required with `listeners`.
    #[serde(default)]
    pub upstreams: Option<Spanned<Vec<Spanned<UpstreamFile>>>>,
    #[serde(default)]
    pub identity: Option<IdentityFile>,
    pub routes: Spanned<Vec<Spanned<RouteFile>>>,
    #[serde(default)]
    pub limits: Option<LimitsFile>,
    #[serde(default)]
    pub admin: Option<AdminFile>,
    #[serde(default)]
    pub shutdown: Option<ShutdownFile>,
    #[serde(default)]
    pub logging: Option<LoggingFile>,
    #[serde(default)]
    pub revocation: Option<RevocationFile>,
    #[serde(default)]
    pub forwarding: Option<ForwardingFile>,
    #[serde(default)]
    pub auth_cache: Option<AuthCacheFile>,
    #[serde(default)]
    pub decision: Option<Spanned<DecisionFile>>,
    #[serde(default)]
    pub dpop_proofs: Option<DpopProofsFile>,
    /// CORS for every route that has none of its own.
    #[serde(default)]
    pub cors: Option<Spanned<CorsFile>>,
    /// Rate limiting: where budgets are kept, and the limits of routes without their own.
    #[serde(default)]
    pub rate_limits: Option<Spanned<RateLimitsFile>>,
}

/// `rate_limits:` (gateway-wide).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsFile {
    /// `local` (the default) or `redis` (the server of `revocation.redis`).
    #[serde(default)]
    pub mode: Option<Text>,
    /// Keys the local table holds (default 100000); sized at start-up.
    #[serde(default)]
    pub max_keys: Option<Spanned<u64>>,
    /// `RateLimit` / `RateLimit-Policy` on allowed answers too (they are always on a `429`).
    #[serde(default)]
    pub headers: Option<Spanned<bool>>,
    /// The limits of every route without a `rate_limit` of its own: one, or a list.
    #[serde(default)]
    pub default: Option<Spanned<OneOrMany<RateLimitFile>>>,
}

/// One limit: `key`, `rate`, and optionally `burst` and `name`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFile {
    /// What requests are counted by: one of `ip`, `route`, `issuer`, `client_id`, `sub`, or a
    /// list of them.
    pub key: Spanned<KeyFile>,
    /// `<n>/s`, `<n>/m` (minute), `<n>/h`, `<n>/d`, or `<n>/<duration>` (`5/10s`).
    pub rate: Text,
    /// Requests allowed at once (default: the rate's `n`).
    #[serde(default)]
    pub burst: Option<Spanned<u64>>,
    /// The name in `RateLimit-Policy`, metrics and logs (default: the key parts joined by `_`).
    #[serde(default)]
    pub name: Option<Text>,
}

/// One value or a list of them.
#[derive(Debug)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrManyVisitor<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping, or a list of mappings")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|t| OneOrMany(vec![t]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<T>::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(OneOrMany)
            }
        }
        deserializer.deserialize_any(OneOrManyVisitor(std::marker::PhantomData))
    }
}

/// A limit's key: one part name, or a list of them.
#[derive(Debug)]
pub struct KeyFile(pub Vec<String>);

impl<'de> Deserialize<'de> for KeyFile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeyFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key part (ip, route, issuer, client_id, sub), or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyFile, E> {
                Ok(KeyFile(vec![v.to_owned()]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<KeyFile, A::Error> {
                Vec::<String>::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(KeyFile)
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

/// CORS (the Fetch standard's protocol): the browser origins allowed to call the API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsFile {
    pub allowed_origins: Spanned<Vec<Text>>,
    #[serde(default)]
    pub allowed_methods: Option<Spanned<Vec<Text>>>,
    #[serde(default)]
    pub allowed_headers: Option<Spanned<Vec<Text>>>,
    #[serde(default)]
    pub exposed_headers: Option<Spanned<Vec<Text>>>,
    #[serde(default)]
    pub allow_credentials: Option<Spanned<bool>>,
    #[serde(default)]
    pub max_age: Option<Text>,
}

/// An issuer's token introspection endpoint (RFC 7662) and the gateway's credentials for it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionFile {
    /// Required unless the issuer has `discovery: true` (its `introspection_endpoint`).
    #[serde(default)]
    pub endpoint: Option<Text>,
    pub client_id: Text,
    #[serde(default)]
    pub client_secret_file: Option<Text>,
    #[serde(default)]
    pub client_secret_env: Option<Text>,
    /// `client_secret_basic` (the default) or `private_key_jwt` (RFC 7523, with `private_key_file`).
    #[serde(default)]
    pub auth: Option<Text>,
    /// PEM private key (RSA or EC P-256) signing the client assertion of `private_key_jwt`.
    #[serde(default)]
    pub private_key_file: Option<Text>,
    /// The `kid` of that key at the authorization server, if it needs one.
    #[serde(default)]
    pub key_id: Option<Text>,
    #[serde(default)]
    pub timeout: Option<Text>,
    #[serde(default)]
    pub max_ttl: Option<Text>,
    #[serde(default)]
    pub inactive_ttl: Option<Text>,
    #[serde(default)]
    pub max_concurrency: Option<Spanned<u64>>,
    #[serde(default)]
    pub cache_entries: Option<Spanned<u64>>,
}

/// What every DPoP proof (RFC 9449) is checked against.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpopProofsFile {
    /// How old a proof's `iat` may be (60s).
    #[serde(default)]
    pub max_age: Option<Text>,
    /// Asymmetric algorithms accepted for proofs.
    #[serde(default)]
    pub algorithms: Option<Spanned<Vec<Text>>>,
    /// Proofs remembered at most, against replay (read at start).
    #[serde(default)]
    pub max_replay_entries: Option<Spanned<u64>>,
    /// `true`: every accepted proof is also claimed in `revocation.redis`, so replicas share
    /// the replay memory.
    #[serde(default)]
    pub share_through_redis: Option<Spanned<bool>>,
    /// The hosts (`host[:port]`) clients reach this gateway by: on a route without
    /// `match.host`, a proof's `htu` must name one of them.
    #[serde(default)]
    pub hosts: Option<Spanned<Vec<Text>>>,
}

/// Decision mode: a listener answering an ingress's "may this request pass?" (docs/decision-mode.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionFile {
    pub address: Text,
    /// `nginx` (auth_request, ingress-nginx), `traefik` (ForwardAuth) or `envoy` (ext_authz HTTP).
    pub protocol: Text,
    /// Envoy's `path_prefix`: the original path follows it.
    #[serde(default)]
    pub path_prefix: Option<Text>,
    /// The ingress peers whose descriptions are believed (required: nobody else may describe a request).
    pub trusted_proxies: Spanned<Vec<Text>>,
    /// `deny` (the default, and the one value): the answer for a request that matches no route.
    #[serde(default)]
    pub unmatched: Option<Text>,
    /// HTTPS for the ingress's questions, as on a listener.
    #[serde(default)]
    pub tls: Option<Spanned<ListenerTlsFile>>,
}

/// The verified-token cache.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthCacheFile {
    #[serde(default)]
    pub enabled: Option<Spanned<bool>>,
    #[serde(default)]
    pub max_entries: Option<Spanned<u64>>,
    #[serde(default)]
    pub max_bytes: Option<Spanned<u64>>,
    #[serde(default)]
    pub max_ttl: Option<Text>,
}

/// Which client headers reach the upstream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardingFile {
    /// Networks (CIDR or single addresses) of proxies whose `X-Forwarded-*`, `Forwarded` and
    /// `X-Real-IP` are kept; by default nobody's are.
    #[serde(default)]
    pub trusted_proxies: Option<Spanned<Vec<Text>>>,
    /// Header names removed from every request, in addition to the built-in lists.
    #[serde(default)]
    pub strip_headers: Option<Spanned<Vec<Text>>>,
    /// The header (Envoy's `X-Forwarded-Client-Cert` format) in which a TLS-terminating proxy
    /// names the client certificate, for certificate-bound tokens. Off by default.
    #[serde(default)]
    pub client_cert_header: Option<Text>,
    /// The proxies believed in `client_cert_header` (required with it; apart from
    /// `trusted_proxies`, which is usually a wider range).
    #[serde(default)]
    pub client_cert_proxies: Option<Spanned<Vec<Text>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationFile {
    /// How long a token can live: the expiry of subject and client entries, and of `jti` entries
    /// added without the token's `exp`.
    #[serde(default)]
    pub max_token_lifetime: Option<Text>,
    /// Where admin-API revocations are journaled (single gateway without Redis).
    #[serde(default)]
    pub state_file: Option<Text>,
    /// Revocations managed as a file (YAML list or JSON lines), re-read when it changes.
    #[serde(default)]
    pub file: Option<Text>,
    /// Share revocations between replicas through Redis.
    #[serde(default)]
    pub redis: Option<Spanned<RedisFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisFile {
    /// `redis://[user:password@]host:port[/db]`; give `url` or `url_env`.
    #[serde(default)]
    pub url: Option<Text>,
    /// An environment variable holding the URL (keeps a password out of the file).
    #[serde(default)]
    pub url_env: Option<Text>,
    /// Prefix of every key and of the pub/sub channel; default `portcullis:revocations`.
    #[serde(default)]
    pub key_prefix: Option<Text>,
    /// How often the whole set is re-read (heals missed announcements); default 60s.
    #[serde(default)]
    pub resync_interval: Option<Text>,
    /// How stale the mirror may get (Redis unreachable) before the gateway reports itself not
    /// ready; default 5m.
    #[serde(default)]
    pub max_staleness: Option<Text>,
    /// Connect and command timeout; default 2s.
    #[serde(default)]
    pub timeout: Option<Text>,
}

/// Log settings; `RUST_LOG` and `--log-format` override them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingFile {
    #[serde(default)]
    pub level: Option<Text>,
    #[serde(default)]
    pub format: Option<Text>,
    #[serde(default)]
    pub buffer_lines: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownFile {
    /// After the listeners close, how long in-flight requests may take.
    #[serde(default)]
    pub grace_period: Option<Text>,
    /// After SIGTERM, how long to keep accepting (answering with `Connection: close`) before
    /// the listeners close: the time the load balancer or Kubernetes takes to stop sending.
    #[serde(default)]
    pub drain_delay: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    #[serde(default)]
    pub address: Option<Text>,
    /// A second listener serving only `/healthz`, `/readyz` and `/metrics` (read-only), for
    /// kubelet probes and scrapes on the pod IP while the admin API stays on `address`.
    #[serde(default)]
    pub probes_address: Option<Text>,
    /// A file holding the bearer token of the admin API (revocations).
    #[serde(default)]
    pub token_file: Option<Text>,
    /// An environment variable holding that token.
    #[serde(default)]
    pub token_env: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerFile {
    pub name: Text,
    pub address: Text,
    /// HTTPS: without it the listener speaks plain HTTP.
    #[serde(default)]
    pub tls: Option<Spanned<ListenerTlsFile>>,
    /// `behind_tls_terminator`: plain HTTP on a non-loopback address is intended (a mesh
    /// sidecar, the node or a load balancer terminates TLS first).
    #[serde(default)]
    pub plaintext: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsFile {
    /// One or more pairs, chosen by SNI; the first is the default.
    pub certificates: Spanned<Vec<Spanned<CertificateFile>>>,
    /// "1.2" (default) or "1.3".
    #[serde(default)]
    pub min_version: Option<Text>,
    #[serde(default)]
    pub client_auth: Option<Spanned<ClientAuthFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFile {
    pub cert_file: Text,
    pub key_file: Text,
    #[serde(default)]
    pub server_names: Option<Vec<Text>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAuthFile {
    /// none | optional | required
    pub mode: Text,
    #[serde(default)]
    pub ca_file: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsFile {
    /// Trust this CA (PEM) instead of the system roots.
    #[serde(default)]
    pub ca_file: Option<Text>,
    /// The name sent as SNI and verified in the certificate; default: the URL's host.
    #[serde(default)]
    pub server_name: Option<Text>,
    #[serde(default)]
    pub client_cert_file: Option<Text>,
    #[serde(default)]
    pub client_key_file: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerFile {
    pub id: Text,
    pub issuer: Text,
    #[serde(default)]
    pub jwks_file: Option<Text>,
    #[serde(default)]
    pub jwks_uri: Option<Text>,
    #[serde(default)]
    pub discovery: Option<Spanned<bool>>,
    #[serde(default)]
    pub jwks_refresh: Option<JwksRefreshFile>,
    #[serde(default)]
    pub audiences: Option<Spanned<Vec<Text>>>,
    #[serde(default)]
    pub algorithms: Option<Spanned<Vec<Text>>>,
    #[serde(default)]
    pub leeway: Option<Text>,
    #[serde(default)]
    pub scope_claims: Option<Spanned<Vec<Text>>>,
    #[serde(default)]
    pub token_type: Option<Text>,
    /// `disabled`, `allowed` (the default) or `required`: DPoP-bound tokens (RFC 9449).
    #[serde(default)]
    pub dpop: Option<Text>,
    /// `jwt` (the default), `opaque` (introspected) or `auto` (a JWS-shaped token is a JWT).
    #[serde(default)]
    pub token_format: Option<Text>,
    /// RFC 7662 introspection, for opaque tokens.
    #[serde(default)]
    pub introspection: Option<Spanned<IntrospectionFile>>,
}

/// Tunables of remote key fetching; every field has a safe default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwksRefreshFile {
    #[serde(default)]
    pub interval: Option<Text>,
    #[serde(default)]
    pub min_interval: Option<Text>,
    #[serde(default)]
    pub max_interval: Option<Text>,
    #[serde(default)]
    pub unknown_kid_cooldown: Option<Text>,
    #[serde(default)]
    pub timeout: Option<Text>,
    #[serde(default)]
    pub max_response_bytes: Option<Spanned<u64>>,
    #[serde(default)]
    pub max_staleness: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    pub id: Text,
    pub url: Text,
    #[serde(default)]
    pub connect_timeout: Option<Text>,
    #[serde(default)]
    pub read_timeout: Option<Text>,
    #[serde(default)]
    pub write_timeout: Option<Text>,
    /// For `https://` upstreams.
    #[serde(default)]
    pub tls: Option<Spanned<UpstreamTlsFile>>,
}

/// Header name → claim name.
pub type HeaderMapFile = Spanned<BTreeMap<String, Text>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityFile {
    #[serde(default)]
    pub headers: Option<HeaderMapFile>,
    #[serde(default)]
    pub strip_prefixes: Option<Spanned<Vec<Text>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub id: Text,
    #[serde(rename = "match")]
    pub matcher: Spanned<MatchFile>,
    /// Required with `listeners` (where the proxy forwards); a decision service may omit it.
    #[serde(default)]
    pub upstream: Option<Text>,
    #[serde(default)]
    pub auth: Option<Spanned<AuthFile>>,
    #[serde(default)]
    pub identity: Option<RouteIdentityFile>,
    #[serde(default)]
    pub forward_token: bool,
    /// `allow`: honour `X-HTTP-Method-Override` on POST, authorised as the overriding method.
    #[serde(default)]
    pub method_override: Option<Text>,
    /// CORS for this route, in place of the gateway-wide `cors`.
    #[serde(default)]
    pub cors: Option<Spanned<CorsFile>>,
    /// This route's rate limits (one, or a list; `[]` for none), in place of
    /// `rate_limits.default`.
    #[serde(default)]
    pub rate_limit: Option<Spanned<OneOrMany<RateLimitFile>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchFile {
    #[serde(default)]
    pub host: Option<Text>,
    #[serde(default)]
    pub path: Option<Text>,
    #[serde(default)]
    pub path_prefix: Option<Text>,
    #[serde(default)]
    pub methods: Option<Vec<Text>>,
    /// Match the path ASCII-case-insensitively (Express, ASP.NET, IIS backends).
    #[serde(default)]
    pub case_insensitive: Option<Spanned<bool>>,
    /// `allow`: accept `;parameters` in path segments (servlet backends that use them).
    #[serde(default)]
    pub path_parameters: Option<Text>,
    /// `allow`: accept `/script.php/more` paths (PHP front controllers route on `/more`).
    #[serde(default)]
    pub script_path_info: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteIdentityFile {
    pub headers: HeaderMapFile,
}

/// `auth: public`, or a mapping of rules. Written by hand so that the mapping form keeps the
/// precise errors (and locations) of its fields, which an untagged enum would lose.
#[derive(Debug)]
pub enum AuthFile {
    /// The scalar form; the compiler checks it says `public`.
    Keyword(String),
    Rules(Box<AuthRulesFile>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthRulesFile {
    #[serde(default)]
    pub issuers: Option<Spanned<Vec<Text>>>,
    /// `aud` must name one of these, instead of the issuer's `audiences`.
    #[serde(default)]
    pub audiences: Option<Spanned<Vec<Text>>>,
    #[serde(default)]
    pub scopes: Option<ScopesFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopesFile {
    #[serde(default)]
    pub all_of: Option<Spanned<Vec<Text>>>,
    #[serde(default)]
    pub any_of: Option<Spanned<Vec<Text>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    #[serde(default)]
    pub max_token_bytes: Option<Spanned<u64>>,
}

impl<'de> Deserialize<'de> for AuthFile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AuthVisitor;
        impl<'de> Visitor<'de> for AuthVisitor {
            type Value = AuthFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`public` or a mapping with `issuers` and/or `scopes`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AuthFile, E> {
                Ok(AuthFile::Keyword(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AuthFile, A::Error> {
                AuthRulesFile::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|r| AuthFile::Rules(Box::new(r)))
            }
        }
        deserializer.deserialize_any(AuthVisitor)
    }
}
