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
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
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

/// How the process logs, decided at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub format: LogFormat,
    /// `RUST_LOG` syntax.
    pub directives: String,
    /// The writer's queue, in lines ([`non_blocking`]).
    pub buffer_lines: usize,
}

/// The log format, filter and buffer to use: `--log-format` over the config's `logging.format`
/// over JSON; `RUST_LOG` over the config's `logging.level` over `info`; `logging.buffer_lines`
/// over [`BUFFERED_LINES`]. The config is only parsed here (an invalid one is reported by the
/// command itself).
pub fn settings(cli_format: Option<LogFormat>, config_path: &std::path::Path) -> LogSettings {
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
    let buffer_lines = logging
        .as_ref()
        .and_then(|l| l.buffer_lines.as_ref())
        .and_then(|n| usize::try_from(n.value).ok())
        .filter(|n| BUFFER_LINES_RANGE.contains(n))
        .unwrap_or(BUFFERED_LINES);
    LogSettings {
        format,
        directives,
        buffer_lines,
    }
}

/// What `logging.buffer_lines` accepts.
pub const BUFFER_LINES_RANGE: std::ops::RangeInclusive<usize> = 16..=1_000_000;

/// Lines the log writer holds while stderr is slow: over half a second of full load on one
/// core. Access-log lines are about 400 bytes and at most about 2.5 KB (their variable fields
/// are capped), so the queue holds about 3 MB, and at most about 20 MB.
pub const BUFFERED_LINES: usize = 8_192;

/// The installed log writer's count of dropped lines.
static DROPPED: std::sync::OnceLock<ErrorCounter> = std::sync::OnceLock::new();

/// Log lines dropped so far because the writer's buffer was full (stderr too slow).
pub fn dropped_lines() -> u64 {
    DROPPED.get().map(|c| c.dropped_lines() as u64).unwrap_or(0)
}

/// The installed writer's guard: dropping it writes out what is still queued.
static GUARD: std::sync::Mutex<Option<WorkerGuard>> = std::sync::Mutex::new(None);

/// Install the global subscriber writing to stderr through [`non_blocking`], with
/// [`settings`]. Later calls are ignored. Call [`finish`] before the process exits.
pub fn init(cli_format: Option<LogFormat>, config_path: &std::path::Path) {
    let settings = settings(cli_format, config_path);
    let (writer, guard) = non_blocking(std::io::stderr(), settings.buffer_lines);
    // Colours only for a person at a terminal: never escape codes in a file or a collector.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    if init_with_writer(settings.format, &settings.directives, ansi, writer.clone()) {
        let _ = DROPPED.set(writer.error_counter());
        *GUARD.lock().unwrap_or_else(|e| e.into_inner()) = Some(guard);
    }
}

/// Before the process exits (from `main`, or the drain watcher's `exit`): write out the queued
/// lines, then say on stderr how many were dropped, if any. Later log lines are dropped.
///
/// Bounded even when stderr is stalled: the writer's thread gets about a second to drain its
/// queue (what it has not written by then is lost with the process), and the final message is
/// written from a thread of its own, waited for at most a second.
pub fn finish() {
    let guard = GUARD.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(guard) = guard {
        drop(guard);
        let dropped = dropped_lines();
        if dropped > 0 {
            let (done, wrote) = std::sync::mpsc::channel();
            let spawned = std::thread::Builder::new()
                .name("portcullis-log-end".into())
                .spawn(move || {
                    use std::io::Write;
                    // A closed stderr is not worth a panic at exit.
                    let _ = writeln!(
                        std::io::stderr(),
                        "portcullis: {dropped} log line(s) were dropped because stderr did not keep up (logging.buffer_lines)"
                    );
                    let _ = done.send(());
                });
            if spawned.is_ok() {
                let _ = wrote.recv_timeout(std::time::Duration::from_secs(1));
            }
        }
    }
}

/// A writer that never blocks the caller, so a slow stderr pipe (a busy log collector) never
/// stalls a Pingora worker: each line goes onto a bounded queue of `lines`, and a thread writes
/// the queue to `inner` in batches (one `write` per batch under load). When the queue is full
/// the line is dropped and counted ([`NonBlocking::error_counter`], exported as
/// `portcullis_log_lines_dropped_total`).
pub fn non_blocking<W: std::io::Write + Send + 'static>(
    inner: W,
    lines: usize,
) -> (NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default()
        .buffered_lines_limit(lines)
        .lossy(true)
        .thread_name("portcullis-log")
        .finish(std::io::BufWriter::with_capacity(64 * 1024, inner))
}

