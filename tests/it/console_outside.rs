//! Issue 25's last two parts in the console: documents marked registered / cancelled outside the
//! worker (one job and a filtered set, one audit row each, never claimed, retried or sent to the
//! IRP again, listed in the IRN register), and the job page's attempt history.
use serde_json::{json, Value};

use crate::console::{console_app, refused_documents, session, OPERATOR_PASSWORD, VIEWER_PASSWORD};
use crate::helpers::*;

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn get(http: &reqwest::Client, cookie: &str, url: &str) -> (u16, String) {
    let r = http.get(url).header("cookie", cookie).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn post(http: &reqwest::Client, cookie: &str, url: &str, form: &[(&str, &str)]) -> (u16, String) {
    let r = http.post(url).header("cookie", cookie).form(form).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn job_id(app: &TestApp, doc_number: &str) -> uuid::Uuid {
    let c = app.db.client().await.unwrap();
    c.query_one("SELECT id FROM jobs WHERE doc_number = $1", &[&doc_number]).await.unwrap().get(0)
}

async fn status_of(app: &TestApp, doc_number: &str) -> String {
    let c = app.db.client().await.unwrap();
    c.query_one("SELECT status FROM jobs WHERE doc_number = $1", &[&doc_number]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_marks_documents_registered_or_cancelled_outside() {
    let (mut app, base) = console_app().await;
    let filtered = refused_documents(&mut app, "OUT-R", 3, "2172").await;
    let single = refused_documents(&mut app, "OUT-S", 1, "2265").await.remove(0);
    let by_cli = refused_documents(&mut app, "OUT-C", 1, "2265").await.remove(0);
    app.generate(&invoice("b2b-intra-goods", "OUT-G")).await;
    let (_, ev) = app.next_reply(60).await;
    assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
    let http = http();
    let (viewer, viewer_csrf) = session(&http, &base, "vik", VIEWER_PASSWORD).await;
    let (operator, csrf) = session(&http, &base, "asha", OPERATOR_PASSWORD).await;
    let c = app.db.client().await.unwrap();

    // A viewer is refused the confirmation and the form posted directly; nothing changes.
    let confirm = format!("{base}/confirm/outside?outcome=registered&status=rejected&error_code=2172");
    assert_eq!(get(&http, &viewer, &confirm).await.0, 403);
    let form = [
        ("csrf", viewer_csrf.as_str()),
        ("expected", "3"),
        ("reason", "x"),
        ("outcome", "registered"),
        ("status", "rejected"),
        ("error_code", "2172"),
    ];
    let (code, page) = post(&http, &viewer, &format!("{base}/actions/outside"), &form).await;
    assert_eq!(code, 403, "{page}");
    assert_eq!(status_of(&app, &filtered[0]).await, "rejected");

    // All that match a filter: the confirmation counts them, one action marks them.
    let (code, page) = get(&http, &operator, &confirm).await;
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("This will mark 3 document(s) as registered outside"), "{page}");
    assert!(!page.contains("given_irn"), "no IRN field for several documents");
    let mut form = form;
    form[0].1 = &csrf;
    let (code, page) = post(&http, &operator, &format!("{base}/actions/outside"), &form[..2]).await;
    assert_eq!(code, 400, "no reason: {page}");
    form[2].1 = "registered on the portal during the IRP outage";
    let (code, page) = post(&http, &operator, &format!("{base}/actions/outside"), &form).await;
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("3 of 3 document(s) marked registered outside."), "{page}");
    let rows = c.query("SELECT action, count, done, reason, job_ids FROM operator_actions", &[]).await.unwrap();
    assert_eq!(rows.len(), 1, "one audit row");
    assert_eq!(
        (rows[0].get::<_, String>(0), rows[0].get::<_, i32>(1), rows[0].get::<_, i32>(2)),
        ("mark_registered_outside".into(), 3, 3)
    );
    assert_eq!(rows[0].get::<_, Vec<uuid::Uuid>>(4).len(), 3);
    let ev = app.next_event_of("operator.action", 30).await.expect("an operator.action event");
    assert_eq!(
        (ev["data"]["action"].as_str(), ev["data"]["done"].as_i64()),
        (Some("mark_registered_outside"), Some(3))
    );
    for d in &filtered {
        assert_eq!(status_of(&app, d).await, "registered_outside");
    }

    // One job, with the IRN the portal gave: checked (64 hex characters), then stored.
    let id = job_id(&app, &single).await;
    let (code, page) = get(&http, &operator, &format!("{base}/jobs/{id}")).await;
    assert_eq!(code, 200);
    assert!(page.contains("Mark registered outside (on the portal)"), "{page}");
    let (_, page) = get(&http, &operator, &format!("{base}/confirm/outside?outcome=registered&job_id={id}")).await;
    assert!(page.contains("This will mark 1 document(s)") && page.contains("given_irn"), "{page}");
    let irn = "ab".repeat(32);
    let id_s = id.to_string();
    let mut one = vec![
        ("csrf", csrf.as_str()),
        ("expected", "1"),
        ("reason", "ERP registered it by hand"),
        ("outcome", "registered"),
        ("job_id", id_s.as_str()),
        ("given_irn", "not-an-irn"),
        ("given_ack_no", "112610000000001"),
        ("given_ack_dt", "2026-11-02 10:15:00"),
    ];
    let (code, page) = post(&http, &operator, &format!("{base}/actions/outside"), &one).await;
    assert_eq!(code, 400, "{page}");
    assert!(page.contains("64 hexadecimal"), "{page}");
    one[5].1 = &irn;
    let (code, page) = post(&http, &operator, &format!("{base}/actions/outside"), &one).await;
    assert!(code == 200 && page.contains("1 of 1 document(s) marked registered outside."), "{page}");
    let r = c.query_one("SELECT status, irn, ack_no, outside FROM jobs WHERE id = $1", &[&id]).await.unwrap();
    assert_eq!(
        (r.get::<_, String>(0), r.get::<_, Option<String>>(1), r.get::<_, Option<String>>(2)),
        ("registered_outside".into(), Some(irn.clone()), Some("112610000000001".into()))
    );
    assert_eq!(r.get::<_, Value>(3)["actor"], "asha");
    let (_, page) = get(&http, &viewer, &format!("{base}/jobs/{id}")).await;
    assert!(page.contains("Marked outside the worker") && page.contains("ERP registered it by hand"), "{page}");
    assert!(!page.contains("Mark cancelled outside"), "no action for a viewer");

    // A generated document cannot be marked registered outside, but cancelled outside.
    let g = job_id(&app, "OUT-G").await;
    let (_, page) = get(&http, &operator, &format!("{base}/confirm/outside?outcome=registered&job_id={g}")).await;
    assert!(page.contains("mark 0 document(s)") && !page.contains("/actions/outside"), "{page}");
    let g_s = g.to_string();
    let form = [
        ("csrf", csrf.as_str()),
        ("expected", "1"),
        ("reason", "cancelled on the portal"),
        ("outcome", "cancelled"),
        ("job_id", g_s.as_str()),
    ];
    let (code, page) = post(&http, &operator, &format!("{base}/actions/outside"), &form).await;
    assert!(code == 200 && page.contains("1 of 1 document(s) marked cancelled outside."), "{page}");
    assert_eq!(status_of(&app, "OUT-G").await, "cancelled_outside");
    let audited: i64 = c.query_one("SELECT count(*) FROM operator_actions", &[]).await.unwrap().get(0);
    assert_eq!(audited, 3, "one audit row per action");

    // The command line's equivalent: same checks, same audit row.
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_einvoice-worker"))
            .args(args)
            .env("EINVOICE_CONFIG", &app.config_path)
            .output()
            .unwrap()
    };
    let c_id = job_id(&app, &by_cli).await.to_string();
    let out = cli(&["jobs", "mark-outside", &c_id, "--outcome", "registered", "--reason", "x", "--irn", "12"]);
    assert_eq!(out.status.code(), Some(2), "a bad IRN is a usage error");
    let out = cli(&["jobs", "mark-outside", &g_s, "--outcome", "registered", "--reason", "x"]);
    assert_eq!(out.status.code(), Some(1), "a cancelled-outside job cannot be marked registered");
    let out = cli(&[
        "jobs",
        "mark-outside",
        &c_id,
        "--outcome",
        "cancelled",
        "--reason",
        "cancelled at the portal",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (done["previous_status"].as_str(), done["status"].as_str()),
        (Some("rejected"), Some("cancelled_outside"))
    );
    assert_eq!(status_of(&app, &by_cli).await, "cancelled_outside");
    let row = c.query_one("SELECT actor, action FROM operator_actions ORDER BY id DESC LIMIT 1", &[]).await.unwrap();
    assert!(row.get::<_, String>(0).starts_with("cli:"));
    assert_eq!(row.get::<_, String>(1), "mark_cancelled_outside");

    // Never retried: a retry on them touches none.
    let (_, page) = get(&http, &operator, &format!("{base}/confirm/retry?status=registered_outside")).await;
    assert!(page.contains("This will send 0 document(s)"), "{page}");
    // A re-sent command is answered from the store, not sent to the IRP.
    let calls = app.sim.core.stats().generate_calls;
    app.generate(&invoice("b2b-intra-goods", &filtered[0])).await;
    let (_, ev) = app.next_reply(60).await;
    assert_eq!(ev["event_type"], "irn.rejected", "{ev:#}");
    assert_eq!(ev["data"]["errors"][0]["code"], "REGISTERED_OUTSIDE", "{ev:#}");
    app.generate(&invoice("b2b-intra-goods", "OUT-G")).await;
    let (_, ev) = app.next_reply(60).await;
    assert_eq!(ev["data"]["errors"][0]["code"], "CANCELLED_OUTSIDE", "{ev:#}");
    assert_eq!(app.sim.core.stats().generate_calls, calls, "no IRP call for a document handled outside");
    assert_eq!(status_of(&app, &filtered[0]).await, "registered_outside", "not claimed");

    // The IRN register: registered elsewhere (with or without the IRN given), cancelled.
    let period = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Kolkata).format("%Y-%m").to_string();
    let url = format!("{base}/register/export?gstin={SELLER_KA}&period={period}&format=json");
    let lines: Vec<Value> = serde_json::from_str(&get(&http, &viewer, &url).await.1).unwrap();
    let line = |no: &str| lines.iter().find(|l| l["doc_number"] == no).cloned().unwrap_or(Value::Null);
    assert_eq!(line(&single)["irn_status"], "registered elsewhere", "{lines:#?}");
    assert_eq!(line(&single)["irn"], json!(irn));
    assert_eq!(line(&filtered[1])["irn_status"], "registered elsewhere", "listed without its IRN: {lines:#?}");
    assert_eq!(line("OUT-G")["irn_status"], "cancelled", "{lines:#?}");
    // The CLI exports the same.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_einvoice-worker"))
        .args(["register", "export", "--gstin", SELLER_KA, "--period", &period, "--format", "json"])
        .env("EINVOICE_CONFIG", &app.config_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap(), lines);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_job_page_lists_every_attempt_with_the_irps_answers() {
    let (mut app, base) = console_app().await;
    // The first generate call gets a 503: ambiguous, so the retry looks the document up first.
    app.sim.core.update_faults(|f| f.fail_next_5xx = 1);
    app.generate(&invoice("b2b-intra-goods", "ATT-1")).await;
    let (_, ev) = app.next_reply(60).await;
    assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
    let id = job_id(&app, "ATT-1").await;
    let c = app.db.client().await.unwrap();
    let log: Value = c.query_one("SELECT attempt_log FROM jobs WHERE id = $1", &[&id]).await.unwrap().get(0);
    let log = log.as_array().expect("an attempt log").clone();
    assert!(log.len() >= 2, "{log:#?}");
    let first = &log[0];
    assert_eq!((first["operation"].as_str(), first["http_status"].as_u64()), (Some("generate"), Some(503)), "{log:#?}");
    assert_eq!(first["outcome"], "ambiguous", "{log:#?}");
    let last = log.last().unwrap();
    assert_eq!((last["operation"].as_str(), last["outcome"].as_str()), (Some("generate"), Some("ok")), "{log:#?}");
    assert!(log.iter().all(|a| a["irp"].is_string() && a["at"].is_string()), "{log:#?}");

    let http = http();
    let (viewer, _) = session(&http, &base, "vik", VIEWER_PASSWORD).await;
    let (code, page) = get(&http, &viewer, &format!("{base}/jobs/{id}")).await;
    assert_eq!(code, 200);
    assert!(page.contains("Attempts (IRP calls, newest first)"), "{page}");
    assert!(
        page.contains("<td>503</td>") && page.contains("<td>ambiguous</td>") && page.contains("<td>ok</td>"),
        "{page}"
    );
    for t in app.sim.core.issued_tokens() {
        assert!(!page.contains(&t), "no token on the page");
    }
    app.stop().await;
}

/// An e-way bill made without an IRN is no job, yet an operator looking for a challan finds it:
/// by its e-way bill number and by its document number (any case), and a user limited to other
/// GSTINs does not see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_finds_ewaybills_made_without_an_irn() {
    let (mut app, base) = console_app().await;
    app.publish("ewaybill.generate", &crate::ewaybill_doc::command(crate::ewaybill_doc::challan("DC/C-0042"))).await;
    let (_, ev) = app.next_reply(30).await;
    assert_eq!(ev["event_type"], "ewaybill.generated", "{ev:#}");
    let ewb_no = ev["data"]["ewb_no"].as_str().unwrap().to_string();
    let http = http();
    let (viewer, _) = session(&http, &base, "vik", VIEWER_PASSWORD).await;
    let caption = "E-way bills made without an IRN";
    for query in [format!("ewb_no={ewb_no}"), "doc_number=dc%2Fc-0042".to_string()] {
        let (code, page) = get(&http, &viewer, &format!("{base}/jobs?{query}")).await;
        assert_eq!(code, 200, "{page}");
        assert!(page.contains(caption) && page.contains(&ewb_no) && page.contains("CHL DC/C-0042"), "{query}: {page}");
        assert!(page.contains("active"), "{page}");
    }
    // Another document number, or another GSTIN: not listed.
    let (_, page) = get(&http, &viewer, &format!("{base}/jobs?doc_number=DC%2FC-0043")).await;
    assert!(!page.contains(caption), "{page}");
    let (_, page) = get(&http, &viewer, &format!("{base}/jobs?ewb_no={ewb_no}&gstin={SELLER_MH}")).await;
    assert!(!page.contains(caption), "{page}");
    app.stop().await;
}
