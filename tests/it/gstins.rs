//! GSTINs managed in the database (`einvoice-worker gstin …`): running workers pick a change up
//! without a restart; a rotated password is used for the next token; a disabled GSTIN's commands
//! are answered with `GSTIN_DISABLED`.
use std::io::Write;
use std::process::{Command, Stdio};

use einvoice_worker::irp::registry::Providers;
use einvoice_worker::runtime::worker::WorkerHandle;

use crate::helpers::*;
use einvoice_worker::config::ProviderKind;

/// A third seller of Karnataka, in no test configuration.
fn new_seller() -> String {
    let first14 = "29AAGCP4821K2Z";
    format!("{first14}{}", einvoice_worker::domain::gstin::check_digit(first14).unwrap())
}

/// Run `einvoice-worker <args>` on the test's configuration with `stdin` piped in: (exit code,
/// stdout, stderr).
fn cli(app: &TestApp, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_einvoice-worker"))
        .args(args)
        .env("EINVOICE_CONFIG", &app.config_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the CLI");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// `gstin add` for `gstin` against the simulator over `provider`: the sim's section (without its
/// `[gstins."…"]` header and its secrets) as `--from-file`, the secrets on standard input.
fn add(app: &TestApp, provider: ProviderKind, gstin: &str, password: &str) -> (i32, String, String) {
    let section: String = einvoice_worker::sim::gstin_toml(&app.sim.base_url(), provider, gstin)
        .lines()
        .filter(|l| !l.starts_with("[gstins.") && !l.starts_with("password") && !l.starts_with("client_secret"))
        .map(|l| format!("{l}\n"))
        .collect();
    let file = std::env::temp_dir().join(format!("einvoice-gstin-{}-{gstin}.toml", app.id));
    std::fs::write(&file, section).unwrap();
    let r = cli(
        app,
        &["gstin", "add", gstin, "--from-file", file.to_str().unwrap(), "--upi-id", "branch2@okaxis"],
        &format!("{password}\nsim-client-secret\n"),
    );
    let _ = std::fs::remove_file(&file);
    r
}

fn invoice_for(gstin: &str, doc_number: &str) -> serde_json::Value {
    let mut inv = invoice("b2b-intra-goods", doc_number);
    inv["SellerDtls"]["Gstin"] = gstin.into();
    inv
}

fn serves(w: &WorkerHandle, gstin: &str) -> bool {
    w.ctx.providers.get(gstin).is_some()
}

/// The first worker's registry (shared with it: it sees what the worker applies).
fn registry(app: &TestApp) -> Providers {
    app.worker.as_ref().unwrap().ctx.providers.clone()
}

async fn added_gstin_is_served_by_three_running_workers(provider: ProviderKind) {
    let mut app = TestApp::spawn_with(Options { provider, ..Default::default() }).await;
    let others = [app.start_another_worker().await, app.start_another_worker().await];
    let g = new_seller();
    // Before: not configured anywhere.
    app.generate(&invoice_for(&g, "DB/0000")).await;
    let (_, ev) = app.next_reply(30).await;
    assert_eq!(ev["event_type"], "irn.rejected", "{ev:#}");
    assert_eq!(ev["data"]["errors"][0]["code"], "GSTIN_NOT_CONFIGURED", "{ev:#}");

    let (code, out, err) = add(&app, provider, &g, "sim-password");
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("sim-password") && !err.contains("sim-password") && !out.contains("sim-client-secret"));
    let first = app.worker.as_ref().unwrap();
    // Every running worker serves it within 10 s (a notification; the periodic check is slower).
    wait_until(10, "all three workers serve the added GSTIN", || {
        serves(first, &g) && others.iter().all(|w| serves(w, &g))
    })
    .await;
    assert_eq!(first.ctx.providers.config(&g).unwrap().upi_id.as_deref(), Some("branch2@okaxis"));
    for i in 1..=6 {
        app.generate(&invoice_for(&g, &format!("DB/{i:04}"))).await;
    }
    for (_, ev) in app.replies(6, 60).await {
        assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
        assert_eq!(ev["document"]["gstin"], g.as_str());
    }
    // `list` shows it, and no secret.
    let (code, out, err) = cli(&app, &["gstin", "list", "--json"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&g) && out.contains("branch2@okaxis"), "{out}");
    assert!(!out.contains("sim-password") && !out.contains("sim-client-secret"), "{out}");
    // The configuration file wins: the CLI refuses a GSTIN it defines.
    let (code, _, err) = add(&app, provider, SELLER_KA, "x");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("defined in the configuration"), "{err}");
    for w in others {
        w.stop().await.unwrap();
    }
    app.stop().await;
}
both_protocols!(added_gstin_is_served_by_three_running_workers, added_gstin_is_served_by_three_running_workers);

