//! Issue 24: e-way bills without an IRN (`ewaybill.generate` with `ewaybill`, the e-way bill
//! API's `GENEWAYBILL`), over both protocols: a delivery challan for a stock transfer, sent twice
//! (one e-way bill at the portal, the second answered from the store); a call that committed and
//! then timed out, resolved by lookup with one e-way bill at the portal; 604 resolved to the
//! existing e-way bill; bad input refused field by field with no call.
use einvoice_worker::config::ProviderKind;
use serde_json::{json, Value};

use crate::helpers::{Options, TestApp, SELLER_KA};

async fn app(provider: ProviderKind) -> TestApp {
    TestApp::spawn_with(Options { provider, ..Default::default() }).await
}

fn today() -> String {
    einvoice_worker::domain::invoice::india_today().format("%d/%m/%Y").to_string()
}

/// A delivery challan moving stock from the Bengaluru warehouse to the Tumakuru branch (same
/// GSTIN, so no tax): outward, sub-supply type 5 (for own use), document type CHL.
pub(crate) fn challan(doc_no: &str) -> Value {
    json!({
        "supplyType": "O", "subSupplyType": "5", "docType": "CHL", "docNo": doc_no, "docDate": today(),
        "fromGstin": SELLER_KA, "fromTrdName": "Prakash Agro Industries", "fromAddr1": "12 Industrial Area",
        "fromPlace": "Bengaluru", "fromPincode": 560001, "fromStateCode": 29, "actFromStateCode": 29,
        "toGstin": SELLER_KA, "toTrdName": "Prakash Agro Industries (Tumakuru branch)", "toAddr1": "4 KIADB Road",
        "toPlace": "Tumakuru", "toPincode": 572101, "toStateCode": 29, "actToStateCode": 29,
        "transactionType": 1,
        "itemList": [{"productName": "Drip irrigation kit", "hsnCode": "84248100", "quantity": 40, "qtyUnit": "NOS",
            "taxableAmount": 50000, "cgstRate": 0, "sgstRate": 0, "igstRate": 0, "cessRate": 0}],
        "totalValue": 50000, "cgstValue": 0, "sgstValue": 0, "igstValue": 0, "cessValue": 0, "totInvValue": 50000
    })
}

pub(crate) fn command(doc: Value) -> Value {
    json!({"gstin": SELLER_KA, "ewaybill": doc,
        "transport": {"Distance": 70, "TransMode": "1", "VehNo": "KA01AB1234", "VehType": "R"}})
}

async fn ask(app: &mut TestApp, body: Value, expect: &str) -> Value {
    app.publish("ewaybill.generate", &body).await;
    let (_, ev) = app.next_reply(30).await;
    assert_eq!(ev["event_type"], expect, "{ev:#}");
    ev
}

