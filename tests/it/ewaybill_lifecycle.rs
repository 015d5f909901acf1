//! Issue 24: the e-way bill lifecycle beyond generate/vehicle/cancel, over both protocols:
//! `ewaybill.extend` (the 8-hour window, the remaining distance, the 360-day life, refused before
//! any call), `ewaybill.update_transporter` (a TRANSIN), and `ewaybill.expiring` (at the lead
//! time, once per validity; `ewaybill.get` refreshing the validity from the portal).
use chrono::{Duration, Utc};
use einvoice_worker::config::ProviderKind;
use einvoice_worker::irp::types::{format_ist, parse_ist};
use serde_json::{json, Value};

use crate::helpers::{invoice, Options, TestApp, SELLER_KA};

const TRANSIN: &str = "88AABCT1234A1ZQ";

async fn app(provider: ProviderKind, extra_toml: &str) -> TestApp {
    TestApp::spawn_with(Options { provider, extra_toml: extra_toml.into(), ..Default::default() }).await
}

async fn ask(app: &mut TestApp, rk: &str, body: Value, expect: &str) -> Value {
    app.publish(rk, &body).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["event_type"], expect, "{ev:#}");
    ev
}

/// An IRN and its e-way bill for 120 km by road: (irn, ewb_no).
async fn with_ewaybill(app: &mut TestApp, no: &str) -> (String, String) {
    app.generate(&invoice("b2b-intra-goods", no)).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
    let irn = ev["data"]["irn"].as_str().unwrap().to_string();
    let transport = json!({"Distance": 120, "TransMode": "1", "VehNo": "KA01AB1234", "VehType": "R"});
    let ev = ask(
        app,
        "ewaybill.generate",
        json!({"gstin": SELLER_KA, "irn": irn, "transport": transport}),
        "ewaybill.generated",
    )
    .await;
    (irn, ev["data"]["ewb_no"].as_str().unwrap().to_string())
}

/// As time passing would: the portal's e-way bill made at `made`, valid till `till`; then
/// `ewaybill.get` so the worker reads the new validity from the portal.
async fn at_portal(
    app: &mut TestApp,
    irn: &str,
    ewb_no: &str,
    made: chrono::DateTime<Utc>,
    till: chrono::DateTime<Utc>,
) {
    app.sim.core.set_ewaybill_times(ewb_no, made, till);
    let ev = ask(app, "ewaybill.get", json!({"gstin": SELLER_KA, "irn": irn}), "ewaybill.details").await;
    assert_eq!(ev["data"]["ewb_valid_till"], format_ist(till).as_str(), "{ev:#}");
    assert!(ev["data"]["irp"].is_string(), "{ev:#}");
}

fn extend(ewb_no: &str, remaining: u64) -> Value {
    json!({"gstin": SELLER_KA, "ewb_no": ewb_no, "consignment_status": "M", "trans_mode": "1",
        "vehicle_no": "KA05CD5678", "from_place": "Tumakuru", "from_state": "29", "from_pincode": "572101",
        "remaining_distance": remaining, "reason": "1", "remark": "Flood on NH48"})
}

fn codes(ev: &Value) -> Vec<(String, String)> {
    ev["data"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap().to_string(), e["code"].as_str().unwrap().to_string()))
        .collect()
}

