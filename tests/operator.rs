//! Operator mistakes, as an operator meets them: the binary started with a wrong environment.
use std::path::PathBuf;
use std::process::{Command, Output};

use base64::Engine;

const GSTIN: &str = "29AAGCP4821K1Z3";
/// Nothing listens here: a start that gets past the check under test fails here, visibly.
const NO_DB: &str = "postgres://postgres@127.0.0.1:1/einvoice";

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_einvoice-worker"));
    // The test process's own EINVOICE_* variables must not leak into the case under test.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("EINVOICE_") {
            c.env_remove(k);
        }
    }
    c
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("einvoice-op-{tag}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A production GSTIN configured through the environment alone.
fn production_gstin(c: &mut Command) -> &mut Command {
    let p = format!("EINVOICE_GSTINS__{GSTIN}__");
    c.env(format!("{p}PROVIDER"), "whitebooks")
        .env(format!("{p}ENVIRONMENT"), "production")
        .env(format!("{p}BASE_URL"), "https://127.0.0.1:1")
        .env(format!("{p}USERNAME"), "u")
        .env(format!("{p}PASSWORD"), "p")
        .env(format!("{p}CLIENT_ID"), "c")
        .env(format!("{p}CLIENT_SECRET"), "s")
}

#[test]
fn a_misspelt_variable_fails_the_start_and_names_the_closest_one() {
    let out = bin().arg("migrate").env("EINVOICE_PREFTCH", "8").env("EINVOICE_DATABASE_URL", NO_DB).output().unwrap();
    assert!(!out.status.success());
    let all = text(&out);
    assert!(all.contains("unknown environment variable EINVOICE_PREFTCH; did you mean EINVOICE_PREFETCH?"), "{all}");

    let out = bin()
        .arg("migrate")
        .env(format!("EINVOICE_GSTINS__{GSTIN}__PASWORD"), "x")
        .env("EINVOICE_DATABASE_URL", NO_DB)
        .output()
        .unwrap();
    let all = text(&out);
    assert!(!out.status.success());
    assert!(all.contains(&format!("did you mean EINVOICE_GSTINS__{GSTIN}__PASSWORD?")), "{all}");

    // Known variables, tool variables and a GSTIN's nested keys are accepted: this start gets as
    // far as the (absent) database.
    let out = bin()
        .arg("migrate")
        .env("EINVOICE_PREFETCH", "8")
        .env("EINVOICE_DB_POOL_SIZE", "3")
        .env("EINVOICE_DEMO_DATABASE_URL", NO_DB)
        .env("EINVOICE_DATABASE_URL", NO_DB)
        .output()
        .unwrap();
    let all = text(&out);
    assert!(all.contains("PostgreSQL is not reachable at 127.0.0.1:1/einvoice"), "{all}");
}

fn psql(sql: &str) {
    let out = Command::new("psql").args(["-h", "127.0.0.1", "-U", "postgres", "-qc", sql]).output().unwrap();
    assert!(out.status.success(), "psql {sql}: {}", text(&out));
}

#[test]
fn postgres_refusals_show_sqlstate_message_and_a_hint_that_fits() {
    // A role that does not exist: an authentication problem, not "start PostgreSQL".
    let out = bin()
        .arg("migrate")
        .env("EINVOICE_DATABASE_URL", "postgres://einvoice_no_such_role:pg-secret@127.0.0.1:5432/einvoice_op_auth")
        .output()
        .unwrap();
    let all = text(&out);
    assert!(!out.status.success());
    assert!(all.contains("28000") && all.contains("einvoice_no_such_role"), "no SQLSTATE/message: {all}");
    assert!(all.contains("check the user and password in EINVOICE_DATABASE_URL"), "{all}");
    assert!(!all.contains("start PostgreSQL") && !all.contains("pg-secret"), "{all}");

    // A user who may log in but not create the missing database.
    let role = format!("einvoice_op_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    psql(&format!("CREATE ROLE {role} LOGIN NOCREATEDB"));
    let out = bin()
        .arg("migrate")
        .env("EINVOICE_DATABASE_URL", format!("postgres://{role}@127.0.0.1:5432/{role}_db"))
        .output()
        .unwrap();
    psql(&format!("DROP ROLE {role}"));
    let all = text(&out);
    assert!(!out.status.success());
    assert!(all.contains("42501") && all.contains("permission denied to create database"), "{all}");
    assert!(all.contains("grant the user CREATEDB"), "{all}");
}

#[test]
fn production_gstins_refuse_the_development_token_key() {
    let out = production_gstin(bin().arg("run")).env("EINVOICE_DATABASE_URL", NO_DB).output().unwrap();
    let all = text(&out);
    assert!(!out.status.success());
    assert!(all.contains(&format!("GSTIN {GSTIN} has environment = \"production\"")), "{all}");
    assert!(all.contains("EINVOICE_TOKEN_KEY"), "{all}");

    // The dev key spelt out, first in a key list, is still the dev key.
    let dev = base64::engine::general_purpose::STANDARD.encode(b"einvoice-worker-dev-key-NOT-PROD");
    let other = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let out = production_gstin(bin().arg("run"))
        .env("EINVOICE_TOKEN_KEY", format!("{dev},{other}"))
        .env("EINVOICE_DATABASE_URL", NO_DB)
        .output()
        .unwrap();
    assert!(text(&out).contains("development key"), "{}", text(&out));

    // A real key passes the check (the start then fails at the absent database).
    let out = production_gstin(bin().arg("run"))
        .env("EINVOICE_TOKEN_KEY", &other)
        .env("EINVOICE_DATABASE_URL", NO_DB)
        .output()
        .unwrap();
    let all = text(&out);
    assert!(!all.contains("development key") && all.contains("PostgreSQL is not reachable"), "{all}");
}

#[test]
fn secrets_can_come_from_files() {
    let dir = temp_dir("files");
    let write = |name: &str, content: &str| {
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        p
    };
    // The database URL from a file (with the trailing newline secret files usually have).
    let db_file = write("db", "postgres://einvoice_from_file_role@127.0.0.1:5432/einvoice_op_files\n");
    let out = bin().arg("migrate").env("EINVOICE_DATABASE_URL_FILE", &db_file).output().unwrap();
    let all = text(&out);
    assert!(all.contains("einvoice_from_file_role") && all.contains("28000"), "{all}");

    // The token key from a file satisfies a production GSTIN.
    let key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let key_file = write("key", &format!("{key}\n"));
    let out = production_gstin(bin().arg("run"))
        .env("EINVOICE_TOKEN_KEY_FILE", &key_file)
        .env("EINVOICE_DATABASE_URL", NO_DB)
        .output()
        .unwrap();
    let all = text(&out);
    assert!(!all.contains("development key") && all.contains("PostgreSQL is not reachable"), "{all}");

    // The broker URL from a file.
    let amqp_file = write("amqp", "amqp://guest:file-secret@127.0.0.1:1/%2f\n");
    let out = bin()
        .args(["publish", "irn.get", "--gstin", GSTIN, "--irn", &"a".repeat(64)])
        .env("EINVOICE_AMQP_URL_FILE", &amqp_file)
        .output()
        .unwrap();
    let all = text(&out);
    assert!(all.contains("RabbitMQ is not reachable at 127.0.0.1:1"), "{all}");
    assert!(!all.contains("file-secret"), "{all}");

    // A GSTIN's password from a file; a variable set both ways is refused.
    let pw_file = write("pw", "hunter2\n");
    let out = production_gstin(bin().arg("run"))
        .env(format!("EINVOICE_GSTINS__{GSTIN}__PASSWORD_FILE"), &pw_file)
        .env("EINVOICE_TOKEN_KEY", &key)
        .env("EINVOICE_DATABASE_URL", NO_DB)
        .output()
        .unwrap();
    let all = text(&out);
    assert!(
        all.contains(&format!("both EINVOICE_GSTINS__{GSTIN}__PASSWORD and EINVOICE_GSTINS__{GSTIN}__PASSWORD_FILE")),
        "{all}"
    );

    // A file that cannot be read is named, its variable too.
    let out = bin().arg("migrate").env("EINVOICE_TOKEN_KEY_FILE", dir.join("absent")).output().unwrap();
    let all = text(&out);
    assert!(all.contains("EINVOICE_TOKEN_KEY_FILE: cannot read") && all.contains("absent"), "{all}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_tls_mismatch_with_the_broker_is_one_clear_error_not_a_retry_loop() {
    // amqps:// against RabbitMQ's plain AMQP port: the TLS handshake cannot succeed.
    let out = bin()
        .args(["publish", "irn.get", "--gstin", GSTIN, "--irn", &"a".repeat(64)])
        .env("EINVOICE_AMQP_URL", "amqps://guest:tls-secret@127.0.0.1:5672/%2f")
        .output()
        .unwrap();
    let all = text(&out);
    assert!(!out.status.success());
    assert!(all.contains("TLS handshake with RabbitMQ at 127.0.0.1:5672 failed"), "{all}");
    assert!(!all.contains("tls-secret"), "{all}");
}

#[test]
fn broker_refusals_show_the_reply_code_and_a_hint_that_fits() {
    let publish = |url: &str| {
        text(
            &bin()
                .args(["publish", "irn.get", "--gstin", GSTIN, "--irn", &"a".repeat(64)])
                .env("EINVOICE_AMQP_URL", url)
                .output()
                .unwrap(),
        )
    };
    let all = publish("amqp://guest:wrong-secret@127.0.0.1:5672/%2f");
    assert!(all.contains("403") && all.contains("ACCESS_REFUSED"), "{all}");
    assert!(all.contains("check the user name and password in EINVOICE_AMQP_URL"), "{all}");
    assert!(!all.contains("rabbitmq-server -detached") && !all.contains("wrong-secret"), "{all}");

    let all = publish("amqp://guest:guest@127.0.0.1:5672/einvoice-no-such-vhost");
    assert!(all.contains("530") && all.contains("einvoice-no-such-vhost"), "{all}");
    assert!(all.contains("rabbitmqctl add_vhost"), "{all}");
}

#[test]
fn a_malformed_url_never_shows_its_password() {
    for url in ["amqp:u:S3CRET@127.0.0.1:5672", "amqp://u:S3CRET@127.0.0.1:notaport/%2f", "u:S3CRET@127.0.0.1"] {
        let out = bin()
            .args(["publish", "irn.get", "--gstin", GSTIN, "--irn", &"a".repeat(64)])
            .env("EINVOICE_AMQP_URL", url)
            .output()
            .unwrap();
        let all = text(&out);
        assert!(!out.status.success());
        assert!(all.contains("invalid AMQP URL"), "{url}: {all}");
        assert!(!all.contains("S3CRET"), "{url}: {all}");
    }
    for url in ["postgres://u:S3CRET@127.0.0.1:notaport/x", "postgres:u:S3CRET@127.0.0.1/x"] {
        let out = bin().arg("migrate").env("EINVOICE_DATABASE_URL", url).output().unwrap();
        let all = text(&out);
        assert!(!out.status.success());
        assert!(all.contains("EINVOICE_DATABASE_URL"), "{url}: {all}");
        assert!(!all.contains("S3CRET"), "{url}: {all}");
    }
}