async fn challan_sent_twice_and_bad_input(p: ProviderKind) {
    let mut app = app(p).await;
    let ev = ask(&mut app, command(challan("DC/0001")), "ewaybill.generated").await;
    let d = &ev["data"];
    let ewb_no = d["ewb_no"].as_str().unwrap().to_string();
    assert_eq!(ewb_no.len(), 12, "{d}");
    assert_eq!((d["already_existed"].as_bool(), d["replayed"].as_bool()), (Some(false), Some(false)), "{d}");
    assert!(d["irn"].is_null() && d["irp"].is_string() && d["ewb_valid_till"].is_string(), "{d}");
    assert_eq!(ev["document"]["doc_type"], "CHL", "{ev:#}");
    assert_eq!(ev["document"]["doc_number"], "DC/0001", "{ev:#}");
    let at_portal = app.sim.core.ewaybill(&ewb_no).unwrap();
    assert_eq!((at_portal.distance, at_portal.vehicle_no.as_deref()), (70, Some("KA01AB1234")));

    // Sent again (another message id): answered from the store, no second call.
    let ev = ask(&mut app, command(challan("DC/0001")), "ewaybill.generated").await;
    assert_eq!(ev["data"]["ewb_no"], ewb_no.as_str(), "{ev:#}");
    assert_eq!(ev["data"]["replayed"], true, "{ev:#}");
    let s = app.sim.core.stats();
    assert_eq!(s.ewb_doc_generate_calls, 1, "one GENEWAYBILL call");
    assert_eq!(app.sim.core.ewaybills_for_doc(SELLER_KA, "CHL", "DC/0001"), 1);

    // Bad input: every problem with its path, and no call.
    let mut bad = challan("0DC/2");
    bad["docType"] = json!("INV");
    bad["toPincode"] = json!(400001);
    bad["fromStateCode"] = json!(27);
    bad["itemList"][0]["hsnCode"] = json!("842");
    bad["itemList"][0]["qtyUnit"] = json!("PIECES");
    bad["itemList"][0]["cgstRate"] = json!(9);
    bad["itemList"][0]["sgstRate"] = json!(9);
    bad["totInvValue"] = json!(51000);
    bad["docDate"] = json!("31/02/2026");
    let mut cmd = command(bad);
    cmd["transport"]["Distance"] = json!(4500);
    let ev = ask(&mut app, cmd, "ewaybill.generate.rejected").await;
    let got: Vec<(String, String)> = ev["data"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap().to_string(), e["code"].as_str().unwrap().to_string()))
        .collect();
    for want in [
        ("ewaybill.docType", "INVALID_DOC_TYPE"),
        ("ewaybill.docNo", "DOC_NUMBER_FORMAT"),
        ("ewaybill.docDate", "DATE_INVALID"),
        ("ewaybill.fromStateCode", "GSTIN_STATE_MISMATCH"),
        ("ewaybill.toPincode", "PIN_STATE_MISMATCH"),
        ("ewaybill.itemList[0].hsnCode", "HSN_FORMAT"),
        ("ewaybill.itemList[0].qtyUnit", "INVALID_UNIT"),
        ("ewaybill.totInvValue", "TOTINVVAL_MISMATCH"),
        ("transport.Distance", "DISTANCE_OUT_OF_RANGE"),
    ] {
        assert!(got.contains(&(want.0.into(), want.1.into())), "{want:?} missing from {got:?}");
    }
    assert_eq!(app.sim.core.stats().ewb_doc_generate_calls, 1, "no call for bad input");
    app.no_more_replies(2).await;
    app.stop().await;
}
both_protocols!(challan_twice, challan_sent_twice_and_bad_input);

async fn timeout_after_commit_and_604(p: ProviderKind) {
    let mut app = app(p).await;
    // The portal commits the e-way bill but answers after our 1.5 s read timeout.
    app.sim.core.update_faults(|f| {
        f.timeout_commit_next = 1;
        f.timeout_hang_ms = 3_000;
    });
    let ev = ask(&mut app, command(challan("DC/0101")), "ewaybill.generated").await;
    let ewb_no = ev["data"]["ewb_no"].as_str().unwrap().to_string();
    assert_eq!(app.sim.core.ewaybill(&ewb_no).map(|e| e.ewb_no), Some(ewb_no.clone()));
    let s = app.sim.core.stats();
    assert_eq!(s.ewb_doc_generate_calls, 1, "resolved by lookup, not by a second GENEWAYBILL");
    assert!(s.ewb_doc_lookups >= 1, "{s:?}");
    assert_eq!(s.injected_commit_timeouts, 1);
    assert_eq!(app.sim.core.ewaybills_for_doc(SELLER_KA, "CHL", "DC/0101"), 1, "one e-way bill at the portal");

    // Made elsewhere (the portal's own screen, another system): the call meets 604 and the
    // worker links the existing e-way bill.
    let (made, _) = app.sim.core.generate_ewaybill_doc(SELLER_KA, &{
        let mut r = challan("DC/0102");
        r["transDistance"] = json!("70");
        r
    });
    let existing = made.unwrap()["ewayBillNo"].to_string();
    let ev = ask(&mut app, command(challan("DC/0102")), "ewaybill.generated").await;
    assert_eq!(ev["data"]["ewb_no"], existing.as_str(), "{ev:#}");
    assert_eq!(ev["data"]["already_existed"], true, "{ev:#}");
    assert_eq!(app.sim.core.stats().ewb_doc_generate_calls, 3, "the direct call and the one that met 604");
    assert_eq!(app.sim.core.ewaybills_for_doc(SELLER_KA, "CHL", "DC/0102"), 1);

    // A 503 (it may have reached the portal): looked up, none there, so the command is retried,
    // and the retry looks again before it sends.
    let before = app.sim.core.stats();
    app.sim.core.update_faults(|f| f.fail_next_5xx = 1);
    let ev = ask(&mut app, command(challan("DC/0103")), "ewaybill.generated").await;
    assert_eq!(ev["data"]["already_existed"], false, "{ev:#}");
    let s = app.sim.core.stats();
    assert_eq!(s.ewb_doc_generate_calls - before.ewb_doc_generate_calls, 1, "the 503 never reached GENEWAYBILL");
    assert!(s.ewb_doc_lookups - before.ewb_doc_lookups >= 2, "after the 503, and before the resend: {s:?}");
    assert_eq!(app.sim.core.ewaybills_for_doc(SELLER_KA, "CHL", "DC/0103"), 1);
    app.no_more_replies(2).await;
    app.stop().await;
}
both_protocols!(ambiguous_and_604, timeout_after_commit_and_604);

