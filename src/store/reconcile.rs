//! Reconciliation runs: one durable row per run (`reconcile_runs`), holding its range, the days
//! already fetched per GSTIN, the findings so far and a lease, so that a run interrupted by a
//! crash or a transient IRP failure resumes where it stopped instead of starting over.
//!
//! Also the job queries reconciliation needs: flagging IRNs the IRP rejected, finding and
//! leasing in-doubt jobs, and listing the generated jobs of a range.
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use super::jobs::{JobRow, JobStatus, COLUMNS as JOB_COLUMNS};
use super::outbox::{self, OutboxEvent};
use super::{Db, StoreError};

const RUN_COLUMNS: &str = "id, tick, gstins, from_date, to_date, status, progress, findings, errors, command_id,
    lease_owner, lease_until, started_at, finished_at, summary";

/// Run states.
pub mod run_status {
    pub const RUNNING: &str = "running";
    pub const COMPLETED: &str = "completed";
}

#[derive(Debug, Clone)]
pub struct RunRow {
    pub id: Uuid,
    /// The scheduler tick that started it; `None` for a run asked for by a command.
    pub tick: Option<DateTime<Utc>>,
    pub gstins: Vec<String>,
    pub from_date: NaiveDate,
    pub to_date: NaiveDate,
    pub status: String,
    /// `{"<gstin>": ["2025-04-01", ...]}`: days whose rejected IRNs are fetched and recorded.
    pub progress: Value,
    /// Findings recorded so far (the complete, sorted list once completed).
    pub findings: Value,
    pub errors: Value,
    pub command_id: Option<String>,
    pub lease_owner: Option<Uuid>,
    pub lease_until: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub summary: Option<Value>,
}

impl From<&Row> for RunRow {
    fn from(r: &Row) -> Self {
        RunRow {
            id: r.get(0),
            tick: r.get(1),
            gstins: r.get(2),
            from_date: r.get(3),
            to_date: r.get(4),
            status: r.get(5),
            progress: r.get(6),
            findings: r.get(7),
            errors: r.get(8),
            command_id: r.get(9),
            lease_owner: r.get(10),
            lease_until: r.get(11),
            started_at: r.get(12),
            finished_at: r.get(13),
            summary: r.get(14),
        }
    }
}

impl RunRow {
    /// True when this GSTIN's rejected IRNs for `day` are already recorded.
    pub fn day_done(&self, gstin: &str, day: NaiveDate) -> bool {
        let d = day.format("%Y-%m-%d").to_string();
        self.progress
            .get(gstin)
            .and_then(Value::as_array)
            .is_some_and(|days| days.iter().any(|v| v.as_str() == Some(d.as_str())))
    }
}

/// What [`Db::claim_run`] found.
#[derive(Debug)]
pub enum RunClaim {
    /// We hold the run's lease: go on from its recorded progress.
    Owned(RunRow),
    /// Another worker holds the run until then.
    Busy(DateTime<Utc>),
    /// This command's run is already completed (its event was committed with it).
    Done(RunRow),
}

/// The IRP's rejection of one of our IRNs, to record on its job row.
#[derive(Debug, Clone)]
pub struct RejectedFlag {
    pub irn: String,
    pub surviving_irn: Option<String>,
}

/// How an in-doubt job candidate is chosen: `in_doubt`, or `pending`/`in_flight` with an expired
/// (or no) lease and untouched for `$after` seconds.
const IN_DOUBT_WHERE: &str = "(status = 'in_doubt'
      OR (status IN ('pending', 'in_flight') AND updated_at < now() - make_interval(secs => $2)))
     AND (lease_until IS NULL OR lease_until < now())";

