//! `issuers[]`: the verification policy and the key source of each issuer.

use super::*;

pub(super) fn compile_issuers(
    cx: &mut Ctx,
    issuers: &[Spanned<IssuerFile>],
    inputs: &Inputs<'_>,
) -> Vec<Option<Issuer>> {
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    let mut iss_values = HashSet::new();
    for (i, spanned) in issuers.iter().enumerate() {
        let path = format!("issuers[{i}]");
        let f = &spanned.value;
        let mut ok = true;
        if f.id.value.is_empty() || !ids.insert(f.id.value.clone()) {
            cx.error(
                f.id.referenced,
                format!("{path}.id"),
                "issuer ids must be non-empty and unique",
            );
            ok = false;
        }
        if f.issuer.value.is_empty() || !iss_values.insert(f.issuer.value.clone()) {
            cx.error(
                f.issuer.referenced,
                format!("{path}.issuer"),
                "issuer (the exact `iss` value) must be non-empty and unique",
            );
            ok = false;
        }
        let audiences: Vec<String> = match &f.audiences {
            Some(a) if !a.value.is_empty() => {
                for aud in a.value.iter().filter(|a| a.value.is_empty()) {
                    cx.error(
                        aud.referenced,
                        format!("{path}.audiences"),
                        "an audience must not be empty",
                    );
                    ok = false;
                }
                a.value.iter().map(|a| a.value.clone()).collect()
            }
            Some(a) => {
                cx.error(
                    a.referenced,
                    format!("{path}.audiences"),
                    "at least one audience is required: tokens for other APIs must not be accepted",
                );
                ok = false;
                Vec::new()
            }
            None => {
                cx.error(
                    spanned.referenced,
                    format!("{path}.audiences"),
                    "audiences is required: tokens for other APIs must not be accepted",
                );
                ok = false;
                Vec::new()
            }
        };
        let algorithms =
            compile_algorithms(cx, &path, f.algorithms.as_ref()).unwrap_or_else(|| {
                ok = false;
                Vec::new()
            });
        let leeway = match &f.leeway {
            None => DEFAULT_LEEWAY,
            Some(l) => match parse_duration_or_zero(cx, l, &format!("{path}.leeway")) {
                Some(d) if d > MAX_LEEWAY => {
                    cx.error(
                        l.referenced,
                        format!("{path}.leeway"),
                        "leeway above 5m defeats expiry checks",
                    );
                    ok = false;
                    d
                }
                Some(d) => d,
                None => {
                    ok = false;
                    DEFAULT_LEEWAY
                }
            },
        };
        let scope_claims = match &f.scope_claims {
            None => vec!["scope".to_owned(), "scp".to_owned()],
            Some(s) => s.value.iter().map(|c| c.value.clone()).collect(),
        };
        let token_type = f.token_type.as_ref().map(|t| t.value.clone());
        let dpop = match f.dpop.as_ref().map(|d| (d, d.value.as_str())) {
            None => crate::auth::dpop::DpopMode::Allowed,
            Some((_, "allowed")) => crate::auth::dpop::DpopMode::Allowed,
            Some((_, "disabled")) => crate::auth::dpop::DpopMode::Disabled,
            Some((_, "required")) => crate::auth::dpop::DpopMode::Required,
            Some((d, _)) => {
                cx.error(
                    d.referenced,
                    format!("{path}.dpop"),
                    "takes disabled, allowed or required",
                );
                ok = false;
                crate::auth::dpop::DpopMode::Allowed
            }
        };
        let id: Arc<str> = Arc::from(f.id.value.as_str());
        let token_format = match f.token_format.as_ref().map(|t| (t, t.value.as_str())) {
            None | Some((_, "jwt")) => crate::auth::TokenFormat::Jwt,
            Some((_, "opaque")) => crate::auth::TokenFormat::Opaque,
            Some((_, "auto")) => crate::auth::TokenFormat::Auto,
            Some((t, _)) => {
                cx.error(
                    t.referenced,
                    format!("{path}.token_format"),
                    "takes jwt, opaque or auto",
                );
                ok = false;
                crate::auth::TokenFormat::Jwt
            }
        };
        let introspector = match (&f.introspection, token_format) {
            (None, crate::auth::TokenFormat::Jwt) => None,
            (None, _) => {
                cx.error(
                    spanned.referenced,
                    format!("{path}.introspection"),
                    "opaque tokens are checked by introspection: give introspection.endpoint and the gateway's client credentials",
                );
                ok = false;
                None
            }
            (Some(i), crate::auth::TokenFormat::Jwt) => {
                cx.error(
                    i.referenced,
                    format!("{path}.introspection"),
                    "used only for opaque tokens: set token_format: opaque (or auto, for both)",
                );
                ok = false;
                None
            }
            (Some(i), _) => {
                let compiled = compile_introspection(cx, &path, f, i, &id, inputs);
                ok &= compiled.is_some();
                compiled
            }
        };
        // An issuer of opaque tokens only needs no keys (`discovery` then finds its
        // introspection endpoint).
        let opaque_only = token_format == crate::auth::TokenFormat::Opaque
            && f.jwks_file.is_none()
            && f.jwks_uri.is_none();
        let compiled = match opaque_only {
            true => Some(CompiledKeys {
                keys: Arc::new(IssuerKeys::fixed(Arc::clone(&id), KeySet::default())),
                source: None,
            }),
            false => compile_key_source(cx, &path, spanned.referenced, f, inputs, &algorithms, &id),
        };
        let CompiledKeys {
            keys,
            source: key_source,
        } = compiled.unwrap_or_else(|| {
            ok = false;
            CompiledKeys {
                keys: Arc::new(IssuerKeys::fixed(Arc::clone(&id), KeySet::default())),
                source: None,
            }
        });
        out.push(ok.then(|| {
            Issuer {
                id,
                issuer: f.issuer.value.clone(),
                audiences,
                algorithms,
                leeway,
                scope_claims,
                rfc9068: token_type
                    .as_deref()
                    .is_some_and(|t| crate::auth::jwt::check_type(Some(t), Some("at+jwt")).is_ok()),
                token_type,
                dpop,
                token_format,
                introspector,
                // Set once `revocation` is compiled.
                max_token_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
                keys,
                key_source,
            }
        }));
    }
    out
}

