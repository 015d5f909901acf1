//! The binary's offline commands, as an ERP team would run them.
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_einvoice-worker"))
}

#[test]
fn validate_accepts_the_samples_and_names_every_problem_of_a_broken_file() {
    let dir = std::env::temp_dir().join(format!("einvoice-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.json");
    let bad = dir.join("bad.json");
    let mut inv = einvoice_worker::samples::stamped("b2b-intra-goods", None);
    std::fs::write(&good, inv.to_string()).unwrap();
    inv["BuyerDtls"]["Gstin"] = serde_json::json!("29AADCT5519H1Z5");
    inv["ItemList"][1]["HsnCd"] = serde_json::json!("12");
    std::fs::write(&bad, inv.to_string()).unwrap();

    let ok = bin().arg("validate").arg(&good).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("ok"));

    let out = bin().arg("validate").arg(&good).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("BuyerDtls.Gstin [GSTIN_CHECK_DIGIT]"), "{text}");
    assert!(text.contains("ItemList[1].HsnCd [HSN_FORMAT]"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn validate_uses_the_configured_ship_to_rules() {
    let dir = std::env::temp_dir().join(format!("einvoice-cli-ship-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ship-to-buyer.json");
    let mut inv = einvoice_worker::samples::stamped("b2b-intra-goods", None);
    // Goods shipped to the buyer's own GSTIN: IRP error 2323 once the advisory applies.
    inv["ShipDtls"] = serde_json::json!({"Gstin": "29AADCT5519H1Z4", "LglNm": "Tumkur Auto Components Ltd",
        "Addr1": "Plant 2", "Loc": "Tumakuru", "Pin": 572106, "Stcd": "29"});
    std::fs::write(&file, inv.to_string()).unwrap();

    let off = bin().arg("validate").arg(&file).env_remove("EINVOICE_SHIP_TO_RULES").output().unwrap();
    assert!(off.status.success(), "{}", String::from_utf8_lossy(&off.stdout));
    let on = bin().arg("validate").arg(&file).env("EINVOICE_SHIP_TO_RULES", "2026-08-01").output().unwrap();
    assert_eq!(on.status.code(), Some(1));
    let text = String::from_utf8_lossy(&on.stdout);
    assert!(text.contains("ShipDtls.Gstin [SHIP_TO_SAME_AS_BUYER]") && text.contains("2323"), "{text}");
    let bad = bin().arg("validate").arg(&file).env("EINVOICE_SHIP_TO_RULES", "soon").output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("soon"), "{}", String::from_utf8_lossy(&bad.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn publish_refuses_a_command_the_worker_would_reject_before_connecting() {
    let out = bin()
        .args(["publish", "irn.cancel", "--gstin", "29AAGCP4821K1Z3", "--irn", "nothex", "--reason", "9"])
        .env("EINVOICE_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "rejected");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("irn [IRN_INVALID]") && err.contains("reason [CANCEL_REASON_INVALID]"), "{err}");
    assert!(err.contains("nothing was published"), "{err}");
    // A valid command and no broker: exit 3, as the operator commands say "unreachable".
    let out = bin()
        .args(["publish", "gstin.details", "--gstin", "29AAGCP4821K1Z3", "--target-gstin", "33AAFCR6612L1ZA"])
        .env("EINVOICE_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not reachable"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn publish_builds_status_queries_and_batches_and_checks_them_first() {
    let nowhere = "amqp://guest:guest@127.0.0.1:1/%2f";
    let run = |args: &[&str]| {
        let out = bin().arg("publish").args(args).env("EINVOICE_AMQP_URL", nowhere).output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = run(&["job.status", "--doc-number", "SMP/1", "--doc-date", "21/11/2026"]);
    assert!(err.contains("gstin [REQUIRED]") && err.contains("nothing was published"), "{err}");
    // A well-formed query gets as far as the (unreachable) broker.
    let err = run(&["job.status", "--request-id", "erp-4711"]);
    assert!(!err.contains("nothing was published"), "{err}");
    let err = run(&["job.status", "--job-id", "0b9f3c1e-6f57-4a5c-9a43-2f1d5e7c8a10"]);
    assert!(!err.contains("nothing was published"), "{err}");

    let dir = std::env::temp_dir().join(format!("einvoice-cli-batch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("invoices.json");
    let invoices = serde_json::json!([
        einvoice_worker::samples::stamped("b2b-intra-goods", Some("CLI/1")),
        einvoice_worker::samples::stamped("b2b-inter-goods-ewb", Some("CLI/2")),
    ]);
    std::fs::write(&file, invoices.to_string()).unwrap();
    let err = run(&["irn.generate_batch", "--file", file.to_str().unwrap(), "--batch-id", "cli-1"]);
    assert!(err.contains("invoices[1].SellerDtls.Gstin [SELLER_GSTIN_MISMATCH]"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unreachable_broker_is_one_clear_line_without_the_password() {
    let out = bin()
        .arg("demo")
        .env("EINVOICE_AMQP_URL", "amqp://guest:hunter2@127.0.0.1:1/%2f")
        .env("EINVOICE_DEMO_DATABASE_URL", "postgres://postgres:pg-secret@127.0.0.1:5432/einvoice_cli_test")
        .output()
        .unwrap();
    let _ = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-qc", "DROP DATABASE IF EXISTS einvoice_cli_test"])
        .output();
    assert!(!out.status.success());
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("RabbitMQ is not reachable at 127.0.0.1:1"), "{all}");
    assert!(all.contains("rabbitmq-server -detached"), "{all}");
    assert!(!all.contains("hunter2") && !all.contains("pg-secret"), "a password leaked: {all}");
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("einvoice-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Run `validate --format json` with `envs` and `stdin`, returning (exit code, the JSON report).
fn validate_json(args: &[&str], envs: &[(&str, &str)], stdin: Option<&str>) -> (Option<i32>, serde_json::Value) {
    use std::io::Write;
    use std::process::Stdio;
    let mut cmd = bin();
    cmd.arg("validate").args(["--format", "json"]).args(args);
    cmd.env_remove("EINVOICE_CONFIG").env_remove("EINVOICE_SHIP_TO_RULES");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {text}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), report)
}

#[test]
fn validate_json_lists_every_problem_per_file_and_reads_standard_input() {
    let dir = scratch("json");
    let good = dir.join("good.json");
    let inv = einvoice_worker::samples::stamped("b2b-intra-goods", Some("CLI/1"));
    std::fs::write(&good, inv.to_string()).unwrap();
    let mut bad = inv.clone();
    bad["BuyerDtls"]["Gstin"] = serde_json::json!("29AADCT5519H1Z5");
    bad["ItemList"][0]["Qty"] = serde_json::json!(true);
    bad["DocDtls"]["No"] = serde_json::json!("CLI/1\u{202E}2");

    let (code, report) = validate_json(&[good.to_str().unwrap(), "-"], &[], Some(&bad.to_string()));
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["ok"], false);
    let files = report["files"].as_array().unwrap();
    assert_eq!(files[0]["ok"], true, "{report:#}");
    assert_eq!(files[0]["document"]["doc_number"], "CLI/1");
    assert_eq!(files[1]["file"], "-");
    let problems = files[1]["problems"].as_array().unwrap();
    let find = |path: &str| problems.iter().find(|p| p["path"] == path).unwrap_or_else(|| panic!("{path}: {report:#}"));
    assert_eq!(find("BuyerDtls.Gstin")["code"], "GSTIN_CHECK_DIGIT");
    assert_eq!(find("ItemList[0].Qty")["code"], "INVALID_TYPE");
    let doc_no = find("DocDtls.No");
    assert!(doc_no["message"].as_str().unwrap().contains("CLI/1\\u202E2"), "escaped: {doc_no}");
    assert!(!report.to_string().contains('\u{202E}'), "no raw bidi override in the report");
    assert!(problems.iter().all(|p| p["path"] != "gstin"), "the envelope GSTIN is the invoice's own: {report:#}");

    // A whole command is checked as one; the schema applies to it (SCHEMA where only it objects).
    let cmd = serde_json::json!({"gstin": "29AAGCP4821K1Z3", "invoice": inv, "schema_version": "x"});
    let (code, report) = validate_json(&["-"], &[], Some(&cmd.to_string()));
    assert_eq!(code, Some(1));
    assert_eq!(report["files"][0]["problems"][0]["code"], "SCHEMA_VERSION_INVALID", "{report:#}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn validate_refuses_to_run_on_nothing() {
    let out = bin().arg("validate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FILE"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn validate_reads_the_workers_configuration() {
    let dir = scratch("config");
    let mut inv = einvoice_worker::samples::stamped("b2b-intra-goods", Some("CFG/1"));
    // 40 days old: outside the 30-day reporting window of a seller configured with it.
    let old = einvoice_worker::domain::invoice::india_today() - chrono::Duration::days(40);
    inv["DocDtls"]["Dt"] = serde_json::json!(old.format("%d/%m/%Y").to_string());
    let text = inv.to_string();
    let (code, _) = validate_json(&["-"], &[], Some(&text));
    assert_eq!(code, Some(0), "no window configured");

    let config = dir.join("worker.toml");
    std::fs::write(
        &config,
        "[gstins.\"29AAGCP4821K1Z3\"]\nprovider = \"whitebooks\"\nbase_url = \"http://127.0.0.1:1\"\n\
         username = \"u\"\npassword = \"p\"\nclient_id = \"c\"\nclient_secret = \"s\"\nreporting_window_days = 30\n",
    )
    .unwrap();
    let (code, report) = validate_json(&["-"], &[("EINVOICE_CONFIG", config.to_str().unwrap())], Some(&text));
    assert_eq!(code, Some(1));
    assert_eq!(report["files"][0]["problems"][0]["code"], "DATE_OUTSIDE_REPORTING_WINDOW", "{report:#}");

    // The rate master and the relaxed GSTIN check come from the environment, as for the worker.
    let inv = einvoice_worker::samples::stamped("b2b-intra-goods", Some("CFG/2")).to_string();
    let (code, report) = validate_json(&["-"], &[("EINVOICE_GST_RATES", "[0, 5]")], Some(&inv));
    assert_eq!(code, Some(1));
    assert!(report.to_string().contains("GstRt"), "{report:#}");
    let mut sandbox = einvoice_worker::samples::stamped("b2b-intra-goods", Some("CFG/3"));
    sandbox["BuyerDtls"]["Gstin"] = serde_json::json!("29AADCT5519H1Z5");
    let (code, _) =
        validate_json(&["-"], &[("EINVOICE_RELAXED_GSTIN_CHECK_DIGIT", "true")], Some(&sandbox.to_string()));
    assert_eq!(code, Some(0));
    let out = bin().args(["validate", "-"]).env("EINVOICE_CONFIG", "/nonexistent.toml").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a configuration error is not an invalid invoice");
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.toml"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn shell_completions_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let out = bin().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("einvoice-worker") && text.contains("validate") && text.contains("publish"), "{shell}");
    }
    assert_eq!(bin().args(["completions", "tcsh"]).output().unwrap().status.code(), Some(2));
}

/// Issue 26: `verify FILE…` checks a QR JWT, a signed JSON and a QR image against the configured
/// IRP keys, exit 0 when all verify and 1 (with the reason) when one does not.
#[test]
fn verify_reads_jwts_signed_json_and_qr_images_with_validates_exit_codes() {
    use einvoice_worker::sim::core::SimCore;
    let dir = std::env::temp_dir().join(format!("einvoice-cli-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("keys.toml");
    std::fs::write(&config, einvoice_worker::sim::signing_key_toml("NIC1", 1, Some("2020-01-01"), None)).unwrap();
    let sim = SimCore::new();
    let qr = serde_json::json!({"SellerGstin": "29AAGCP4821K1Z3", "BuyerGstin": "33AAFCR6612L1ZA", "DocNo": "C/1",
        "DocTyp": "INV", "DocDt": "02/04/2025", "TotInvVal": 100, "ItemCnt": 1, "MainHsnCode": "8481",
        "Irn": "c".repeat(64), "IrnDt": "2025-04-02 10:00:00"});
    let jwt = sim.sign(&qr);
    let (text, json, png, old) = (dir.join("qr.txt"), dir.join("signed.json"), dir.join("qr.png"), dir.join("old.txt"));
    std::fs::write(&text, &jwt).unwrap();
    std::fs::write(&json, serde_json::json!({"Irn": "c".repeat(64), "SignedQRCode": jwt}).to_string()).unwrap();
    std::fs::write(&png, einvoice_worker::irp::qr::qr_png(&jwt).unwrap()).unwrap();
    let mut stale = qr.clone();
    stale["IrnDt"] = serde_json::json!("2019-12-31 23:59:59");
    std::fs::write(&old, sim.sign(&stale)).unwrap();
    let run = |files: &[&std::path::Path]| {
        let mut c = bin();
        c.arg("verify").args(["--format", "json"]).args(files).env("EINVOICE_CONFIG", &config);
        let out = c.output().unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), report)
    };
    let (code, report) = run(&[&text, &json, &png]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["ok"], true);
    for f in report["files"].as_array().unwrap() {
        assert_eq!(
            (f["valid"].as_bool(), f["signed_by"]["key_id"].as_str()),
            (Some(true), Some("SIM-SIGNING-KEY")),
            "{f:#}"
        );
    }
    let (code, report) = run(&[&text, &old]);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["files"][1]["reason"], "KEY_NOT_VALID_AT_DATE");
    // Text output names the reason too.
    let out = bin().arg("verify").arg(&old).env("EINVOICE_CONFIG", &config).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("invalid [KEY_NOT_VALID_AT_DATE]"));
    std::fs::remove_dir_all(&dir).unwrap();
}
