//! Job rows: one per document key, the durable truth about each document's IRN.
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::Row;
use uuid::Uuid;

use super::outbox::{self, OutboxEvent};
use super::{Db, StoreError};
use crate::domain::text::storable;
use crate::domain::DocumentKey;
use crate::irp::IrnData;

pub use crate::domain::JobStatus;

/// `jobs.status` is text; [`JobStatus`] reads and writes it.
impl<'a> FromSql<'a> for JobStatus {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(<&str as FromSql>::from_sql(ty, raw)?.parse::<JobStatus>()?)
    }
    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

impl ToSql for JobStatus {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.as_str().to_sql(ty, out)
    }
    fn accepts(ty: &Type) -> bool {
        <&str as ToSql>::accepts(ty)
    }
    tokio_postgres::types::to_sql_checked!();
}

#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: Uuid,
    pub gstin: String,
    pub doc_type: String,
    pub doc_number: String,
    pub financial_year: String,
    pub doc_date: Option<String>,
    pub provider: Option<String>,
    pub status: JobStatus,
    pub attempts: i32,
    pub request: Option<Value>,
    pub irn: Option<String>,
    pub ack_no: Option<String>,
    pub ack_dt: Option<String>,
    pub signed_invoice: Option<String>,
    pub signed_qr_code: Option<String>,
    pub ewb_no: Option<String>,
    pub ewb_dt: Option<String>,
    pub ewb_valid_till: Option<String>,
    pub duplicate: bool,
    pub cancel_date: Option<String>,
    pub last_error: Option<Value>,
    pub first_attempt_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub rejected_at_irp: bool,
    pub surviving_irn: Option<String>,
    /// When `irn.in_doubt` was published for the current in-doubt period (else `None`).
    pub in_doubt_reported_at: Option<DateTime<Utc>>,
    /// The IRP the document was sent to, then the one that issued its IRN (see migration 0011).
    pub irp: Option<String>,
}

/// The columns of [`JobRow`], in the order `JobRow::from(&Row)` reads them.
pub(crate) const COLUMNS: &str =
    "id, gstin, doc_type, doc_number, financial_year, doc_date, provider, status, attempts, request,
    irn, ack_no, ack_dt, signed_invoice, signed_qr_code, ewb_no, ewb_dt, ewb_valid_till, duplicate, cancel_date,
    last_error, first_attempt_at, updated_at, rejected_at_irp, surviving_irn, in_doubt_reported_at, irp";

/// The IRP calls a job's attempt log keeps (the newest).
pub const MAX_ATTEMPT_LOG: usize = crate::runtime::attempts::MAX_ATTEMPTS;

/// The `SET` clause (with its leading comma) that appends parameter `$n` (a JSON array of IRP
/// calls, see `runtime::attempts`) to `jobs.attempt_log`, keeping the newest [`MAX_ATTEMPT_LOG`]:
/// for every statement that already writes a job row, so the log costs no round trip of its own.
pub(crate) fn append_attempts(n: usize) -> String {
    format!(
        ", attempt_log = (SELECT jsonb_agg(e ORDER BY i) FROM jsonb_array_elements(COALESCE(attempt_log, '[]'::jsonb) || ${n}::jsonb)
             WITH ORDINALITY AS t(e, i)
           WHERE i > jsonb_array_length(COALESCE(attempt_log, '[]'::jsonb) || ${n}::jsonb) - {MAX_ATTEMPT_LOG})"
    )
}