/// `issuers[].introspection`: the endpoint (https, or http on loopback), the gateway's client
/// credentials and the cache's bounds; the client is kept across reloads while all of it is
/// unchanged.
fn compile_introspection(
    cx: &mut Ctx,
    path: &str,
    issuer: &IssuerFile,
    file: &Spanned<IntrospectionFile>,
    id: &Arc<str>,
    inputs: &Inputs<'_>,
) -> Option<Arc<crate::auth::introspection::Introspector>> {
    let f = &file.value;
    let at = format!("{path}.introspection");
    let mut ok = true;
    let discovery = issuer.discovery.as_ref().is_some_and(|d| d.value);
    match &f.endpoint {
        None if discovery => {
            if let Err(e) = crate::auth::fetch::check_key_url(&issuer.issuer.value) {
                cx.error(
                    file.referenced,
                    format!("{at}.endpoint"),
                    format!("discovery needs an https issuer: {e}"),
                );
                ok = false;
            }
        }
        None => {
            cx.error(
                file.referenced,
                format!("{at}.endpoint"),
                "required, unless the issuer has discovery: true (its introspection_endpoint)",
            );
            ok = false;
        }
        Some(endpoint) => {
            if let Err(e) = crate::auth::fetch::check_key_url(&endpoint.value) {
                cx.error(endpoint.referenced, format!("{at}.endpoint"), e.to_string());
                ok = false;
            } else if endpoint.value.contains(['@', '#']) {
                cx.error(
                    endpoint.referenced,
                    format!("{at}.endpoint"),
                    "no credentials or fragment in the URL: the client credentials are client_id and client_secret_*",
                );
                ok = false;
            }
        }
    }
    let client_auth = compile_client_auth(cx, &at, file, inputs);
    ok &= client_auth.is_some();
    let duration = |cx: &mut Ctx, t: Option<&Text>, key: &str, default: u64| match t {
        None => Some(Duration::from_secs(default)),
        Some(t) => parse_duration(cx, t, &format!("{at}.{key}")),
    };
    let timeout = duration(cx, f.timeout.as_ref(), "timeout", 2);
    let max_ttl = duration(cx, f.max_ttl.as_ref(), "max_ttl", 300);
    let inactive_ttl = duration(cx, f.inactive_ttl.as_ref(), "inactive_ttl", 10);
    let count = |cx: &mut Ctx, n: Option<&Spanned<u64>>, key: &str, default: usize| match n {
        None => Some(default),
        Some(n) => match usize::try_from(n.value) {
            Ok(v) if v > 0 => Some(v),
            _ => {
                cx.error(
                    n.referenced,
                    format!("{at}.{key}"),
                    "takes a whole number above 0",
                );
                None
            }
        },
    };
    let max_concurrency = count(cx, f.max_concurrency.as_ref(), "max_concurrency", 64);
    let cache_entries = count(cx, f.cache_entries.as_ref(), "cache_entries", 100_000);
    let (Some(client_auth), Some(timeout), Some(max_ttl), Some(inactive_ttl)) =
        (client_auth, timeout, max_ttl, inactive_ttl)
    else {
        return None;
    };
    let (Some(max_concurrency), Some(cache_entries), true) = (max_concurrency, cache_entries, ok)
    else {
        return None;
    };
    let settings = crate::auth::introspection::IntrospectionSettings {
        endpoint: f
            .endpoint
            .as_ref()
            .map(|e| e.value.clone())
            .unwrap_or_default(),
        issuer: issuer.issuer.value.clone(),
        client_id: f.client_id.value.clone(),
        client_auth,
        timeout,
        max_ttl,
        inactive_ttl,
        max_concurrency,
        cache_entries,
        max_response_bytes: 64 * 1024,
    };
    inputs
        .stores
        .introspector(id, settings)
        .map_err(|e| cx.error(file.referenced, at, e))
        .ok()
}

