//! The `portcullis` binary: parse the command line, start logging, run, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use portcullis::app::{self, RunError};
use portcullis::cli::{Cli, Command};
use portcullis::{config, demo, telemetry};

/// mimalloc instead of glibc's malloc: the request path allocates per request while the
/// verified-token cache holds long-lived entries, and glibc's free-list upkeep
/// (`malloc_consolidate`, `unlink_chunk`) then costs over 10 % of a loaded proxy's CPU
/// (benches/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// sysexits.h EX_CONFIG-like code for "the configuration is invalid" (EX_USAGE, 64).
const EXIT_BAD_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    portcullis::install_crypto_provider();
    match cli.command {
        Command::Validate { config, secrets } => validate(&config, secrets),
        Command::Run {
            config,
            upgrade,
            upgrade_sock,
        } => {
            telemetry::init(cli.log_format, &config);
            let result = app::run(&config, upgrade, upgrade_sock.as_deref());
            telemetry::finish(); // the queued log lines first, then the final message
            exit_code(result, &config)
        }
        Command::Explain {
            config,
            method,
            url,
            token,
            client_cert,
            dpop_proof,
            client_ip,
            admin,
            admin_token_file,
        } => {
            telemetry::init(cli.log_format, &config);
            let result = app::explain(app::ExplainArgs {
                config: &config,
                method: &method,
                url: &url,
                token: token.as_deref(),
                client_cert: client_cert.as_deref(),
                dpop_proof: dpop_proof.as_deref(),
                client_ip,
                admin: admin.as_deref(),
                admin_token_file: admin_token_file.as_deref(),
            });
            telemetry::finish();
            match result {
                Ok((text, code)) => {
                    print!("{text}");
                    ExitCode::from(code)
                }
                Err(e) => exit_code(Err(e), &config),
            }
        }
        Command::Jwks { pem } => {
            let files: Vec<&std::path::Path> = pem.iter().map(|p| p.as_path()).collect();
            match portcullis::jwks_from_pem::jwks(&files) {
                Ok(json) => {
                    println!("{json}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Drain { pid } => match app::drain(pid) {
            Ok(pid) => {
                eprintln!("portcullis (pid {pid}) is draining");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Demo {
            config,
            signing_key,
            kid,
        } => {
            telemetry::init(cli.log_format, &config);
            let result = run_demo(&config, &signing_key, &kid);
            telemetry::finish();
            exit_code(result, &config)
        }
    }
}

fn validate(path: &std::path::Path, secrets: bool) -> ExitCode {
    let check = if secrets {
        config::Secrets::Required
    } else {
        config::Secrets::Deferred
    };
    match config::load_checking(path, check) {
        Ok(compiled) => {
            for w in &compiled.warnings {
                eprintln!("{}: warning: {w}", path.display());
            }
            for (what, s) in &compiled.unchecked {
                eprintln!(
                    "{} ({what} not checked here; portcullis validate --secrets requires it)",
                    s.in_file(path)
                );
            }
            println!("{}: valid", path.display());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{}", e.in_file(path));
            }
            eprintln!("{}: {} error(s)", path.display(), errors.0.len());
            ExitCode::from(EXIT_BAD_CONFIG)
        }
    }
}

fn run_demo(
    config_path: &std::path::Path,
    key: &std::path::Path,
    kid: &str,
) -> Result<(), RunError> {
    let snapshot = app::load(config_path)?;
    let base = config_path
        .parent()
        .unwrap_or_else(|| std::path::Path::new("."));
    let demo_failed = |e: demo::DemoError| RunError::Server(e.to_string());
    let tokens = demo::mint(
        &snapshot,
        &base.join(key),
        kid,
        portcullis::clock::unix_now(),
    )
    .map_err(demo_failed)?;
    demo::start_backends(&snapshot).map_err(demo_failed)?;
    println!("{}", demo::instructions(&snapshot, &tokens));
    app::run(config_path, false, None)
}

fn exit_code(result: Result<(), RunError>, config: &std::path::Path) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(RunError::Config(errors)) => {
            eprintln!(
                "portcullis: invalid configuration:\n{}",
                errors.in_file(config)
            );
            ExitCode::from(EXIT_BAD_CONFIG)
        }
        Err(e) => {
            eprintln!("portcullis: {e}");
            ExitCode::FAILURE
        }
    }
}
