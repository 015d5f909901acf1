//! The ERP client examples (`examples/python`, `examples/node`) run against the real broker and
//! a running worker: every outcome class they claim to handle is produced and checked.
//!
//! Their interpreters' packages come from the registries on first use (a virtual environment
//! under `target/` for pika, `npm ci` for amqplib) and are reused after that.
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

use super::helpers::*;
use serde_json::Value;

const PIKA: &str = "pika==1.4.4";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Python interpreter of a virtual environment with pika, made once per target dir.
fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    PY.get_or_init(|| {
        let _g = LOCK.lock().unwrap();
        let venv = root().join("target").join("example-venv");
        let py = venv.join("bin").join("python");
        let marker = venv.join(PIKA);
        if !marker.exists() {
            run_ok(Command::new("python3").args(["-m", "venv"]).arg(&venv), "python3 -m venv");
            run_ok(Command::new(&py).args(["-m", "pip", "install", "--quiet", PIKA]), "pip install pika");
            std::fs::write(&marker, b"").unwrap();
        }
        py
    })
    .clone()
}

/// `examples/node/node_modules`, installed from the lock file once.
fn node_ready() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = root().join("examples").join("node");
        if !dir.join("node_modules").join("amqplib").exists() {
            run_ok(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir), "npm ci");
        }
    });
}

#[derive(Clone, Copy, Debug)]
enum Lang {
    Python,
    Node,
}

impl Lang {
    fn command(self, script: &str) -> Command {
        match self {
            Lang::Python => {
                let mut c = Command::new(python());
                c.arg(root().join("examples/python").join(format!("{script}.py")));
                c
            }
            Lang::Node => {
                node_ready();
                let mut c = Command::new("node");
                c.arg(root().join("examples/node").join(format!("{script}.js")));
                c
            }
        }
    }
}

/// The client's exit code and its `RESULT` line.
fn result(out: &Output) -> (i32, Value) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), serde_json::from_str(line).expect("RESULT is JSON"))
}

