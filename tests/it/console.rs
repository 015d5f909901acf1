//! The operator console (issue 25) in a real browser: Debian's Chromium driven over WebDriver
//! (chromedriver, which `.ci/run` installs) with fantoccini; plus direct HTTP posts (reqwest) to
//! show that the server, not the page, refuses a viewer; the audit table's append-only trigger;
//! and the search by IRN answered from an index (EXPLAIN).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use einvoice_worker::console::auth::hash_password;
use einvoice_worker::store::console::Search;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::helpers::*;

pub(crate) const OPERATOR_PASSWORD: &str = "operator-pass-123";
pub(crate) const VIEWER_PASSWORD: &str = "viewer-pass-1234";

/// A worker with the console on a free loopback port and two users: `asha` (operator) and
/// `vik` (viewer).
pub(crate) async fn console_app() -> (TestApp, String) {
    let toml = format!(
        "console_listen = \"127.0.0.1:0\"\n\
         [console_users.asha]\nrole = \"operator\"\npassword_hash = \"{}\"\n\
         [console_users.vik]\nrole = \"viewer\"\npassword_hash = \"{}\"\n",
        hash_password(OPERATOR_PASSWORD),
        hash_password(VIEWER_PASSWORD)
    );
    let app = TestApp::spawn_with(Options { extra_toml: toml, ..Default::default() }).await;
    let addr = app.worker.as_ref().unwrap().console_addr.expect("the console listens");
    (app, format!("http://{addr}"))
}

/// Generate `n` documents through the worker and the simulator, then make them what a master-data
/// refusal leaves: rejected, no IRN, error 2172 (the simulator then answers their retry with 2150
/// and the worker resolves the IRN, as a real IRP does for an already registered document).
pub(crate) async fn refused_documents(app: &mut TestApp, prefix: &str, n: usize, code: &str) -> Vec<String> {
    let mut numbers = Vec::new();
    for i in 0..n {
        let no = format!("{prefix}{i}");
        app.generate(&invoice("b2b-intra-goods", &no)).await;
        numbers.push(no);
    }
    for _ in 0..n {
        let (_, ev) = app.next_reply(60).await;
        assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
    }
    let c = app.db.client().await.unwrap();
    let errors = json!([{"code": code, "message": "Invalid buyer GSTIN master", "source": "irp"}]);
    let changed = c
        .execute(
            "UPDATE jobs SET status = 'rejected', irn = NULL, ack_no = NULL, last_error = $1 WHERE doc_number = ANY($2)",
            &[&errors, &numbers],
        )
        .await
        .unwrap();
    assert_eq!(changed as usize, n);
    numbers
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn browser() -> (Driver, Client) {
    let port = free_port();
    let child = match Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "chromedriver is not on PATH: the console's browser tests need Debian's chromium and chromium-driver \
             (apt-get install -y chromium chromium-driver; .ci/run installs them)"
        ),
        Err(e) => panic!("starting chromedriver: {e}"),
    };
    let profile = std::env::temp_dir().join(format!("einvoice-chromium-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&profile).unwrap();
    let driver = Driver { child, url: format!("http://127.0.0.1:{port}"), profile };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium_binary(),
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1280,900", format!("--user-data-dir={}", driver.profile.display())]
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("chromedriver at {} did not start a Chromium session: {e}", driver.url));
    (driver, client)
}

fn chromium_binary() -> &'static str {
    ["/usr/bin/chromium", "/usr/lib/chromium/chromium"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!("Chromium is not installed: apt-get install -y chromium chromium-driver (.ci/run installs them)")
        })
}

/// Save a screenshot under target/console-screenshots, and into docs/img when
/// EINVOICE_UPDATE_SCREENSHOTS=1 (how docs/console.md's pictures are made).
async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
    if std::env::var("EINVOICE_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        std::fs::write(root.join(format!("docs/img/{name}.png")), &png).unwrap();
    }
}

/// Click what navigates to another page, and wait until that page is there (a click returns
/// before the form's answer has loaded).
async fn click_to_next_page(c: &Client, css: Locator<'_>) {
    let before = c.current_url().await.unwrap();
    c.find(css).await.unwrap().click().await.unwrap();
    for _ in 0..100 {
        if c.current_url().await.unwrap() != before {
            let state = c.execute("return document.readyState", vec![]).await.unwrap();
            if state == "complete" {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no new page after clicking on {before}");
}

async fn log_in(c: &Client, base: &str, user: &str, password: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    c.find(Locator::Id("username")).await.unwrap().send_keys(user).await.unwrap();
    c.find(Locator::Id("password")).await.unwrap().send_keys(password).await.unwrap();
    click_to_next_page(c, Locator::Css("main form button[type=submit]")).await;
    let header = c.find(Locator::Css("header form span")).await.unwrap().text().await.unwrap();
    assert!(header.starts_with(user), "logged in as {user}: {header}");
}

async fn log_out(c: &Client) {
    click_to_next_page(c, Locator::Css("header form button")).await;
    c.find(Locator::Id("username")).await.expect("back on the login page");
}

async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css)).await.unwrap().text().await.unwrap()
}

