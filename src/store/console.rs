//! What the operator console (and `register export`) asks of the store: jobs by any filter with
//! keyset pagination, the audit trail of operator actions, and the IRN register of a month.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::jobs::{JobRow, COLUMNS};
use super::outbox::{self, OutboxEvent};
use super::{Db, StoreError};

/// A search of jobs. Every field is optional; set ones are ANDed. Text is compared exactly
/// (document numbers case-insensitively, as NIC does), so each has an index to answer from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Search {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gstin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The document type (INV, CRN, DBN): the kind of job a row of `jobs` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc_type: Option<String>,
    /// An error code among the job's last errors (`2172`, `GSTIN_NOT_CONFIGURED`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The IRP the document went to (or issued its IRN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub irp: Option<String>,
    /// Updated at or after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    /// Updated before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub irn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ewb_no: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// One job by id (an action on one document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<Uuid>,
    /// Only these GSTINs (a console user limited to some); `None`: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_gstins: Option<Vec<String>>,
}

/// Where the next page starts: after the row with this (updated_at, id), newest first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cursor {
    pub updated_at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    /// `<micros since epoch>.<uuid>`: opaque to the page, exact to the microsecond (Postgres's
    /// precision), so no row is skipped or repeated between pages.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.updated_at.timestamp_micros(), self.id)
    }
    pub fn decode(s: &str) -> Option<Cursor> {
        let (t, id) = s.split_once('.')?;
        Some(Cursor { updated_at: DateTime::from_timestamp_micros(t.parse().ok()?)?, id: Uuid::parse_str(id).ok()? })
    }
}

type Param = Box<dyn ToSql + Sync + Send>;

impl Search {
    /// The WHERE clause (after `WHERE`) and its parameters, numbered from `$1`.
    fn predicate(&self) -> (String, Vec<Param>) {
        let mut clauses: Vec<String> = Vec::new();
        let mut params: Vec<Param> = Vec::new();
        let mut add = |sql: &str, p: Param| {
            params.push(p);
            clauses.push(sql.replace('?', &format!("${}", params.len())));
        };
        let text = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        if let Some(v) = text(&self.gstin) {
            add("gstin = ?", Box::new(v.to_ascii_uppercase()));
        }
        if let Some(v) = text(&self.status) {
            add("status = ?", Box::new(v));
        }
        if let Some(v) = text(&self.doc_type) {
            add("doc_type = ?", Box::new(v.to_ascii_uppercase()));
        }
        if let Some(v) = text(&self.error_code) {
            // last_error is a list of {code, message, ...}; containment needs no index of its own
            // (the other filters narrow first) and matches a single error object too.
            add(
                "(last_error @> jsonb_build_array(jsonb_build_object('code', ?::text)) \
                  OR last_error @> jsonb_build_object('code', ?::text))",
                Box::new(v),
            );
        }
        if let Some(v) = text(&self.irp) {
            add("COALESCE(irp, provider) = ?", Box::new(v));
        }
        if let Some(v) = self.from {
            add("updated_at >= ?", Box::new(v));
        }
        if let Some(v) = self.to {
            add("updated_at < ?", Box::new(v));
        }
        if let Some(v) = text(&self.doc_number) {
            add("upper(doc_number) = upper(?)", Box::new(v));
        }
        if let Some(v) = text(&self.irn) {
            add("irn = ?", Box::new(v));
        }
        if let Some(v) = text(&self.ewb_no) {
            add("ewb_no = ?", Box::new(v));
        }
        if let Some(v) = text(&self.request_id) {
            add("request_id = ?", Box::new(v));
        }
        if let Some(v) = text(&self.batch_id) {
            add("id IN (SELECT job_id FROM batch_members WHERE batch_id = ? AND job_id IS NOT NULL)", Box::new(v));
        }
        if let Some(id) = self.job_id {
            add("id = ?", Box::new(id));
        }
        if let Some(g) = &self.allowed_gstins {
            add("gstin = ANY(?)", Box::new(g.clone()));
        }
        if clauses.is_empty() {
            ("true".into(), params)
        } else {
            (clauses.join(" AND "), params)
        }
    }

    /// The search's SQL, for EXPLAIN in tests: (statement, parameters).
    pub fn page_sql(&self, after: Option<Cursor>, limit: i64) -> (String, Vec<Param>) {
        let (mut pred, mut params) = self.predicate();
        if let Some(c) = after {
            params.push(Box::new(c.updated_at));
            params.push(Box::new(c.id));
            let n = params.len();
            pred = format!("{pred} AND (updated_at, id) < (${}, ${n})", n - 1);
        }
        params.push(Box::new(limit));
        let sql = format!(
            "SELECT {COLUMNS} FROM jobs WHERE {pred} ORDER BY updated_at DESC, id DESC LIMIT ${}",
            params.len()
        );
        (sql, params)
    }
}

fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect()
}

/// What the console's "See" page shows: where work waits, what got done and what failed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Dashboard {
    /// Per GSTIN and IRP: documents not finished, and the age of the oldest (seconds).
    pub pending: Vec<(String, String, i64, f64)>,
    /// Per hour of the last 24 (oldest first): (hour start, documents done, documents failed or rejected).
    pub hourly: Vec<(DateTime<Utc>, i64, i64)>,
    /// Error codes of the documents that failed, were rejected or are in doubt in the last 24 hours.
    pub errors: Vec<(String, i64)>,
    /// Active e-way bills whose validity ends within the next 24 hours: (number, GSTIN, valid till).
    pub expiring: Vec<(String, String, String)>,
    /// IRP error responses today (India date) by key (`gstin:<GSTIN>`, `client:<irp>:<id>`).
    pub error_budget: Vec<(String, i64)>,
}

/// One operator action, as the audit trail keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct Action {
    pub action_id: Uuid,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub filter: Value,
    pub count: i32,
    pub done: i32,
    pub reason: Option<String>,
    pub job_ids: Vec<Uuid>,
    pub result: Value,
}

/// An action to record (its time is the database's).
#[derive(Debug, Clone)]
pub struct NewAction {
    pub action_id: Uuid,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub filter: Value,
    pub count: i32,
    pub done: i32,
    pub reason: Option<String>,
    pub job_ids: Vec<Uuid>,
    pub result: Value,
}

/// An e-way bill made without an IRN (a delivery challan, a stock transfer): not a job, so the
/// console lists it beside the jobs when a search names its number or its document's.
#[derive(Debug, Clone, PartialEq)]
pub struct EwbDocLine {
    pub gstin: String,
    pub doc_type: String,
    pub doc_number: String,
    pub doc_date: String,
    /// None: not made yet (or its call's answer was lost and the lookup is pending).
    pub ewb_no: Option<String>,
    pub valid_till: Option<String>,
    /// active | cancelled (None: no e-way bill yet).
    pub status: Option<String>,
    /// `GENEWAYBILL` calls made for it.
    pub calls: i32,
}

impl Db {
    /// E-way bills without an IRN whose number is `s.ewb_no` or whose document number is
    /// `s.doc_number` (any case), within the search's GSTIN filters, newest first, at most
    /// `limit`. Empty when the search names neither (every other filter is a job's).
    pub async fn search_ewaybill_documents(&self, s: &Search, limit: i64) -> Result<Vec<EwbDocLine>, StoreError> {
        let text = |v: &Option<String>| v.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_string);
        let (ewb_no, doc_no) = (text(&s.ewb_no), text(&s.doc_number));
        if ewb_no.is_none() && doc_no.is_none() {
            return Ok(Vec::new());
        }
        let gstin = text(&s.gstin).map(|g| g.to_ascii_uppercase());
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT d.gstin, d.doc_type, d.doc_no, d.doc_date, d.ewb_no, e.valid_till, e.status, d.calls
                 FROM ewaybill_documents d LEFT JOIN ewaybills e ON e.ewb_no = d.ewb_no
                 WHERE ($1::text IS NULL OR d.ewb_no = $1)
                   AND ($2::text IS NULL OR upper(d.doc_no) = upper($2))
                   AND ($3::text IS NULL OR d.gstin = $3)
                   AND ($4::text[] IS NULL OR d.gstin = ANY($4))
                 ORDER BY d.updated_at DESC LIMIT $5",
                &[&ewb_no, &doc_no, &gstin, &s.allowed_gstins, &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| EwbDocLine {
                gstin: r.get(0),
                doc_type: r.get(1),
                doc_number: r.get(2),
                doc_date: r.get(3),
                ewb_no: r.get(4),
                valid_till: r.get(5),
                status: r.get(6),
                calls: r.get(7),
            })
            .collect())
    }
}

