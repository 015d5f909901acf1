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