/// Issue 25's browser case: each role logs in, a search by IRN finds its document, a viewer sees
/// no action and is refused one, and an operator retries the 37 refused invoices with one filter
/// and one confirmation, which leaves one audit row and one `operator.action` event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_a_browser_roles_search_by_irn_bulk_retry_and_audit() {
    let (mut app, base) = console_app().await;
    app.generate(&invoice("b2b-intra-goods", "CON-IRN-1")).await;
    let (_, ev) = app.next_reply(60).await;
    let irn = ev["data"]["irn"].as_str().expect("an IRN").to_string();
    let refused = refused_documents(&mut app, "CON-R", 37, "2172").await;
    // Three refused for another reason: the filter by error code leaves them alone.
    refused_documents(&mut app, "CON-X", 3, "2265").await;
    let (_driver, c) = browser().await;

    // A viewer: finds the document by its IRN, opens it, sees no action, is refused one.
    log_in(&c, &base, "vik", VIEWER_PASSWORD).await;
    c.find(Locator::Id("irn")).await.unwrap().send_keys(&irn).await.unwrap();
    click_to_next_page(&c, Locator::Css("form[role=search] button[type=submit]")).await;
    assert_eq!(text_of(&c, "p[role=status]").await, "1 document(s) match.");
    let rows = c.find_all(Locator::Css("tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].text().await.unwrap().contains("CON-IRN-1"));
    screenshot(&c, "console-search-by-irn").await;
    click_to_next_page(&c, Locator::Css("tbody tr td a")).await;
    let title = text_of(&c, "main h1").await;
    assert!(title.contains("CON-IRN-1"), "{title}");
    let page = c.source().await.unwrap();
    assert!(page.contains(&irn) && page.contains("irn.generated"), "the job page shows the IRN and its events");
    screenshot(&c, "console-job").await;
    c.goto(&format!("{base}/jobs?status=rejected&error_code=2172")).await.unwrap();
    assert_eq!(text_of(&c, "p[role=status]").await, "37 document(s) match.");
    assert!(c.find(Locator::LinkText("Retry all that match…")).await.is_err(), "no action shown to a viewer");
    c.goto(&format!("{base}/confirm/retry?status=rejected&error_code=2172")).await.unwrap();
    assert_eq!(text_of(&c, "main h1").await, "Not allowed");
    log_out(&c).await;

    // An operator: one filter, one confirmation.
    log_in(&c, &base, "asha", OPERATOR_PASSWORD).await;
    c.find(Locator::Id("gstin")).await.unwrap().send_keys(SELLER_KA).await.unwrap();
    c.find(Locator::Id("status")).await.unwrap().select_by_value("rejected").await.unwrap();
    c.find(Locator::Id("error_code")).await.unwrap().send_keys("2172").await.unwrap();
    click_to_next_page(&c, Locator::Css("form[role=search] button[type=submit]")).await;
    assert_eq!(text_of(&c, "p[role=status]").await, "37 document(s) match.");
    screenshot(&c, "console-filter").await;
    click_to_next_page(&c, Locator::LinkText("Retry all that match…")).await;
    let summary = text_of(&c, "p[role=status]").await;
    assert!(summary.starts_with("This will send 37 document(s) to the IRP again"), "{summary}");
    c.find(Locator::Id("reason")).await.unwrap().send_keys("buyer GSTIN master fixed at GSTN").await.unwrap();
    screenshot(&c, "console-confirm").await;
    click_to_next_page(&c, Locator::Css("main form button[type=submit]")).await;
    assert_eq!(text_of(&c, "p[role=status]").await, "37 of 37 document(s) sent again.");

    // One audit row, shown in the console, and its event.
    let c2 = app.db.client().await.unwrap();
    let rows = c2
        .query("SELECT actor, role, action, count, done, reason, filter, job_ids FROM operator_actions", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "one audit row");
    let r = &rows[0];
    assert_eq!(
        (r.get::<_, String>(0), r.get::<_, String>(1), r.get::<_, String>(2), r.get::<_, i32>(3), r.get::<_, i32>(4)),
        ("asha".into(), "operator".into(), "retry".into(), 37, 37)
    );
    assert_eq!(r.get::<_, Option<String>>(5).as_deref(), Some("buyer GSTIN master fixed at GSTN"));
    let filter: Value = r.get(6);
    assert_eq!(filter, json!({"gstin": SELLER_KA, "status": "rejected", "error_code": "2172"}));
    assert_eq!(r.get::<_, Vec<uuid::Uuid>>(7).len(), 37);
    c.goto(&format!("{base}/audit")).await.unwrap();
    let audit = text_of(&c, "tbody").await;
    assert!(
        audit.contains("asha (operator)") && audit.contains("37 of 37") && audit.contains("master fixed"),
        "{audit}"
    );
    screenshot(&c, "console-audit").await;
    // The "See" page: the hours as a server-drawn chart, the error codes of the day.
    c.goto(&format!("{base}/see")).await.unwrap();
    assert!(c.find(Locator::Css("svg[role=img] rect")).await.is_ok(), "a chart");
    let see = c.source().await.unwrap();
    assert!(see.contains("/jobs?error_code=2265"), "the 3 documents refused with 2265 are counted");
    screenshot(&c, "console-see").await;
    // The API consumption page, and a "registered outside" confirmation for the 3 refused with
    // 2265 (nothing is marked: the form is not sent).
    // Workers write their counts every 10 s: wait for this one's.
    for _ in 0..40 {
        c.goto(&format!("{base}/usage")).await.unwrap();
        if c.source().await.unwrap().contains(SELLER_KA) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(text_of(&c, "main h1").await, "API usage");
    assert!(c.source().await.unwrap().contains(SELLER_KA), "the GSTIN's calls are counted");
    screenshot(&c, "console-usage").await;
    c.goto(&format!("{base}/confirm/outside?outcome=registered&status=rejected&error_code=2265")).await.unwrap();
    let summary = text_of(&c, "p[role=status]").await;
    assert!(summary.starts_with("This will mark 3 document(s) as registered outside the worker"), "{summary}");
    c.find(Locator::Id("reason")).await.unwrap().send_keys("registered on the portal during the outage").await.unwrap();
    screenshot(&c, "console-outside-confirm").await;
    let ev = app.next_event_of("operator.action", 30).await.expect("an operator.action event");
    assert_eq!((ev["data"]["count"].as_i64(), ev["data"]["actor"].as_str()), (Some(37), Some("asha")));

    // The worker takes each retry through its normal path: all 37 end generated.
    let mut generated = 0;
    for _ in 0..120 {
        generated = c2
            .query_one("SELECT count(*) FROM jobs WHERE doc_number = ANY($1) AND status = 'generated'", &[&refused])
            .await
            .unwrap()
            .get::<_, i64>(0);
        if generated == 37 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(generated, 37, "every retried document got its IRN");
    let untouched: i64 = c2.query_one("SELECT count(*) FROM jobs WHERE status = 'rejected'", &[]).await.unwrap().get(0);
    assert_eq!(untouched, 3, "the documents refused for another code were not touched");
    c.close().await.unwrap();
    app.stop().await;
}

/// A cookie's value from a response's Set-Cookie headers.
fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        let (kv, _) = v.split_once(';').unwrap_or((v, ""));
        let (k, val) = kv.split_once('=')?;
        (k == name).then(|| val.to_string())
    })
}

