//! Capturing what the gateway logs, for the test binaries that install the gateway's own
//! subscriber (one per binary: it is global).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Everything the gateway logs in this test binary, at trace level: the gateway's own JSON
/// subscriber, installed by the first caller.
pub fn captured() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| Captured::install("trace"))
}

/// A `MakeWriter` that keeps every byte written.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Install the gateway's JSON log subscriber with `directives`, writing here.
    pub fn install(directives: &str) -> Captured {
        let captured = Captured::default();
        let writer = captured.clone();
        let installed = portcullis::telemetry::init_with_writer(
            portcullis::telemetry::LogFormat::Json,
            directives,
            false,
            move || writer.clone(),
        );
        assert!(installed, "another subscriber was installed first");
        captured
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    /// Every JSON line.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}