/// The claim statement (see [`Db::claim_generate_for`]). `ins` creates a new document already
/// claimed; `cur` locks an existing one; `upd` claims it unless it is generated, cancelled,
/// registered or cancelled outside (an operator's mark), rejected for this very payload, or leased to another live attempt; otherwise the locked row
/// comes back as `held`, with its stored QR image (a replay needs nothing else). A re-sent
/// command after `failed`/`rejected` starts a new retry budget. The claim records the IRP the
/// attempt means to call (`$13`), except on a document that may already have reached one: that
/// one keeps its IRP, where it is looked up.
static CLAIM_SQL: LazyLock<String> = LazyLock::new(|| {
    let qualified: Vec<String> = COLUMNS.split(',').map(|c| format!("j.{}", c.trim())).collect();
    let qualified = qualified.join(", ");
    // A claimed row's request is the one this statement sent: not worth sending back and parsing.
    let claimed = COLUMNS.replace(" request,", " NULL::jsonb AS request,");
    assert_ne!(claimed, COLUMNS, "COLUMNS lists request");
    // A done document's request is compared with a re-sent one on three fields only: send those.
    let done = COLUMNS.replace(
        " request,",
        " CASE WHEN request IS NOT NULL THEN jsonb_build_object(
             'SellerDtls', jsonb_build_object('Gstin', request->'SellerDtls'->'Gstin'),
             'BuyerDtls', jsonb_build_object('Gstin', request->'BuyerDtls'->'Gstin'),
             'ValDtls', jsonb_build_object('TotInvVal', request->'ValDtls'->'TotInvVal')) END AS request,",
    );
    format!(
        "WITH ins AS (
            INSERT INTO jobs (id, doc_key, gstin, doc_type, doc_number, financial_year, doc_date, provider, status,
                              request, attempts, lease_owner, lease_until, first_attempt_at, request_id, irp)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'in_flight', $9, 1, $10, now() + make_interval(secs => $11), now(), $12, $13)
            ON CONFLICT (doc_key) DO NOTHING
            RETURNING {COLUMNS}
         ), cur AS (
            SELECT {COLUMNS}, lease_until, lease_owner FROM jobs WHERE doc_key = $2 FOR UPDATE
         ), upd AS (
            UPDATE jobs j SET status = 'in_flight', attempts = j.attempts + 1, lease_owner = $10,
                lease_until = now() + make_interval(secs => $11), request = $9, provider = $8,
                request_id = COALESCE($12, j.request_id),
                irp = CASE WHEN cur.status IN ('in_doubt', 'in_flight') THEN j.irp ELSE COALESCE($13, j.irp) END,
                first_attempt_at = CASE WHEN cur.status IN ('failed', 'rejected') THEN now()
                                        ELSE COALESCE(j.first_attempt_at, now()) END,
                updated_at = now()
            FROM cur
            WHERE j.id = cur.id AND cur.status NOT IN ('generated', 'cancelled', 'registered_outside', 'cancelled_outside')
              AND NOT (cur.status = 'rejected' AND cur.request = $9)
              AND NOT (cur.status = 'in_flight' AND cur.lease_until > now() AND cur.lease_owner IS DISTINCT FROM $10)
            RETURNING {qualified}, cur.status AS prev
         )
         SELECT {claimed}, 'new'::text AS kind, NULL::text AS prev, NULL::timestamptz AS held_until,
                NULL::text AS qr_png FROM ins
         UNION ALL
         SELECT {claimed}, 'owned', prev, NULL, NULL FROM upd
         UNION ALL
         SELECT {done}, 'held', status, lease_until,
                (SELECT png_base64 FROM qr_png WHERE qr_sha256 = sha256(convert_to(cur.signed_qr_code, 'UTF8')))
         FROM cur WHERE NOT EXISTS (SELECT 1 FROM upd)"
    )
});

impl From<&Row> for JobRow {
    fn from(r: &Row) -> Self {
        JobRow {
            id: r.get(0),
            gstin: r.get(1),
            doc_type: r.get(2),
            doc_number: r.get(3),
            financial_year: r.get(4),
            doc_date: r.get(5),
            provider: r.get(6),
            status: r.get(7),
            attempts: r.get(8),
            request: r.get(9),
            irn: r.get(10),
            ack_no: r.get(11),
            ack_dt: r.get(12),
            signed_invoice: r.get(13),
            signed_qr_code: r.get(14),
            ewb_no: r.get(15),
            ewb_dt: r.get(16),
            ewb_valid_till: r.get(17),
            duplicate: r.get(18),
            cancel_date: r.get(19),
            last_error: r.get(20),
            first_attempt_at: r.get(21),
            updated_at: r.get(22),
            rejected_at_irp: r.get(23),
            surviving_irn: r.get(24),
            in_doubt_reported_at: r.get(25),
            irp: r.get(26),
        }
    }
}