/// `introspection.auth`: the client secret (`client_secret_basic`), or the private key that signs
/// client assertions (`private_key_jwt`, RFC 7523).
fn compile_client_auth(
    cx: &mut Ctx,
    at: &str,
    file: &Spanned<IntrospectionFile>,
    inputs: &Inputs<'_>,
) -> Option<crate::auth::introspection::ClientAuth> {
    use crate::auth::introspection::ClientAuth;
    let f = &file.value;
    match f.auth.as_ref().map(|a| (a, a.value.as_str())) {
        None | Some((_, "client_secret_basic")) => {
            if f.client_secret_file.is_none() && f.client_secret_env.is_none() {
                cx.error(
                    file.referenced,
                    at.to_owned(),
                    "the gateway's client secret is required: client_secret_file or client_secret_env",
                );
                return None;
            }
            let (secret, _, _) = super::admin::secret_text(
                cx,
                inputs,
                (
                    f.client_secret_file.as_ref(),
                    &format!("{at}.client_secret_file"),
                ),
                (
                    f.client_secret_env.as_ref(),
                    &format!("{at}.client_secret_env"),
                ),
            )?;
            Some(ClientAuth::SecretBasic(crate::snapshot::Secret::new(
                &secret,
            )))
        }
        Some((_, "private_key_jwt")) => {
            let Some(key_file) = &f.private_key_file else {
                cx.error(
                    file.referenced,
                    format!("{at}.private_key_file"),
                    "required with auth: private_key_jwt (a PEM private key, RSA or EC P-256)",
                );
                return None;
            };
            let path = format!("{at}.private_key_file");
            let (pem, _, _) =
                super::admin::secret_text(cx, inputs, (Some(key_file), &path), (None, ""))?;
            // The algorithm follows the key (RS256 for RSA, ES256 for P-256, ES384 for P-384,
            // EdDSA for Ed25519): the one a test assertion can really be signed with.
            let algorithm = [
                Algorithm::RS256,
                Algorithm::ES256,
                Algorithm::ES384,
                Algorithm::EdDSA,
            ]
            .into_iter()
            .find(|a| {
                crate::auth::introspection::assertion_key(pem.as_bytes(), *a).is_ok_and(|key| {
                    jsonwebtoken::encode(
                        &jsonwebtoken::Header::new(a.to_jsonwebtoken()),
                        &serde_json::json!({}),
                        &key,
                    )
                    .is_ok()
                })
            });
            let Some(algorithm) = algorithm else {
                cx.error(
                    key_file.referenced,
                    path,
                    "not a usable PEM private key (PKCS#8 or PKCS#1 RSA of 2048 bits or more, PKCS#8 EC P-256 or P-384, PKCS#8 Ed25519)",
                );
                return None;
            };
            Some(ClientAuth::PrivateKeyJwt {
                pem: crate::snapshot::Secret::new(&pem),
                algorithm,
                key_id: f.key_id.as_ref().map(|k| k.value.clone()),
            })
        }
        Some((a, _)) => {
            cx.error(
                a.referenced,
                format!("{at}.auth"),
                "takes client_secret_basic or private_key_jwt",
            );
            None
        }
    }
}

