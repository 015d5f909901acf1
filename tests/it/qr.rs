//! Issue 10: the QR PNG is rendered once per signed QR and kept; replays read it; it can be turned off.
use einvoice_worker::config::ProviderKind;

use crate::helpers::{invoice, Options, TestApp};

async fn qr_rows(app: &TestApp) -> Vec<(Vec<u8>, String)> {
    let c = app.db.client().await.unwrap();
    c.query("SELECT qr_sha256, png_base64 FROM qr_png", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn a_replay_carries_the_stored_png_and_renders_nothing() {
    let mut app = TestApp::spawn_with(Options { provider: ProviderKind::Whitebooks, ..Default::default() }).await;
    let inv = invoice("b2b-intra-goods", "QR/0001");
    app.generate(&inv).await;
    let (_, first) = app.next_reply(20).await;
    assert_eq!(first["event_type"], "irn.generated", "{first:#}");
    let signed_qr = first["data"]["signed_qr_code"].as_str().unwrap();
    let rows = qr_rows(&app).await;
    assert_eq!(rows.len(), 1, "rendered once, when the IRN was stored");
    assert_eq!(rows[0].0, einvoice_worker::store::qr::key(signed_qr));
    assert_eq!(first["data"]["qr_png_base64"].as_str(), Some(rows[0].1.as_str()));

    // Mark the stored image: a replay that rendered again would not carry the mark.
    let c = app.db.client().await.unwrap();
    c.execute("UPDATE qr_png SET png_base64 = 'stored-image'", &[]).await.unwrap();
    app.generate(&inv).await;
    let (_, second) = app.next_reply(20).await;
    assert_eq!(second["data"]["replayed"], true, "{second:#}");
    assert_eq!(second["data"]["qr_png_base64"], "stored-image", "the replay reads the stored image");
    assert_eq!(qr_rows(&app).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn qr_png_off_leaves_the_field_out_and_stores_nothing() {
    let opts = Options { extra_toml: "qr_png = false\n".into(), ..Default::default() };
    let mut app = TestApp::spawn_with(opts).await;
    let inv = invoice("b2b-intra-goods", "QR/0002");
    app.generate(&inv).await;
    let (_, first) = app.next_reply(20).await;
    app.generate(&inv).await;
    let (_, second) = app.next_reply(20).await;
    for ev in [&first, &second] {
        assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
        assert!(ev["data"]["signed_qr_code"].is_string(), "the signed QR string is still there");
        assert!(ev["data"].get("qr_png_base64").is_none(), "no image field: {:#}", ev["data"]);
    }
    assert!(qr_rows(&app).await.is_empty(), "nothing rendered, nothing stored");
    app.stop().await;
}
