//! The transactional outbox: events are inserted in the same transaction as the job state they
//! report, and a relay publishes them afterwards (see `amqp::relay`). A crash between commit
//! and publish only delays an event; consumers dedupe on `event_id`.
use deadpool_postgres::GenericClient;
use deadpool_postgres::Transaction;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use uuid::Uuid;

use super::{Db, StoreError};
use crate::domain::event::Event;
use crate::domain::text::{escape_controls, escape_event_echoes, is_hidden_control, strip_nul, without_nul};

/// An event and the reply queue it must also reach (the command's `reply_to`).
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    pub event: Event,
    pub reply_to: Option<String>,
}

/// A row waiting for publication.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    pub id: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub reply_to: Option<String>,
    pub correlation_id: Option<String>,
    /// The event as JSON text, exactly as PostgreSQL returns the `jsonb` (published as is).
    pub body: Vec<u8>,
}

/// A `jsonb` (or `json`) value's JSON text, as the server sent it: the relay publishes it without
/// parsing it into a tree and writing it out again.
struct JsonText(Vec<u8>);

impl<'a> FromSql<'a> for JsonText {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<JsonText, Box<dyn std::error::Error + Sync + Send>> {
        // Binary jsonb is a format version byte (1) and the text; binary json is the text.
        match (ty, raw.split_first()) {
            (&Type::JSONB, Some((1, text))) => Ok(JsonText(text.to_vec())),
            (&Type::JSONB, _) => Err("unsupported jsonb format version".into()),
            _ => Ok(JsonText(raw.to_vec())),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::JSONB | Type::JSON)
    }
}

/// An event as the `outbox` table stores it. An event may quote what a message said (a bad
/// value, its ids): a NUL in it must not make the answer itself unstorable, nor may a control
/// character it quotes (a bidi override in a document number) reach an ERP screen as such, so
/// NULs are stripped and every echoed string is escaped here, where every event passes.
pub(crate) struct Row {
    event_id: Uuid,
    event_type: String,
    reply_to: Option<String>,
    correlation_id: Option<String>,
    payload: Payload,
}

/// An event's JSON for the `payload` column.
#[derive(Debug)]
enum Payload {
    /// Serialised straight from the event: it had nothing to strip or escape.
    Text(Vec<u8>),
    /// Built as a tree, with NULs stripped and echoed controls escaped.
    Tree(serde_json::Value),
}