fn client(app: &TestApp, lang: Lang, invoice: &Path, gstin: &str, request_id: &str) -> Command {
    let mut c = lang.command("einvoice_client");
    c.arg(invoice)
        .args(["--gstin", gstin, "--amqp", AMQP_URL, "--namespace", &app.settings.namespace])
        .args(["--timeout", "60", "--request-id", request_id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn write(app: &TestApp, name: &str, v: &Value) -> PathBuf {
    let p = std::env::temp_dir().join(format!("einvoice-example-{}-{name}.json", app.id));
    std::fs::write(&p, v.to_string()).unwrap();
    p
}

async fn wait_for(child: Command) -> Output {
    let mut child = child;
    tokio::task::spawn_blocking(move || child.output().expect("the example runs")).await.unwrap()
}

/// One language's client through every outcome class, and its durable events consumer.
async fn every_outcome(lang: Lang) {
    let mut app = TestApp::spawn().await;
    let tag = format!("{lang:?}").to_uppercase();

    // The durable consumer declares its queue first, then collects what follows.
    let mut consumer = lang.command("events_consumer");
    consumer
        .args(["--amqp", AMQP_URL, "--namespace", &app.settings.namespace, "--queue", "erp.results"])
        .args(["--max-events", "5", "--idle-exit", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let consumer = consumer.spawn().expect("the consumer starts");
    let queue = format!("{}erp.results", app.settings.namespace);
    for _ in 0..300 {
        let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
        let ch = app.conn.create_channel().await.unwrap();
        if ch.queue_declare(queue.as_str().into(), passive, Default::default()).await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // 1. Generated.
    let good = write(&app, "good", &invoice("b2b-intra-goods", &format!("{tag}/1")));
    let (code, r) = result(&wait_for(client(&app, lang, &good, SELLER_KA, "erp-1")).await);
    assert_eq!((code, r["outcome"].as_str()), (0, Some("irn.generated")), "{r}");
    assert!(is_irn(r["irn"].as_str().unwrap()), "{r}");
    assert_eq!(r["request_id"], "erp-1");
    let irn = r["irn"].clone();

    // 2. Sent again: the same IRN from the store, no second IRP call.
    let (code, r) = result(&wait_for(client(&app, lang, &good, SELLER_KA, "erp-2")).await);
    assert_eq!((code, &r["irn"]), (0, &irn), "{r}");
    assert_eq!(app.sim.core.stats().generate_calls, 1);

    // 3. Rejected, with the field that is wrong.
    let mut bad = invoice("b2b-intra-goods", &format!("{tag}/2"));
    bad["BuyerDtls"]["Gstin"] = "29AADCT5519H1Z5".into();
    let bad = write(&app, "bad", &bad);
    let (code, r) = result(&wait_for(client(&app, lang, &bad, SELLER_KA, "erp-3")).await);
    assert_eq!((code, r["outcome"].as_str()), (2, Some("irn.rejected")), "{r}");
    assert_eq!(r["errors"][0], serde_json::json!({"path": "invoice.BuyerDtls.Gstin", "code": "GSTIN_CHECK_DIGIT"}));

    // 4. Paused, then generated once the credentials are fixed: the client keeps waiting.
    app.sim.core.update_faults(|f| {
        f.passwords.insert(SELLER_MH.into(), "the-real-password".into());
    });
    let paused = write(&app, "paused", &invoice("debit-note", &format!("{tag}/3")));
    let waiting = tokio::spawn(wait_for(client(&app, lang, &paused, SELLER_MH, "erp-4")));
    loop {
        if app.next_event(30).await["event_type"] == "gstin.paused" {
            break;
        }
    }
    app.sim.core.update_faults(|f| f.passwords.clear());
    let (code, r) = result(&waiting.await.unwrap());
    assert_eq!((code, r["outcome"].as_str()), (0, Some("irn.generated")), "{r}");
    assert_eq!(r["seen"], serde_json::json!(["gstin.paused", "irn.generated"]), "{r}");

    // The durable consumer applied each event once: generated, replayed, rejected, paused, generated.
    let out = tokio::task::spawn_blocking(move || consumer.wait_with_output().unwrap()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let applied: Vec<Value> =
        stdout.lines().filter_map(|l| l.strip_prefix("EVENT ")).map(|l| serde_json::from_str(l).unwrap()).collect();
    let types: Vec<&str> = applied.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(types, ["irn.generated", "irn.generated", "irn.rejected", "gstin.paused", "irn.generated"], "{stdout}");
    assert_eq!(applied[2]["request_id"], "erp-3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for f in [good, bad, paused] {
        let _ = std::fs::remove_file(f);
    }
    let _ = app.ch.queue_delete(queue.as_str().into(), Default::default()).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_handles_every_outcome() {
    every_outcome(Lang::Python).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_client_handles_every_outcome() {
    every_outcome(Lang::Node).await;
}

/// Issue 26: the ERP-side purchase check (`examples/python/verify_purchase.py`) books a purchase
/// whose signed QR code (as text and as an image) matches our record, and holds one whose total
/// does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_purchase_check_books_a_verified_invoice_and_holds_a_mismatch() {
    let extra = einvoice_worker::sim::signing_key_toml("NIC1", 1, Some("2020-01-01"), None);
    let app = TestApp::spawn_with(Options { extra_toml: extra, ..Default::default() }).await;
    let qr = serde_json::json!({"SellerGstin": SELLER_KA, "BuyerGstin": SELLER_MH, "DocNo": "PUR/77", "DocTyp": "INV",
        "DocDt": "02/04/2025", "TotInvVal": 118000.0, "ItemCnt": 3, "MainHsnCode": "8481", "Irn": "b".repeat(64),
        "IrnDt": "2025-04-02 16:11:00"});
    let jwt = app.sim.core.sign(&qr);
    let text = std::env::temp_dir().join(format!("einvoice-example-{}-qr.txt", app.id));
    std::fs::write(&text, &jwt).unwrap();
    let image = std::env::temp_dir().join(format!("einvoice-example-{}-qr.png", app.id));
    std::fs::write(&image, einvoice_worker::irp::qr::qr_png(&jwt).unwrap()).unwrap();
    let check = |source: &str, file: &Path, total: &str| {
        let mut c = Lang::Python.command("verify_purchase");
        c.arg(source)
            .arg(file)
            .args(["--gstin", SELLER_MH, "--supplier-gstin", SELLER_KA, "--doc-number", "PUR/77"])
            .args(["--doc-date", "02/04/2025", "--total", total, "--tolerance", "1.00"])
            .args(["--amqp", AMQP_URL, "--namespace", &app.settings.namespace])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    };
    let (code, r) = result(&wait_for(check("--qr-text", &text, "118000.40")).await);
    assert_eq!(
        (code, r["outcome"].as_str(), r["signed_by"].as_str()),
        (0, Some("book"), Some("SIM-SIGNING-KEY")),
        "{r}"
    );
    let (code, r) = result(&wait_for(check("--qr-image", &image, "118000.00")).await);
    assert_eq!((code, r["outcome"].as_str()), (0, Some("book")), "{r}");
    let (code, r) = result(&wait_for(check("--qr-text", &text, "11800.00")).await);
    assert_eq!((code, r["outcome"].as_str(), r["reason"].as_str()), (1, Some("hold"), Some("MISMATCH")), "{r}");
    assert_eq!(r["mismatches"], serde_json::json!(["total_value"]));
    for f in [text, image] {
        let _ = std::fs::remove_file(f);
    }
    app.stop().await;
}