async fn extend_inside_and_outside_the_window_and_the_360_day_cap(p: ProviderKind) {
    let mut app = app(p, "").await;
    let (irn, ewb_no) = with_ewaybill(&mut app, "X1/0001").await;

    // Valid for a day: far outside the window. Refused before any call, naming the rule.
    let ev = ask(&mut app, "ewaybill.extend", extend(&ewb_no, 100), "ewaybill.extend.rejected").await;
    assert_eq!(codes(&ev), [("ewb_no".to_string(), "EXTEND_OUTSIDE_WINDOW".to_string())], "{ev:#}");
    let msg = ev["data"]["errors"][0]["message"].as_str().unwrap();
    assert!(msg.contains("8 hours before to 8 hours after") && msg.contains("382"), "{msg}");
    assert_eq!(app.sim.core.stats().ewb_extend_calls, 0, "no call outside the window");

    // Two hours left (as the portal says): inside the window. A remaining distance over the
    // e-way bill's 120 km is still refused without a call.
    let now = Utc::now();
    at_portal(&mut app, &irn, &ewb_no, now - Duration::days(2), now + Duration::hours(2)).await;
    let ev = ask(&mut app, "ewaybill.extend", extend(&ewb_no, 500), "ewaybill.extend.rejected").await;
    assert_eq!(codes(&ev), [("remaining_distance".to_string(), "REMAINING_DISTANCE_TOO_LONG".to_string())]);
    assert_eq!(app.sim.core.stats().ewb_extend_calls, 0);

    let ev = ask(&mut app, "ewaybill.extend", extend(&ewb_no, 100), "ewaybill.extended").await;
    let d = &ev["data"];
    assert_eq!((d["ewb_no"].as_str(), d["already_extended"].as_bool()), (Some(ewb_no.as_str()), Some(false)));
    assert!(d["irp"].is_string(), "{d}");
    let before = parse_ist(d["previous_valid_till"].as_str().unwrap()).unwrap();
    let after = parse_ist(d["ewb_valid_till"].as_str().unwrap()).unwrap();
    assert!(after > before, "{d}");
    assert_eq!(app.sim.core.stats().ewb_extend_calls, 1);
    assert_eq!(format_ist(app.sim.core.ewaybill(&ewb_no).unwrap().valid_till), d["ewb_valid_till"].as_str().unwrap());

    // The portal enforces the window too (382), and now the new validity is far off.
    let direct = app.sim.core.extend_validity(
        SELLER_KA,
        &json!({"ewbNo": ewb_no, "consignmentStatus": "M",
        "transMode": "1", "vehicleNo": "KA05CD5678", "remainingDistance": 10, "extnRsnCode": "1", "extnRemarks": "x"}),
    );
    assert_eq!(direct.unwrap_err().errors[0].0, "382");
    // ... and the worker knows the new validity: the next extend is refused without a call.
    let ev = ask(&mut app, "ewaybill.extend", extend(&ewb_no, 100), "ewaybill.extend.rejected").await;
    assert_eq!(codes(&ev)[0].1, "EXTEND_OUTSIDE_WINDOW");
    assert_eq!(app.sim.core.stats().ewb_extend_calls, 2, "only the direct call above");

    // 359 days old, an hour left: a day more would pass 360 days. Refused before any call.
    let now = Utc::now();
    at_portal(&mut app, &irn, &ewb_no, now - Duration::days(359), now + Duration::hours(1)).await;
    let ev = ask(&mut app, "ewaybill.extend", extend(&ewb_no, 100), "ewaybill.extend.rejected").await;
    assert_eq!(codes(&ev), [("remaining_distance".to_string(), "EXTEND_PAST_MAX_LIFE".to_string())], "{ev:#}");
    assert!(ev["data"]["errors"][0]["message"].as_str().unwrap().contains("360 days"), "{ev:#}");
    assert_eq!(app.sim.core.stats().ewb_extend_calls, 2);
    // The portal's own 821.
    let direct = app.sim.core.extend_validity(SELLER_KA, &json!({"ewbNo": ewb_no, "consignmentStatus": "T",
        "transitType": "W", "addressLine1": "Godown 4", "remainingDistance": 100, "extnRsnCode": "99", "extnRemarks": "x"}));
    assert_eq!(direct.unwrap_err().errors[0].0, "821");

    // In transit, well inside the life: extended, with transit type and address.
    let now = Utc::now();
    at_portal(&mut app, &irn, &ewb_no, now - Duration::days(3), now - Duration::hours(3)).await;
    let mut t = extend(&ewb_no, 60);
    for k in ["trans_mode", "vehicle_no"] {
        t.as_object_mut().unwrap().remove(k);
    }
    t["consignment_status"] = json!("T");
    t["transit_type"] = json!("W");
    t["transit_address"] = json!({"line1": "Godown 4, APMC Yard"});
    let ev = ask(&mut app, "ewaybill.extend", t, "ewaybill.extended").await;
    assert_eq!(ev["data"]["consignment_status"], "T");
    assert_eq!(app.sim.core.stats().ewb_extend_calls, 4);
    app.stop().await;
}
both_protocols!(extend_window_and_cap, extend_inside_and_outside_the_window_and_the_360_day_cap);