impl ToSql for Payload {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Payload::Tree(v) => v.to_sql(ty, out),
            Payload::Text(text) => super::JsonbText(text).to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <super::JsonbText as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

/// Is this serialised JSON free of anything [`strip_nul`] or [`escape_event_echoes`] would
/// change: no escaped control character (`\n`, `\u0000`, …) and no raw hidden control (DEL,
/// C1, bidi marks)? Then the bytes can be stored as they are.
fn plain(json: &[u8]) -> bool {
    // Escapes are rare in events (and `\"`, `\\` are harmless): jump from backslash to backslash
    // with memchr instead of looking at every byte; only text with non-ASCII characters is
    // decoded to look for the hidden ones among them.
    let mut rest = json;
    while let Some(i) = memchr::memchr(b'\\', rest) {
        if matches!(rest.get(i + 1), Some(b'b' | b'f' | b'n' | b'r' | b't' | b'u')) {
            return false;
        }
        rest = rest.get(i + 2..).unwrap_or_default(); // past the escaped quote or backslash
    }
    memchr::memchr(0x7F, json).is_none()
        && (json.is_ascii() || std::str::from_utf8(json).is_ok_and(|t| !t.chars().any(is_hidden_control)))
}

/// The columns [`Row::params`] fills, in order.
pub(crate) const COLUMNS: &str = "event_id, event_type, reply_to, correlation_id, payload";
/// Their types, for parameters in a `SELECT` list (where Postgres cannot infer them).
pub(crate) const TYPES: [&str; 5] = ["uuid", "text", "text", "text", "jsonb"];

/// The largest event (its JSON, bytes) the outbox stores: below the broker's `max_message_size`
/// (`deploy/rabbitmq`: 4 MiB) with room for the AMQP frame, so the relay never holds an event the
/// broker would refuse. A larger one is stored [`bounded`].
pub const EVENT_MAX_BYTES: usize = 3 * 1024 * 1024;

/// Fields of `data` an event can do without: each can be had again (the signed payloads are the
/// signed JWTs decoded; the images are rendered from `signed_qr_code`; `irn.get` answers from
/// the store). Emptied in this order until the event fits.
const DISPENSABLE: [&[&str]; 5] = [
    &["signed_invoice_payload"],
    &["signed_qr_payload"],
    &["print_block", "svg"],
    &["print_block", "qr_png_base64"],
    &["qr_png_base64"],
];

/// The most errors an event lists once it has to shrink.
const BOUNDED_ERRORS: usize = 10;

/// `tree` (an event) made to fit [`EVENT_MAX_BYTES`]: dispensable fields emptied (named in
/// `data.truncated`), then long error lists cut (`data.errors_omitted`), then, as the last resort,
/// `data` reduced to what says so. Returns the text to store.
fn bounded(mut tree: serde_json::Value) -> Result<Vec<u8>, serde_json::Error> {
    use serde_json::{json, Value};
    let size = |t: &Value| serde_json::to_vec(t).map(|v| v.len());
    let original = size(&tree)?;
    let mut truncated: Vec<String> = Vec::new();
    for path in DISPENSABLE {
        let mut at = tree.get_mut("data");
        for key in path {
            at = at.and_then(|v| v.get_mut(*key));
        }
        if let Some(v) = at.filter(|v| !v.is_null()) {
            *v = Value::Null;
            truncated.push(path.join("."));
            tree["data"]["truncated"] = json!(truncated);
            if size(&tree)? <= EVENT_MAX_BYTES {
                break;
            }
        }
    }
    if size(&tree)? > EVENT_MAX_BYTES {
        if let Some(Value::Array(errors)) = tree.get_mut("data").and_then(|d| d.get_mut("errors")) {
            if errors.len() > BOUNDED_ERRORS {
                let omitted = errors.len() - BOUNDED_ERRORS;
                errors.truncate(BOUNDED_ERRORS);
                let before = tree["data"]["errors_omitted"].as_u64().unwrap_or(0);
                tree["data"]["errors_omitted"] = json!(before + omitted as u64);
            }
        }
    }
    if size(&tree)? > EVENT_MAX_BYTES {
        truncated.push("data".into());
        tree["data"] = json!({"truncated": truncated});
    }
    tracing::error!(
        event_type = %tree["event_type"].as_str().unwrap_or_default(),
        original_bytes = original,
        truncated = ?truncated,
        "an event was larger than EVENT_MAX_BYTES; stored without its dispensable fields"
    );
    metrics::counter!(crate::telemetry::metrics::EVENTS_TRUNCATED).increment(1);
    serde_json::to_vec(&tree)
}

impl Row {
    pub(crate) fn of(ev: &OutboxEvent) -> Result<Row, StoreError> {
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
        let payload = match serde_json::to_vec(&ev.event).map_err(corrupt)? {
            text if text.len() <= EVENT_MAX_BYTES && plain(&text) => Payload::Text(text),
            text => {
                let mut tree = serde_json::to_value(&ev.event).map_err(corrupt)?;
                if !plain(&text) {
                    strip_nul(&mut tree);
                    escape_event_echoes(&mut tree);
                }
                match serde_json::to_vec(&tree).map_err(corrupt)? {
                    t if t.len() <= EVENT_MAX_BYTES => Payload::Tree(tree),
                    _ => Payload::Text(bounded(tree).map_err(corrupt)?),
                }
            }
        };
        Ok(Row {
            event_id: ev.event.event_id,
            event_type: without_nul(&ev.event.event_type).into_owned(),
            reply_to: ev.reply_to.as_deref().map(|s| without_nul(s).into_owned()),
            correlation_id: ev.event.correlation_id.as_deref().map(|s| escape_controls(&without_nul(s)).into_owned()),
            payload,
        })
    }

