//! Issue 23: circuit breakers shared by every worker process (migration 0012). One process's
//! evidence opens the circuit for all of them through `irp_circuits` and its notifications; a
//! half-open circuit lets one call at a time probe the IRP.
use std::time::Duration;

use einvoice_worker::domain::outcome::{Class, Operation};
use einvoice_worker::irp::IrpError;
use einvoice_worker::runtime::status::{listen, Breaker, IrpHealth};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::helpers::{wait_until, TestApp, SELLER_KA};

fn unavailable() -> IrpError {
    IrpError::Http { status: 503, body: "Service Unavailable".into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_opening_a_circuit_stops_the_others_and_one_probe_goes_at_a_time() {
    let app = TestApp::spawn().await;
    let breaker = Breaker { failures: 3, open_secs: 2 };
    // Two "processes": each its own copy of the circuits, kept current by its own listener.
    let (a, b) =
        (IrpHealth::new(breaker).with_store(app.db.clone()), IrpHealth::new(breaker).with_store(app.db.clone()));
    let stop = CancellationToken::new();
    let url = app.settings.database_url.expose_secret().to_string();
    for h in [&a, &b] {
        let target = einvoice_worker::store::tls::target(&url, None).unwrap();
        tokio::spawn(listen(h.clone(), target, stop.child_token()));
    }
    // Let both listeners LISTEN before the first change.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let g = SELLER_KA;
    // Failures count across processes: two at A and one at B open the circuit for both.
    let (op, class) = (Operation::Generate, Class::Transient);
    a.failed(g, "NIC1", op, class, &unavailable()).await;
    a.failed(g, "NIC1", op, class, &unavailable()).await;
    assert!(a.check(g, "NIC1").is_ok() && b.check(g, "NIC1").is_ok(), "2 of 3 failures: still closed");
    b.failed(g, "NIC1", op, class, &unavailable()).await;
    let until = b.check(g, "NIC1").expect_err("B opened it");
    wait_until(5, "A never learnt that B opened the circuit", || a.check(g, "NIC1").is_err()).await;
    assert_eq!(a.check(g, "NIC1").unwrap_err(), until, "both wait for the same end");
    assert!(a.check(g, "IRIS").is_ok() && a.is_closed(g, "IRIS"), "other IRPs are not affected");
    let c = app.db.client().await.unwrap();
    let row = c.query_one("SELECT failures, opened_at IS NOT NULL FROM irp_circuits", &[]).await.unwrap();
    assert_eq!((row.get::<_, i32>(0), row.get::<_, bool>(1)), (3, true));
    // Half-open: one probe at a time, across processes; the other waits for the probe's end.
    tokio::time::sleep((until - chrono::Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(100)).await;
    assert!(a.admit(g, "NIC1").await.is_ok(), "A probes");
    let probe_end = b.admit(g, "NIC1").await.expect_err("B waits while A probes");
    assert!(probe_end > chrono::Utc::now(), "{probe_end}");
    assert!(a.admit(g, "NIC1").await.is_err(), "even A's next call waits for its probe");
    // The probe succeeds: the circuit closes for both, and the table forgets it.
    a.succeeded(g, "NIC1").await;
    assert!(a.is_closed(g, "NIC1"));
    wait_until(5, "B never learnt that the circuit closed", || b.is_closed(g, "NIC1")).await;
    assert!(b.admit(g, "NIC1").await.is_ok());
    let left: i64 = c.query_one("SELECT count(*) FROM irp_circuits", &[]).await.unwrap().get(0);
    assert_eq!(left, 0);
    // Three more failures open it again, for everyone.
    for _ in 0..3 {
        a.failed(g, "NIC1", op, class, &unavailable()).await;
    }
    wait_until(5, "B never learnt of the second opening", || b.check(g, "NIC1").is_err()).await;
    // An answer (an IRP error code) shows the IRP is up: it closes the circuit too.
    let answered = IrpError::Api { errors: vec![], info: vec![] };
    b.failed(g, "NIC1", Operation::GetByDoc, Class::Rejection, &answered).await;
    wait_until(5, "A never learnt that the IRP answered", || a.is_closed(g, "NIC1")).await;
    stop.cancel();
    app.stop().await;
}
