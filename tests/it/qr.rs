//! Issue 10: the QR PNG is rendered once per signed QR and kept; replays read it; it can be turned off.
use einvoice_worker::config::ProviderKind;
use serde_json::json;

use crate::helpers::{invoice, Options, TestApp, SELLER_KA};

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

/// The text of the QR code in a base64 PNG, read back with an independent QR reader.
fn scan(png_base64: &str) -> String {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(png_base64).expect("base64");
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let (w, h) = (info.width as usize, info.height as usize);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * w + x]);
    let grids = img.detect_grids();
    grids.first().expect("a QR code").decode().expect("decodes").1
}

/// Issue 14 C: with `EINVOICE_PRINT_BLOCK` the IRN event carries the print block (its QR drawn
/// even with `qr_png` off), the same on a replay.
#[tokio::test]
async fn the_print_block_carries_irn_ack_and_the_qr_even_without_qr_png() {
    let opts = Options { extra_toml: "qr_png = false\nprint_block = true\n".into(), ..Default::default() };
    let mut app = TestApp::spawn_with(opts).await;
    let inv = invoice("b2b-intra-goods", "PB/0001");
    app.generate(&inv).await;
    let (_, first) = app.next_reply(20).await;
    assert_eq!(first["event_type"], "irn.generated", "{first:#}");
    let data = &first["data"];
    assert!(data.get("qr_png_base64").is_none(), "qr_png is off");
    let block = &data["print_block"];
    assert_eq!(block["irn"], data["irn"]);
    assert_eq!(block["ack_no"], data["ack_no"]);
    assert_eq!(block["ack_dt"], data["ack_dt"]);
    let png = block["qr_png_base64"].as_str().expect("the QR image");
    assert_eq!(scan(png), data["signed_qr_code"].as_str().unwrap(), "the image is the signed QR");
    let svg = block["svg"].as_str().unwrap();
    assert!(svg.contains(&format!("base64,{png}")) && svg.contains(data["ack_no"].as_str().unwrap()), "{svg}");
    app.generate(&inv).await;
    let (_, again) = app.next_reply(20).await;
    assert_eq!(again["data"]["replayed"], true);
    assert_eq!(again["data"]["print_block"], *block, "a replay prints the same block");
    app.stop().await;
}

/// Issue 14 C: over NIC, which has no B2C QR API, a `b2c.qr` carrying its invoice is answered
/// with a UPI QR the worker makes itself from the seller's configured UPI id; no IRP call.
#[tokio::test]
async fn b2c_qr_is_made_locally_from_the_invoice_with_the_sellers_upi_id() {
    let section = einvoice_worker::sim::gstin_toml("{sim}", ProviderKind::Nic, SELLER_KA);
    let body = section.split_once('\n').unwrap().1.to_string() + "upi_id = \"prakash.eng@okaxis\"\n";
    let opts =
        Options { provider: ProviderKind::Nic, gstin_sections: vec![(SELLER_KA.into(), body)], ..Default::default() };
    let mut app = TestApp::spawn_with(opts).await;
    let today = einvoice_worker::samples::india_today();
    let b2c = |seller: &str| {
        json!({"DocDtls": {"Typ": "INV", "No": "B2C/0042", "Dt": today},
            "SellerDtls": {"Gstin": seller, "LglNm": "Prakash Engineering Works Pvt Ltd", "TrdNm": "Prakash Engineering"},
            "ValDtls": {"AssVal": 1000, "CgstVal": 90, "SgstVal": 90, "TotInvVal": "1180.00"}})
    };
    app.publish("b2c.qr", &json!({"gstin": SELLER_KA, "invoice": b2c(SELLER_KA), "schema_version": 1})).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["event_type"], "b2c.qr", "{ev:#}");
    assert_eq!(ev["data"]["source"], "local");
    assert_eq!(ev["document"]["doc_number"], "B2C/0042");
    let qr = ev["data"]["qr_code"].as_str().unwrap();
    let expected = format!(
        "upi://pay?pa=prakash.eng@okaxis&pn=Prakash%20Engineering&tr=B2C/0042&tn=SELLER:{SELLER_KA}%20NO:B2C/0042%20\
         DT:{today}%20Taxable:1000.00%20CGST:90.00%20SGST:90.00%20IGST:0.00%20CESS:0.00&am=1180.00&cu=INR&mode=01"
    );
    assert_eq!(qr, expected);
    assert_eq!(scan(ev["data"]["qr_png_base64"].as_str().unwrap()), qr, "the PNG scans back to the intent");
    let s = app.sim.core.stats();
    assert_eq!((s.other_calls, s.auth_calls), (0, 0), "made without the IRP");

    // A seller without a UPI id is refused, saying what to configure.
    let seller = crate::helpers::SELLER_MH;
    app.publish("b2c.qr", &json!({"gstin": seller, "invoice": b2c(seller)})).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["event_type"], "b2c.qr.rejected", "{ev:#}");
    assert_eq!(ev["data"]["errors"][0]["code"], "UPI_ID_NOT_CONFIGURED");
    assert!(ev["data"]["errors"][0]["message"].as_str().unwrap().contains("upi_id"));

    // Without the invoice, NIC still has no B2C QR API, and the answer says what to send instead.
    let doc = json!({"doc_type": "INV", "doc_number": "B2C/0043", "doc_date": today});
    app.publish("b2c.qr", &json!({"gstin": SELLER_KA, "document": doc})).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["event_type"], "b2c.qr.rejected", "{ev:#}");
    assert_eq!(ev["data"]["errors"][0]["code"], "NOT_SUPPORTED");
    assert!(ev["data"]["errors"][0]["message"].as_str().unwrap().contains("send the B2C invoice"), "{ev:#}");
    app.stop().await;
}
