//! Issue 24, "which portal": NIC's two e-way bill portals. Two simulators, NIC1 (EWB1) and NIC2
//! (EWB2), an e-way bill made on EWB2 (number `188…`): the worker sends its cancel and transporter
//! update to NIC2, its Part-B update across from NIC1 with the `irp` header when NIC2 is not
//! configured, and refuses before any call what cannot cross; the simulator refuses a mis-routed
//! call with NIC's own code (444–449), over both protocols.
use std::sync::Arc;
use std::time::Duration;

use einvoice_worker::config::{ProviderKind, Settings};
use einvoice_worker::domain::command::ewaybill::{EwbCancelReason, TransMode, VehicleUpdate};
use einvoice_worker::domain::command::ewaybill_update_transporter::TransporterId;
use einvoice_worker::domain::portal::{EwbNo, NicPortal};
use einvoice_worker::irp::{IrpProvider, Session};
use einvoice_worker::sim::{self, SimRegistry, Simulator};
use serde_json::{json, Value};

use crate::helpers::{invoice, Options, TestApp, SELLER_KA};

struct Portals {
    _registry: Arc<SimRegistry>,
    nic1: Simulator,
    nic2: Simulator,
}

async fn portals() -> Portals {
    let registry = SimRegistry::new();
    let nic1 = Simulator::start_irp("127.0.0.1:0", "NIC1", registry.clone()).await.unwrap();
    let nic2 = Simulator::start_irp("127.0.0.1:0", "NIC2", registry.clone()).await.unwrap();
    Portals { _registry: registry, nic1, nic2 }
}

/// The `[gstins."<g>"]` body: `entries` (IRP name, URL), the first primary, over protocol `p`.
fn gstin_body(p: ProviderKind, entries: &[(&str, &str)]) -> String {
    let body = |url: &str| sim::gstin_toml(url, p, SELLER_KA).split_once('\n').unwrap().1.to_string();
    let mut toml = String::new();
    for (i, (name, url)) in entries.iter().enumerate() {
        if i > 0 {
            toml.push_str(&format!("\n[[gstins.\"{SELLER_KA}\".failover]]\n"));
        }
        toml.push_str(&format!("irp = \"{name}\"\n{}", body(url)));
    }
    toml
}

/// The adapter protocol `p` builds for the simulator at `url`, named `irp`.
fn adapter(p: ProviderKind, irp: &str, url: &str) -> Box<dyn IrpProvider> {
    let toml = format!("[gstins.\"{SELLER_KA}\"]\n{}", gstin_body(p, &[(irp, url)]));
    let cfg = Settings::from_toml(&toml).unwrap().gstins.remove(SELLER_KA).unwrap();
    let http = einvoice_worker::irp::http_client(Duration::from_secs(2), Duration::from_secs(10));
    match p {
        ProviderKind::Nic => Box::new(einvoice_worker::irp::nic::Nic::new(http, SELLER_KA, &cfg).unwrap()),
        ProviderKind::Whitebooks => {
            Box::new(einvoice_worker::irp::whitebooks::Whitebooks::new(http, SELLER_KA, &cfg).unwrap())
        }
    }
}

/// An IRN and its e-way bill made at NIC2 itself (as the ERP's portal user would): the number.
fn ewaybill_on_ewb2(p: &Portals, no: &str) -> String {
    let inv = invoice("b2b-intra-goods", no);
    let irn = p.nic2.core.generate(SELLER_KA, &inv).0.unwrap()["Irn"].as_str().unwrap().to_string();
    let e = p
        .nic2
        .core
        .generate_ewaybill(SELLER_KA, &json!({"Irn": irn, "Distance": 120, "TransMode": "1", "VehNo": "KA01AB1234"}))
        .unwrap();
    let ewb_no = e["EwbNo"].to_string();
    assert_eq!(EwbNo::parse(&ewb_no).unwrap().portal(), Some(NicPortal::Two), "{ewb_no}");
    ewb_no
}

