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
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("irn [IRN_INVALID]") && err.contains("reason [CANCEL_REASON_INVALID]"), "{err}");
    assert!(err.contains("nothing was published"), "{err}");
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
