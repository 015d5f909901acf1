//! API consumption (issue 25): every IRP call the worker makes is counted per GSTIN, IRP,
//! endpoint and India day, flushed to `api_calls_daily`, priced at `api_price_per_call`, and shown
//! by the console (limited to a user's GSTINs) and by `usage report`, all with the same numbers
//! as the simulator's own call counts.
use std::collections::BTreeMap;
use std::time::Duration;

use einvoice_worker::config::ProviderKind;
use einvoice_worker::console::auth::hash_password;
use einvoice_worker::operator::usage::report;
use einvoice_worker::store::usage::UsageQuery;
use einvoice_worker::telemetry::usage::india_today;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::helpers::*;

const PASSWORD: &str = "usage-pass-12345";
const PRICE: &str = "0.35";

/// The IRP name the simulator's section gets for each protocol.
fn irp_of(p: ProviderKind) -> &'static str {
    match p {
        ProviderKind::Whitebooks => "whitebooks",
        ProviderKind::Nic => "NIC1",
    }
}

/// Calls per endpoint in `api_calls_daily` (every day, GSTIN and outcome).
async fn stored_per_endpoint(app: &TestApp) -> BTreeMap<String, i64> {
    let c = app.db.client().await.unwrap();
    c.query("SELECT endpoint, sum(calls)::int8 FROM api_calls_daily GROUP BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// A cookie header of `user`'s console session.
async fn console_session(http: &reqwest::Client, base: &str, user: &str) -> String {
    let page = http.get(format!("{base}/login")).send().await.unwrap();
    let cookie_of = |r: &reqwest::Response, name: &str| {
        r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
            let kv = v.split(';').next().unwrap_or("");
            let (k, val) = kv.split_once('=')?;
            (k == name).then(|| val.to_string())
        })
    };
    let login_cookie = cookie_of(&page, "einvoice_console_login").expect("a login CSRF cookie");
    let html = page.text().await.unwrap();
    let i = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    let csrf = html[i..].split('"').next().unwrap().to_string();
    let r = http
        .post(format!("{base}/login"))
        .header("cookie", format!("einvoice_console_login={login_cookie}"))
        .form(&[("csrf", csrf.as_str()), ("username", user), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{user} logs in");
    format!("einvoice_console={}", cookie_of(&r, "einvoice_console").unwrap())
}

async fn get(http: &reqwest::Client, url: &str, cookie: &str) -> (u16, String) {
    let r = http.get(url).header("cookie", cookie).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn usage_is_counted_priced_and_shown(p: ProviderKind) {
    let irp = irp_of(p);
    let toml = format!(
        "usage_flush_secs = 1\nconsole_listen = \"127.0.0.1:0\"\n\
         [api_price_per_call]\n{irp} = \"{PRICE}\"\n\
         [console_users.asha]\nrole = \"operator\"\npassword_hash = \"{}\"\n\
         [console_users.ravi]\nrole = \"viewer\"\npassword_hash = \"{}\"\ngstins = [\"{SELLER_MH}\"]\n",
        hash_password(PASSWORD),
        hash_password(PASSWORD)
    );
    let mut app = TestApp::spawn_with(Options { provider: p, extra_toml: toml, ..Default::default() }).await;

    // Three invoices of one GSTIN, one of the other, then a cancel.
    for (i, sample) in ["b2b-intra-goods", "b2b-intra-goods", "b2b-intra-goods", "debit-note"].iter().enumerate() {
        app.generate(&invoice(sample, &format!("USE/{i}"))).await;
    }
    for _ in 0..4 {
        let (_, ev) = app.next_reply(60).await;
        assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
    }
    let c = app.db.client().await.unwrap();
    let irn: String = c
        .query_one("SELECT irn FROM jobs WHERE gstin = $1 AND irn IS NOT NULL LIMIT 1", &[&SELLER_KA])
        .await
        .unwrap()
        .get(0);
    app.publish("irn.cancel", &json!({"gstin": SELLER_KA, "irn": irn, "reason": "1", "remark": "Duplicate"})).await;
    let (_, ev) = app.next_reply(60).await;
    assert_eq!(ev["event_type"], "irn.cancelled", "{ev:#}");

    // The counts reach the table within a flush interval; they then equal the simulator's.
    let sim_total = app.sim.core.calls().len() as i64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let per_endpoint = loop {
        let m = stored_per_endpoint(&app).await;
        if m.values().sum::<i64>() == sim_total {
            break m;
        }
        assert!(tokio::time::Instant::now() < deadline, "stored {m:?}, the simulator took {sim_total} calls");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let s = app.sim.core.stats();
    assert!(s.auth_calls >= 1 && s.generate_calls >= 4 && s.cancel_calls == 1, "{s:?}");
    assert_eq!(per_endpoint.get("auth").copied().unwrap_or(0), s.auth_calls as i64, "{per_endpoint:?}");
    assert_eq!(per_endpoint.get("generate").copied().unwrap_or(0), s.generate_calls as i64, "{per_endpoint:?}");
    assert_eq!(per_endpoint.get("cancel").copied().unwrap_or(0), s.cancel_calls as i64, "{per_endpoint:?}");
    let generate_log = app.sim.core.calls().iter().filter(|c| c.is_generate()).count() as i64;
    assert_eq!(per_endpoint["generate"], generate_log);

    // The report: today's India day, every call ok, cost = calls × price, per GSTIN too.
    let today = india_today();
    let q = UsageQuery { from: today, to: today, gstin: None, allowed_gstins: None };
    let r = report(&app.db, &app.settings, &q).await.unwrap();
    let price: Decimal = PRICE.parse().unwrap();
    assert_eq!(r.total.calls, sim_total);
    assert_eq!((r.total.ok, r.total.error, r.total.failed), (sim_total, 0, 0));
    assert_eq!(r.total.cost, Some(price * Decimal::from(sim_total)));
    assert_eq!(r.total.unpriced_calls, 0);
    assert!(r.lines.iter().all(|l| l.row.irp == irp && l.row.day == today && l.price_per_call == Some(price)));
    let gen_of = |g: &str| {
        r.lines.iter().filter(|l| l.row.gstin == g && l.row.endpoint == "generate").map(|l| l.row.calls).sum::<i64>()
    };
    assert_eq!(gen_of(SELLER_MH), 1, "{:#?}", r.lines);
    assert_eq!(gen_of(SELLER_KA), 3, "{:#?}", r.lines);
    let mh: Vec<_> = r.lines.iter().filter(|l| l.row.gstin == SELLER_MH).collect();
    let mh_calls: i64 = mh.iter().map(|l| l.row.calls).sum();

    // The console: an unrestricted operator sees both GSTINs and the total cost; a viewer limited to
    // one GSTIN sees only its rows, on the page and in the CSV, and is refused the other GSTIN.
    let base = format!("http://{}", app.worker.as_ref().unwrap().console_addr.unwrap());
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let asha = console_session(&http, &base, "asha").await;
    let (code, page) = get(&http, &format!("{base}/usage"), &asha).await;
    assert_eq!(code, 200);
    assert!(page.contains(SELLER_KA) && page.contains(SELLER_MH), "{page}");
    assert!(page.contains(&format!("₹{}", r.total.cost.unwrap())), "the total cost is shown: {page}");
    assert!(page.contains("<th scope=\"col\">Endpoint</th>") && page.contains("<label for=\"from\">"), "{page}");
    let (code, csv) = get(&http, &format!("{base}/usage/export?from={today}&to={today}"), &asha).await;
    assert_eq!(code, 200);
    assert_eq!(csv, r.csv(), "the CSV export is the report's");

    let ravi = console_session(&http, &base, "ravi").await;
    let (code, page) = get(&http, &format!("{base}/usage"), &ravi).await;
    assert_eq!(code, 200);
    assert!(page.contains(SELLER_MH) && !page.contains(SELLER_KA), "ravi sees only {SELLER_MH}: {page}");
    let (code, csv) = get(&http, &format!("{base}/usage/export"), &ravi).await;
    assert_eq!(code, 200);
    let lines: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(lines.len(), mh.len(), "{csv}");
    assert!(lines.iter().all(|l| l.split(',').nth(1) == Some(SELLER_MH)), "{csv}");
    let csv_calls: i64 = lines.iter().map(|l| l.split(',').nth(7).unwrap().parse::<i64>().unwrap()).sum();
    assert_eq!(csv_calls, mh_calls);
    let (code, _) = get(&http, &format!("{base}/usage?gstin={SELLER_KA}"), &ravi).await;
    assert_eq!(code, 403, "another GSTIN is refused");
    let (code, _) = get(&http, &format!("{base}/usage/export?gstin={SELLER_KA}"), &ravi).await;
    assert_eq!(code, 403, "another GSTIN's export is refused");

    // The CLI prints the same numbers.
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_einvoice-worker"))
            .args(args)
            .env("EINVOICE_CONFIG", &app.config_path)
            .output()
            .expect("run einvoice-worker");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let day = today.to_string();
    assert_eq!(run(&["usage", "report", "--from", &day, "--to", &day, "--format", "csv"]), r.csv());
    let j: Value = serde_json::from_str(&run(&["usage", "report", "--format", "json"])).unwrap();
    assert_eq!(j["total"]["calls"], sim_total);
    assert_eq!(j["total"]["cost"], r.total.cost.unwrap().to_string());
    let j: Value = serde_json::from_str(&run(&["usage", "report", "--gstin", SELLER_MH, "--format", "json"])).unwrap();
    assert_eq!(j["total"]["calls"], mh_calls);
    assert_eq!(j["per_gstin"][SELLER_MH]["calls"], mh_calls);
    let text = run(&["usage", "report"]);
    assert!(
        text.contains(&format!("calls {sim_total}")) && text.contains(&format!("cost {}", r.total.cost.unwrap())),
        "{text}"
    );

    app.stop().await;
}

/// With a flush interval far beyond the test, nothing is written while the worker runs, and a
/// graceful stop writes every call it counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_flushes_the_counts() {
    let toml = "usage_flush_secs = 3600\n".to_string();
    let mut app = TestApp::spawn_with(Options { extra_toml: toml, ..Default::default() }).await;
    app.generate(&invoice("b2b-intra-goods", "USE/STOP")).await;
    let (_, ev) = app.next_reply(60).await;
    assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
    assert!(stored_per_endpoint(&app).await.is_empty(), "no flush before the interval");
    let counted = app.worker.as_ref().unwrap().ctx.usage.pending();
    assert_eq!(counted, app.sim.core.calls().len() as u64);
    app.worker.take().unwrap().stop().await.unwrap();
    let stored = stored_per_endpoint(&app).await;
    assert_eq!(stored.values().sum::<i64>(), app.sim.core.calls().len() as i64, "{stored:?}");
    assert_eq!(stored["generate"], 1);
    app.stop().await;
}

both_protocols!(usage_is_counted_priced_and_shown, usage_is_counted_priced_and_shown);