    /// The row as the relay publishes it, stored with `id` (`None` if its JSON cannot be written,
    /// which a tree that was just serialised cannot fail; the poll then publishes it).
    pub(crate) fn pending(&self, id: i64) -> Option<PendingEvent> {
        let body = match &self.payload {
            Payload::Text(text) => text.clone(),
            Payload::Tree(tree) => serde_json::to_vec(tree).ok()?,
        };
        Some(PendingEvent {
            id,
            event_id: self.event_id,
            event_type: self.event_type.clone(),
            reply_to: self.reply_to.clone(),
            correlation_id: self.correlation_id.clone(),
            body,
        })
    }

    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 5] {
        [&self.event_id, &self.event_type, &self.reply_to, &self.correlation_id, &self.payload]
    }

    /// Count the event once it is committed (see `telemetry::metrics::note_event`).
    pub(crate) fn note(&self) {
        crate::telemetry::metrics::note_event(&self.event_type);
    }
}

/// `$first, …` placeholders for `n` rows of [`COLUMNS`], as `VALUES` tuples (`typed`: with casts,
/// for a `SELECT` list).
pub(crate) fn placeholders(first: usize, n: usize, typed: bool) -> Vec<String> {
    (0..n)
        .map(|i| {
            let cols: Vec<String> = TYPES
                .iter()
                .enumerate()
                .map(|(c, ty)| {
                    let p = first + i * TYPES.len() + c;
                    if typed {
                        format!("${p}::{ty}")
                    } else {
                        format!("${p}")
                    }
                })
                .collect();
            cols.join(", ")
        })
        .collect()
}

/// This process's outbox relay, taking events straight from the statement that committed them
/// (issue 28): the relay then needs no claim query, only the mark once the broker has confirmed,
/// so a command costs one round trip less in the relay's `BEGIN`, claim, mark, `COMMIT`. Such an
/// event is stored with `relay_after` = now + [`HANDOFF_LEASE_SECS`], which every relay's poll
/// ([`lock_pending`]) respects: another worker does not publish it too, and if this one dies
/// before its relay has published and marked it, any relay publishes it once the lease is over.
/// Bounded: when it is full the event is stored for the poll, as every event was before.
pub type Handoff = tokio::sync::mpsc::Sender<PendingEvent>;

/// How long the polls leave a handed event to the relay it was handed to. The relay publishes
/// within milliseconds; this is how late an event can be after its worker died before publishing.
pub const HANDOFF_LEASE_SECS: u32 = 10;

/// Set when an event was stored for the poll only (not handed off), so the worker wakes the
/// relay's poll for it (see [`take_unhanded`]); process-wide, because the in-transaction inserts
/// do not know their pool (an extra wake is harmless, a missed one waits for the 250 ms poll).
static UNHANDED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Was an event stored for the poll since the last call? (Clears the flag.)
pub fn take_unhanded() -> bool {
    UNHANDED.swap(false, std::sync::atomic::Ordering::Relaxed)
}

fn note_unhanded() {
    UNHANDED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The `relay_after` value of an event inserted with `handed` (an SQL expression).
pub(crate) fn relay_after(handed: bool) -> String {
    if handed {
        format!("now() + interval '{HANDOFF_LEASE_SECS} seconds'")
    } else {
        "NULL".into()
    }
}

/// Places on `handoff` for `n` events, all or none (none: no relay, or it is full).
pub(crate) fn reserve(
    handoff: Option<&Handoff>,
    n: usize,
) -> Option<tokio::sync::mpsc::PermitIterator<'_, PendingEvent>> {
    handoff.and_then(|h| h.try_reserve_many(n).ok())
}