/// An issuer's compiled key source.
pub(super) struct CompiledKeys {
    keys: Arc<IssuerKeys>,
    source: Option<Arc<dyn KeySource>>,
}

/// Exactly one of `jwks_file`, `jwks_uri`, `discovery: true`.
pub(super) fn compile_key_source(
    cx: &mut Ctx,
    path: &str,
    issuer_at: Location,
    f: &IssuerFile,
    inputs: &Inputs<'_>,
    algorithms: &[Algorithm],
    id: &Arc<str>,
) -> Option<CompiledKeys> {
    let discovery = f.discovery.as_ref().filter(|d| d.value);
    let chosen = usize::from(f.jwks_file.is_some())
        + usize::from(f.jwks_uri.is_some())
        + usize::from(discovery.is_some());
    if chosen != 1 {
        cx.error(
            issuer_at,
            path.to_owned(),
            "exactly one key source is required: jwks_file, jwks_uri, or discovery: true",
        );
        return None;
    }
    if let Some(file) = &f.jwks_file {
        if f.jwks_refresh.is_some() {
            cx.warn(
                issuer_at,
                format!("{path}.jwks_refresh"),
                "ignored: a jwks_file is re-read when its content changes, with gateway.yaml",
            );
        }
        let keys = load_jwks_file(cx, path, file, inputs, algorithms)?;
        return Some(CompiledKeys {
            keys: Arc::new(IssuerKeys::fixed(Arc::clone(id), keys)),
            source: None,
        });
    }
    let remote = match (&f.jwks_uri, discovery) {
        (Some(uri), _) => match check_key_url(&uri.value) {
            Ok(()) => Remote::Jwks(uri.value.clone()),
            Err(e) => {
                cx.error(uri.referenced, format!("{path}.jwks_uri"), e.to_string());
                return None;
            }
        },
        (None, Some(d)) => match check_key_url(&f.issuer.value) {
            Ok(()) => Remote::Discovery {
                issuer: f.issuer.value.clone(),
            },
            Err(e) => {
                cx.error(
                    d.referenced,
                    format!("{path}.discovery"),
                    format!("discovery needs an https issuer: {e}"),
                );
                return None;
            }
        },
        (None, None) => return None,
    };
    let (policy, timeout, max_bytes) = compile_refresh(cx, path, f.jwks_refresh.as_ref())?;
    // What defines the keys: an issuer whose origin is unchanged keeps its loaded keys (and
    // refresher) across a reload.
    let origin = format!(
        "{id} {} {remote:?} {policy:?} timeout={timeout:?} max_bytes={max_bytes}",
        f.issuer.value
    );
    let (keys, source) = inputs
        .stores
        .remote_keys(origin, || {
            let source = HttpKeySource::new(remote, timeout, max_bytes)?;

            let source: Arc<dyn KeySource> = Arc::new(source);
            Ok((IssuerKeys::remote(Arc::clone(id), policy), source))
        })
        .map_err(|e: crate::auth::fetch::FetchError| {
            cx.error(issuer_at, path.to_owned(), e.to_string())
        })
        .ok()?;
    Some(CompiledKeys {
        keys,
        source: Some(source),
    })
}