/// Install the global subscriber with `directives` (`RUST_LOG` syntax) and `writer`, with ANSI
/// colours in the text format when `ansi`; returns false when a subscriber was installed already.
pub fn init_with_writer<W>(format: LogFormat, directives: &str, ansi: bool, writer: W) -> bool
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    let fmt = match format {
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .map_event_format(WithoutLogLocation)
            .boxed(),
        LogFormat::Text => fmt.with_ansi(ansi).boxed(),
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
        // ERROR only: an unfiltered layer would raise `log`'s static maximum to TRACE.
        .with(HandshakeFailures.with_filter(tracing_subscriber::filter::LevelFilter::ERROR))
        .try_init()
        .is_ok()
}

/// Why TLS handshakes failed, from Pingora's own error line for each (it has no hook of its
/// own): the label values of `portcullis_tls_handshake_failures_total`, in the order
/// [`handshake_failure_reason`] tries them.
pub const HANDSHAKE_FAILURE_REASONS: [&str; 11] = [
    "client_cert_missing",
    "client_cert_unknown_ca",
    "client_cert_expired",
    "client_cert_not_yet_valid",
    "client_cert_revoked",
    "client_cert_invalid",
    "server_cert_refused",
    "incompatible",
    "invalid_message",
    "timeout",
    "other",
];

/// The reason of a failed handshake, from the text of Pingora's `Downstream handshake error`
/// line (rustls' error), or `None` when the line is not about a handshake.
pub fn handshake_failure_reason(message: &str) -> Option<&'static str> {
    if message.starts_with("Downstream handshake timeout") {
        return Some("timeout");
    }
    if !message.starts_with("Downstream handshake error") {
        return None;
    }
    // rustls' `Error` Display texts (rustls 0.23, src/error.rs).
    let reason = if message.contains("peer sent no certificates") {
        "client_cert_missing"
    } else if let Some(why) = message.split("invalid peer certificate: ").nth(1) {
        match why {
            w if w.starts_with("UnknownIssuer") => "client_cert_unknown_ca",
            w if w.starts_with("Expired") || w.starts_with("certificate expired") => {
                "client_cert_expired"
            }
            w if w.starts_with("NotValidYet") || w.starts_with("certificate not valid yet") => {
                "client_cert_not_yet_valid"
            }
            w if w.starts_with("Revoked") => "client_cert_revoked",
            _ => "client_cert_invalid",
        }
    } else if let Some(alert) = message.split("received fatal alert: ").nth(1) {
        // The client refused the gateway's certificate; other alerts are protocol trouble.
        match [
            "UnknownCA",
            "BadCertificate",
            "CertificateExpired",
            "CertificateUnknown",
            "CertificateRevoked",
            "UnsupportedCertificate",
        ]
        .iter()
        .any(|a| alert.starts_with(a))
        {
            true => "server_cert_refused",
            false => "incompatible",
        }
    } else if message.contains("peer is incompatible")
        || message.contains("peer doesn't support any known protocol")
        // The certificate resolver declines a client that offers no TLS 1.3 suite on a
        // `min_version: "1.3"` listener.
        || message.contains("no server certificate chain resolved")
    {
        "incompatible"
    } else if message.contains("received corrupt message")
        || message.contains("received unexpected message")
    {
        "invalid_message"
    } else {
        "other"
    };
    Some(reason)
}

/// `portcullis_tls_handshake_failures_total{reason}`: one counter for the process, which every
/// metrics registry exports.
pub fn handshake_failures() -> &'static prometheus::IntCounterVec {
    static FAILURES: std::sync::OnceLock<prometheus::IntCounterVec> = std::sync::OnceLock::new();
    FAILURES.get_or_init(|| {
        let opts = prometheus::Opts::new(
            "tls_handshake_failures_total",
            "TLS handshakes that failed on a listener, by reason (client_cert_* for a refused or missing client certificate).",
        );
        // Named without the prefix: each metrics registry adds `portcullis_`.
        // The options are fixed and valid: this cannot fail.
        let vec = prometheus::IntCounterVec::new(opts, &["reason"])
            .unwrap_or_else(|_| unreachable_counter());
        for reason in HANDSHAKE_FAILURE_REASONS {
            vec.with_label_values(&[reason]);
        }
        vec
    })
}

