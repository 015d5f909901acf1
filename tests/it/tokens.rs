//! Issue 9's token promises: 1005 never pauses a healthy GSTIN, one auth call per token life
//! across processes, and key rotation that neither loses sessions nor stalls.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use einvoice_worker::config::ProviderKind;
use einvoice_worker::domain::outcome::Operation;
use einvoice_worker::irp::registry::Providers;
use einvoice_worker::irp::{GstinDetails, IrpError};
use einvoice_worker::runtime::calls::{self, Resend};
use einvoice_worker::runtime::worker;
use einvoice_worker::runtime::Ctx;
use einvoice_worker::store::Db;
use secrecy::{ExposeSecret, SecretString};

use crate::helpers::{invoice, Options, TestApp, LOGS, SELLER_KA, SELLER_MH};

async fn app(provider: ProviderKind, extra_toml: &str) -> TestApp {
    TestApp::spawn_with(Options { provider, extra_toml: extra_toml.to_string(), ..Default::default() }).await
}

/// Another worker process's view: its own pool, providers and session cache on the test's database.
fn context(app: &TestApp) -> Arc<Ctx> {
    let db = Db::new(app.settings.database_url.expose_secret(), 2).expect("pool");
    let providers = Providers::from_settings(&app.settings).expect("providers");
    Arc::new(Ctx::new(app.settings.clone(), db, providers).expect("context"))
}

/// One cheap authenticated IRP call through the same path every job uses.
async fn irp_call(ctx: &Ctx) -> Result<GstinDetails, IrpError> {
    let p = ctx.providers.get(SELLER_KA).expect("configured");
    calls::call(ctx, SELLER_KA, p.as_ref(), Operation::GstinDetails, Resend::Freely, |s| {
        let p = p.clone();
        async move { p.gstin_details(&s, SELLER_MH).await }
    })
    .await
}

async fn generated_without_pause(app: &mut TestApp, doc_number: &str) {
    app.generate(&invoice("b2b-intra-goods", doc_number)).await;
    loop {
        let ev = app.next_event(30).await;
        assert_ne!(ev["event_type"], "gstin.paused", "a healthy GSTIN was paused: {ev:#}");
        if ev["document"]["doc_number"] == doc_number {
            assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
            return;
        }
    }
}

async fn two_1005_in_a_row_do_not_pause(p: ProviderKind) {
    let mut app = app(p, "").await;
    generated_without_pause(&mut app, "K1/0001").await;
    // A forced invalidation: the next two calls are refused although re-auth hands out the same token.
    app.sim.core.update_faults(|f| f.force_1005_next = 2);
    generated_without_pause(&mut app, "K1/0002").await;
    let s = app.sim.core.stats();
    assert_eq!(s.injected_1005, 2);
    assert_eq!(s.irns_created, 2);
    assert!(app.db.paused_until(SELLER_KA).await.unwrap().is_none(), "GSTIN paused");
    app.stop().await;
}
both_protocols!(two_1005_in_a_row, two_1005_in_a_row_do_not_pause);

async fn older_token_in_memory_and_stored_token_both_dead(p: ProviderKind) {
    let app = app(p, "").await;
    let (a, b) = (context(&app), context(&app));
    irp_call(&a).await.expect("A authenticates");
    irp_call(&b).await.expect("B uses A's stored token");
    assert_eq!(app.sim.core.stats().auth_calls, 1);
    // A's token dies; A gets a new one and stores it. B still holds the first one in memory.
    app.sim.core.expire_tokens();
    irp_call(&a).await.expect("A re-authenticates after 1005");
    assert_eq!(app.sim.core.stats().auth_calls, 2);
    // Now the stored token dies too: B's memory token and Postgres' token are both refused.
    app.sim.core.expire_tokens();
    let r = irp_call(&b).await;
    assert!(r.is_ok(), "B must get a genuinely new token, not give up: {r:?}");
    assert_eq!(app.sim.core.stats().auth_calls, 3, "exactly one more auth call");
    app.stop().await;
}
both_protocols!(stale_memory_and_dead_store, older_token_in_memory_and_stored_token_both_dead);