/// One line of the IRN register: a document with its IRN and/or e-way bill.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RegisterLine {
    pub gstin: String,
    pub doc_type: String,
    pub doc_number: String,
    pub doc_date: String,
    pub irn: Option<String>,
    pub ack_no: Option<String>,
    pub ack_date: Option<String>,
    /// active | cancelled | rejected | registered elsewhere (None: no IRN, an e-way bill only). A
    /// document an operator marked registered (cancelled) outside the worker is "registered
    /// elsewhere" ("cancelled"), listed even when its IRN was not given.
    pub irn_status: Option<String>,
    /// The IRP that issued the IRN (None when another IRP did and could not be told).
    pub irp: Option<String>,
    pub ewb_no: Option<String>,
    pub ewb_date: Option<String>,
    pub ewb_valid_till: Option<String>,
    /// active | cancelled.
    pub ewb_status: Option<String>,
}

impl Db {
    /// A page of jobs matching `s`, newest first, after `after`.
    pub async fn search_jobs(&self, s: &Search, after: Option<Cursor>, limit: i64) -> Result<Vec<JobRow>, StoreError> {
        let (sql, params) = s.page_sql(after, limit);
        let c = self.client().await?;
        Ok(c.query(&sql, &refs(&params)).await?.iter().map(JobRow::from).collect())
    }

    /// How many jobs match `s`, counting at most `cap` (a confirmation page says "over N").
    pub async fn count_jobs(&self, s: &Search, cap: i64) -> Result<i64, StoreError> {
        let (pred, mut params) = s.predicate();
        params.push(Box::new(cap));
        let sql = format!("SELECT count(*) FROM (SELECT 1 FROM jobs WHERE {pred} LIMIT ${}) m", params.len());
        let c = self.client().await?;
        Ok(c.query_one(&sql, &refs(&params)).await?.get(0))
    }

    /// Every job matching `s` (at most `cap`), newest first: what an action on "all that match" touches.
    pub async fn matching_jobs(&self, s: &Search, cap: i64) -> Result<Vec<JobRow>, StoreError> {
        self.search_jobs(s, None, cap).await
    }

    /// The IRP's stored answer for a job (its `response` column), if any.
    pub async fn job_response(&self, id: Uuid) -> Result<Option<Value>, StoreError> {
        let c = self.client().await?;
        Ok(c.query_opt("SELECT response FROM jobs WHERE id = $1", &[&id]).await?.and_then(|r| r.get(0)))
    }

