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
        extra_toml: "health_listen = \"127.0.0.1:0\"".into(),
        ..Default::default()
    })
    .await;
    let addr = app.worker.as_ref().unwrap().health_addr.expect("health endpoint bound");
    let get = |path: &str| reqwest::get(format!("http://{addr}{path}"));
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    let ready = get("/readyz").await.unwrap();
    assert_eq!(ready.status(), 200, "{:?}", ready.text().await);
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
    assert!(metrics.contains("einvoice_commands_total{routing_key=\"irn.generate\",outcome=\"done\"} 1"), "{metrics}");
    assert!(metrics.contains(published), "{metrics}");
    assert!(metrics.contains("einvoice_command_seconds"), "{metrics}");
    app.stop().await;
}
