//! The command line (clap derive only).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::telemetry::LogFormat;

/// portcullis: an OAuth 2.0 enforcing reverse proxy for HTTP APIs.
///
/// It validates bearer JWT access tokens (signature, iss, aud, exp, nbf, scopes) on every
/// request, strips forged identity headers and forwards verified identity to the backend.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about, long_about)]
pub struct Cli {
    /// Log format: json for containers, text for terminals [default: the config's
    /// logging.format, else json].
    #[arg(long, value_enum, global = true)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway with a configuration file until SIGTERM (graceful) or SIGINT.
    /// SIGHUP reloads the configuration; SIGQUIT hands the listening sockets to a new process
    /// started with --upgrade (zero-downtime binary upgrade).
    Run {
        /// The gateway configuration (YAML).
        #[arg(short, long, default_value = "gateway.yaml")]
        config: PathBuf,
        /// Take over the listening sockets of a running portcullis (which then gets SIGQUIT).
        #[arg(long)]
        upgrade: bool,
        /// The unix socket the listening sockets are handed over on [default: Pingora's
        /// /tmp/pingora_upgrade.sock]; give each instance on a host its own.
        #[arg(long)]
        upgrade_sock: Option<PathBuf>,
    },
    /// Check a configuration file: exit 0 when valid, 64 with every error and its line otherwise.
    Validate {
        /// The gateway configuration (YAML).
        #[arg(short, long, default_value = "gateway.yaml")]
        config: PathBuf,
        /// Also require what only the gateway's own machine has, as `run` does: the secrets
        /// (`admin.token_env`, `admin.token_file`, `revocation.redis.url_env`, TLS certificate
        /// and key files) and upstream host names that resolve. Without it, those are listed as
        /// not checked, so CI can validate a ConfigMap without the Secrets or the cluster's DNS.
        #[arg(long)]
        secrets: bool,
    },
    /// Explain how the gateway would answer one request: which route matches and why, each check
    /// of the token (signature, iss, alg, exp, nbf, iat, aud, scopes, revocation) with the exact
    /// reason, and the response. Remote issuer keys are fetched once. Exit status: 0 forwarded,
    /// 10 malformed request, 11 no route or method, 12 no token, 13 invalid token, 14 revoked,
    /// 15 insufficient scope, 16 keys unavailable, 20 forwarded unless revoked where explain cannot
    /// see, 64 invalid configuration, 1 explain itself failed.
    Explain {
        /// The gateway configuration (YAML).
        #[arg(short, long, default_value = "gateway.yaml")]
        config: PathBuf,
        /// The request method.
        #[arg(long, default_value = "GET")]
        method: String,
        /// The request URL, e.g. https://api.example.com/orders/7 (the host selects host routes).
        #[arg(long)]
        url: String,
        /// The bearer token, or @FILE to read it from a file (keeps it out of shell history).
        #[arg(long)]
        token: Option<String>,
        /// The client certificate (PEM) the request comes with, over TLS: a token bound to a
        /// certificate (cnf.x5t#S256, RFC 8705) is checked against it.
        #[arg(long)]
        client_cert: Option<PathBuf>,
        /// A DPoP proof (RFC 9449), or @FILE: the token is then sent as `Authorization: DPoP`
        /// with this proof in the `DPoP` header.
        #[arg(long)]
        dpop_proof: Option<String>,
        /// The client's address, for rate limits keyed by ip (explain counts in a table of its
        /// own, always fresh: it shows which limits apply and to which key).
        #[arg(long)]
        client_ip: Option<std::net::IpAddr>,
        /// A running gateway's admin address (host:port or URL): its revocation list (admin API,
        /// file, Redis) is read, so explain sees what that gateway enforces. Without it,
        /// revocations explain cannot see are reported as "unknown", never as a pass.
        #[arg(long)]
        admin: Option<String>,
        /// The admin token for --admin [default: the configuration's admin.token_file or
        /// admin.token_env].
        #[arg(long)]
        admin_token_file: Option<PathBuf>,
    },
    /// Print a JWKS for public keys (PEM: PUBLIC KEY or CERTIFICATE; RSA, EC P-256/P-384,
    /// Ed25519), each kid its RFC 7638 thumbprint: the jwks_file of an issuer that signs with
    /// its own keys. Sign tokens with that kid in their header.
    Jwks {
        /// PEM files, each with one or more public keys or certificates.
        #[arg(required = true)]
        pem: Vec<PathBuf>,
    },
    /// Start the drain of the gateway running in this container (SIGTERM to it), for a
    /// Kubernetes preStop hook of a native sidecar: its own SIGTERM comes only after the app
    /// container has exited, too late to drain. The process must be this same binary, in this
    /// container.
    Drain {
        /// The gateway's process id [default: the one other process of this binary in this
        /// container].
        #[arg(long)]
        pid: Option<i32>,
    },
    /// Run the gateway on the shipped configuration with a built-in echo backend, and print
    /// curl commands with freshly minted demo tokens (signed with a DEMO-ONLY key).
    Demo {
        /// The gateway configuration (YAML).
        #[arg(short, long, default_value = "gateway.yaml")]
        config: PathBuf,
        /// The demo RSA signing key (PEM), relative to the configuration's directory.
        #[arg(long, default_value = "deploy/demo/demo-signing-key.pem")]
        signing_key: PathBuf,
        /// The `kid` of the demo key in the demo JWKS.
        #[arg(long, default_value = "demo-rsa-1")]
        kid: String,
    },
}