fn vehicle_update() -> VehicleUpdate {
    VehicleUpdate {
        vehicle_no: "KA05CD5678".into(),
        from_place: "Tumakuru".into(),
        from_state: 29,
        reason: "1".into(),
        remark: "Breakdown".into(),
        trans_mode: TransMode::Road,
        trans_doc_no: None,
        trans_doc_date: None,
        vehicle_type: None,
    }
}

async fn ask(app: &mut TestApp, rk: &str, body: Value, expect: &str) -> Value {
    app.publish(rk, &body).await;
    let (_, ev) = app.next_reply(30).await;
    assert_eq!(ev["event_type"], expect, "{ev:#}");
    ev
}

/// NIC1 primary, NIC2 configured as failover: the EWB2 e-way bill's calls go to NIC2, none to
/// NIC1; the same calls sent to NIC1 directly are refused with NIC's codes.
async fn each_call_goes_to_the_portal_that_made_the_ewaybill(p: ProviderKind) {
    let ps = portals().await;
    let (u1, u2) = (ps.nic1.base_url(), ps.nic2.base_url());
    let section = gstin_body(p, &[("NIC1", &u1), ("NIC2", &u2)]);
    let mut app = TestApp::spawn_with(Options {
        provider: p,
        gstin_sections: vec![(SELLER_KA.into(), section)],
        ..Default::default()
    })
    .await;
    let ewb_no = ewaybill_on_ewb2(&ps, "PT1/0001");

    // Mis-routed: NIC1's portal refuses each call about an EWB2 e-way bill with its own code.
    let at_nic1 = adapter(p, "NIC1", &u1);
    let s: Session = at_nic1.authenticate(false).await.unwrap();
    let e = at_nic1.cancel_ewaybill(&s, &ewb_no, EwbCancelReason::OrderCancelled, "x").await.unwrap_err();
    assert!(e.has_code("445"), "{e:?}");
    assert!(e.to_string().contains("NIC2"), "{e}");
    let transin = TransporterId::parse("88AABCT1234A1ZQ", false).unwrap();
    let e = at_nic1.update_transporter(&s, &ewb_no, &transin).await.unwrap_err();
    assert!(e.has_code("447"), "{e:?}");
    let e = at_nic1.update_vehicle(&s, &ewb_no, &vehicle_update()).await.unwrap_err();
    assert!(e.has_code("449"), "without the irp header: {e:?}");
    assert_eq!(ps.nic1.core.stats().portal_refusals, 3);
    assert_eq!(ps.nic2.core.ewaybill(&ewb_no).unwrap().status, "ACT");

    // Routed by the worker: to NIC2, no error.
    let ev = ask(
        &mut app,
        "ewaybill.update_transporter",
        json!({"gstin": SELLER_KA, "ewb_no": ewb_no, "transporter_id": "88AABCT1234A1ZQ"}),
        "ewaybill.transporter_updated",
    )
    .await;
    assert_eq!(ev["data"]["irp"], "NIC2", "{ev:#}");
    let ev = ask(
        &mut app,
        "ewaybill.cancel",
        json!({"gstin": SELLER_KA, "ewb_no": ewb_no, "reason": "2", "remark": "Order cancelled"}),
        "ewaybill.cancelled",
    )
    .await;
    assert_eq!((ev["data"]["already_cancelled"].clone(), ev["data"]["irp"].clone()), (json!(false), json!("NIC2")));
    let (n1, n2) = (ps.nic1.core.stats(), ps.nic2.core.stats());
    assert_eq!((n2.ewb_transporter_calls, n2.ewb_cancel_calls), (1, 1), "{n2:?}");
    assert_eq!((n1.ewb_transporter_calls, n1.ewb_cancel_calls, n1.portal_refusals), (0, 0, 3), "{n1:?}");
    assert_eq!(ps.nic2.core.ewaybill(&ewb_no).unwrap().status, "CNL");
    app.stop().await;
}

both_protocols!(owning_portal, each_call_goes_to_the_portal_that_made_the_ewaybill);