fn csrf_in(html: &str) -> String {
    let i = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[i..].split('"').next().unwrap().to_string()
}

/// Log in over plain HTTP: (session cookie header, CSRF token of the session's forms).
async fn http_login(http: &reqwest::Client, base: &str, user: &str, password: &str) -> reqwest::Response {
    let page = http.get(format!("{base}/login")).send().await.unwrap();
    let login_cookie = set_cookie(&page, "einvoice_console_login").expect("a login CSRF cookie");
    let csrf = csrf_in(&page.text().await.unwrap());
    http.post(format!("{base}/login"))
        .header("cookie", format!("einvoice_console_login={login_cookie}"))
        .form(&[("csrf", csrf.as_str()), ("username", user), ("password", password)])
        .send()
        .await
        .unwrap()
}

pub(crate) async fn session(http: &reqwest::Client, base: &str, user: &str, password: &str) -> (String, String) {
    let r = http_login(http, base, user, password).await;
    assert_eq!(r.status(), 303, "{user} logs in");
    let set = r.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "the session cookie has {attr}: {set}");
    }
    let cookie = format!("einvoice_console={}", set_cookie(&r, "einvoice_console").unwrap());
    let jobs = http.get(format!("{base}/jobs")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(jobs.status(), 200);
    let csp = jobs.headers().get("content-security-policy").unwrap().to_str().unwrap().to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    (cookie, csrf_in(&jobs.text().await.unwrap()))
}

