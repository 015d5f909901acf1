//! A worker process killed mid-call (SIGKILL: no graceful anything) loses nothing and
//! registers nothing twice; concurrent migrations are safe.
use std::time::Duration;

use crate::helpers::{invoice, Options, TestApp};

async fn job_status(app: &TestApp) -> Option<String> {
    let c = app.db.client().await.unwrap();
    c.query_opt("SELECT status FROM jobs", &[]).await.unwrap().map(|r| r.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_during_the_irp_call_loses_nothing() {
    let mut app = TestApp::spawn_with(Options {
        extra_toml: "lease_secs = 3\nhttp_read_timeout_ms = 10000".into(),
        ..Default::default()
    })
    .await;
    // Only worker processes consume from here on.
    app.worker.take().unwrap().stop().await.unwrap();
    app.sim.core.update_faults(|f| f.latency_ms = 2_000);
    let mut first = app.spawn_process();
    app.generate(&invoice("b2b-intra-goods", "C1/0001")).await;
    // Wait until the first process is inside the IRP call, then kill it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while job_status(&app).await.as_deref() != Some("in_flight") {
        assert!(tokio::time::Instant::now() < deadline, "the job never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    app.sim.core.update_faults(|f| f.latency_ms = 0);
    let mut second = app.spawn_process();
    let (_, ev) = app.next_reply(60).await;
    assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
    app.no_more_replies(3).await;
    let s = app.sim.core.stats();
    assert_eq!(s.irns_created, 1, "exactly one IRN: {s:?}");
    assert!(s.generate_per_irn.values().all(|n| *n <= 2), "{s:?}");
    assert_eq!(job_status(&app).await.as_deref(), Some("generated"));
    second.kill().unwrap();
    second.wait().unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_on_a_fresh_database_are_safe() {
    let name = format!("einvoice_mig_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    einvoice_worker::store::ensure_database(&url, None).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let db = einvoice_worker::store::Db::new(&url, 2).unwrap();
            db.migrate().await.unwrap()
        }));
    }
    let mut applied = Vec::new();
    for t in tasks {
        applied.extend(t.await.unwrap());
    }
    applied.sort();
    let all: Vec<i32> = einvoice_worker::store::migrate::MIGRATIONS.iter().map(|m| m.0).collect();
    assert_eq!(applied, all, "each migration applied exactly once across the four starters");
    let (c, conn) =
        tokio_postgres::connect("postgres://postgres@127.0.0.1:5432/postgres", tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    c.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await.unwrap();
}

/// Close the worker's AMQP connection from the broker side, as a broker restart or a network
/// blip would.
fn close_broker_connection(worker_id: &str) -> bool {
    let out = std::process::Command::new("rabbitmqctl")
        .args(["list_connections", "-q", "pid", "client_properties"])
        .output()
        .expect("rabbitmqctl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut closed = false;
    for line in text.lines().filter(|l| l.contains(&format!("einvoice-worker-{worker_id}"))) {
        let pid = line.split('\t').next().unwrap();
        let st = std::process::Command::new("rabbitmqctl")
            .args(["close_connection", pid, "test: simulated network failure"])
            .status()
            .unwrap();
        closed |= st.success();
    }
    closed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_closing_the_connection_is_recovered_and_nothing_is_lost() {
    let mut app = TestApp::spawn().await;
    app.generate(&invoice("b2b-intra-goods", "C2/0001")).await;
    assert_eq!(app.next_reply(20).await.1["event_type"], "irn.generated");
    let id = app.worker.as_ref().unwrap().ctx.worker_id.to_string();
    let closed = tokio::task::spawn_blocking(move || close_broker_connection(&id)).await.unwrap();
    assert!(closed, "found and closed the worker's connection");
    for i in 0..5 {
        app.generate(&invoice("b2b-intra-goods", &format!("C2/1{i}"))).await;
    }
    let replies = app.replies(5, 60).await;
    assert!(replies.iter().all(|(_, r)| r["event_type"] == "irn.generated"), "{replies:#?}");
    assert_eq!(app.sim.core.stats().irns_created, 6);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_finishes_in_flight_jobs_and_publishes_their_events() {
    let mut app = TestApp::spawn().await;
    app.sim.core.update_faults(|f| f.latency_ms = 1_000);
    for i in 0..5 {
        app.generate(&invoice("b2b-intra-goods", &format!("C3/{i}"))).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let in_flight = || async {
        let c = app.db.client().await.unwrap();
        c.query_one("SELECT count(*) FROM jobs WHERE status = 'in_flight'", &[]).await.unwrap().get::<_, i64>(0)
    };
    while in_flight().await < 5 {
        assert!(tokio::time::Instant::now() < deadline, "the jobs did not all start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Stop while the IRP calls are in flight.
    app.worker.take().unwrap().stop().await.unwrap();
    assert_eq!(app.db.outbox_backlog().await.unwrap(), 0, "every committed event was published before exit");
    let c = app.db.client().await.unwrap();
    let generated: i64 = c.query_one("SELECT count(*) FROM jobs WHERE status = 'generated'", &[]).await.unwrap().get(0);
    drop(c);
    assert_eq!(generated, 5, "in-flight jobs were finished, not abandoned");
    let replies = app.replies(5, 10).await;
    assert!(replies.iter().all(|(_, r)| r["event_type"] == "irn.generated"));
    app.stop().await;
}