/// Hand each stored row (`ids[i]`: the id of `rows[i]`, `None` when the insert found the event
/// already there) to the relay, or note that the poll must find them.
pub(crate) fn hand_off(
    permits: Option<tokio::sync::mpsc::PermitIterator<'_, PendingEvent>>,
    rows: &[Row],
    ids: &[Option<i64>],
) {
    match permits {
        Some(permits) => {
            for ((row, id), permit) in rows.iter().zip(ids).zip(permits) {
                // A row that was not inserted (its event_id already stored) is not ours to publish.
                if let Some(ev) = id.and_then(|id| row.pending(id)) {
                    permit.send(ev);
                }
            }
        }
        None if !rows.is_empty() => note_unhanded(),
        None => {}
    }
}

/// Insert events (one statement, prepared once per event count), for the poll only: inside a
/// transaction, which may yet roll back, nothing can be handed to the relay.
pub async fn insert_all<C: GenericClient>(client: &C, events: &[OutboxEvent]) -> Result<(), StoreError> {
    insert_rows(client, events, None).await
}

/// Insert events and hand them to `handoff` once stored (only on a connection that commits
/// each statement: no open transaction).
async fn insert_rows<C: GenericClient>(
    client: &C,
    events: &[OutboxEvent],
    handoff: Option<&Handoff>,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let rows = events.iter().map(Row::of).collect::<Result<Vec<_>, _>>()?;
    let permits = reserve(handoff, rows.len());
    let lease = relay_after(permits.is_some());
    let values: Vec<String> =
        placeholders(1, rows.len(), false).into_iter().map(|p| format!("({p}, {lease})")).collect();
    let sql = format!(
        "INSERT INTO outbox ({COLUMNS}, relay_after) VALUES {} ON CONFLICT (event_id) DO NOTHING RETURNING id, event_id",
        values.join(", ")
    );
    let stmt = client.prepare_cached(&sql).await?;
    let params: Vec<&(dyn ToSql + Sync)> = rows.iter().flat_map(Row::params).collect();
    let stored = client.query(&stmt, &params).await?;
    let ids: Vec<Option<i64>> =
        rows.iter().map(|row| stored.iter().find(|r| r.get::<_, Uuid>(1) == row.event_id).map(|r| r.get(0))).collect();
    hand_off(permits, &rows, &ids);
    rows.iter().for_each(Row::note);
    Ok(())
}

pub async fn insert<C: GenericClient>(client: &C, ev: &OutboxEvent) -> Result<(), StoreError> {
    insert_all(client, std::slice::from_ref(ev)).await
}