/// Only NIC1 configured (NIC direct): Part B crosses to EWB2 with `irp: NIC2`; cancel, transporter
/// and extension cannot cross and are refused before any call, naming the IRP to configure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part_b_crosses_with_the_irp_header_and_cancel_does_not() {
    let ps = portals().await;
    let section = gstin_body(ProviderKind::Nic, &[("NIC1", &ps.nic1.base_url())]);
    let mut app = TestApp::spawn_with(Options {
        provider: ProviderKind::Nic,
        gstin_sections: vec![(SELLER_KA.into(), section)],
        ..Default::default()
    })
    .await;
    let ewb_no = ewaybill_on_ewb2(&ps, "PT2/0001");
    let update = json!({"gstin": SELLER_KA, "ewb_no": ewb_no, "vehicle_no": "KA05CD5678", "from_place": "Tumakuru",
        "from_state": "29", "reason": "1", "remark": "Breakdown", "trans_mode": "1"});
    ask(&mut app, "ewaybill.update_vehicle", update, "ewaybill.vehicle_updated").await;
    assert_eq!(ps.nic2.core.ewaybill(&ewb_no).unwrap().vehicle_no.as_deref(), Some("KA05CD5678"));
    let n1 = ps.nic1.core.stats();
    assert_eq!((n1.cross_portal_calls, n1.portal_refusals, n1.ewb_vehicle_calls), (1, 0, 0), "{n1:?}");
    assert_eq!(ps.nic2.core.stats().ewb_vehicle_calls, 1);

    let ev = ask(
        &mut app,
        "ewaybill.cancel",
        json!({"gstin": SELLER_KA, "ewb_no": ewb_no, "reason": "2", "remark": "Order cancelled"}),
        "ewaybill.cancel.rejected",
    )
    .await;
    let e = &ev["data"]["errors"][0];
    assert_eq!(e["code"], "EWB_PORTAL_NOT_CONFIGURED", "{ev:#}");
    let m = e["message"].as_str().unwrap();
    assert!(m.contains(&ewb_no) && m.contains("EWB2") && m.contains("NIC2") && m.contains("failover"), "{m}");
    let ev = ask(
        &mut app,
        "ewaybill.update_transporter",
        json!({"gstin": SELLER_KA, "ewb_no": ewb_no, "transporter_id": "88AABCT1234A1ZQ"}),
        "ewaybill.update_transporter.rejected",
    )
    .await;
    assert_eq!(ev["data"]["errors"][0]["code"], "EWB_PORTAL_NOT_CONFIGURED", "{ev:#}");
    let (n1, n2) = (ps.nic1.core.stats(), ps.nic2.core.stats());
    assert_eq!((n1.ewb_cancel_calls + n2.ewb_cancel_calls, n1.portal_refusals), (0, 0), "no call: {n1:?}");
    assert_eq!(n1.ewb_transporter_calls + n2.ewb_transporter_calls, 0);

    // The header does not make a cancel cross: NIC2's e-way bill is still refused at NIC1 (445).
    let cross = einvoice_worker::irp::nic::Nic::new(
        einvoice_worker::irp::http_client(Duration::from_secs(2), Duration::from_secs(10)),
        SELLER_KA,
        &Settings::from_toml(&sim::gstin_toml(&ps.nic1.base_url(), ProviderKind::Nic, SELLER_KA))
            .unwrap()
            .gstins
            .remove(SELLER_KA)
            .unwrap(),
    )
    .unwrap();
    let with_header = cross.cross_portal("NIC2").expect("NIC1 reaches NIC2's data with the header");
    let s = with_header.authenticate(false).await.unwrap();
    let e = with_header.cancel_ewaybill(&s, &ewb_no, EwbCancelReason::OrderCancelled, "x").await.unwrap_err();
    assert!(e.has_code("445"), "{e:?}");
    assert_eq!(ps.nic2.core.ewaybill(&ewb_no).unwrap().status, "ACT");
    app.stop().await;
}
