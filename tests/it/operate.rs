//! Issue 13, as an on-call engineer meets it: the operator CLI on a stuck job, dead letters and
//! a paused GSTIN; `/readyz` during a total credential failure; retention; one query that
//! follows one invoice through the JSON logs.
use std::process::{Command, Output as ProcOutput, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{invoice, wait_until, Options, TestApp, SELLER_KA, SELLER_MH};

/// Run the binary with the test's configuration.
fn cli(app: &TestApp, args: &[&str]) -> ProcOutput {
    Command::new(env!("CARGO_BIN_EXE_einvoice-worker"))
        .args(args)
        .env("EINVOICE_CONFIG", &app.config_path)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the binary")
}

fn json_out(o: &ProcOutput) -> Value {
    assert!(o.status.success(), "exit {:?}: {}", o.status.code(), String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

async fn event_of_type(app: &mut TestApp, ty: &str) -> Value {
    for _ in 0..6 {
        let ev = app.next_event(30).await;
        if ev["event_type"] == ty {
            return ev;
        }
    }
    panic!("no {ty} event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_cli_finds_an_in_doubt_job_and_retries_it_without_a_second_registration() {
    // The automatic re-check of an in-doubt job waits two minutes here: the operator acts first.
    let mut app = TestApp::spawn_with(Options {
        extra_toml: "retry_max_age_secs = 0\nretry_tiers_secs = \"120,240\"".into(),
        ..Default::default()
    })
    .await;
    app.sim.core.update_faults(|f| f.timeout_commit_next = 1);
    app.generate(&invoice("b2b-intra-goods", "OP1/0001")).await;
    wait_until(20, "the generate call never came", || app.sim.core.stats().generate_calls > 0).await;
    app.sim.core.update_faults(|f| f.fail_5xx_ratio = 1.0);
    let (_, in_doubt) = app.next_reply(30).await;
    assert_eq!(in_doubt["event_type"], "irn.in_doubt", "{in_doubt:#}");
    app.sim.core.update_faults(|f| f.fail_5xx_ratio = 0.0);
    let job_id = in_doubt["job_id"].as_str().unwrap().to_string();

    // Find it ...
    let listed = json_out(&cli(&app, &["jobs", "list", "--status", "in_doubt", "--since", "1h", "--json"]));
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["job_id"], job_id.as_str());
    assert_eq!(listed[0]["gstin"], SELLER_KA);
    // ... look at it (by id, and by document key in the table view) ...
    let shown = json_out(&cli(&app, &["jobs", "show", &job_id, "--json"]));
    assert_eq!(shown["status"], "in_doubt");
    assert_eq!(shown["irp"], "whitebooks");
    assert!(shown["events"].as_array().unwrap().iter().any(|e| e["event_type"] == "irn.in_doubt"), "{shown:#}");
    let key = format!("{SELLER_KA}/INV/OP1/0001/{}", shown["financial_year"].as_str().unwrap());
    let table = cli(&app, &["jobs", "show", &key]);
    assert!(table.status.success(), "{}", String::from_utf8_lossy(&table.stderr));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains(&job_id) && text.contains("in_doubt") && text.contains("irn.in_doubt"), "{text}");

    // ... retry it once the IRP's circuit (opened by the failed lookups) has half-opened (2 s in
    // tests): the worker looks it up first and finds the IRN the lost call made.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let retried = json_out(&cli(&app, &["jobs", "retry", &job_id, "--json"]));
    assert_eq!(retried["previous_status"], "in_doubt");
    let generated = event_of_type(&mut app, "irn.generated").await;
    assert_eq!(generated["job_id"], job_id.as_str());
    assert_eq!(generated["request_id"], format!("operator-retry-{job_id}"));
    let s = app.sim.core.stats();
    assert_eq!((s.irns_created, s.generate_calls), (1, 1), "settled by lookup, no second generate: {s:?}");

    // A job with its outcome is not retried; an unknown job is "not found": both exit 1.
    let again = cli(&app, &["jobs", "retry", &job_id]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("is generated"), "{again:?}");
    let missing = cli(&app, &["jobs", "show", "00000000-0000-0000-0000-000000000000"]);
    assert_eq!(missing.status.code(), Some(1));
    let usage = cli(&app, &["jobs", "list", "--status", "stuck"]);
    assert_eq!(usage.status.code(), Some(2), "{usage:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_without_being_taken_and_replayed_on_demand() {
    let mut app = TestApp::spawn().await;
    let message_id = "op-dead-1";
    // A hostile body: an OSC sequence that would retitle the operator's terminal, and a bidi override.
    app.publish_with_id("irn.generate", "\x1b]0;PWNED\x07{not json\u{202E}".as_bytes(), message_id).await;
    let (_, rejected) = app.next_reply(20).await;
    assert_eq!(rejected["data"]["dead_lettered"], true, "{rejected:#}");
    // The broker dead-letters after the reject: wait until it is listed.
    let mut listed = Value::Null;
    for _ in 0..50 {
        let o = cli(&app, &["dead", "list", "--json"]);
        if o.status.success() {
            listed = json_out(&o);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = &listed.as_array().expect("a dead letter is listed")[0];
    assert_eq!(first["routing_key"], "irn.generate");
    assert_eq!(first["message_id"], message_id);
    assert_eq!(first["reason"], "rejected");
    assert_eq!(first["preview"], "\\u001B]0;PWNED\\u0007{not json\\u202E");
    // The human listing shows the escapes, never the raw control characters.
    let human = cli(&app, &["dead", "list"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("\\u001B]0;PWNED\\u0007{not json\\u202E"), "{text}");
    assert!(!text.contains('\x1b') && !text.contains('\x07') && !text.contains('\u{202E}'), "{text:?}");
    // Listing does not take it.
    assert_eq!(json_out(&cli(&app, &["dead", "list", "--json"])).as_array().unwrap().len(), 1);
    // Replay a message id that is not there: exit 1, the queue untouched.
    assert_eq!(cli(&app, &["dead", "replay", "--message-id", "nope"]).status.code(), Some(1));
    // Replay it: the worker answers it again (still malformed here, so rejected again).
    let replayed = json_out(&cli(&app, &["dead", "replay", "--message-id", message_id, "--json"]));
    assert_eq!(replayed.as_array().unwrap().len(), 1);
    let (_, again) = app.next_reply(20).await;
    assert_eq!(again["command_message_id"], message_id, "{again:#}");
    assert_eq!(again["event_type"], rejected["event_type"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_goes_red_when_every_gstin_is_refused_and_the_operator_can_unpause() {
    let app = TestApp::spawn_with(Options {
        extra_toml: "health_listen = \"127.0.0.1:0\"\npause_secs = 600\nstatus_token = \"op-t0ken\"".into(),
        ..Default::default()
    })
    .await;
    let addr = app.worker.as_ref().unwrap().health_addr.unwrap();
    let get = |path: &str| reqwest::get(format!("http://{addr}{path}"));
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    // Both GSTINs' passwords were changed at the IRP: a total credential failure.
    app.sim.core.update_faults(|f| {
        f.passwords.insert(SELLER_KA.into(), "rotated".into());
        f.passwords.insert(SELLER_MH.into(), "rotated".into());
    });
    app.generate(&invoice("b2b-intra-goods", "OP3/0001")).await;
    app.generate(&invoice("debit-note", "OP3/0002")).await;
    let mut body = String::new();
    for _ in 0..100 {
        let r = get("/readyz").await.unwrap();
        if r.status() == 503 {
            body = r.text().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(body.contains("no configured GSTIN can reach its IRP"), "readyz stayed green: {body:?}");
    let status: Value = reqwest::Client::new()
        .get(format!("http://{addr}/status"))
        .bearer_auth("op-t0ken")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["ready"], false);
    for g in [SELLER_KA, SELLER_MH] {
        assert!(status["gstins"][g]["paused_until"].is_string(), "{status:#}");
        assert_eq!(status["gstins"][g]["credentials_failing"], true, "{status:#}");
        assert_eq!(status["gstins"][g]["last_failure_class"], "configuration", "{status:#}");
    }
    assert!(!status.to_string().contains("sim-password"), "no secret in /status");

    let paused = json_out(&cli(&app, &["gstin", "paused", "--json"]));
    assert_eq!(paused.as_array().unwrap().len(), 2, "{paused:#}");
    // Fixed at the IRP; the operator ends the pause instead of waiting ten minutes.
    app.sim.core.update_faults(|f| f.passwords.clear());
    assert!(cli(&app, &["gstin", "unpause", SELLER_KA]).status.success());
    assert_eq!(cli(&app, &["gstin", "unpause", SELLER_KA]).status.code(), Some(1), "no longer paused");
    let paused = json_out(&cli(&app, &["gstin", "paused", "--json"]));
    assert_eq!(paused.as_array().unwrap().len(), 1, "{paused:#}");
    assert_eq!(paused[0]["gstin"], SELLER_MH);
    // The waiting invoice of the unpaused GSTIN goes through on its next look.
    assert!(app.sim.core.stats().irns_created <= 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_only_old_published_events_and_old_finished_jobs() {
    let mut app = TestApp::spawn().await;
    app.generate(&invoice("b2b-intra-goods", "OP4/0001")).await;
    app.generate(&invoice("b2b-intra-goods", "OP4/0002")).await;
    app.replies(2, 30).await;
    // The worker stops first: its relay would publish the unsent event inserted below.
    app.worker.take().unwrap().stop().await.unwrap();
    let c = app.db.client().await.unwrap();
    // Age one job and its events past the periods; leave the other as it is; add an old event
    // that was never published (retention must never drop an unsent answer).
    c.execute("UPDATE jobs SET updated_at = now() - interval '3000 days' WHERE doc_number = 'OP4/0001'", &[])
        .await
        .unwrap();
    c.execute("UPDATE outbox SET published_at = now() - interval '100 days'", &[]).await.unwrap();
    c.execute(
        "INSERT INTO outbox (event_id, event_type, payload, created_at) VALUES ($1, 'irn.generated', '{}', now() - interval '200 days')",
        &[&uuid::Uuid::new_v4()],
    )
    .await
    .unwrap();
    let o = cli(&app, &["prune", "--json"]);
    let pruned = json_out(&o);
    assert_eq!(pruned["jobs"], 1, "{pruned:#}");
    assert_eq!(pruned["outbox"], 2, "{pruned:#}");
    let left: i64 = c.query_one("SELECT count(*) FROM jobs", &[]).await.unwrap().get(0);
    assert_eq!(left, 1);
    let unsent: i64 = c.query_one("SELECT count(*) FROM outbox WHERE published_at IS NULL", &[]).await.unwrap().get(0);
    assert_eq!(unsent, 1, "an unpublished event is never pruned");
    // A second pass has nothing left to do.
    let again = json_out(&cli(&app, &["prune", "--json"]));
    assert_eq!((again["jobs"].clone(), again["outbox"].clone()), (json!(0), json!(0)));
    drop(c);
    app.stop().await;
}

/// One query follows one invoice: every line the worker logs while handling it carries its
/// correlation id, request id, job id, GSTIN and document, as JSON values (never Debug strings).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_query_follows_one_invoice_through_the_json_logs() {
    let mut app = TestApp::spawn().await;
    // The in-process worker is stopped; a worker process writes JSON logs to a pipe.
    app.worker.take().unwrap().stop().await.unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_einvoice-worker"))
        .arg("run")
        .env("EINVOICE_CONFIG", &app.config_path)
        .env("EINVOICE_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut body = json!({"gstin": SELLER_KA, "invoice": invoice("b2b-intra-goods", "OP5/0001")});
    body["request_id"] = json!("erp-req-op5");
    let correlation = app.publish("irn.generate", &body).await;
    let (_, ev) = app.next_reply(30).await;
    assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
    // Stop the process (SIGTERM) and read everything it wrote.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(!lines.is_empty(), "no JSON log lines: {text}");
    let start = lines.iter().find(|l| l["message"] == "einvoice-worker starting").expect("a start-up line");
    assert!(start["gstins"].as_str().unwrap().contains(&format!("{SELLER_KA}=whitebooks")), "{start}");
    assert!(start["version"].is_string());
    // The query: lines whose span carries the correlation id.
    let mine: Vec<&Value> = lines.iter().filter(|l| l["span"]["correlation_id"] == correlation.as_str()).collect();
    let messages: Vec<&str> = mine.iter().filter_map(|l| l["message"].as_str()).collect();
    assert!(messages.contains(&"IRP call succeeded"), "{messages:?}\n{text}");
    assert!(messages.contains(&"command finished"), "{messages:?}");
    let done = mine.iter().find(|l| l["message"] == "command finished").unwrap();
    assert_eq!(done["outcome"], "success");
    assert!(done["duration_ms"].is_u64(), "a number, not a string: {done}");
    let span = &done["span"];
    assert_eq!(span["request_id"], "erp-req-op5");
    assert_eq!(span["job_id"], ev["job_id"]);
    assert_eq!(span["gstin"], SELLER_KA);
    assert!(span["document"].as_str().unwrap().contains("OP5/0001"), "{span}");
    assert_eq!(span["routing_key"], "irn.generate");
    let call = mine.iter().find(|l| l["message"] == "IRP call succeeded").unwrap();
    assert_eq!(call["irp"], "whitebooks");
    assert_eq!(call["operation"], "generate");
    assert!(call["latency_ms"].is_u64() && call["http_status"].is_u64(), "{call}");
    assert!(!text.contains("Some("), "a Debug string reached the logs:\n{text}");
    for secret in ["sim-password", "sim-client-secret"] {
        assert!(!text.contains(secret), "a secret reached the logs");
    }
    app.stop().await;
}

/// The pool speaks TLS as libpq's `sslmode` says (the machine's PostgreSQL has `ssl = on` with
/// Debian's self-signed "snakeoil" certificate for `localhost`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_honours_sslmode_and_the_ca_file() {
    use einvoice_worker::store::Db;
    const CA: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    async fn encrypted(url: &str, ca: Option<&str>) -> Result<bool, String> {
        let db = Db::with_ca(url, 1, ca).map_err(|e| e.to_string())?;
        let c = db.client().await.map_err(|e| e.to_string())?;
        let row = c
            .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
            .await
            .map_err(|e| e.to_string())?;
        Ok(row.get(0))
    }
    let on: String = {
        let db = Db::new("postgres://postgres@127.0.0.1:5432/postgres", 1).unwrap();
        db.client().await.unwrap().query_one("SHOW ssl", &[]).await.unwrap().get(0)
    };
    assert_eq!(on, "on", "this test needs the server's TLS (Debian's default)");
    let plain = "postgres://postgres@127.0.0.1:5432/postgres";
    assert_eq!(encrypted(plain, None).await, Ok(false), "no sslmode: plain TCP as before");
    assert_eq!(encrypted(&format!("{plain}?sslmode=require"), None).await, Ok(true));
    let local = "postgres://postgres@localhost:5432/postgres";
    assert_eq!(encrypted(&format!("{local}?sslmode=verify-full"), Some(CA)).await, Ok(true));
    // verify-ca checks the chain but not the name; verify-full refuses a certificate for another host.
    assert_eq!(encrypted(&format!("{plain}?sslmode=verify-ca"), Some(CA)).await, Ok(true));
    let wrong_name = encrypted(&format!("{plain}?sslmode=verify-full"), Some(CA)).await.unwrap_err();
    assert!(wrong_name.to_lowercase().contains("certificate"), "{wrong_name}");
    // A CA file that did not sign the server's certificate: refused (the CA file replaces the
    // system store, which on Debian also holds the snakeoil certificate).
    let other_ca = std::fs::read_dir("/usr/share/ca-certificates/mozilla")
        .expect("Debian's CA bundle")
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "crt"))
        .unwrap();
    let untrusted =
        encrypted(&format!("{local}?sslmode=verify-full"), Some(other_ca.to_str().unwrap())).await.unwrap_err();
    assert!(untrusted.to_lowercase().contains("certificate"), "{untrusted}");
    // verify-ca/verify-full name their CA: without a CA file any publicly trusted certificate
    // would pass, so they need EINVOICE_DATABASE_CA_FILE, sslrootcert=<file>, or (verify-full
    // only) the explicit sslrootcert=system.
    let no_ca = encrypted(&format!("{local}?sslmode=verify-full"), None).await.unwrap_err();
    assert!(no_ca.contains("EINVOICE_DATABASE_CA_FILE") && no_ca.contains("sslrootcert=system"), "{no_ca}");
    assert_eq!(encrypted(&format!("{local}?sslmode=verify-full&sslrootcert={CA}"), None).await, Ok(true));
    assert_eq!(
        encrypted(&format!("{local}?sslrootcert=system"), None).await,
        Ok(true),
        "the snakeoil CA is in the store"
    );
    let weak = encrypted(&format!("{plain}?sslmode=verify-ca&sslrootcert=system"), None).await.unwrap_err();
    assert!(weak.contains("needs sslmode=verify-full"), "{weak}");
}

/// A retry queue declared by an earlier version (no at-least-once dead-lettering) does not stop
/// a new worker from starting: it is kept, with a warning, and still carries retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_queue_from_an_earlier_version_is_kept_not_fatal() {
    use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
    use lapin::types::{AMQPValue, FieldTable, LongString};
    let mut app = TestApp::spawn().await;
    let old = app.topology.retry_queues()[0].clone();
    app.ch.queue_delete(old.as_str().into(), QueueDeleteOptions::default()).await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString(LongString::from("quorum")));
    args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(5000));
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(LongString::from(app.topology.commands.as_str())),
    );
    let q = QueueDeclareOptions { durable: true, ..Default::default() };
    app.ch.queue_declare(old.as_str().into(), q, args).await.unwrap();
    let second = app.start_another_worker().await;
    // It works: a busy-document wait goes through that tier and comes back.
    app.sim.core.update_faults(|f| f.fail_next_5xx = 8);
    app.generate(&invoice("b2b-intra-goods", "OP6/0001")).await;
    let (_, ev) = app.next_reply(40).await;
    assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
    second.stop().await.unwrap();
    app.stop().await;
}