/// The key string stored in `jobs.doc_key`. NIC treats document numbers case-insensitively.
pub fn doc_key(key: &DocumentKey) -> String {
    key.to_string().to_ascii_uppercase()
}

/// What [`Db::claim_generate_for`] found.
#[derive(Debug)]
pub enum Claim {
    /// The document already has its outcome (generated, cancelled, or this very payload was
    /// rejected): answer from the store. `qr_png`: the stored image of its signed QR, if any. The
    /// row's `request` holds only the seller GSTIN, buyer GSTIN and total (what a re-send is
    /// compared on).
    Done { row: JobRow, qr_png: Option<String> },
    /// Another worker holds the lease until this time.
    Busy(DateTime<Utc>),
    /// We own the generate call for this document until the lease ends. `ambiguous` is true
    /// when an earlier attempt may have reached the IRP: look up by document before generating.
    /// The row's `request` is left out (it is the claim's own).
    Owned { job: JobRow, ambiguous: bool },
}

/// A job's final (or parked) state plus the events that report it, written in one transaction.
#[derive(Debug, Clone)]
pub enum JobUpdate {
    /// The IRP's answer (`raw` is kept as the job's response) and whether it came from a 2150.
    Generated {
        data: Box<IrnData>,
        duplicate: bool,
        /// The QR image rendered for `data.signed_qr_code`, stored with it (see `store::qr`).
        qr_png: Option<String>,
    },
    Cancelled {
        cancel_date: String,
        response: Value,
    },
    Rejected {
        errors: Value,
    },
    Failed {
        errors: Value,
    },
    /// Transient failure; the job stays retryable (rescheduled or left for reconciliation).
    Retry {
        errors: Value,
        in_doubt: bool,
    },
    /// Past the retry budget but the IRP may have the IRN: `irn.in_doubt` is being published and
    /// the job stays in doubt until a lookup settles it.
    ReportInDoubt {
        errors: Value,
    },
}

impl Db {
    /// Take the generate lease for a document, creating its job row on first sight. `owner`
    /// names one attempt (one delivery), not a process: two deliveries of the same document in
    /// one process must not both believe they own its generate call.
    ///
    /// One statement: insert-and-claim a new document, or claim an existing one unless it is
    /// done or another attempt's lease is live; the row as it was tells which.
    ///
    /// Records the claiming command's `request_id` on the job (kept when the command has none),
    /// so `job.status` finds a job still in its first attempt, and the IRP this attempt means to
    /// call (see [`CLAIM_SQL`]).
    #[allow(clippy::too_many_arguments)]
    pub async fn claim_generate_for(
        &self,
        key: &DocumentKey,
        doc_date: &str,
        provider: &str,
        request: &str,
        owner: Uuid,
        lease_secs: i64,
        request_id: Option<&str>,
        irp: Option<&str>,
    ) -> Result<Claim, StoreError> {
        let c = self.client().await?;
        let dk = doc_key(key);
        let stmt = c.prepare_cached(&CLAIM_SQL).await?;
        let (fy, lease) = (key.financial_year.to_string(), lease_secs as f64);
        // A row inserted by a concurrent claim after this statement's snapshot is neither ours
        // nor visible to it (no row comes back): run it again, it is visible then.
        for _ in 0..3 {
            let row = c
                .query_opt(
                    &stmt,
                    &[
                        &Uuid::new_v4(),
                        &dk,
                        &key.gstin.as_str(),
                        &key.doc_type.as_str(),
                        &key.doc_number.as_str(),
                        &fy,
                        &doc_date,
                        &provider,
                        &super::JsonbText(request.as_bytes()),
                        &owner,
                        &lease,
                        &request_id,
                        &irp,
                    ],
                )
                .await?;
            let Some(row) = row else { continue };
            let job = JobRow::from(&row);
            let prev: Option<JobStatus> = row.get("prev");
            let kind: &str = row.get("kind");
            return Ok(match kind {
                "new" => Claim::Owned { job, ambiguous: false },
                // An expired in-flight lease means its attempt died mid-call: the IRP may have the IRN.
                "owned" => {
                    let ambiguous = matches!(prev, Some(JobStatus::InDoubt | JobStatus::InFlight));
                    Claim::Owned { job, ambiguous }
                }
                _ if prev == Some(JobStatus::InFlight) => {
                    Claim::Busy(row.get::<_, Option<DateTime<Utc>>>("held_until").unwrap_or_else(Utc::now))
                }
                _ => Claim::Done { qr_png: row.get("qr_png"), row: job },
            });
        }
        Err(StoreError::Corrupt(format!("job {dk} could neither be created nor found")))
    }

