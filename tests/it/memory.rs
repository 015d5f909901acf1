//! Issue 23: hostile input must not bloat the worker. Three 20,000-item `irn.generate` invoices
//! at once (each already answered by one capped rejection) keep the worker process's peak
//! resident set (VmHWM) below a documented bound (docs/operations.md, "Memory").
use serde_json::{json, Value};

use crate::helpers::{invoice, TestApp};

/// The bound, in KiB, for the test's (debug) build: see docs/operations.md, "Memory".
const PEAK_RSS_BOUND_KIB: u64 = 128 * 1024;

/// A process's peak resident set size so far (VmHWM), in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_20000_item_invoices_at_once_keep_the_worker_below_its_memory_bound() {
    let mut app = TestApp::spawn().await;
    // Only the measured process consumes: stop the test's in-process worker first.
    app.worker.take().expect("in-process worker").stop().await.expect("stops");
    let mut child = app.spawn_process();
    app.generate(&invoice("b2b-intra-goods", "M/0")).await;
    let (_, ev) = app.next_reply(60).await;
    assert_eq!(ev["event_type"], "irn.generated", "the process is consuming: {ev:#}");
    let before = vm_hwm_kib(child.id());
    for k in 1..=3 {
        let mut inv = invoice("b2b-intra-goods", &format!("M/{k}"));
        inv["ItemList"] = Value::Array(vec![json!({}); 20_000]);
        app.generate(&inv).await;
    }
    for _ in 0..3 {
        let (_, ev) = app.next_reply(60).await;
        assert_eq!(ev["event_type"], "irn.rejected", "{ev:#}");
        assert!(ev["data"]["errors"].as_array().unwrap().len() <= 100);
    }
    let peak = vm_hwm_kib(child.id());
    eprintln!(
        "memory: VmHWM {} KiB after start-up and one invoice, {} KiB after three 20,000-item invoices",
        before, peak
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(peak < PEAK_RSS_BOUND_KIB, "peak RSS {peak} KiB, bound {PEAK_RSS_BOUND_KIB} KiB");
    app.stop().await;
}