/// Three processes, two busy tasks each, until the IRP has issued `tokens` tokens.
/// Returns the calls that failed.
async fn churn(app: &TestApp, tokens: usize) -> Vec<String> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let ctx = context(app);
        for _ in 0..2 {
            let (ctx, stop) = (ctx.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut failed = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Err(e) = irp_call(&ctx).await {
                        failed.push(e.to_string());
                    }
                    tokio::time::sleep(Duration::from_millis(40)).await;
                }
                failed
            }));
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while app.sim.core.issued_tokens().len() < tokens && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut failed = Vec::new();
    for t in tasks {
        failed.extend(t.await.unwrap());
    }
    assert!(app.sim.core.issued_tokens().len() >= tokens, "tokens were not renewed");
    failed
}

async fn one_auth_call_per_token_life(p: ProviderKind) {
    // The default 10-minute margin on 3-second tokens: renewal at half-life, once per token.
    let app = app(p, "token_refresh_margin_secs = 600").await;
    app.sim.core.update_faults(|f| f.token_ttl_secs = 3);
    let failed = churn(&app, 4).await;
    assert!(failed.is_empty(), "{failed:?}");
    let (auths, tokens) = (app.sim.core.stats().auth_calls, app.sim.core.issued_tokens().len() as u64);
    assert_eq!(auths, tokens, "every auth call got a new token: no stampede, no storm");
    app.stop().await;
}
both_protocols!(one_auth_per_token, one_auth_call_per_token_life);

async fn same_token_on_renewal_is_not_a_storm(p: ProviderKind) {
    let app = app(p, "token_refresh_margin_secs = 600").await;
    app.sim.core.update_faults(|f| {
        f.token_ttl_secs = 3;
        f.early_renewal_refused = true;
    });
    let failed = churn(&app, 3).await;
    assert!(failed.is_empty(), "{failed:?}");
    let (auths, tokens) = (app.sim.core.stats().auth_calls, app.sim.core.issued_tokens().len() as u64);
    // Per token: the auth that got it and at most one renewal attempt that got it back.
    assert!(auths <= 2 * tokens, "{auths} auth calls for {tokens} tokens");
    app.stop().await;
}
both_protocols!(renewal_refused, same_token_on_renewal_is_not_a_storm);

fn key(b: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([b; 32])
}

async fn restart_with_key(app: &mut TestApp, keys: String) {
    app.worker.take().expect("running").stop().await.expect("worker stops");
    app.settings.token_key = Some(SecretString::from(keys));
    app.worker = Some(worker::start(app.settings.clone()).await.expect("worker starts with the new key list"));
}

async fn rotated_key_keeps_stored_sessions(p: ProviderKind) {
    let mut app = app(p, &format!("token_key = \"{}\"", key(1))).await;
    generated_without_pause(&mut app, "K2/0001").await;
    assert_eq!(app.sim.core.stats().auth_calls, 1);
    // New key first (encrypts), old key second (still decrypts the stored session).
    restart_with_key(&mut app, format!("{}, {}", key(2), key(1))).await;
    generated_without_pause(&mut app, "K2/0002").await;
    assert_eq!(app.sim.core.stats().auth_calls, 1, "the stored session was used: no auth call");
    app.stop().await;
}
both_protocols!(key_rotation, rotated_key_keeps_stored_sessions);

async fn replaced_key_reauthenticates_once(p: ProviderKind) {
    let mut app = app(p, &format!("token_key = \"{}\"", key(1))).await;
    generated_without_pause(&mut app, "K3/0001").await;
    restart_with_key(&mut app, key(3)).await;
    generated_without_pause(&mut app, "K3/0002").await;
    generated_without_pause(&mut app, "K3/0003").await;
    assert_eq!(app.sim.core.stats().auth_calls, 2, "one re-auth, then the new row is used");
    let logs = String::from_utf8_lossy(&LOGS.lock().unwrap()).to_string();
    assert!(logs.contains("does not decrypt with any configured EINVOICE_TOKEN_KEY"), "no warning logged");
    app.stop().await;
}
both_protocols!(key_replaced, replaced_key_reauthenticates_once);
