//! Logging set-up: tracing-subscriber, JSON or text, level from `RUST_LOG` (default `info`).
//! Pingora's own `log` output is bridged into the same subscriber.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line: for containers and log pipelines.
    Json,
    /// Human-readable lines: for terminals.
    Text,
}

/// Install the global subscriber. Safe to call once; later calls are ignored.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init also installs the `log` → tracing bridge for pingora's messages.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