impl Db {
    /// Has a command with this AMQP `message_id` already been answered with `event_type`? Only
    /// asked for redelivered messages, so the unindexed payload lookup stays off the hot path.
    pub async fn answered(&self, message_id: &str, event_type: &str) -> Result<bool, StoreError> {
        // The id as `insert` stored it.
        let message_id = escape_controls(&without_nul(message_id)).into_owned();
        let c = self.client().await?;
        let row = c
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM outbox WHERE event_type = $2 AND payload->>'command_message_id' = $1)",
                &[&message_id, &event_type],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Record events that have no job state to go with them (envelope rejections, lookups,
    /// replays): one statement, so all or none.
    pub async fn enqueue_events(&self, events: &[OutboxEvent]) -> Result<(), StoreError> {
        insert_rows(&self.client().await?, events, self.handoff()).await
    }

    /// Number of events not yet published (for tests, the demo and metrics).
    pub async fn outbox_backlog(&self) -> Result<i64, StoreError> {
        let c = self.client().await?;
        Ok(c.query_one("SELECT count(*) FROM outbox WHERE published_at IS NULL", &[]).await?.get(0))
    }
}

/// Lock up to `limit` unpublished rows in `tx` (skipping rows another relay holds, and rows handed
/// to a relay whose lease is not over: see [`Handoff`]). An event
/// stored by a worker from before `schema_version` existed gets it here, so every event a
/// consumer sees has it (they are all version 1).
pub async fn lock_pending(tx: &Transaction<'_>, limit: i64) -> Result<Vec<PendingEvent>, StoreError> {
    let stmt = tx
        .prepare_cached(
            "SELECT id, event_id, event_type, reply_to, correlation_id,
                    CASE WHEN payload ? 'schema_version' THEN payload
                         ELSE payload || jsonb_build_object('schema_version', $2::int) END
             FROM outbox WHERE published_at IS NULL AND (relay_after IS NULL OR relay_after <= now())
             ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .await?;
    let version = i32::try_from(crate::domain::event::SCHEMA_VERSION).unwrap_or(1);
    let rows = tx.query(&stmt, &[&limit, &version]).await?;
    Ok(rows
        .iter()
        .map(|r| PendingEvent {
            id: r.get(0),
            event_id: r.get(1),
            event_type: r.get(2),
            reply_to: r.get(3),
            correlation_id: r.get(4),
            body: r.get::<_, JsonText>(5).0,
        })
        .collect())
}

pub async fn mark_published<C: GenericClient>(client: &C, ids: &[i64]) -> Result<(), StoreError> {
    let stmt = client.prepare_cached("UPDATE outbox SET published_at = now() WHERE id = ANY($1)").await?;
    client.execute(&stmt, &[&ids]).await?;
    Ok(())
}

/// Give handed events whose publication failed back to the poll at once (their lease lifted).
pub async fn release(client: &impl GenericClient, ids: &[i64]) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached("UPDATE outbox SET relay_after = NULL WHERE id = ANY($1) AND published_at IS NULL")
        .await?;
    client.execute(&stmt, &[&ids]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{bounded, plain, EVENT_MAX_BYTES};
    use serde_json::json;

    /// Issue 23: no event the outbox stores is larger than the broker takes.
    #[test]
    fn an_oversized_event_sheds_what_can_be_had_again() {
        let big = "x".repeat(EVENT_MAX_BYTES);
        let ev = json!({"event_type": "irn.generated", "data": {"irn": "abc", "signed_invoice": "jwt",
            "signed_invoice_payload": {"ItemList": [big]}, "signed_qr_payload": {"k": "v"}}});
        let text = bounded(ev).unwrap();
        assert!(text.len() <= EVENT_MAX_BYTES, "{}", text.len());
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(v["data"]["irn"], "abc");
        assert_eq!(v["data"]["signed_invoice_payload"], serde_json::Value::Null);
        assert_eq!(v["data"]["signed_qr_payload"], json!({"k": "v"}), "only as much as needed goes");
        assert_eq!(v["data"]["truncated"], json!(["signed_invoice_payload"]));
        let errors: Vec<_> = (0..50).map(|i| json!({"message": format!("{i}{}", "y".repeat(100_000))})).collect();
        let v: serde_json::Value =
            serde_json::from_slice(&bounded(json!({"data": {"errors": errors}})).unwrap()).unwrap();
        assert_eq!(v["data"]["errors"].as_array().unwrap().len(), 10);
        assert_eq!(v["data"]["errors_omitted"], 40);
        let v: serde_json::Value = serde_json::from_slice(&bounded(json!({"data": {"note": big}})).unwrap()).unwrap();
        assert_eq!(v["data"], json!({"truncated": ["data"]}));
    }

    #[test]
    fn only_json_without_controls_is_stored_as_serialised() {
        assert!(plain(r#"{"a":"b","n":1.5,"q":"say \"hi\"","p":"C:\\new","i":"ಕನ್ನಡ"}"#.as_bytes()));
        for tainted in [
            r#"{"a":"x\u0000y"}"#,
            r#"{"a":"line\nbreak"}"#,
            r#"{"a":"tab\there"}"#,
            "{\"a\":\"bidi \u{202E}\"}",
            "{\"a\":\"del \u{7F}\"}",
            "{\"a\":\"c1 \u{85}\"}",
        ] {
            assert!(!plain(tainted.as_bytes()), "{tainted}");
        }
    }
}