impl Db {
    /// Find or create the run for a command and take its lease.
    ///
    /// In order: the run whose `command_id` is this command's message id (a redelivered or
    /// rescheduled command, or a scheduled run); else a `running` run for the same GSTINs and
    /// range whose lease expired (its worker died and its command is gone); else a new run.
    /// A run whose lease was released (NULL) is not adopted: its command is on its way back
    /// through a retry tier, or not yet consumed (a scheduled run), and will finish it.
    pub async fn claim_run(
        &self,
        command_id: Option<&str>,
        gstins: &[String],
        from: NaiveDate,
        to: NaiveDate,
        owner: Uuid,
        lease_secs: i64,
    ) -> Result<RunClaim, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let mut found = match command_id {
            Some(cid) => tx
                .query_opt(
                    &format!("SELECT {RUN_COLUMNS} FROM reconcile_runs WHERE command_id = $1 FOR UPDATE"),
                    &[&cid],
                )
                .await?
                .as_ref()
                .map(RunRow::from),
            None => None,
        };
        if found.is_none() {
            found = tx
                .query_opt(
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM reconcile_runs
                         WHERE status = 'running' AND gstins = $1 AND from_date = $2 AND to_date = $3
                           AND lease_until < now()
                         ORDER BY started_at LIMIT 1 FOR UPDATE SKIP LOCKED"
                    ),
                    &[&gstins, &from, &to],
                )
                .await?
                .as_ref()
                .map(RunRow::from);
        }
        let run = match found {
            Some(r) => r,
            None => {
                let row = tx
                    .query_one(
                        &format!(
                            "INSERT INTO reconcile_runs (id, gstins, from_date, to_date, status, command_id)
                             VALUES ($1, $2, $3, $4, 'running', $5) RETURNING {RUN_COLUMNS}"
                        ),
                        &[&Uuid::new_v4(), &gstins, &from, &to, &command_id],
                    )
                    .await?;
                RunRow::from(&row)
            }
        };
        let now = Utc::now();
        let claim = if run.status == run_status::COMPLETED {
            RunClaim::Done(run)
        } else if run.lease_until.is_some_and(|u| u > now) && run.lease_owner != Some(owner) {
            RunClaim::Busy(run.lease_until.unwrap_or(now))
        } else {
            let row = tx
                .query_one(
                    &format!(
                        "UPDATE reconcile_runs SET lease_owner = $2, lease_until = now() + make_interval(secs => $3)
                         WHERE id = $1 RETURNING {RUN_COLUMNS}"
                    ),
                    &[&run.id, &owner, &(lease_secs as f64)],
                )
                .await?;
            RunClaim::Owned(RunRow::from(&row))
        };
        tx.commit().await?;
        Ok(claim)
    }

    /// Record one GSTIN-day: flag our rejected IRNs, append its findings and errors, mark the
    /// day done and extend the lease, in one transaction. False when the lease is no longer ours
    /// (then nothing is written).
    #[allow(clippy::too_many_arguments)]
    pub async fn record_run_day(
        &self,
        run_id: Uuid,
        owner: Uuid,
        gstin: &str,
        day: NaiveDate,
        flags: &[RejectedFlag],
        findings: &[Value],
        errors: &[Value],
        lease_secs: i64,
    ) -> Result<bool, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let day_s = Value::String(day.format("%Y-%m-%d").to_string());
        let n = tx
            .execute(
                "UPDATE reconcile_runs SET
                   progress = jsonb_set(progress, ARRAY[$3::text], COALESCE(progress -> $3::text, '[]'::jsonb) || jsonb_build_array($4::jsonb)),
                   findings = findings || $5::jsonb, errors = errors || $6::jsonb,
                   lease_until = now() + make_interval(secs => $7)
                 WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
                &[
                    &run_id,
                    &owner,
                    &gstin,
                    &day_s,
                    &Value::Array(findings.to_vec()),
                    &Value::Array(errors.to_vec()),
                    &(lease_secs as f64),
                ],
            )
            .await?;
        if n != 1 {
            return Ok(false);
        }
        for f in flags {
            tx.execute(
                "UPDATE jobs SET rejected_at_irp = true, surviving_irn = COALESCE($2, surviving_irn), updated_at = now()
                 WHERE irn = $1",
                &[&f.irn, &f.surviving_irn],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Append findings (in-doubt settlements) and extend the lease. False when the lease is lost.
    pub async fn add_run_findings(
        &self,
        run_id: Uuid,
        owner: Uuid,
        findings: &[Value],
        lease_secs: i64,
    ) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE reconcile_runs SET findings = findings || $3::jsonb,
                   lease_until = now() + make_interval(secs => $4)
                 WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
                &[&run_id, &owner, &Value::Array(findings.to_vec()), &(lease_secs as f64)],
            )
            .await?;
        Ok(n == 1)
    }

    /// Give the run's lease up (before a reschedule), so whoever gets the command next resumes at once.
    pub async fn release_run(&self, run_id: Uuid, owner: Uuid) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "UPDATE reconcile_runs SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2",
            &[&run_id, &owner],
        )
        .await?;
        Ok(())
    }

    /// Complete the run with its final findings and summary, and commit its event with it.
    /// False (and nothing written) when the lease is no longer ours.
    pub async fn complete_run(
        &self,
        run_id: Uuid,
        owner: Uuid,
        findings: &Value,
        summary: &Value,
        finished_at: DateTime<Utc>,
        event: &OutboxEvent,
    ) -> Result<bool, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let n = tx
            .execute(
                "UPDATE reconcile_runs SET status = 'completed', findings = $3, summary = $4, finished_at = $5,
                   lease_owner = NULL, lease_until = NULL
                 WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
                &[&run_id, &owner, findings, summary, &finished_at],
            )
            .await?;
        if n != 1 {
            return Ok(false);
        }
        outbox::insert(&tx, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The scheduler's claim on a tick: insert the run unless another worker already did.
    /// Returns the new run's id to the one winner.
    pub async fn insert_scheduled_run(
        &self,
        tick: DateTime<Utc>,
        gstins: &[String],
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Option<Uuid>, StoreError> {
        let c = self.client().await?;
        let id = Uuid::new_v4();
        let row = c
            .query_opt(
                "INSERT INTO reconcile_runs (id, tick, gstins, from_date, to_date, status, command_id)
                 VALUES ($1, $2, $3, $4, $5, 'running', $6) ON CONFLICT (tick) DO NOTHING RETURNING id",
                &[&id, &tick, &gstins, &from, &to, &id.to_string()],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    pub async fn mark_run_published(&self, run_id: Uuid) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute("UPDATE reconcile_runs SET published_at = now() WHERE id = $1", &[&run_id]).await?;
        Ok(())
    }

    /// Scheduled runs whose command was never confirmed published, older than `secs`.
    pub async fn unpublished_scheduled_runs(&self, secs: i64) -> Result<Vec<RunRow>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM reconcile_runs
                     WHERE tick IS NOT NULL AND published_at IS NULL AND status = 'running'
                       AND started_at < now() - make_interval(secs => $1)
                     ORDER BY tick LIMIT 20"
                ),
                &[&(secs as f64)],
            )
            .await?;
        Ok(rows.iter().map(RunRow::from).collect())
    }

    pub async fn reconcile_run(&self, id: Uuid) -> Result<Option<RunRow>, StoreError> {
        let c = self.client().await?;
        Ok(c.query_opt(&format!("SELECT {RUN_COLUMNS} FROM reconcile_runs WHERE id = $1"), &[&id])
            .await?
            .as_ref()
            .map(RunRow::from))
    }

    /// In-doubt jobs of these GSTINs (see [`IN_DOUBT_WHERE`]), oldest first.
    pub async fn in_doubt_jobs(
        &self,
        gstins: &[String],
        after_secs: i64,
        limit: i64,
    ) -> Result<Vec<JobRow>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE gstin = ANY($1) AND {IN_DOUBT_WHERE}
                     ORDER BY updated_at LIMIT $3"
                ),
                &[&gstins, &(after_secs as f64), &limit],
            )
            .await?;
        Ok(rows.iter().map(JobRow::from).collect())
    }

    /// Take an in-doubt job for a lookup: it becomes `in_flight` under our lease, so a
    /// generate retry arriving meanwhile waits (and, after a crash, treats it as ambiguous).
    /// `None` when it is no longer in doubt or someone else holds it.
    pub async fn claim_in_doubt(
        &self,
        job_id: Uuid,
        owner: Uuid,
        after_secs: i64,
        lease_secs: i64,
    ) -> Result<Option<JobRow>, StoreError> {
        let c = self.client().await?;
        Ok(c.query_opt(
            &format!(
                "UPDATE jobs SET status = 'in_flight', lease_owner = $3, lease_until = now() + make_interval(secs => $4)
                 WHERE id = $1 AND {IN_DOUBT_WHERE} RETURNING {JOB_COLUMNS}"
            ),
            &[&job_id, &(after_secs as f64), &owner, &(lease_secs as f64)],
        )
        .await?
        .as_ref()
        .map(JobRow::from))
    }

    /// Put a job we hold back to `in_doubt` (the lookup failed), releasing our lease and
    /// appending the lookup's IRP calls (`calls`, see `runtime::attempts`) to its attempt log.
    pub async fn release_in_doubt(&self, job_id: Uuid, owner: Uuid, calls: Option<&Value>) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            &format!(
                "UPDATE jobs SET status = 'in_doubt', lease_owner = NULL, lease_until = NULL{}
                 WHERE id = $1 AND lease_owner = $2 AND status = 'in_flight'",
                log_clause(calls)
            ),
            &with_calls(&[&job_id, &owner], calls),
        )
        .await?;
        Ok(())
    }

    /// The IRP confirmed it has no IRN for a job we hold: make it `pending` again (its generate
    /// command is re-published next), appending the lookup's IRP calls to its attempt log.
    /// False when we no longer hold it.
    pub async fn requeue_job(&self, job_id: Uuid, owner: Uuid, calls: Option<&Value>) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let n = c
            .execute(
                &format!(
                    "UPDATE jobs SET status = '{}', lease_owner = NULL, lease_until = NULL, updated_at = now(),
                            in_doubt_reported_at = NULL{}
                     WHERE id = $1 AND lease_owner = $2 AND status = 'in_flight'",
                    JobStatus::Pending,
                    log_clause(calls)
                ),
                &with_calls(&[&job_id, &owner], calls),
            )
            .await?;
        Ok(n == 1)
    }

    /// Undo [`Db::requeue_job`] when the command could not be published (unless a generate
    /// already took the job over).
    pub async fn unrequeue_job(&self, job_id: Uuid) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute("UPDATE jobs SET status = 'in_doubt' WHERE id = $1 AND status = 'pending'", &[&job_id]).await?;
        Ok(())
    }

    /// Our generated, not rejected jobs of these GSTINs whose document date is in `[from, to]`.
    pub async fn generated_jobs_in_range(
        &self,
        gstins: &[String],
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<JobRow>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs
                     WHERE gstin = ANY($1) AND status = 'generated' AND NOT rejected_at_irp
                       AND doc_date ~ '^[0-9]{{2}}/[0-9]{{2}}/[0-9]{{4}}$'
                       AND to_date(doc_date, 'DD/MM/YYYY') BETWEEN $2 AND $3
                     ORDER BY gstin, doc_type, doc_number"
                ),
                &[&gstins, &from, &to],
            )
            .await?;
        Ok(rows.iter().map(JobRow::from).collect())
    }
}

/// The attempt-log clause for a statement whose parameters are `$1`, `$2` and then `calls`.
fn log_clause(calls: Option<&Value>) -> String {
    calls.map(|_| super::jobs::append_attempts(3)).unwrap_or_default()
}

/// `params`, then `calls` when there are any.
fn with_calls<'a>(params: &[&'a (dyn ToSql + Sync)], calls: Option<&'a Value>) -> Vec<&'a (dyn ToSql + Sync)> {
    let mut v = params.to_vec();
    if let Some(c) = calls {
        v.push(c);
    }
    v
}