    /// Extend our lease before a generate call, and record the IRP the call goes to (committed
    /// before the call: if it turns out ambiguous, the document is looked up there and nowhere else).
    pub async fn extend_lease(
        &self,
        job_id: Uuid,
        owner: Uuid,
        lease_secs: i64,
        irp: &str,
    ) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE jobs SET lease_until = now() + make_interval(secs => $3), irp = $4
                 WHERE id = $1 AND lease_owner = $2",
                &[&job_id, &owner, &(lease_secs as f64), &irp],
            )
            .await?;
        Ok(n == 1)
    }

    /// Write a job's new state and its events atomically, releasing the lease: one statement
    /// (the job's `UPDATE`, each event's and a QR image's `INSERT` as data-modifying `WITH`
    /// clauses), prepared once per shape, so one round trip and no `BEGIN`/`COMMIT`.
    pub async fn finish_job(&self, job_id: Uuid, update: &JobUpdate, events: &[OutboxEvent]) -> Result<(), StoreError> {
        self.finish_job_with(job_id, update, events, None).await
    }

    /// [`Db::finish_job`], appending `attempts` (a JSON array of this command's IRP calls, see
    /// `runtime::attempts`) to the job's attempt log in the same statement, keeping the newest
    /// [`MAX_ATTEMPT_LOG`].
    pub async fn finish_job_with(
        &self,
        job_id: Uuid,
        update: &JobUpdate,
        events: &[OutboxEvent],
        attempts: Option<&Value>,
    ) -> Result<(), StoreError> {
        // `in_doubt_reported_at` survives only while the job stays in doubt.
        let (set, json) = match update {
            JobUpdate::Generated { data, .. } => (
                "status = 'generated', irn = $3, ack_no = $4, ack_dt = $5, signed_invoice = $6, signed_qr_code = $7,
                 ewb_no = $8, ewb_dt = $9, ewb_valid_till = $10, duplicate = $11, response = $2, last_error = NULL,
                 irp = $12, in_doubt_reported_at = NULL",
                storable(&data.raw),
            ),
            JobUpdate::Cancelled { response, .. } => (
                "status = 'cancelled', cancel_date = $3, response = $2, in_doubt_reported_at = NULL",
                storable(response),
            ),
            JobUpdate::Rejected { errors } => {
                ("status = 'rejected', last_error = $2, in_doubt_reported_at = NULL", storable(errors))
            }
            JobUpdate::Failed { errors } => {
                ("status = 'failed', last_error = $2, in_doubt_reported_at = NULL", storable(errors))
            }
            JobUpdate::Retry { errors, in_doubt: true } => ("status = 'in_doubt', last_error = $2", storable(errors)),
            JobUpdate::Retry { errors, in_doubt: false } => {
                ("status = 'pending', last_error = $2, in_doubt_reported_at = NULL", storable(errors))
            }
            JobUpdate::ReportInDoubt { errors } => {
                ("status = 'in_doubt', last_error = $2, in_doubt_reported_at = now()", storable(errors))
            }
        };
        let json: &Value = &json;
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&job_id, json];
        let mut qr: Option<(Vec<u8>, &str)> = None;
        match update {
            JobUpdate::Generated { data: r, duplicate, qr_png } => {
                params.extend([
                    &r.irn as &(dyn ToSql + Sync),
                    &r.ack_no,
                    &r.ack_dt,
                    &r.signed_invoice,
                    &r.signed_qr_code,
                    &r.ewb_no,
                    &r.ewb_dt,
                    &r.ewb_valid_till,
                    duplicate,
                    &r.irp,
                ]);
                qr = r.signed_qr_code.as_deref().zip(qr_png.as_deref()).map(|(text, png)| (super::qr::key(text), png));
            }
            JobUpdate::Cancelled { cancel_date, .. } => params.push(cancel_date),
            _ => {}
        }
        let log = match attempts {
            Some(a) => {
                params.push(a);
                append_attempts(params.len())
            }
            None => String::new(),
        };
        let mut sql = format!(
            "WITH job AS (UPDATE jobs SET {set}{log}, lease_owner = NULL, lease_until = NULL, updated_at = now()
                          WHERE id = $1 RETURNING id)"
        );
        let rows = events.iter().map(outbox::Row::of).collect::<Result<Vec<_>, _>>()?;
        // Handed straight to this process's relay once committed (see `outbox::Handoff`).
        let permits = outbox::reserve(self.handoff(), rows.len());
        let lease = outbox::relay_after(permits.is_some());
        for (i, (row, values)) in rows.iter().zip(outbox::placeholders(params.len() + 1, rows.len(), true)).enumerate()
        {
            sql += &format!(
                ", event{i} AS (INSERT INTO outbox ({}, relay_after) SELECT {values}, {lease} FROM job
                                ON CONFLICT (event_id) DO NOTHING RETURNING id)",
                outbox::COLUMNS
            );
            params.extend(row.params());
        }
        if let Some((key, png)) = &qr {
            let n = params.len();
            sql += &format!(
                ", qr AS (INSERT INTO qr_png (qr_sha256, png_base64) SELECT ${}::bytea, ${}::text FROM job
                          ON CONFLICT (qr_sha256) DO NOTHING)",
                n + 1,
                n + 2
            );
            params.extend([key as &(dyn ToSql + Sync), png]);
        }
        // The job found, and each event's outbox id (NULL: it was stored before).
        sql += " SELECT (SELECT count(*) FROM job)";
        for i in 0..rows.len() {
            sql += &format!(", (SELECT id FROM event{i})");
        }
        let c = self.client().await?;
        let stmt = c.prepare_cached(&sql).await?;
        let result = c.query_one(&stmt, &params).await?;
        let found: i64 = result.get(0);
        if found != 1 {
            return Err(StoreError::Corrupt(format!("job {job_id} does not exist")));
        }
        let ids: Vec<Option<i64>> = (0..rows.len()).map(|i| result.get(i + 1)).collect();
        outbox::hand_off(permits, &rows, &ids);
        rows.iter().for_each(outbox::Row::note);
        Ok(())
    }

    pub async fn job_by_key(&self, key: &DocumentKey) -> Result<Option<JobRow>, StoreError> {
        let c = self.client().await?;
        Ok(c.query_opt(&format!("SELECT {COLUMNS} FROM jobs WHERE doc_key = $1"), &[&doc_key(key)])
            .await?
            .as_ref()
            .map(JobRow::from))
    }

    pub async fn job_by_irn(&self, irn: &str) -> Result<Option<JobRow>, StoreError> {
        let c = self.client().await?;
        Ok(c.query_opt(&format!("SELECT {COLUMNS} FROM jobs WHERE irn = $1"), &[&irn])
            .await?
            .as_ref()
            .map(JobRow::from))
    }

    pub async fn job(&self, id: Uuid) -> Result<Option<JobRow>, StoreError> {
        let c = self.client().await?;
        Ok(c.query_opt(&format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"), &[&id]).await?.as_ref().map(JobRow::from))
    }
}