/// The 2026 same-PIN rule by its switch: on (the default), distance 0 between two places with the
/// same PIN is refused before any call; off, the command goes to the portal.
async fn same_pin_rule_on_and_off(p: ProviderKind) {
    let mut same_pin = challan("DC/0201");
    same_pin["toPincode"] = json!(560001);
    let mut cmd = command(same_pin);
    cmd["transport"]["Distance"] = json!(0);

    let mut on = app(p).await;
    let ev = ask(&mut on, cmd.clone(), "ewaybill.generate.rejected").await;
    assert_eq!(ev["data"]["errors"][0]["path"], "transport.Distance", "{ev:#}");
    assert_eq!(ev["data"]["errors"][0]["code"], "DISTANCE_OUT_OF_RANGE", "{ev:#}");
    assert_eq!(on.sim.core.stats().ewb_doc_generate_calls, 0);
    on.stop().await;

    let mut off = TestApp::spawn_with(Options {
        provider: p,
        extra_toml: "same_pin_distance_rule = \"off\"\n".into(),
        ..Default::default()
    })
    .await;
    ask(&mut off, cmd, "ewaybill.generated").await;
    assert_eq!(off.sim.core.stats().ewb_doc_generate_calls, 1);
    off.stop().await;
}
both_protocols!(same_pin_switch, same_pin_rule_on_and_off);

/// A lost extension: the portal extended an e-way bill made without an IRN but the worker never
/// heard (its answer lost). The next `ewaybill.extend` passes the store's window, the portal
/// answers 382, and the worker reads the validity by document: `already_extended`, no error.
async fn an_extension_whose_answer_was_lost(p: ProviderKind) {
    let mut app = app(p).await;
    app.sim.core.update_faults(|f| f.ewb_valid_hours = Some(2));
    let ev = ask(&mut app, command(challan("DC/X1")), "ewaybill.generated").await;
    let no = ev["data"]["ewb_no"].as_str().unwrap().to_string();
    let lost = json!({"ewbNo": no, "consignmentStatus": "M", "transMode": "1", "vehicleNo": "KA05CD5678",
        "remainingDistance": 50, "extnRsnCode": "1", "extnRemarks": "Flood"});
    app.sim.core.extend_validity(SELLER_KA, &lost).unwrap();
    let till = einvoice_worker::irp::types::format_ist(app.sim.core.ewaybill(&no).unwrap().valid_till);
    app.publish(
        "ewaybill.extend",
        &json!({"gstin": SELLER_KA, "ewb_no": no, "consignment_status": "M", "trans_mode": "1",
            "vehicle_no": "KA05CD5678", "from_place": "Tumakuru", "from_state": "29", "from_pincode": "572101",
            "remaining_distance": 50, "reason": "1", "remark": "Flood on NH48"}),
    )
    .await;
    let (_, ev) = app.next_reply(30).await;
    assert_eq!(ev["event_type"], "ewaybill.extended", "{ev:#}");
    assert_eq!(
        (ev["data"]["already_extended"].as_bool(), ev["data"]["ewb_valid_till"].as_str()),
        (Some(true), Some(till.as_str())),
        "{ev:#}"
    );
    let s = app.sim.core.stats();
    assert_eq!((s.ewb_extend_calls, s.ewb_doc_lookups), (2, 1), "ours answered 382, then one lookup: {s:?}");
    app.stop().await;
}

both_protocols!(lost_extension, an_extension_whose_answer_was_lost);
