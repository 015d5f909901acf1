//! The **work floor**: the worker's job written as plainly as possible, to measure what this box
//! can do for the same durable work (`einvoice-worker bench` runs it as a child process, like the
//! worker, so its CPU time is its own).
//!
//! Per command, from a quorum queue with the worker's prefetch: parse the JSON, claim a job row (one
//! statement), call the stand-in IRP (the simulator's Whitebooks face with `unsigned` on: no
//! signing), store the answer and an outbox row in one statement, publish the event to the
//! command's `reply_to` with a publisher confirm, mark the outbox row sent, ack. No schema,
//! validation, retries, leases, QR image, logging or metrics: everything the worker does beyond
//! that is what the ratio `worker ÷ work floor` prices.
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use serde_json::{json, Value};
use tokio_postgres::NoTls;

use crate::amqp;
use crate::samples::{self, SAMPLES};

/// Environment of the `bench-work-floor` child (set by the bench, never by a user).
pub const ENV_AMQP: &str = "EINVOICE_WORK_FLOOR_AMQP_URL";
pub const ENV_DATABASE: &str = "EINVOICE_WORK_FLOOR_DATABASE_URL";
pub const ENV_QUEUE: &str = "EINVOICE_WORK_FLOOR_QUEUE";
pub const ENV_IRP: &str = "EINVOICE_WORK_FLOOR_IRP_URL";
pub const ENV_PREFETCH: &str = "EINVOICE_WORK_FLOOR_PREFETCH";

/// The floor's own tables in the bench database (emptied before each pass).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS work_floor_jobs (
    id bigserial PRIMARY KEY,
    doc_key text NOT NULL UNIQUE,
    status text NOT NULL,
    irn text,
    result jsonb,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS work_floor_outbox (
    id bigserial PRIMARY KEY,
    job_id bigint NOT NULL REFERENCES work_floor_jobs(id),
    event jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz
);
TRUNCATE work_floor_outbox, work_floor_jobs;
";

/// A claim in one statement: a new document is inserted, a known one not yet done is taken again.
const CLAIM: &str = "INSERT INTO work_floor_jobs (doc_key, status) VALUES ($1, 'claimed') \
     ON CONFLICT (doc_key) DO UPDATE SET status = 'claimed', updated_at = now() \
     WHERE work_floor_jobs.status <> 'done' RETURNING id";
/// The result and its event in one statement (one transaction).
const FINISH: &str = "WITH j AS (UPDATE work_floor_jobs SET status = 'done', irn = $2, result = $3::text::jsonb, \
     updated_at = now() WHERE id = $1 RETURNING id) \
     INSERT INTO work_floor_outbox (job_id, event) SELECT id, $4::text::jsonb FROM j RETURNING id";
const MARK_SENT: &str = "UPDATE work_floor_outbox SET sent_at = now() WHERE id = $1";

struct Db {
    clients: Vec<(tokio_postgres::Client, [tokio_postgres::Statement; 3])>,
    next: AtomicUsize,
}

impl Db {
    fn pick(&self) -> &(tokio_postgres::Client, [tokio_postgres::Statement; 3]) {
        &self.clients[self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len()]
    }
}

struct Irp {
    http: reqwest::Client,
    base: String,
    /// Seller GSTIN → auth token (every seller of the samples, authenticated once at start).
    tokens: HashMap<String, String>,
}

impl Irp {
    fn headers(&self, rb: reqwest::RequestBuilder, gstin: &str) -> reqwest::RequestBuilder {
        rb.query(&[("email", "erp@example.com")])
            .header("username", format!("API_{gstin}"))
            .header("password", "sim-password")
            .header("ip_address", "127.0.0.1")
            .header("client_id", "sim-client")
            .header("client_secret", "sim-client-secret")
            .header("gstin", gstin)
    }

    async fn connect(base: String) -> anyhow::Result<Irp> {
        let http = reqwest::Client::builder().build()?;
        let mut irp = Irp { http, base, tokens: HashMap::new() };
        for (name, _) in SAMPLES {
            let gstin = samples::seller(&samples::stamped(name, None));
            if irp.tokens.contains_key(&gstin) {
                continue;
            }
            let rb = irp.headers(irp.http.get(format!("{}/einvoice/authenticate", irp.base)), &gstin);
            let v: Value = rb.send().await?.json().await?;
            let token = v["data"]["AuthToken"].as_str().with_context(|| format!("stand-in auth for {gstin}: {v}"))?;
            irp.tokens.insert(gstin, token.to_string());
        }
        Ok(irp)
    }

