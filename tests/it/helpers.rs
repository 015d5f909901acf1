//! `TestApp::spawn`: a simulator, a fresh database, a namespaced topology and a running worker.
use std::io::Write;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use einvoice_worker::amqp::{self, Topology};
use einvoice_worker::config::{ProviderKind, Settings};
use einvoice_worker::runtime::worker::{self, WorkerHandle};
use einvoice_worker::sim::{self, Simulator};
use einvoice_worker::store::Db;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection, Consumer};
use serde_json::Value;

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const SELLER_KA: &str = "29AAGCP4821K1Z3";
pub const SELLER_MH: &str = "27AAKFU7303M1ZP";

/// Every log line the worker writes during the test run, for the "no secrets in logs" test.
pub static LOGS: LazyLock<Arc<Mutex<Vec<u8>>>> = LazyLock::new(|| {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let writer = LogWriter(buf.clone());
    let _ = tracing_subscriber::fmt()
        .with_env_filter("einvoice_worker=trace,info")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init();
    buf
});

#[derive(Clone)]
struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        if std::env::var("TEST_LOG").is_ok() {
            std::io::stderr().write_all(b)?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct TestApp {
    pub id: String,
    pub sim: Simulator,
    pub settings: Settings,
    pub db: Db,
    pub topology: Topology,
    pub worker: Option<WorkerHandle>,
    pub conn: Connection,
    pub ch: Channel,
    pub replies: String,
    reply_consumer: Consumer,
    events_consumer: Consumer,
    database_url: String,
    /// The same configuration as a file, for worker processes started with `run`.
    pub config_path: std::path::PathBuf,
}

/// Knobs a test may turn before the worker starts.
pub struct Options {
    pub provider: ProviderKind,
    /// Top-level settings, replacing the test defaults.
    pub extra_toml: String,
    /// (GSTIN, TOML section body) replaces that GSTIN's generated section; `{sim}` in the body
    /// stands for the simulator's base URL.
    pub gstin_sections: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options { provider: ProviderKind::Whitebooks, extra_toml: String::new(), gstin_sections: Vec::new() }
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(opts: Options) -> TestApp {
        LazyLock::force(&LOGS);
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
        let sim = Simulator::start("127.0.0.1:0").await.expect("simulator starts");
        let database_url = format!("postgres://postgres@127.0.0.1:5432/einvoice_test_{id}");
        let base = format!(
            "amqp_url = \"{AMQP_URL}\"\ndatabase_url = \"{database_url}\"\nnamespace = \"t{id}.\"\nprefetch = 16\n\
             retry_min_delay_ms = 50\nretry_max_delay_ms = 300\nretry_max_times = 3\ntoken_refresh_margin_secs = 1\n\
             http_connect_timeout_ms = 1000\nhttp_read_timeout_ms = 1500\nlease_secs = 10\npause_secs = 2\n\
             breaker_failures = 10\nbreaker_open_secs = 2\n"
        );
        // A test's own settings replace the defaults above (TOML forbids a key twice).
        let key = |l: &str| l.split('=').next().unwrap_or("").trim().to_string();
        let overridden: Vec<String> = opts.extra_toml.lines().map(key).filter(|k| !k.is_empty()).collect();
        let mut toml: String =
            base.lines().filter(|l| !overridden.contains(&key(l))).map(|l| format!("{l}\n")).collect();
        toml.push_str(&opts.extra_toml);
        toml.push('\n');
        for g in [SELLER_KA, SELLER_MH] {
            match opts.gstin_sections.iter().find(|(k, _)| k == g) {
                Some((_, body)) => {
                    toml.push_str(&format!("[gstins.\"{g}\"]\n{}\n", body.replace("{sim}", &sim.base_url())))
                }
                None => toml.push_str(&sim::gstin_toml(&sim.base_url(), opts.provider, g)),
            }
        }
        let settings = Settings::from_toml(&toml).expect("test settings parse");
        let config_path = std::env::temp_dir().join(format!("einvoice-test-{id}.toml"));
        std::fs::write(&config_path, &toml).expect("write the test configuration");
        let db = worker::prepare_db(&settings).await.expect("database ready");
        let topology = Topology::new(&settings);
        let conn = amqp::connect(AMQP_URL, "einvoice-test").await.expect("RabbitMQ reachable");
        let ch = amqp::confirm_channel(&conn).await.unwrap();
        topology.declare(&conn).await.unwrap();
        let events = format!("t{id}.all-events");
        let excl = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
        // A server-named queue (amq.gen-…), as a reply_to must be unless a prefix is configured.
        let replies = ch.queue_declare("".into(), excl, FieldTable::default()).await.unwrap().name().to_string();
        ch.queue_declare(events.as_str().into(), excl, FieldTable::default()).await.unwrap();
        ch.queue_bind(
            events.as_str().into(),
            topology.events.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let reply_consumer = ch
            .basic_consume(
                replies.as_str().into(),
                "replies".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let events_consumer = ch
            .basic_consume(
                events.as_str().into(),
                "events".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let worker = worker::start(settings.clone()).await.expect("worker starts");
        TestApp {
            id,
            sim,
            settings,
            db,
            topology,
            worker: Some(worker),
            conn,
            ch,
            replies,
            reply_consumer,
            events_consumer,
            database_url,
            config_path,
        }
    }

    /// Start another worker process-equivalent on the same database and topology.
    pub async fn start_another_worker(&self) -> WorkerHandle {
        worker::start(self.settings.clone()).await.expect("second worker starts")
    }

    /// Start `einvoice-worker run` as a separate process on this test's configuration.
    pub fn spawn_process(&self) -> std::process::Child {
        let quiet = std::env::var("TEST_LOG").is_err();
        std::process::Command::new(env!("CARGO_BIN_EXE_einvoice-worker"))
            .arg("run")
            .env("EINVOICE_CONFIG", &self.config_path)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(if quiet { std::process::Stdio::null() } else { std::process::Stdio::inherit() })
            .spawn()
            .expect("start the worker binary")
    }

    /// Publish a command; returns its correlation id. The reply goes to the test's reply queue.
    pub async fn publish(&self, routing_key: &str, body: &Value) -> String {
        self.publish_bytes(routing_key, body.to_string().as_bytes()).await
    }

    pub async fn publish_bytes(&self, routing_key: &str, body: &[u8]) -> String {
        self.publish_with_id(routing_key, body, &uuid::Uuid::new_v4().to_string()).await
    }

    /// Publish with a chosen AMQP `message_id` (a re-sent or redelivered command keeps its id).
    pub async fn publish_with_id(&self, routing_key: &str, body: &[u8], message_id: &str) -> String {
        let corr = uuid::Uuid::new_v4().to_string();
        let props = amqp::json_props()
            .with_correlation_id(ShortString::from(corr.as_str()))
            .with_message_id(ShortString::from(message_id))
            .with_reply_to(ShortString::from(self.replies.as_str()));
        amqp::publish_confirmed(&self.ch, &self.topology.commands, routing_key, body, props, true)
            .await
            .expect("publish");
        corr
    }

    pub async fn generate(&self, invoice: &Value) -> String {
        let gstin = invoice["SellerDtls"]["Gstin"].as_str().unwrap().to_string();
        self.publish("irn.generate", &serde_json::json!({"gstin": gstin, "invoice": invoice})).await
    }

    /// The next reply (on `reply_to`) with its correlation id.
    pub async fn next_reply(&mut self, secs: u64) -> (Option<String>, Value) {
        next(&mut self.reply_consumer, secs).await.unwrap_or_else(|| panic!("no reply within {secs} s"))
    }

    /// The next reply if one comes within `wait` (a loop that also does other things).
    pub async fn reply_within(&mut self, wait: Duration) -> Option<Value> {
        next_within(&mut self.reply_consumer, wait).await.map(|r| r.1)
    }

    /// The next event on `einvoice.events`.
    pub async fn next_event(&mut self, secs: u64) -> Value {
        next(&mut self.events_consumer, secs).await.unwrap_or_else(|| panic!("no event within {secs} s")).1
    }

    /// The next event of type `ty` on `einvoice.events` within `secs` (others are skipped);
    /// `None` when none came.
    pub async fn next_event_of(&mut self, ty: &str, secs: u64) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            let (_, ev) = next(&mut self.events_consumer, left.as_secs().max(1)).await?;
            if ev["event_type"] == ty {
                return Some(ev);
            }
        }
    }

    /// `n` replies, keyed by correlation id.
    pub async fn replies(&mut self, n: usize, secs: u64) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while out.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now()).as_secs().max(1);
            match next(&mut self.reply_consumer, left).await {
                Some((c, v)) => out.push((c.unwrap_or_default(), v)),
                None => panic!("only {} of {n} replies within {secs} s: {out:?}", out.len()),
            }
        }
        out
    }

    /// Assert nothing more arrives on reply_to for `secs`.
    pub async fn no_more_replies(&mut self, secs: u64) {
        if let Some(r) = next(&mut self.reply_consumer, secs).await {
            panic!("unexpected extra reply: {r:?}");
        }
    }

    /// Take one message from the dead-letter queue.
    pub async fn dead_letter(&self, secs: u64) -> Option<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(m) =
                self.ch.basic_get(self.topology.dead.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap()
            {
                return Some(m.delivery.data.clone());
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stop the worker and remove the test's queues, exchanges and database.
    pub async fn stop(mut self) {
        if let Some(w) = self.worker.take() {
            w.stop().await.expect("worker stops cleanly");
        }
        let t = &self.topology;
        for q in [t.jobs.clone(), t.dead.clone()].into_iter().chain(t.retry_queues()) {
            let _ = self.ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await;
        }
        let _ = self.ch.queue_delete(t.unrouted.as_str().into(), QueueDeleteOptions::default()).await;
        for x in [&t.commands, &t.events, &t.dlx, &t.retry] {
            let _ = self.ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default()).await;
        }
        let _ = self.conn.close(200, "test done".into()).await;
        drop(self.db);
        let name = format!("einvoice_test_{}", self.id);
        if let Ok((c, conn)) =
            tokio_postgres::connect("postgres://postgres@127.0.0.1:5432/postgres", tokio_postgres::NoTls).await
        {
            tokio::spawn(conn);
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
        }
        let _ = &self.database_url;
        let _ = std::fs::remove_file(&self.config_path);
    }
}

