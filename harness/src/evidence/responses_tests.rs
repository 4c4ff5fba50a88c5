use super::*;
use crate::evidence::{Layer, ResponseRecord};
use std::sync::Arc;

fn record(seq: u64, status: u16) -> ResponseRecord {
    ResponseRecord {
        t_ms: seq * 10,
        phase: Some(0),
        request: 0,
        attempt: 1,
        late_ms: 0,
        status,
        latency_ms: 7,
        layer: if status == 0 {
            Layer::Client
        } else {
            Layer::App
        },
        replica: (status != 0).then(|| Arc::from("checkout-0")),
        upstream: (status != 0).then(|| Arc::from("127.0.0.1:4001")),
        retry_after: status == 503,
        seq,
        error: (status == 0).then_some("timeout"),
    }
}

/// The lines of `path` as JSON values (what any consumer of responses.jsonl reads).
fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// What a killed run leaves: pushes, a flush interval, one more push (which flushes), and no
/// finish, no reader, no drop: the file already holds every record, one JSON line each, in
/// exactly today's responses.jsonl format.
#[test]
fn records_reach_the_file_within_a_flush_interval_without_finish() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("responses.jsonl");
    let mut log = ResponseLog::create(&path).unwrap();
    for seq in 0..50 {
        log.push(record(seq, 200));
    }
    std::thread::sleep(FLUSH_EVERY + std::time::Duration::from_millis(50));
    log.push(record(50, 0));
    let on_disk = lines(&path);
    assert_eq!(on_disk.len(), 51, "records on disk before any finish");
    assert_eq!(on_disk[0], serde_json::to_value(record(0, 200)).unwrap());
    assert_eq!(on_disk[50]["error"], "timeout");
    assert_eq!(on_disk[50]["layer"], "client");
    // The log is still in use: nothing above closed it.
    assert_eq!(log.len(), 51);
    std::mem::forget(log); // as a SIGKILL would: no destructor, no final flush
}

/// Read back, records are what was pushed (owned, in order), as often as asked, while the
/// writer goes on; a reader from a position sees only what came after it.
#[test]
fn records_read_back_as_pushed_from_the_start_each_time() {
    let mut log = ResponseLog::default();
    assert!(log.is_empty() && log.iter().next().is_none() && log.path().is_none());
    for seq in 0..10 {
        log.push(record(seq, if seq % 3 == 0 { 503 } else { 0 }));
    }
    let back: Vec<ResponseRecord> = log.iter().collect();
    assert_eq!(back.len(), 10);
    for (seq, r) in back.iter().enumerate() {
        let want = serde_json::to_value(record(seq as u64, r.status)).unwrap();
        assert_eq!(serde_json::to_value(r).unwrap(), want);
    }
    assert_eq!(back[1].error, Some("timeout"));
    assert_eq!(back[0].replica.as_deref(), Some("checkout-0"));
    let mut first = log.iter();
    assert_eq!(first.by_ref().take(4).count(), 4);
    let at = first.position();
    log.push(record(10, 200));
    assert_eq!(
        log.iter().count(),
        11,
        "a second reader starts from the beginning"
    );
    let since: Vec<u64> = log.iter_from(at).map(|r| r.seq).collect();
    assert_eq!(since, (4..=10).collect::<Vec<_>>());
    assert_eq!(log.error(), None);
}

/// A file that is not what the load wrote stops the reading with the error kept, never a panic
/// or a silent default.
#[test]
fn an_unreadable_line_is_an_error_not_a_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("responses.jsonl");
    let mut log = ResponseLog::create(&path).unwrap();
    log.push(record(0, 200));
    log.flush();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&text.replace("\"error\":null", "\"error\":\"gremlins\""));
    text.push_str(&text.clone());
    std::fs::write(&path, text).unwrap();
    assert_eq!(log.iter().count(), 1);
    let e = log.error().unwrap();
    assert!(e.contains("line 2") && e.contains("gremlins"), "{e}");
}

/// Acknowledged keys go to their file and come back, also by a reader that owns its file.
#[test]
fn acknowledged_keys_stream_to_a_file_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acknowledged.jsonl");
    let mut keys = KeyLog::create(&path).unwrap();
    for k in ["k1", "k\n2", "k3"] {
        keys.push(k);
    }
    assert_eq!(keys.len(), 3);
    let read: Vec<String> = keys.reader().collect();
    assert_eq!(read, ["k1", "k\n2", "k3"]);
    assert_eq!(keys.iter().count(), 3);
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
}

/// A copy goes elsewhere; a copy onto the log's own file leaves it as it is.
#[test]
fn the_report_copies_only_evidence_kept_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().join("responses.jsonl");
    let mut log = ResponseLog::create(&own).unwrap();
    log.push(record(0, 200));
    log.copy_to(&own).unwrap();
    assert_eq!(lines(&own).len(), 1);
    let other = dir.path().join("copy.jsonl");
    log.copy_to(&other).unwrap();
    assert_eq!(lines(&other), lines(&own));
    let empty = dir.path().join("empty.jsonl");
    ResponseLog::default().copy_to(&empty).unwrap();
    assert_eq!(std::fs::read_to_string(&empty).unwrap(), "");
}
