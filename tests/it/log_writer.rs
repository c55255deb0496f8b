//! The binary's log writer with a stalled stderr (a log collector that stopped reading): the
//! proxy keeps serving, and every access-log line is either written or counted as dropped
//! (`portcullis_log_lines_dropped_total`, and a last line at exit). Before the non-blocking
//! writer, the worker blocked in `write(2)` once the pipe was full and requests hung.

use std::time::Duration;

use crate::support::*;

/// Requests per batch; batches go on until the metric shows drops (the pipe's size depends on
/// the kernel's page size), at most `MAX_BATCHES`.
const BATCH: usize = 500;
const MAX_BATCHES: usize = 20;

#[tokio::test]
async fn a_stalled_stderr_never_stalls_requests_and_every_line_is_written_or_counted() {
    let echo = echo_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"listeners: [{{ name: t, address: "{{listen}}" }}]
admin: {{ address: "{{admin}}" }}
logging: {{ buffer_lines: 64 }}
upstreams: [{{ id: echo, url: "http://{}" }}]
routes: [{{ id: open, match: {{ path_prefix: / }}, upstream: echo, auth: public }}]
"#,
        echo
    );
    let (gw, release) = GatewayProcess::start_holding_logs(&yaml, dir.path()).await;
    let (listen, admin) = (gw.listen, gw.admin);
    let client = client();
    let metrics_url = format!("http://{admin}/metrics");
    let dropped_metric = || async {
        let metrics = client
            .get(&metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("portcullis_log_lines_dropped_total "))
            .expect("portcullis_log_lines_dropped_total is exported")
            .parse::<u64>()
            .unwrap()
    };
    // About 300 bytes of access log each: the pipe (64 KiB with 4 KiB pages), the writer's
    // buffer (64 KiB) and its queue (64 lines) fill within the first batch.
    let mut sent = 0;
    let mut dropped_seen = 0;
    for _ in 0..MAX_BATCHES {
        let batch = async {
            for _ in 0..BATCH {
                let resp = client
                    .get(format!("http://{listen}/items/{sent}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200, "request {sent}");
                sent += 1;
            }
        };
        // A bound on a broken test (requests hang when the log write blocks), not a delay.
        tokio::time::timeout(Duration::from_secs(120), batch)
            .await
            .expect("requests stalled behind the unread stderr");
        dropped_seen = dropped_metric().await;
        if dropped_seen > 0 {
            break;
        }
    }
    assert!(dropped_seen > 0, "nothing dropped after {sent} requests");

    release.send(()).unwrap();
    gw.signal("-TERM");
    let (status, lines) = gw.remaining_logs_until_exit().await;
    assert!(status.success(), "exit status {status:?}");
    let written = lines
        .iter()
        .filter(|l| l.contains(r#""target":"portcullis::access""#))
        .count();
    let last = lines.last().expect("the gateway logged nothing");
    let dropped: usize = last
        .strip_prefix("portcullis: ")
        .and_then(|l| l.split_once(" log line(s) were dropped"))
        .map(|(n, _)| n.parse().unwrap())
        .unwrap_or_else(|| panic!("no count of dropped lines at exit: {last}"));
    assert!(dropped as u64 >= dropped_seen);
    assert!(written < sent, "no access line was dropped");
    assert!(
        written + dropped >= sent,
        "{written} access lines written and {dropped} lines dropped: some were lost uncounted"
    );
}