pub(super) const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) const DEFAULT_MAX_JWKS_BYTES: usize = 1024 * 1024;

pub(super) fn compile_refresh(
    cx: &mut Ctx,
    path: &str,
    r: Option<&JwksRefreshFile>,
) -> Option<(RefreshPolicy, Duration, usize)> {
    let mut policy = RefreshPolicy::default();
    let mut timeout = DEFAULT_FETCH_TIMEOUT;
    let mut max_bytes = DEFAULT_MAX_JWKS_BYTES;
    let Some(r) = r else {
        return Some((policy, timeout, max_bytes));
    };
    let errors_before = cx.errors.len();
    let base = format!("{path}.jwks_refresh");
    let mut set = |value: &Option<Text>, name: &str, target: &mut Duration| {
        if let Some(v) = value {
            if let Some(d) = parse_duration(cx, v, &format!("{base}.{name}")) {
                *target = d;
            }
        }
    };
    set(&r.interval, "interval", &mut policy.interval);
    set(&r.min_interval, "min_interval", &mut policy.min_interval);
    set(&r.max_interval, "max_interval", &mut policy.max_interval);
    set(
        &r.unknown_kid_cooldown,
        "unknown_kid_cooldown",
        &mut policy.unknown_kid_cooldown,
    );
    set(&r.max_staleness, "max_staleness", &mut policy.max_staleness);
    set(&r.timeout, "timeout", &mut timeout);
    if let Some(m) = &r.max_response_bytes {
        match usize::try_from(m.value) {
            Ok(v) if (1024..=16 * 1024 * 1024).contains(&v) => max_bytes = v,
            _ => cx.error(
                m.referenced,
                format!("{base}.max_response_bytes"),
                "must be between 1024 and 16777216",
            ),
        }
    }
    if policy.min_interval > policy.max_interval {
        cx.error(
            Location::UNKNOWN,
            base.clone(),
            "min_interval must not exceed max_interval",
        );
    }
    (cx.errors.len() == errors_before).then_some((policy, timeout, max_bytes))
}