async fn transporter_update_with_a_transin(p: ProviderKind) {
    let mut app = app(p, "").await;
    let (_, ewb_no) = with_ewaybill(&mut app, "X2/0001").await;

    // A GSTIN with a wrong check character is neither: refused before any call.
    let bad = json!({"gstin": SELLER_KA, "ewb_no": ewb_no, "transporter_id": "29AAGCP4821K1Z4"});
    let ev = ask(&mut app, "ewaybill.update_transporter", bad, "ewaybill.update_transporter.rejected").await;
    assert_eq!(codes(&ev), [("transporter_id".to_string(), "TRANS_ID_INVALID".to_string())]);
    assert_eq!(app.sim.core.stats().ewb_transporter_calls, 0);

    // A TRANSIN has no check character and is taken as it is.
    let body = json!({"gstin": SELLER_KA, "ewb_no": ewb_no, "transporter_id": TRANSIN.to_lowercase()});
    let ev = ask(&mut app, "ewaybill.update_transporter", body, "ewaybill.transporter_updated").await;
    let d = &ev["data"];
    assert_eq!((d["transporter_id"].as_str(), d["transporter_kind"].as_str()), (Some(TRANSIN), Some("transin")));
    assert!(d["irp"].is_string() && d["updated_at"].is_string(), "{d}");
    assert_eq!(app.sim.core.ewaybill(&ewb_no).unwrap().transporter_id.as_deref(), Some(TRANSIN));
    assert_eq!(app.sim.core.stats().ewb_transporter_calls, 1);

    // Now only that transporter may extend it: the generator is refused before any call.
    let ev = ask(&mut app, "ewaybill.extend", extend(&ewb_no, 100), "ewaybill.extend.rejected").await;
    assert!(codes(&ev).contains(&("gstin".to_string(), "NOT_CURRENT_TRANSPORTER".to_string())), "{ev:#}");
    assert_eq!(app.sim.core.stats().ewb_extend_calls, 0);
    app.stop().await;
}
both_protocols!(transporter_transin, transporter_update_with_a_transin);

async fn expiring_at_the_lead_time_and_never_twice(p: ProviderKind) {
    // Warn an hour ahead; look every second.
    let mut app = app(p, "ewb_expiry_warn_secs = 3600\newb_expiry_scan_secs = 1").await;
    let (irn, ewb_no) = with_ewaybill(&mut app, "X3/0001").await;
    // Valid for a day: nothing to say yet.
    assert!(app.next_event_of("ewaybill.expiring", 3).await.is_none());

    // The portal now says 30 minutes left (ewaybill.get reads it): one warning.
    let now = Utc::now();
    let till = now + Duration::minutes(30);
    at_portal(&mut app, &irn, &ewb_no, now - Duration::days(1), till).await;
    let ev = app.next_event_of("ewaybill.expiring", 10).await.expect("an ewaybill.expiring event");
    let d = &ev["data"];
    assert_eq!((d["ewb_no"].as_str(), d["irn"].as_str()), (Some(ewb_no.as_str()), Some(irn.as_str())));
    assert_eq!(d["ewb_valid_till"], format_ist(till).as_str());
    assert_eq!(d["warn_secs"], 3600);
    assert_eq!(d["extend_from"], format_ist(till - Duration::hours(8)).as_str());
    assert!(d["irp"].is_string(), "{d}");
    // Never twice for the same validity.
    assert!(app.next_event_of("ewaybill.expiring", 4).await.is_none(), "warned twice");

    // Extended: the new validity is a day off, no warning; when it nears, one more.
    ask(&mut app, "ewaybill.extend", extend(&ewb_no, 100), "ewaybill.extended").await;
    assert!(app.next_event_of("ewaybill.expiring", 3).await.is_none());
    let now = Utc::now();
    let till = now + Duration::minutes(20);
    at_portal(&mut app, &irn, &ewb_no, now - Duration::days(1), till).await;
    let ev = app.next_event_of("ewaybill.expiring", 10).await.expect("a warning for the new validity");
    assert_eq!(ev["data"]["ewb_valid_till"], format_ist(till).as_str());
    assert!(app.next_event_of("ewaybill.expiring", 3).await.is_none(), "warned twice");
    app.stop().await;
}
both_protocols!(expiring, expiring_at_the_lead_time_and_never_twice);