    /// Record an operator action and its `operator.action` event, in one transaction.
    pub async fn record_action(&self, a: &NewAction, event: &OutboxEvent) -> Result<DateTime<Utc>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let at = insert_action(&tx, a, event).await?;
        tx.commit().await?;
        Ok(at)
    }

    /// The audit trail, newest first, before the action with row id `before` (keyset).
    pub async fn actions(&self, before: Option<i64>, limit: i64) -> Result<Vec<(i64, Action)>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT id, action_id, at, actor, role, action, filter, count, done, reason, job_ids, result
                 FROM operator_actions WHERE ($1::bigint IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
                &[&before, &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    Action {
                        action_id: r.get(1),
                        at: r.get(2),
                        actor: r.get(3),
                        role: r.get(4),
                        action: r.get(5),
                        filter: r.get(6),
                        count: r.get(7),
                        done: r.get(8),
                        reason: r.get(9),
                        job_ids: r.get(10),
                        result: r.get(11),
                    },
                )
            })
            .collect())
    }

    /// The figures of the console's "See" page (each query reads an index: jobs by status or by
    /// update time, active e-way bills by validity, error counts by day).
    pub async fn dashboard(&self) -> Result<Dashboard, StoreError> {
        let c = self.client().await?;
        let india = Utc::now().with_timezone(&chrono_tz::Asia::Kolkata);
        let horizon = (india + chrono::Duration::hours(24)).format("%Y-%m-%d %H:%M:%S").to_string();
        let today = india.date_naive();
        let (horizon_p, today_p): ([&(dyn ToSql + Sync); 1], [&(dyn ToSql + Sync); 1]) = ([&horizon], [&today]);
        let pending = c.query(
            "SELECT gstin, COALESCE(irp, provider, '-'), count(*),
                    extract(epoch FROM now() - min(COALESCE(first_attempt_at, created_at)))::float8
             FROM jobs WHERE status IN ('pending', 'in_flight', 'in_doubt')
             GROUP BY 1, 2 ORDER BY 4 DESC LIMIT 100",
            &[],
        );
        let hourly = c.query(
            "SELECT h, count(j.id) FILTER (WHERE j.status IN ('generated', 'cancelled', 'registered_outside', 'cancelled_outside')),
                    count(j.id) FILTER (WHERE j.status IN ('failed', 'rejected'))
             FROM generate_series(date_trunc('hour', now()) - interval '23 hours', date_trunc('hour', now()),
                                  interval '1 hour') h
             LEFT JOIN jobs j ON j.updated_at >= h AND j.updated_at < h + interval '1 hour'
             GROUP BY h ORDER BY h",
            &[],
        );
        let errors = c.query(
            "SELECT COALESCE(last_error->0->>'code', last_error->>'code', '?'), count(*) FROM jobs
             WHERE updated_at > now() - interval '24 hours' AND status IN ('failed', 'rejected', 'in_doubt')
               AND last_error IS NOT NULL
             GROUP BY 1 ORDER BY 2 DESC LIMIT 20",
            &[],
        );
        let expiring = c.query(
            "SELECT ewb_no, gstin, valid_till FROM ewaybills
             WHERE status = 'active' AND valid_till IS NOT NULL AND valid_till <= $1
             ORDER BY valid_till LIMIT 100",
            &horizon_p,
        );
        let budget =
            c.query("SELECT key, count FROM irp_error_counts WHERE day = $1 ORDER BY count DESC LIMIT 50", &today_p);
        let (pending, hourly, errors, expiring, budget) = tokio::try_join!(pending, hourly, errors, expiring, budget)?;
        Ok(Dashboard {
            pending: pending.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect(),
            hourly: hourly.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect(),
            errors: errors.iter().map(|r| (r.get(0), r.get(1))).collect(),
            expiring: expiring.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect(),
            error_budget: budget.iter().map(|r| (r.get(0), r.get(1))).collect(),
        })
    }

    /// The IRN register of `gstin` for a return period `YYYY-MM` (by document date): every
    /// document with an IRN (and its e-way bill, if any) or marked registered/cancelled outside, then every e-way bill made without an
    /// IRN, ordered by document date and number.
    pub async fn irn_register(&self, gstin: &str, year: i32, month: u32) -> Result<Vec<RegisterLine>, StoreError> {
        let period = format!("{month:02}/{year:04}");
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT j.gstin, j.doc_type, j.doc_number, j.doc_date, j.irn, j.ack_no, j.ack_dt,
                        CASE WHEN j.status IN ('cancelled', 'cancelled_outside') THEN 'cancelled'
                             WHEN j.rejected_at_irp THEN 'rejected'
                             WHEN j.irp IS NULL OR j.status = 'registered_outside' THEN 'registered elsewhere'
                             ELSE 'active' END,
                        j.irp,
                        COALESCE(e.ewb_no, CASE WHEN j.status IN ('registered_outside', 'cancelled_outside') THEN j.ewb_no END),
                        e.ewb_date, e.valid_till, e.status
                 FROM jobs j
                 LEFT JOIN LATERAL (SELECT * FROM ewaybills e WHERE e.irn = j.irn ORDER BY created_at DESC LIMIT 1) e ON true
                 WHERE j.gstin = $1 AND right(j.doc_date, 7) = $2 AND j.irn IS NOT NULL
                 UNION ALL
                 -- Marked registered/cancelled outside without the IRN given (migration 0020's index).
                 SELECT j.gstin, j.doc_type, j.doc_number, j.doc_date, NULL, j.ack_no, j.ack_dt,
                        CASE WHEN j.status = 'cancelled_outside' THEN 'cancelled' ELSE 'registered elsewhere' END,
                        NULL, j.ewb_no, NULL, NULL, NULL
                 FROM jobs j
                 WHERE j.gstin = $1 AND right(j.doc_date, 7) = $2 AND j.irn IS NULL
                   AND j.status IN ('registered_outside', 'cancelled_outside')
                 UNION ALL
                 SELECT d.gstin, d.doc_type, d.doc_no, d.doc_date, NULL, NULL, NULL, NULL, NULL,
                        e.ewb_no, e.ewb_date, e.valid_till, e.status
                 FROM ewaybill_documents d JOIN ewaybills e ON e.ewb_no = d.ewb_no
                 WHERE d.gstin = $1 AND right(d.doc_date, 7) = $2
                 ORDER BY 4, 3",
                &[&gstin, &period],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| RegisterLine {
                gstin: r.get(0),
                doc_type: r.get(1),
                doc_number: r.get(2),
                doc_date: r.get::<_, Option<String>>(3).unwrap_or_default(),
                irn: r.get(4),
                ack_no: r.get(5),
                ack_date: r.get(6),
                irn_status: r.get(7),
                irp: r.get(8),
                ewb_no: r.get(9),
                ewb_date: r.get(10),
                ewb_valid_till: r.get(11),
                ewb_status: r.get(12),
            })
            .collect())
    }
}

