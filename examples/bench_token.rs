//! Demo tokens for `make bench-load` (the demo issuer and its demo-only key).
//!
//! `bench_token CONFIG KEY KID` prints one valid token. `bench_token CONFIG KEY KID COUNT`
//! prints COUNT valid tokens, one per line, that differ only in their `jti`: the unique-token
//! load, where every request carries a signature the gateway has not verified yet. They are
//! signed on every core (RSA signing is slow: a few thousand a second per core).

use base64::Engine;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (config, key, kid, count) = match args.as_slice() {
        [config, key, kid] => (config, key, kid, None),
        [config, key, kid, count] => match count.parse::<usize>() {
            Ok(n) => (config, key, kid, Some(n)),
            Err(_) => usage(),
        },
        _ => usage(),
    };
    portcullis::install_crypto_provider();
    let snapshot = match portcullis::config::load(std::path::Path::new(config)) {
        Ok(compiled) => compiled.snapshot,
        Err(e) => fail(e),
    };
    let now = portcullis::clock::unix_now();
    let valid = match portcullis::demo::mint(&snapshot, std::path::Path::new(key), kid, now) {
        Ok(tokens) => tokens.valid,
        Err(e) => fail(e),
    };
    let Some(count) = count else {
        println!("{valid}");
        return;
    };
    // The valid token's header and claims, with a fresh jti per token.
    let mut parts = valid.split('.');
    let (Some(header), Some(payload)) = (parts.next(), parts.next()) else {
        fail("the demo token is not a JWS")
    };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header: jsonwebtoken::Header =
        serde_json::from_slice(&b64.decode(header).unwrap_or_else(|e| fail(e)))
            .unwrap_or_else(|e| fail(e));
    let claims: serde_json::Value =
        serde_json::from_slice(&b64.decode(payload).unwrap_or_else(|e| fail(e)))
            .unwrap_or_else(|e| fail(e));
    let pem = std::fs::read(key).unwrap_or_else(|e| fail(e));
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap_or_else(|e| fail(e));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunks: Vec<Vec<String>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (header, claims, key) = (&header, &claims, &key);
                s.spawn(move || {
                    (t..count)
                        .step_by(threads)
                        .map(|i| {
                            let mut claims = claims.clone();
                            claims["jti"] = format!("bench-{now}-{i}").into();
                            jsonwebtoken::encode(header, &claims, key).unwrap_or_else(|e| fail(e))
                        })
                        .collect()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| fail("a signing thread panicked"))
            })
            .collect()
    });
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for token in chunks.iter().flatten() {
        use std::io::Write;
        writeln!(out, "{token}").unwrap_or_else(|e| fail(e));
    }
}

fn usage() -> ! {
    eprintln!("usage: bench_token CONFIG KEY KID [COUNT]");
    std::process::exit(64);
}

fn fail(e: impl std::fmt::Display) -> ! {
    eprintln!("bench_token: {e}");
    std::process::exit(1);
}
