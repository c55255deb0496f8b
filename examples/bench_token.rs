//! Prints a valid demo token for a configuration (the demo issuer and its demo-only key), for
//! `make bench-load`: `bench_token CONFIG KEY KID`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config, key, kid] = args.as_slice() else {
        eprintln!("usage: bench_token CONFIG KEY KID");
        std::process::exit(64);
    };
    portcullis::install_crypto_provider();
    let snapshot = match portcullis::config::load(std::path::Path::new(config)) {
        Ok(compiled) => compiled.snapshot,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(64);
        }
    };
    let now = portcullis::clock::unix_now();
    match portcullis::demo::mint(&snapshot, std::path::Path::new(key), kid, now) {
        Ok(tokens) => println!("{}", tokens.valid),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
