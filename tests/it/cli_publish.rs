//! `einvoice-worker publish --wait` against a running worker: the exit code says the outcome
//! (0 success, 1 rejected, 4 failed, 5 no final answer in time).
use std::process::Output;

use serde_json::Value;

use crate::helpers::{Options, TestApp, SELLER_KA};

async fn publish(app: &TestApp, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_einvoice-worker"))
        .arg("publish")
        .args(args)
        .env("EINVOICE_CONFIG", &app.config_path)
        .output()
        .await
        .unwrap()
}

/// The events printed (pretty JSON objects after the "published" line), by type.
fn printed_types(out: &Output) -> Vec<String> {
    let text = String::from_utf8_lossy(&out.stdout);
    let body = text.split_once('\n').map_or("", |(_, rest)| rest);
    serde_json::Deserializer::from_str(body)
        .into_iter::<Value>()
        .map(|v| v.expect("printed events are JSON")["event_type"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_wait_exits_with_the_outcome() {
    let opts = Options { extra_toml: "retry_max_age_secs = 1\nretry_tiers_secs = [1]\n".into(), ..Default::default() };
    let mut app = TestApp::spawn_with(opts).await;
    let ok =
        publish(&app, &["gstin.details", "--gstin", SELLER_KA, "--target-gstin", "33AAFCR6612L1ZA", "--wait", "20"])
            .await;
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(printed_types(&ok), ["gstin.details"]);

    // Valid as sent, refused by the worker: this GSTIN has no configuration.
    let rejected =
        publish(&app, &["gstin.details", "--gstin", "33AAFCR6612L1ZA", "--target-gstin", SELLER_KA, "--wait", "20"])
            .await;
    assert_eq!(rejected.status.code(), Some(1), "{}", String::from_utf8_lossy(&rejected.stdout));
    assert_eq!(printed_types(&rejected), ["gstin.details.rejected"]);

    // The IRP is down for longer than the retry budget: failed.
    app.sim.core.update_faults(|f| f.outage = true);
    let failed =
        publish(&app, &["gstin.details", "--gstin", SELLER_KA, "--target-gstin", "27AAKFU7303M1ZP", "--wait", "60"])
            .await;
    assert_eq!(failed.status.code(), Some(4), "{}", String::from_utf8_lossy(&failed.stdout));
    assert_eq!(printed_types(&failed), ["gstin.details.failed"]);
    app.sim.core.update_faults(|f| f.outage = false);

    // No worker: no answer in time.
    if let Some(w) = app.worker.take() {
        w.stop().await.unwrap();
    }
    let silent =
        publish(&app, &["gstin.details", "--gstin", SELLER_KA, "--target-gstin", "33AAFCR6612L1ZA", "--wait", "2"])
            .await;
    assert_eq!(silent.status.code(), Some(5), "{}", String::from_utf8_lossy(&silent.stderr));
    assert!(String::from_utf8_lossy(&silent.stderr).contains("no answer within 2 s"));
    app.stop().await;
}
