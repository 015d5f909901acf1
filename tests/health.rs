//! The health port, in a test binary of its own: the metrics recorder is process-wide, so the
//! counters checked here must not see other tests' workers.
#[allow(dead_code)]
#[path = "it/contract.rs"]
mod contract;
#[allow(dead_code, unused_macros)]
#[path = "it/helpers.rs"]
mod helpers;

use helpers::{invoice, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_endpoints() {
    let mut app = TestApp::spawn_with(helpers::Options {
        extra_toml: "health_listen = \"127.0.0.1:0\"\nstatus_token = \"status-t0ken\"".into(),
        ..Default::default()
    })
    .await;
    let addr = app.worker.as_ref().unwrap().health_addr.expect("health endpoint bound");
    let get = |path: &str| reqwest::get(format!("http://{addr}{path}"));
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    let ready = get("/readyz").await.unwrap();
    assert_eq!(ready.status(), 200, "{:?}", ready.text().await);
    // Every catalogued metric is there from start-up, before any command (alerts need series).
    let at_start = get("/metrics").await.unwrap().text().await.unwrap();
    for def in einvoice_worker::telemetry::metrics::CATALOG {
        assert!(at_start.contains(&format!("# HELP {} ", def.name)), "{} missing at start-up:\n{at_start}", def.name);
    }
    assert!(at_start.contains("einvoice_build_info{version=\""), "{at_start}");
    assert!(
        at_start.contains("einvoice_commands_total{routing_key=\"irn.generate\",outcome=\"success\"} 0"),
        "{at_start}"
    );
    app.generate(&invoice("b2b-intra-goods", "R7/0001")).await;
    app.next_reply(20).await;
    // The relay counts an event once its confirm is in, which may be just after we got it.
    let published = "einvoice_events_published_total{event_type=\"irn.generated\"} 1";
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = get("/metrics").await.unwrap().text().await.unwrap();
        if metrics.contains(published) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // This binary runs one worker, so the process-wide counters are exactly this test's.
    assert!(
        metrics.contains("einvoice_commands_total{routing_key=\"irn.generate\",outcome=\"success\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains(published), "{metrics}");
    assert!(
        metrics.contains("einvoice_command_duration_seconds_count{routing_key=\"irn.generate\"} 1"),
        "a histogram, not a summary: {metrics}"
    );
    assert!(
        metrics.contains("einvoice_irp_call_duration_seconds_count{irp=\"whitebooks\",operation=\"generate\"} 1"),
        "{metrics}"
    );
    // Per-GSTIN series are opt-in (`metrics_per_gstin`): by default the token is counted in
    // the series without a `gstin` label, and no series names a GSTIN.
    assert!(metrics.contains("\neinvoice_token_refreshes_total 1\n"), "{metrics}");
    assert!(!metrics.contains("gstin=\""), "{metrics}");
    assert!(!metrics.contains("Some("), "no Debug output in labels: {metrics}");
    // The status page needs the bearer token (the probes and /metrics above did not).
    let anonymous = get("/status").await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let http = reqwest::Client::new();
    let with = |token: &str| http.get(format!("http://{addr}/status")).bearer_auth(token).send();
    assert_eq!(with("wrong").await.unwrap().status(), 401);
    // The status page: ready, and the GSTIN's last IRP success.
    let status: serde_json::Value = with("status-t0ken").await.unwrap().json().await.unwrap();
    assert_eq!(status["ready"], true, "{status:#}");
    let ka = &status["gstins"]["29AAGCP4821K1Z3"];
    assert_eq!(ka["irp"], "whitebooks", "{status:#}");
    assert!(ka["last_success_at"].is_string(), "{status:#}");
    assert_eq!(ka["consecutive_failures"], 0, "{status:#}");
    assert!(status["gstins"]["27AAKFU7303M1ZP"]["last_success_at"].is_null(), "{status:#}");
    assert_eq!(status["gstin_counts"]["served"], 2, "{status:#}");
    app.stop().await;
}