/// Insert an operator action and its `operator.action` event in the caller's transaction (an
/// action that changes jobs writes them in the same one).
pub(crate) async fn insert_action<C: deadpool_postgres::GenericClient>(
    tx: &C,
    a: &NewAction,
    event: &OutboxEvent,
) -> Result<DateTime<Utc>, StoreError> {
    let at: DateTime<Utc> = tx
        .query_one(
            "INSERT INTO operator_actions (action_id, actor, role, action, filter, count, done, reason, job_ids, result)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING at",
            &[&a.action_id, &a.actor, &a.role, &a.action, &a.filter, &a.count, &a.done, &a.reason, &a.job_ids, &a.result],
        )
        .await?
        .get(0);
    outbox::insert(tx, event).await?;
    Ok(at)
}

/// `YYYY-MM` as (year, month).
pub fn parse_period(s: &str) -> Option<(i32, u32)> {
    let (y, m) = s.trim().split_once('-')?;
    let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
    ((2017..=9999).contains(&y) && (1..=12).contains(&m) && s.trim().len() == 7).then_some((y, m))
}

/// The register as CSV (RFC 4180: every field quoted where needed).
pub fn register_csv(lines: &[RegisterLine]) -> String {
    fn field(s: Option<&str>) -> String {
        let s = s.unwrap_or("");
        // A leading =, +, - or @ would be a formula in a spreadsheet: quoted with a ' first.
        let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_string() };
        if s.contains([',', '"', '\n', '\r']) || s.starts_with('\'') {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s
        }
    }
    let mut out = String::from(
        "gstin,doc_type,doc_number,doc_date,irn,ack_no,ack_date,irn_status,irp,ewb_no,ewb_date,ewb_valid_till,ewb_status\r\n",
    );
    for l in lines {
        let cols = [
            Some(l.gstin.as_str()),
            Some(l.doc_type.as_str()),
            Some(l.doc_number.as_str()),
            Some(l.doc_date.as_str()),
            l.irn.as_deref(),
            l.ack_no.as_deref(),
            l.ack_date.as_deref(),
            l.irn_status.as_deref(),
            l.irp.as_deref(),
            l.ewb_no.as_deref(),
            l.ewb_date.as_deref(),
            l.ewb_valid_till.as_deref(),
            l.ewb_status.as_deref(),
        ];
        out += &cols.iter().map(|c| field(*c)).collect::<Vec<_>>().join(",");
        out += "\r\n";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let c =
            Cursor { updated_at: DateTime::from_timestamp_micros(1_765_000_000_123_456).unwrap(), id: Uuid::new_v4() };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("x.y"), None);
    }

    #[test]
    fn predicate_numbers_its_parameters() {
        let s = Search {
            gstin: Some("29aagcp4821k1z3".into()),
            error_code: Some("2172".into()),
            irn: Some(" ".into()),
            batch_id: Some("b1".into()),
            ..Default::default()
        };
        let (sql, params) = s.page_sql(None, 50);
        assert_eq!(params.len(), 4, "{sql}");
        assert!(
            sql.contains("gstin = $1") && sql.contains("'code', $2::text") && sql.contains("batch_id = $3"),
            "{sql}"
        );
        assert!(sql.ends_with("LIMIT $4"), "{sql}");
        assert!(!sql.contains("irn ="), "a blank field is no filter: {sql}");
    }

    #[test]
    fn periods_and_csv() {
        assert_eq!(parse_period("2026-11"), Some((2026, 11)));
        assert_eq!(parse_period("2026-13"), None);
        assert_eq!(parse_period("26-11"), None);
        let l = RegisterLine {
            gstin: "29AAGCP4821K1Z3".into(),
            doc_type: "INV".into(),
            doc_number: "=HYPERLINK(\"x\")".into(),
            doc_date: "01/11/2026".into(),
            irn: Some("abc".into()),
            ack_no: None,
            ack_date: None,
            irn_status: Some("active".into()),
            irp: Some("nic".into()),
            ewb_no: None,
            ewb_date: None,
            ewb_valid_till: None,
            ewb_status: None,
        };
        let csv = register_csv(&[l]);
        assert!(csv.contains("\"'=HYPERLINK(\"\"x\"\")\""), "{csv}");
        assert_eq!(csv.lines().count(), 2);
    }
}