async fn next(c: &mut Consumer, secs: u64) -> Option<(Option<String>, Value)> {
    next_within(c, Duration::from_secs(secs)).await
}

async fn next_within(c: &mut Consumer, wait: Duration) -> Option<(Option<String>, Value)> {
    match tokio::time::timeout(wait, c.next()).await {
        Ok(Some(Ok(d))) => {
            d.ack(BasicAckOptions::default()).await.unwrap();
            let corr = d.properties.correlation_id().as_ref().map(|c| c.to_string());
            let event: Value = serde_json::from_slice(&d.data).expect("events are JSON");
            super::contract::check_event(&event);
            Some((corr, event))
        }
        _ => None,
    }
}

/// A sample invoice dated today with a document number unique to this call.
/// Poll `cond` every 10 ms until it holds; fail with `what` after `secs`.
pub async fn wait_until(secs: u64, what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn invoice(sample: &str, doc_number: &str) -> Value {
    einvoice_worker::samples::stamped(sample, Some(doc_number))
}

pub fn is_irn(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Run one scenario once per protocol: `both_protocols!(name, async_fn_taking_provider)`.
macro_rules! both_protocols {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn whitebooks() {
                $body(ProviderKind::Whitebooks).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn nic() {
                $body(ProviderKind::Nic).await;
            }
        }
    };
}