async fn rotated_password_is_used_for_the_next_token(provider: ProviderKind) {
    let mut app = TestApp::spawn_with(Options { provider, ..Default::default() }).await;
    let g = new_seller();
    app.sim.core.update_faults(|f| {
        f.passwords.insert(g.clone(), "first-password".into());
    });
    let (code, out, err) = add(&app, provider, &g, "first-password");
    assert_eq!(code, 0, "{out}{err}");
    let w = registry(&app);
    wait_until(10, "the worker serves the added GSTIN", || w.get(&g).is_some()).await;
    app.generate(&invoice_for(&g, "RP/0001")).await;
    let (_, ev) = app.next_reply(30).await;
    assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
    let auths = app.sim.core.stats().auth_calls;

    // The IRP's password changes (the sim now refuses the old one), and so does the stored one.
    app.sim.core.update_faults(|f| {
        f.passwords.insert(g.clone(), "second-password".into());
    });
    let before = w.versions()[&g];
    let (code, out, err) = cli(&app, &["gstin", "rotate-password", &g], "second-password\n");
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("second-password") && !err.contains("second-password"));
    wait_until(10, "the worker applies the new password", || w.versions()[&g] > before).await;
    app.generate(&invoice_for(&g, "RP/0002")).await;
    let (_, ev) = app.next_reply(30).await;
    // Generated: a new token was asked for (the old one was dropped), with the new password.
    assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
    assert!(app.sim.core.stats().auth_calls > auths, "a new token was asked for");
    app.stop().await;
}
both_protocols!(rotated_password_is_used_for_the_next_token, rotated_password_is_used_for_the_next_token);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_gstins_commands_are_answered_with_gstin_disabled() {
    let mut app = TestApp::spawn().await;
    let g = new_seller();
    let (code, out, err) = add(&app, ProviderKind::Whitebooks, &g, "sim-password");
    assert_eq!(code, 0, "{out}{err}");
    let w = registry(&app);
    wait_until(10, "the worker serves the added GSTIN", || w.get(&g).is_some()).await;
    let (code, out, err) = cli(&app, &["gstin", "disable", &g], "");
    assert_eq!(code, 0, "{out}{err}");
    wait_until(10, "the worker sees the GSTIN disabled", || w.get(&g).is_none()).await;
    app.generate(&invoice_for(&g, "DS/0001")).await;
    let (_, ev) = app.next_reply(30).await;
    assert_eq!(ev["event_type"], "irn.rejected", "{ev:#}");
    let e = &ev["data"]["errors"][0];
    assert_eq!((e["code"].as_str(), e["path"].as_str()), (Some("GSTIN_DISABLED"), Some("SellerDtls.Gstin")), "{ev:#}");
    assert!(e["message"].as_str().unwrap().contains(&g), "{ev:#}");
    // Enabled again: served again.
    let (code, _, err) = cli(&app, &["gstin", "enable", &g], "");
    assert_eq!(code, 0, "{err}");
    wait_until(10, "the worker serves the GSTIN again", || w.get(&g).is_some()).await;
    app.generate(&invoice_for(&g, "DS/0002")).await;
    let (_, ev) = app.next_reply(30).await;
    assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
    // Unknown GSTINs and secrets on argv are refused.
    let (code, _, _) = cli(&app, &["gstin", "disable", "27AAKFU7303M1ZP"], "");
    assert_eq!(code, 1, "a GSTIN not in the database");
    app.stop().await;
}

/// `count` GSTINs of Karnataka (the samples' state) numbered from 0, `tag` keeping two tests' sets apart.
fn numbered(tag: char, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let body = format!("29ZZPG{tag}{i:04}F1Z");
            format!("{body}{}", einvoice_worker::domain::gstin::check_digit(&body).unwrap())
        })
        .collect()
}