#[cold]
fn unreachable_counter() -> prometheus::IntCounterVec {
    let opts = prometheus::Opts::new("tls_handshake_failures_unavailable", "unavailable");
    match prometheus::IntCounterVec::new(opts, &["reason"]) {
        Ok(v) => v,
        Err(_) => std::process::abort(),
    }
}

/// Counts Pingora's handshake-failure lines into [`handshake_failures`]; the lines themselves
/// are logged as they are (ERROR, with the peer address and rustls' reason).
struct HandshakeFailures;

impl<S: tracing::Subscriber> Layer<S> for HandshakeFailures {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() != Level::ERROR {
            return;
        }
        // Bridged from `log`: the real target is in the `log.target` field.
        #[derive(Default)]
        struct Line {
            pingora: bool,
            message: Option<String>,
        }
        impl tracing::field::Visit for Line {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "log.target" {
                    self.pingora = value.starts_with("pingora_core");
                }
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.message = Some(format!("{value:?}"));
                }
            }
        }
        let mut line = Line::default();
        event.record(&mut line);
        if !line.pingora {
            return;
        }
        if let Some(reason) = line.message.as_deref().and_then(handshake_failure_reason) {
            handshake_failures().with_label_values(&[reason]).inc();
        }
    }
}

/// The JSON event format without the `log.file`, `log.line`, `log.module_path` and `log.target`
/// fields that the `log` bridge adds to Pingora's lines: they name paths on the machine the
/// binary was built on (`/root/.cargo/registry/…`) and say nothing to an operator; `target`
/// already names the module. (tracing-subscriber drops them only when not flattening.)
/// Only bridged events pay for it: they are formatted, parsed and written again.
struct WithoutLogLocation<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for WithoutLogLocation<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        if event.metadata().fields().field("log.file").is_none() {
            return self.0.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.0.format_event(
            ctx,
            tracing_subscriber::fmt::format::Writer::new(&mut line),
            event,
        )?;
        match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&line) {
            Ok(mut fields) => {
                fields.retain(|k, _| !k.starts_with("log."));
                writeln!(writer, "{}", serde_json::Value::Object(fields))
            }
            Err(_) => writer.write_str(&line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_failures_are_classified_from_pingora_s_line() {
        let line = |e: &str| {
            format!("Downstream handshake error from 127.0.0.1:38376:  TLSHandshakeFailure context: tls connect error: {e}")
        };
        for (error, reason) in [
            ("peer sent no certificates", "client_cert_missing"),
            (
                "invalid peer certificate: UnknownIssuer",
                "client_cert_unknown_ca",
            ),
            ("invalid peer certificate: Expired", "client_cert_expired"),
            (
                "invalid peer certificate: certificate expired: verification time 1796093777 (UNIX), but certificate is not valid after 1796000000 (93777 seconds ago)",
                "client_cert_expired",
            ),
            (
                "invalid peer certificate: certificate not valid yet: verification time 1 (UNIX), but certificate is not valid before 2 (1 seconds in future)",
                "client_cert_not_yet_valid",
            ),
            ("unexpected error: no server certificate chain resolved", "incompatible"),
            ("peer doesn't support any known protocol", "incompatible"),
            (
                "invalid peer certificate: BadSignature",
                "client_cert_invalid",
            ),
            ("received fatal alert: UnknownCA", "server_cert_refused"),
            ("received fatal alert: ProtocolVersion", "incompatible"),
            (
                "peer is incompatible: NoCipherSuitesInCommon",
                "incompatible",
            ),
            (
                "received corrupt message of type InvalidContentType",
                "invalid_message",
            ),
            ("Connection reset by peer (os error 104)", "other"),
        ] {
            assert_eq!(
                handshake_failure_reason(&line(error)),
                Some(reason),
                "{error}"
            );
        }
        assert_eq!(
            handshake_failure_reason("Downstream handshake timeout"),
            Some("timeout")
        );
        assert_eq!(handshake_failure_reason("Accept() failed"), None);
        assert!(HANDSHAKE_FAILURE_REASONS
            .iter()
            .all(|r| { handshake_failures().with_label_values(&[r]).get() == 0 }));
    }

    /// The texts come from rustls' own errors, as Pingora formats them.
    #[test]
    fn rustls_errors_are_classified() {
        use rustls::pki_types::UnixTime;
        use rustls::{AlertDescription, CertificateError, Error};
        let at = |s| UnixTime::since_unix_epoch(std::time::Duration::from_secs(s));
        for (error, reason) in [
            (Error::NoCertificatesPresented, "client_cert_missing"),
            (
                Error::InvalidCertificate(CertificateError::UnknownIssuer),
                "client_cert_unknown_ca",
            ),
            (
                Error::InvalidCertificate(CertificateError::ExpiredContext {
                    time: at(2_000),
                    not_after: at(1_000),
                }),
                "client_cert_expired",
            ),
            (
                Error::InvalidCertificate(CertificateError::NotValidYetContext {
                    time: at(1_000),
                    not_before: at(2_000),
                }),
                "client_cert_not_yet_valid",
            ),
            (
                Error::InvalidCertificate(CertificateError::Revoked),
                "client_cert_revoked",
            ),
            (
                Error::InvalidCertificate(CertificateError::BadSignature),
                "client_cert_invalid",
            ),
            (
                Error::AlertReceived(AlertDescription::UnknownCA),
                "server_cert_refused",
            ),
            (
                Error::AlertReceived(AlertDescription::ProtocolVersion),
                "incompatible",
            ),
            (Error::NoApplicationProtocol, "incompatible"),
            (
                Error::General("no server certificate chain resolved".to_owned()),
                "incompatible",
            ),
        ] {
            let line = format!(
                "Downstream handshake error from 10.0.0.1:5000:  TLSHandshakeFailure context: tls connect error: {error}"
            );
            assert_eq!(handshake_failure_reason(&line), Some(reason), "{line}");
        }
    }

    /// The only test in the unit-test binary that installs the global subscriber.
    #[test]
    fn log_records_below_the_configured_level_stop_at_the_static_maximum() {
        let installed = init_with_writer(
            LogFormat::Json,
            "info,portcullis::admission=debug",
            false,
            std::io::sink,
        );
        assert!(installed);
        // The most verbose directive is `debug` (for one target): pingora's `trace!` records are
        // cut by `log`'s own check, before the bridge.
        assert_eq!(log::max_level(), log::LevelFilter::Debug);
    }

    /// Stands for a stalled stderr pipe: the first `write` says so, then blocks until released.
    /// Every write is reported on `wrote`.
    struct Stalled {
        entered: Option<std::sync::mpsc::Sender<()>>,
        release: std::sync::mpsc::Receiver<()>,
        out: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
        wrote: std::sync::mpsc::Sender<()>,
    }

    impl std::io::Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Some(entered) = self.entered.take() {
                entered.send(()).unwrap();
                self.release.recv().unwrap();
            }
            self.out.lock().unwrap().extend_from_slice(buf);
            let _ = self.wrote.send(());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_writer_never_blocks_the_caller_and_every_dropped_line_is_counted() {
        use std::io::Write;
        let (entered_tx, entered) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel();
        let (wrote_tx, wrote) = std::sync::mpsc::channel();
        let out = std::sync::Arc::default();
        let stalled = Stalled {
            entered: Some(entered_tx),
            release: release_rx,
            out: std::sync::Arc::clone(&out),
            wrote: wrote_tx,
        };
        let (mut writer, guard) = non_blocking(stalled, 4);
        let dropped = writer.error_counter();
        writer.write_all(b"first\n").unwrap();
        // The writer's thread has taken the first line and is stuck writing it.
        entered.recv().unwrap();
        for i in 0..100 {
            // Returns at once: queued while there is room, dropped after.
            writer.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        assert_eq!(dropped.dropped_lines(), 96);
        release.send(()).unwrap();
        // Everything queued reaches the writer; then the guard ends its thread.
        let text = || String::from_utf8(out.lock().unwrap().clone()).unwrap();
        while !text().ends_with("line 3\n") {
            wrote.recv().unwrap();
        }
        drop(guard);
        assert_eq!(text(), "first\nline 0\nline 1\nline 2\nline 3\n");
    }
}