pub(super) fn compile_algorithms(
    cx: &mut Ctx,
    path: &str,
    algorithms: Option<&Spanned<Vec<Text>>>,
) -> Option<Vec<Algorithm>> {
    let Some(list) = algorithms else {
        return Some(vec![Algorithm::RS256]);
    };
    if list.value.is_empty() {
        cx.error(
            list.referenced,
            format!("{path}.algorithms"),
            "at least one algorithm is required",
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for a in &list.value {
        match a.value.parse::<Algorithm>() {
            Ok(alg) => out.push(alg),
            Err(()) => {
                let why = if a.value.eq_ignore_ascii_case("none")
                    || a.value.to_ascii_uppercase().starts_with("HS")
                {
                    "unsigned and symmetric algorithms are never accepted".to_owned()
                } else {
                    let supported: Vec<&str> = Algorithm::ALL.iter().map(|a| a.as_str()).collect();
                    format!("supported: {}", supported.join(", "))
                };
                cx.error(
                    a.referenced,
                    format!("{path}.algorithms"),
                    format!("unknown algorithm \"{}\": {why}", a.value),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

pub(super) fn load_jwks_file(
    cx: &mut Ctx,
    path: &str,
    file: &Text,
    inputs: &Inputs<'_>,
    algorithms: &[Algorithm],
) -> Option<KeySet> {
    let at = file.referenced;
    let field = format!("{path}.jwks_file");
    let full = inputs.path(&file.value);
    let bytes = match inputs.src.read(&full) {
        Ok(b) => b,
        Err(e) => {
            cx.error(at, field, format!("cannot read {}: {e}", full.display()));
            return None;
        }
    };
    cx.watch(full.clone(), &bytes);
    let (keys, key_errors) = match KeySet::from_jwks_json(&bytes) {
        Ok(v) => v,
        Err(e) => {
            cx.error(at, field, format!("{}: {e}", full.display()));
            return None;
        }
    };
    for e in key_errors {
        cx.warn(
            at,
            field.clone(),
            format!("{}: {e}; the other keys are used", full.display()),
        );
    }
    if keys.is_empty() {
        cx.error(
            at,
            field,
            format!("{}: no usable signing key", full.display()),
        );
        return None;
    }
    for alg in algorithms {
        if keys.accepting(*alg).next().is_none() {
            cx.warn(
                at,
                field.clone(),
                format!("no key in {} can verify {alg}", full.display()),
            );
        }
    }
    Some(keys)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::source::Memory;

    const JWKS: &str = include_str!("../../../tests/fixtures/jwks.json");

    fn issuers(yaml: &str, src: &Memory) -> (Vec<Option<Issuer>>, Vec<String>, Vec<String>) {
        let mut cx = Ctx::default();
        let file: Vec<Spanned<IssuerFile>> = parse(yaml);
        let out = compile_issuers(&mut cx, &file, &inputs(src));
        let warnings = cx.warnings.iter().map(ToString::to_string).collect();
        (out, messages(&cx), warnings)
    }

    #[test]
    fn a_jwks_file_is_read_through_the_source() {
        let src = Memory::new(NOW).file(at("keys/jwks.json"), JWKS);
        let (out, errors, warnings) = issuers(
            r#"
- { id: corp, issuer: "https://idp.test", jwks_file: keys/jwks.json, audiences: [api], algorithms: [RS256, ES256], token_type: at+jwt }
- { id: gone, issuer: "https://gone.test", jwks_file: missing.json, audiences: [api] }
"#,
            &src,
        );
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors[0].contains("issuers[1].jwks_file") && errors[0].contains("missing.json"));
        assert_eq!(warnings, Vec::<String>::new());
        let corp = out[0].as_ref().unwrap();
        assert_eq!(corp.keys.current().map(|k| k.len()), Some(2));
        assert!(corp.rfc9068);
        assert!(out[1].is_none());
    }

    #[test]
    fn a_jwks_file_without_usable_keys_is_an_error_and_unused_algorithms_a_warning() {
        let rsa_only = r#"{"keys":[{"kty":"RSA","kid":"k","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB"}]}"#;
        let src = Memory::new(NOW)
            .file(at("rsa.json"), rsa_only)
            .file(at("empty.json"), r#"{"keys":[]}"#)
            .file(at("garbage.json"), "not json");
        let (_, errors, warnings) = issuers(
            r#"
- { id: a, issuer: "https://a.test", jwks_file: rsa.json, audiences: [api], algorithms: [RS256, ES256] }
- { id: b, issuer: "https://b.test", jwks_file: empty.json, audiences: [api] }
- { id: c, issuer: "https://c.test", jwks_file: garbage.json, audiences: [api] }
"#,
            &src,
        );
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(
            errors[0].contains("issuers[1].jwks_file")
                && errors[0].contains("no usable signing key")
        );
        assert!(errors[1].contains("issuers[2].jwks_file"));
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert!(warnings[0].contains("can verify ES256"), "{}", warnings[0]);
    }

    #[test]
    fn policy_mistakes_are_all_reported() {
        let src = Memory::new(NOW).file(at("jwks.json"), JWKS);
        let (out, errors, _) = issuers(
            r#"
- { id: a, issuer: "https://a.test", jwks_file: jwks.json, audiences: [], leeway: 10m }
- { id: a, issuer: "https://a.test", jwks_file: jwks.json, jwks_uri: "https://a.test/jwks", audiences: [api], algorithms: [HS256] }
- { id: c, issuer: "https://c.test", jwks_uri: "http://plain.test/jwks", audiences: [api] }
"#,
            &src,
        );
        assert!(out.iter().all(Option::is_none));
        let expect = [
            "issuers[0].audiences",
            "issuers[0].leeway",
            "issuers[1].id",
            "issuers[1].issuer",
            "issuers[1].algorithms",
            "exactly one key source",
            "issuers[2].jwks_uri",
        ];
        assert_eq!(errors.len(), expect.len(), "{errors:#?}");
        for (error, expected) in errors.iter().zip(expect) {
            assert!(error.contains(expected), "{error} (expected {expected})");
        }
    }
}