    async fn generate(&self, gstin: &str, invoice: String) -> anyhow::Result<Value> {
        let token = self.tokens.get(gstin).with_context(|| format!("no stand-in token for {gstin}"))?;
        let rb = self
            .headers(self.http.post(format!("{}/einvoice/type/GENERATE/version/V1_03", self.base)), gstin)
            .header("auth-token", token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(invoice);
        let mut v: Value = rb.send().await?.json().await?;
        anyhow::ensure!(v["status_cd"] == "1", "the stand-in refused a generate: {v}");
        Ok(v["data"].take())
    }
}

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set (bench-work-floor is started by bench)"))
}

/// Run the work floor until SIGTERM (or the consumer ends).
pub async fn main() -> anyhow::Result<()> {
    let prefetch: u16 = env(ENV_PREFETCH)?.parse().context("prefetch")?;
    let database_url = env(ENV_DATABASE)?;
    // As many connections as the worker's pool for the same prefetch (prefetch clamped to 4..=32).
    let mut clients = Vec::new();
    for _ in 0..usize::from(prefetch).clamp(4, 32) {
        let (client, connection) = tokio_postgres::connect(&database_url, NoTls).await?;
        tokio::spawn(connection);
        let statements =
            [client.prepare(CLAIM).await?, client.prepare(FINISH).await?, client.prepare(MARK_SENT).await?];
        clients.push((client, statements));
    }
    let db = Arc::new(Db { clients, next: AtomicUsize::new(0) });
    let irp = Arc::new(Irp::connect(env(ENV_IRP)?).await?);
    let conn = amqp::connect(&env(ENV_AMQP)?, "einvoice-work-floor").await?;
    let consume = conn.create_channel().await?;
    consume.basic_qos(prefetch, BasicQosOptions { global: false }).await?;
    let publish = amqp::confirm_channel(&conn).await?;
    let mut deliveries = consume
        .basic_consume(
            env(ENV_QUEUE)?.as_str().into(),
            "work-floor".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = term.recv() => break,
            d = deliveries.next() => {
                let Some(d) = d else { break };
                let d = d?;
                let (db, irp, publish) = (db.clone(), irp.clone(), publish.clone());
                tasks.spawn(async move {
                    if let Err(e) = handle(&db, &irp, &publish, &d).await {
                        eprintln!("work floor: {e:#}");
                    }
                });
                // Finished tasks' results are not needed.
                while tasks.try_join_next().is_some() {}
            }
        }
    }
    while tasks.join_next().await.is_some() {}
    let _ = conn.close(200, "work floor done".into()).await;
    Ok(())
}

async fn handle(db: &Db, irp: &Irp, publish: &lapin::Channel, d: &lapin::message::Delivery) -> anyhow::Result<()> {
    let mut command: Value = serde_json::from_slice(&d.data)?;
    let gstin = command["gstin"].as_str().context("no gstin")?.to_string();
    let invoice = command["invoice"].take();
    let doc = &invoice["DocDtls"];
    let doc_key = format!(
        "{gstin}/{}/{}/{}",
        doc["Typ"].as_str().unwrap_or(""),
        doc["No"].as_str().unwrap_or(""),
        doc["Dt"].as_str().unwrap_or("")
    );
    let (client, [claim, finish, mark_sent]) = db.pick();
    let Some(row) = client.query_opt(claim, &[&doc_key]).await? else {
        // Done before: a plain implementation would replay; the bench never sends one twice.
        d.ack(BasicAckOptions::default()).await?;
        return Ok(());
    };
    let job_id: i64 = row.get(0);
    let answer = irp.generate(&gstin, invoice.to_string()).await?;
    let irn = answer["Irn"].as_str().context("no Irn in the answer")?.to_string();
    let event = json!({
        "event_type": "irn.generated",
        "event_id": uuid::Uuid::new_v4().to_string(),
        "data": {
            "gstin": gstin,
            "irn": irn,
            "ack_no": answer["AckNo"],
            "ack_dt": answer["AckDt"],
            "signed_invoice": answer["SignedInvoice"],
            "signed_qr_code": answer["SignedQRCode"],
            "replayed": false,
        },
    })
    .to_string();
    let row = client.query_one(finish, &[&job_id, &irn, &answer.to_string(), &event]).await?;
    let outbox_id: i64 = row.get(0);
    let reply_to = d.properties.reply_to().as_ref().map(|q| q.to_string()).unwrap_or_default();
    let mut props = amqp::json_props();
    if let Some(c) = d.properties.correlation_id() {
        props = props.with_correlation_id(c.clone());
    }
    amqp::publish_confirmed(publish, "", &reply_to, event.as_bytes(), props, true).await?;
    client.execute(mark_sent, &[&outbox_id]).await?;
    d.ack(BasicAckOptions::default()).await?;
    Ok(())
}