/// A GSTIN's own lead overrides the worker's: with `ewb_expiry_warn_secs` at an hour for the
/// worker and two hours for the seller, an e-way bill with 90 minutes left is warned about.
#[tokio::test]
async fn a_gstins_own_expiry_lead() {
    let p = ProviderKind::Nic;
    let section = einvoice_worker::sim::gstin_toml("{sim}", p, SELLER_KA);
    let body =
        section.split_once('\n').map(|(_, b)| b).unwrap_or_default().to_string() + "ewb_expiry_warn_secs = 7200\n";
    let mut app = TestApp::spawn_with(Options {
        provider: p,
        extra_toml: "ewb_expiry_warn_secs = 3600\newb_expiry_scan_secs = 1".into(),
        gstin_sections: vec![(SELLER_KA.to_string(), body)],
    })
    .await;
    let (irn, ewb_no) = with_ewaybill(&mut app, "X4/0001").await;
    let now = Utc::now();
    at_portal(&mut app, &irn, &ewb_no, now - Duration::days(1), now + Duration::minutes(150)).await;
    assert!(app.next_event_of("ewaybill.expiring", 3).await.is_none(), "warned outside the seller's two hours");
    let till = now + Duration::minutes(90);
    at_portal(&mut app, &irn, &ewb_no, now - Duration::days(1), till).await;
    let ev = app.next_event_of("ewaybill.expiring", 10).await.expect("warned inside the seller's own lead");
    assert_eq!(
        (ev["data"]["warn_secs"].as_u64(), ev["data"]["ewb_valid_till"].as_str()),
        (Some(7200), Some(format_ist(till).as_str()))
    );
    app.stop().await;
}

/// The 2026 rail rule behind its switch: by rail the transport document is a railway receipt
/// (9 digits) or a parcel way bill (10). On (the default since 2026-01-01): refused before any
/// call. Off: the portal decides, and answers 4042.
async fn rail_document_rule_on_and_off(p: ProviderKind) {
    let vehicle = |ewb_no: &str, doc: &str| {
        json!({"gstin": SELLER_KA, "ewb_no": ewb_no, "vehicle_no": "KA05CD5678", "from_place": "Tumakuru",
            "from_state": "29", "reason": "2", "remark": "Transshipment", "trans_mode": "2", "trans_doc_no": doc,
            "trans_doc_date": einvoice_worker::samples::india_today()})
    };
    let mut a = app(p, "").await;
    let (_, ewb_no) = with_ewaybill(&mut a, "X4/0001").await;
    let ev =
        ask(&mut a, "ewaybill.update_vehicle", vehicle(&ewb_no, "RR/12345"), "ewaybill.update_vehicle.rejected").await;
    assert_eq!(codes(&ev), [("trans_doc_no".to_string(), "RAIL_DOC_NO_FORMAT".to_string())], "{ev:#}");
    assert!(ev["data"]["errors"][0]["message"].as_str().unwrap().contains("4042"), "{ev:#}");
    assert_eq!(a.sim.core.stats().ewb_vehicle_calls, 0, "refused before any call");
    ask(&mut a, "ewaybill.update_vehicle", vehicle(&ewb_no, "123456789"), "ewaybill.vehicle_updated").await;
    assert_eq!(a.sim.core.stats().ewb_vehicle_calls, 1);
    a.stop().await;

    let mut a = app(p, "rail_doc_rules = \"off\"").await;
    let (_, ewb_no) = with_ewaybill(&mut a, "X4/0002").await;
    let ev =
        ask(&mut a, "ewaybill.update_vehicle", vehicle(&ewb_no, "RR/12345"), "ewaybill.update_vehicle.rejected").await;
    let e = &ev["data"]["errors"][0];
    assert_eq!((e["source"].as_str(), e["code"].as_str()), (Some("irp"), Some("4042")), "{ev:#}");
    assert_eq!(a.sim.core.stats().ewb_vehicle_calls, 1, "the portal decided");
    a.stop().await;
}
both_protocols!(rail_rule, rail_document_rule_on_and_off);
