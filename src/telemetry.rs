//! Logging set-up: tracing-subscriber, JSON or text, level from `RUST_LOG` (default `info`).
//! Pingora's own `log` output is bridged into the same subscriber.
//!
//! Secrets never reach the logs: the gateway's own lines carry only verified, bounded fields, and
//! the libraries that dump whole request headers or targets (Authorization, Cookie, query
//! strings with `access_token`) at DEBUG and TRACE level are held at INFO whatever `RUST_LOG`
//! asks for. Found by `tests/logs/logging.rs`: pingora logs the full request header at TRACE and the
//! upstream request (query included) at DEBUG.

use clap::ValueEnum;
use tracing::{Level, Metadata};
use tracing_subscriber::filter::FilterFn;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line: for containers and log pipelines.
    Json,
    /// Human-readable lines: for terminals.
    Text,
}

/// Crates whose DEBUG/TRACE output includes request headers or targets.
const HEADER_DUMPING_TARGETS: [&str; 5] = ["pingora", "h2", "hyper", "reqwest", "rustls"];

/// False for events that could carry credentials: DEBUG and TRACE from header-dumping crates.
pub fn is_safe_to_log(meta: &Metadata<'_>) -> bool {
    matches!(*meta.level(), Level::ERROR | Level::WARN | Level::INFO)
        || !HEADER_DUMPING_TARGETS
            .iter()
            .any(|t| meta.target().starts_with(t))
}

/// `json` or `text`.
pub fn parse_format(s: &str) -> Option<LogFormat> {
    match s {
        "json" => Some(LogFormat::Json),
        "text" => Some(LogFormat::Text),
        _ => None,
    }
}

/// The log format and filter to use: `--log-format` over the config's `logging.format` over
/// JSON; `RUST_LOG` over the config's `logging.level` over `info`. The config is only parsed
/// here (an invalid one is reported by the command itself).
pub fn settings(
    cli_format: Option<LogFormat>,
    config_path: &std::path::Path,
) -> (LogFormat, String) {
    let logging = std::fs::read_to_string(config_path)
        .ok()
        .and_then(|text| crate::config::parse(&text).ok())
        .and_then(|file| file.logging);
    let config_format = logging
        .as_ref()
        .and_then(|l| l.format.as_ref())
        .and_then(|f| parse_format(&f.value));
    let config_level = logging
        .as_ref()
        .and_then(|l| l.level.as_ref())
        .map(|l| l.value.clone());
    let format = cli_format.or(config_format).unwrap_or(LogFormat::Json);
    let directives = std::env::var("RUST_LOG")
        .ok()
        .or(config_level)
        .unwrap_or_else(|| "info".to_owned());
    (format, directives)
}

/// Install the global subscriber writing to stderr, with [`settings`]. Later calls are ignored.
pub fn init(cli_format: Option<LogFormat>, config_path: &std::path::Path) {
    let (format, directives) = settings(cli_format, config_path);
    init_with_writer(format, &directives, std::io::stderr);
}

/// Install the global subscriber with `directives` (`RUST_LOG` syntax) and `writer`; returns
/// false when a subscriber was installed already.
pub fn init_with_writer<W>(format: LogFormat, directives: &str, writer: W) -> bool
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    let fmt = match format {
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
        LogFormat::Text => fmt.boxed(),
    };
    // The filter's most verbose level, passed on: `try_init` installs the `log` → tracing bridge
    // for pingora's messages with it as `log`'s static maximum, so a `debug!` that nobody
    // enabled stops at one atomic load instead of building a record for the filters to drop.
    let mut safe = FilterFn::new(is_safe_to_log);
    if let Some(max) = filter.max_level_hint() {
        safe = safe.with_max_level_hint(max);
    }
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter).with_filter(safe))
        .try_init()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The only test in the unit-test binary that installs the global subscriber.
    #[test]
    fn log_records_below_the_configured_level_stop_at_the_static_maximum() {
        let installed = init_with_writer(
            LogFormat::Json,
            "info,portcullis::admission=debug",
            std::io::sink,
        );
        assert!(installed);
        // The most verbose directive is `debug` (for one target): pingora's `trace!` records are
        // cut by `log`'s own check, before the bridge.
        assert_eq!(log::max_level(), log::LevelFilter::Debug);
    }
}