/// The server refuses what the page does not offer: a viewer posting the retry or unpause form
/// directly gets 403, an operator's post without the session's CSRF token too, and nothing is
/// done or audited; repeated wrong passwords are rate-limited even when the right one follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_posting_forms_directly_is_refused_and_logins_are_rate_limited() {
    let (mut app, base) = console_app().await;
    refused_documents(&mut app, "CON-V", 2, "2172").await;
    app.db.pause_gstin(SELLER_KA, 600, &json!([{"code": "1007"}])).await.unwrap();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    let (viewer, viewer_csrf) = session(&http, &base, "vik", VIEWER_PASSWORD).await;
    let form = [("csrf", viewer_csrf.as_str()), ("expected", "2"), ("reason", "x"), ("status", "rejected")];
    let r = http.post(format!("{base}/actions/retry")).header("cookie", &viewer).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 403, "a viewer's retry");
    assert!(r.text().await.unwrap().contains("only operators may act"));
    let form = [("csrf", viewer_csrf.as_str()), ("expected", "1"), ("reason", "x"), ("gstin", SELLER_KA)];
    let r = http.post(format!("{base}/actions/unpause")).header("cookie", &viewer).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 403, "a viewer's unpause");
    let r = http.get(format!("{base}/confirm/retry?status=rejected")).header("cookie", &viewer).send().await.unwrap();
    assert_eq!(r.status(), 403, "a viewer's confirmation page");
    // Without a session: to the login page.
    let r = http.post(format!("{base}/actions/retry")).form(&[("status", "rejected")]).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers().get("location").unwrap().to_str().unwrap()), (303, "/login"));

    let (operator, operator_csrf) = session(&http, &base, "asha", OPERATOR_PASSWORD).await;
    let form = [("csrf", viewer_csrf.as_str()), ("expected", "2"), ("reason", "x"), ("status", "rejected")];
    let r = http.post(format!("{base}/actions/retry")).header("cookie", &operator).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 403, "an operator's post with another session's CSRF token");

    let c = app.db.client().await.unwrap();
    let audited: i64 = c.query_one("SELECT count(*) FROM operator_actions", &[]).await.unwrap().get(0);
    assert_eq!(audited, 0, "nothing was done");
    let refused: i64 = c.query_one("SELECT count(*) FROM jobs WHERE status = 'rejected'", &[]).await.unwrap().get(0);
    assert_eq!(refused, 2, "a viewer's posts changed nothing");
    assert!(app.db.paused_until(SELLER_KA).await.unwrap().is_some(), "still paused");

    // A viewer may not replay dead letters; an operator replays them behind a confirmation.
    let r = http.get(format!("{base}/confirm/replay")).header("cookie", &viewer).send().await.unwrap();
    assert_eq!(r.status(), 403, "a viewer's replay confirmation");
    app.publish_with_id("irn.generate", b"{not json", "con-dead-1").await;
    let (_, rejected) = app.next_reply(20).await;
    assert_eq!(rejected["data"]["dead_lettered"], true, "{rejected:#}");
    let mut page = String::new();
    for _ in 0..50 {
        let r = http.get(format!("{base}/confirm/replay")).header("cookie", &operator).send().await.unwrap();
        page = r.text().await.unwrap();
        if page.contains("publish 1 dead-lettered") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(page.contains("publish 1 dead-lettered command(s) again"), "{page}");
    let form = [("csrf", operator_csrf.as_str()), ("expected", "1"), ("reason", "fixed the publisher")];
    let r = http.post(format!("{base}/actions/replay")).header("cookie", &operator).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("1 of 1 dead-lettered command(s) published again."));
    let row = c.query_one("SELECT action, count, done, reason FROM operator_actions", &[]).await.unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, i32>(1), row.get::<_, i32>(2), row.get::<_, Option<String>>(3)),
        ("replay".into(), 1, 1, Some("fixed the publisher".into()))
    );
    let ev = app.next_event_of("operator.action", 30).await.expect("an operator.action event");
    assert_eq!(ev["data"]["action"], "replay");

    // The audit table keeps what was written.
    c.execute(
        "INSERT INTO operator_actions (action_id, actor, role, action, filter, count, done) \
         VALUES (gen_random_uuid(), 'asha', 'operator', 'retry', '{}', 0, 0)",
        &[],
    )
    .await
    .unwrap();
    for sql in ["UPDATE operator_actions SET actor = 'x'", "DELETE FROM operator_actions", "TRUNCATE operator_actions"]
    {
        let e = c.execute(sql, &[]).await.expect_err(sql);
        assert!(e.to_string().contains("append-only") || format!("{e:?}").contains("append-only"), "{sql}: {e:?}");
    }

    // Five wrong passwords for a name, then even the right one is refused for a while.
    for _ in 0..5 {
        assert_eq!(http_login(&http, &base, "vik", "wrong-password").await.status(), 401);
    }
    let r = http_login(&http, &base, "vik", VIEWER_PASSWORD).await;
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains("Too many failed logins"));
    // A login without the login form's token is refused.
    let r = http
        .post(format!("{base}/login"))
        .form(&[("username", "asha"), ("password", OPERATOR_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    app.stop().await;
}

/// Search by IRN is answered from the `jobs_irn` index among many rows, and the IRN register of
/// the month (console export) lists exactly the store's IRNs of that GSTIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_by_irn_uses_an_index_and_the_register_matches_the_store() {
    let (mut app, base) = console_app().await;
    app.generate(&invoice("b2b-intra-goods", "CON-REG-1")).await;
    app.generate(&invoice("b2b-intra-goods", "CON-REG-2")).await;
    for _ in 0..2 {
        let (_, ev) = app.next_reply(60).await;
        assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
    }
    let c = app.db.client().await.unwrap();
    c.batch_execute(
        "INSERT INTO jobs (id, doc_key, gstin, doc_type, doc_number, financial_year, status, irn, updated_at)
         SELECT gen_random_uuid(), 'K' || g, '27AAKFU7303M1ZP', 'INV', 'N' || g, '2026-27', 'generated',
                md5(g::text) || md5((g + 1)::text), now() - make_interval(secs => g)
         FROM generate_series(1, 20000) g;
         ANALYZE jobs;",
    )
    .await
    .unwrap();
    let irn: String = c.query_one("SELECT irn FROM jobs WHERE doc_number = 'N777'", &[]).await.unwrap().get(0);
    let search = Search { irn: Some(irn.clone()), ..Default::default() };
    let (sql, params) = search.page_sql(None, 51);
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        params.iter().map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
    let plan: Vec<String> =
        c.query(&format!("EXPLAIN {sql}"), &refs).await.unwrap().iter().map(|r| r.get::<_, String>(0)).collect();
    let plan = plan.join("\n");
    assert!(plan.contains("jobs_irn"), "the search by IRN reads the jobs_irn index:\n{plan}");
    assert!(!plan.contains("Seq Scan"), "no sequential scan:\n{plan}");
    let found = app.db.search_jobs(&search, None, 51).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].doc_number, "N777");

    // The register: what the store holds for SELLER_KA this month, as JSON and CSV.
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let (cookie, _) = session(&http, &base, "vik", VIEWER_PASSWORD).await;
    let period = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Kolkata).format("%Y-%m").to_string();
    let url = format!("{base}/register/export?gstin={SELLER_KA}&period={period}&format=json");
    let lines: Vec<Value> = http.get(&url).header("cookie", &cookie).send().await.unwrap().json().await.unwrap();
    let store: Vec<String> = c
        .query("SELECT irn FROM jobs WHERE gstin = $1 AND irn IS NOT NULL ORDER BY irn", &[&SELLER_KA])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut exported: Vec<String> = lines.iter().map(|l| l["irn"].as_str().unwrap().to_string()).collect();
    exported.sort();
    assert_eq!(exported, store);
    assert!(lines.iter().all(|l| l["irn_status"] == "active" && l["irp"].is_string()), "{lines:#?}");
    let csv = http
        .get(url.replace("format=json", "format=csv"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 1 + store.len(), "{csv}");
    assert!(csv.starts_with("gstin,doc_type,doc_number,doc_date,irn,"));

    // The same register from the command line.
    let out = Command::new(env!("CARGO_BIN_EXE_einvoice-worker"))
        .args(["register", "export", "--gstin", SELLER_KA, "--period", &period, "--format", "json"])
        .env("EINVOICE_CONFIG", &app.config_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli_lines: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli_lines, lines, "the CLI exports what the console does");
    // `console hash-password` reads the password from standard input.
    let mut child = Command::new(env!("CARGO_BIN_EXE_einvoice-worker"))
        .args(["console", "hash-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(b"a long enough password\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(einvoice_worker::console::auth::verify_password("a long enough password", hash.trim()), "{hash}");
    app.stop().await;
}
