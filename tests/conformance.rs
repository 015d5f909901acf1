//! Third-party clients against `einvoice-worker sim`: the simulator is only as good as its likeness
//! to the IRP, and a client nobody here wrote is the honest check. gst_irn (PyPI
//! `gst-e-invoicing`) is a working client of the real NIC sandbox; its documented flow must pass
//! here unchanged, with every answer checked (`tests/conformance/gst_irn_flow.py`).
//!
//! The Python packages come from PyPI into a virtual environment under Cargo's target directory,
//! keyed by the pinned requirements, made once and reused. Nothing is skipped: without python3,
//! venv or the registry the test fails and says which step did.
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use einvoice_worker::config::{ProviderKind, Settings};
use einvoice_worker::irp::{nic::Nic, Irn, IrpProvider};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const GSTIN: &str = "29AAGCP4821K1Z3";
const BUYER: &str = "33AAFCR6612L1ZA";
const REQUIREMENTS: &str = include_str!("conformance/requirements.txt");

fn here() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

/// Run a setup command to completion; panic with its output if it fails.
async fn run(what: &str, cmd: &mut Command, limit: Duration) {
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what}: no result after {limit:?}"))
        .unwrap_or_else(|e| panic!("{what}: could not start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The virtual environment with the pinned clients, made if missing (a half-made one is redone).
async fn venv() -> PathBuf {
    let key = hex::encode(&Sha256::digest(REQUIREMENTS.as_bytes())[..6]);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("conformance-venv-{key}"));
    let python = dir.join("bin/python");
    let done = dir.join(".installed");
    if done.exists() {
        return python;
    }
    let _ = std::fs::remove_dir_all(&dir);
    run("python3 -m venv", Command::new("python3").arg("-m").arg("venv").arg(&dir), Duration::from_secs(120)).await;
    run(
        "pip install -r tests/conformance/requirements.txt (from PyPI)",
        Command::new(&python)
            .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q", "-r"])
            .arg(here().join("requirements.txt")),
        Duration::from_secs(600),
    )
    .await;
    std::fs::write(&done, REQUIREMENTS).unwrap();
    python
}

/// `einvoice-worker sim` on a free loopback port; killed when dropped.
struct SimProcess {
    child: Child,
    base_url: String,
}

impl SimProcess {
    async fn start() -> SimProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_einvoice-worker"))
            .args(["sim", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start einvoice-worker sim");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("einvoice-worker sim printed nothing in 30 s")
            .unwrap()
            .expect("einvoice-worker sim exited before printing its address");
        // "IRP simulator on http://127.0.0.1:PORT (…)"
        let base_url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .to_string();
        SimProcess { child, base_url }
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[tokio::test]
async fn gst_irn_documented_flow_against_the_simulator() {
    let python = venv().await;
    let sim = SimProcess::start().await;
    let http = reqwest::Client::new();

    // The simulator accepts any password unless one is set; set one so a wrong one is refused.
    let mut faults: Value =
        http.get(format!("{}/_sim/faults", sim.base_url)).send().await.unwrap().json().await.unwrap();
    faults["passwords"] = json!({ GSTIN: "sim-password" });
    let set = http.post(format!("{}/_sim/faults", sim.base_url)).json(&faults).send().await.unwrap();
    assert!(set.status().is_success());

    // The worker's own configuration for this simulator, so both clients use one set of credentials.
    let settings =
        Settings::from_toml(&einvoice_worker::sim::gstin_toml(&sim.base_url, ProviderKind::Nic, GSTIN)).unwrap();
    let gc = &settings.gstins[GSTIN];
    let work = tempdir();
    let config = json!({
        "base_url": sim.base_url,
        "gstin": GSTIN,
        "client_id": gc.client_id,
        "client_secret": secrecy::ExposeSecret::expose_secret(&gc.client_secret),
        "username": gc.username,
        "password": secrecy::ExposeSecret::expose_secret(&gc.password),
        "wrong_password": "not-the-password",
        "public_key_pem": gc.public_key_pem.as_deref(),
        "signing_public_key_pem": gc.signing_key_pem.as_deref(),
        "cache_dir": work.join("tokens_cache"),
        "buyer_gstin": BUYER,
    });
    let config_path = work.join("config.json");
    std::fs::write(&config_path, config.to_string()).unwrap();

    let out = tokio::time::timeout(
        Duration::from_secs(300),
        Command::new(&python).arg(here().join("gst_irn_flow.py")).arg(&config_path).output(),
    )
    .await
    .expect("the gst_irn flow did not finish in 300 s")
    .expect("run the venv's python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "gst_irn flow failed ({}):\n{stdout}\n{stderr}", out.status);

    // Every check ran (a check that silently went missing fails here).
    for name in [
        "generate_token made one auth call",
        "cache reuse made no auth call",
        "forced refresh keeps the live token",
        "wrong password: action failed 1008",
        "to_buyer builds BuyerDtls",
        "SignedInvoice is the invoice plus Irn/AckNo/AckDt",
        "SignedQRCode carries NIC's QR fields",
        "duplicate: InfoDtls[0].Desc.Irn",
        "get_e_invoice_by_irn equals generate",
        "irnbydocdetails finds the IRN",
        "QR PNG is a square image",
        "einvoice.secure_qr reads the QR claims",
        "cancel answers Irn and CancelDate",
        "cancel again: 9999",
        "simulator counted the calls",
    ] {
        assert!(stdout.lines().any(|l| l == format!("ok {name}")), "check {name:?} did not run:\n{stdout}");
    }
    let oks = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(stdout.contains(&format!("gst_irn flow: {oks} checks passed")) && oks >= 39, "{stdout}");

    // The worker, on the same simulator, sees the document gst_irn registered and cancelled.
    let irn = stdout.lines().find_map(|l| l.strip_prefix("irn ")).expect("the flow prints its IRN").trim().to_string();
    let nic = Nic::new(einvoice_worker::irp::http_client(Duration::from_secs(5), Duration::from_secs(30)), GSTIN, gc)
        .unwrap();
    let s = nic.authenticate(false).await.unwrap();
    let d = nic.get_by_irn(&s, &irn).await.unwrap();
    assert_eq!(d.status.as_deref(), Some("CNL"));
    assert!(d.signed_qr_code.is_some());
    std::fs::remove_dir_all(&work).unwrap();
}

fn tempdir() -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("einvoice-conformance-{}-{}", std::process::id(), uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