/// Add `gstins` to the test's database (whitebooks sections pointing at its simulator) and wait
/// until the worker serves them all besides the two of its file.
async fn add_many(app: &TestApp, gstins: &[String]) {
    let seals = &app.worker.as_ref().unwrap().ctx.seals;
    for g in gstins {
        let section = einvoice_worker::sim::gstin_toml(&app.sim.base_url(), ProviderKind::Whitebooks, g);
        let cfg = einvoice_worker::config::Settings::from_toml(&section).unwrap().gstins.remove(g).unwrap();
        assert!(app.db.gstin_add(g, &cfg, seals).await.unwrap());
    }
    let w = registry(app);
    wait_until(30, "the worker serves every added GSTIN", || w.counts().0 == gstins.len() + 2).await;
}

/// Issue 27: the GSTINs of the database count in `/status`, which lists a bounded page of them
/// (the first 100 and every paused one); none has its IRP clients built before its first
/// command, which builds only its own; `/metrics` has no series per GSTIN by default, and has
/// them with `metrics_per_gstin = "*"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_database_gstins_status_metrics_and_clients_stay_bounded() {
    let extra = "health_listen = \"127.0.0.1:0\"\nstatus_token = \"st-t0ken\"";
    let mut quiet = TestApp::spawn_with(Options { extra_toml: extra.into(), ..Default::default() }).await;
    let loud = TestApp::spawn_with(Options {
        extra_toml: format!("{extra}\nmetrics_per_gstin = \"*\""),
        ..Default::default()
    })
    .await;
    let (q, l) = (numbered('A', 150), numbered('B', 50));
    add_many(&quiet, &q).await;
    add_many(&loud, &l).await;
    let w = registry(&quiet);
    assert!(w.counts().1 <= 2, "clients built before any command: {:?}", w.counts());
    let late = &q[140];
    quiet.db.pause_gstin(late, 600, &serde_json::json!({"code": "TEST_PAUSE"})).await.unwrap();

    let addr = quiet.worker.as_ref().unwrap().health_addr.unwrap();
    let status: serde_json::Value = reqwest::Client::new()
        .get(format!("http://{addr}/status"))
        .bearer_auth("st-t0ken")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let counts = &status["gstin_counts"];
    assert_eq!((counts["served"].as_u64(), counts["paused"].as_u64()), (Some(152), Some(1)), "{counts:#}");
    assert_eq!(counts["listed"].as_u64(), Some(101), "the first 100 and the paused one: {counts:#}");
    assert!(counts["clients_built"].as_u64().unwrap() <= 2, "{counts:#}");
    let listed = status["gstins"].as_object().unwrap();
    assert_eq!(listed.len(), 101);
    assert!(listed.contains_key(&q[0]) && !listed.contains_key(&q[120]), "{:?}", listed.keys());
    assert!(listed[late.as_str()]["paused_until"].is_string(), "{:#}", listed[late.as_str()]);
    assert_eq!(status["ready"], true, "one paused GSTIN of 152 does not make the worker unready: {status:#}");
    let ready = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);

    // A database GSTIN's first command builds its clients, and only its own.
    let built = w.counts().1;
    quiet.generate(&invoice_for(&q[0], "MANY/0001")).await;
    let (_, ev) = quiet.next_reply(30).await;
    assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
    assert_eq!(w.counts().1, built + 1, "{:?}", w.counts());

    // The recorder is the process's: both workers' series are in either's /metrics. The
    // sampler sets the error-budget gauge of every GSTIN with series of its own within 5 s.
    let metrics = || async { reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap() };
    let budget = |g: &str| format!("einvoice_irp_error_budget_used{{gstin=\"{g}\"}}");
    let mut text = String::new();
    for _ in 0..100 {
        text = metrics().await;
        if l.iter().all(|g| text.contains(&budget(g))) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(l.iter().all(|g| text.contains(&budget(g))), "opted in, every GSTIN has its series:\n{text}");
    assert!(!q.iter().any(|g| text.contains(g.as_str())), "by default no GSTIN has a series:\n{text}");
    assert!(text.lines().any(|l| l.starts_with("einvoice_token_refreshes_total ")), "the aggregate:\n{text}");
    loud.stop().await;
    quiet.stop().await;
}
