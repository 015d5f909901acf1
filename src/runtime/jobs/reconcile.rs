//! `reconcile.rejected`: a reconciliation run over a date range.
//!
//! When the same document reaches more than one IRP and de-duplication fails, NIC keeps one
//! IRN and marks the others rejected, listed per GSTIN per date. A run:
//! 1. fetches the rejected IRNs of every GSTIN for every day of the range (one IRP call per
//!    day, as the API takes one date), matches them with our jobs by IRN and flags ours
//!    (`jobs.rejected_at_irp`, `jobs.surviving_irn`); progress is recorded after each day;
//! 2. settles in-doubt jobs of those GSTINs: looked up by document, an IRN the IRP has makes
//!    the job generated (with its `irn.generated` event); "not found" (2154) re-publishes the
//!    job's stored invoice as an `irn.generate` command;
//! 3. lists our generated jobs of the range that were not rejected, and completes the run with
//!    one `reconcile.completed` event carrying a summary and every finding.
//!
//! The run is a row in `reconcile_runs` (see `store::reconcile`) with a lease: a redelivered or
//! rescheduled command, or a later command for the same GSTINs and range, finds it and goes on
//! from the recorded progress; a transient IRP failure reschedules the command.
use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::domain::command::reconcile::ReconcileRejected;
use crate::domain::command::{DocRef, JobKind};
use crate::domain::event::{CommandMeta, ErrorItem};
use crate::domain::outcome::{Final, Operation};
use crate::domain::{DocDate, DocNumber, DocType};
use crate::irp::{IrnData, RejectedIrn};
use crate::runtime::attempts;
use crate::runtime::calls::{call, Resend};
use crate::runtime::events::{self, document_ref, errors_json, plain_event};
use crate::runtime::{Ctx, Disposition};
use crate::store::reconcile::{RejectedFlag, RunClaim, RunRow};
use crate::store::{JobRow, StoreError};

/// Finding kinds, in the order the event lists them.
pub mod finding {
    pub const REJECTED_KNOWN: &str = "rejected_known";
    pub const REJECTED_UNKNOWN: &str = "rejected_unknown";
    pub const IN_DOUBT_RESOLVED: &str = "in_doubt_resolved";
    pub const IN_DOUBT_REQUEUED: &str = "in_doubt_requeued";
    pub const IN_DOUBT_UNRESOLVED: &str = "in_doubt_unresolved";
    pub const OURS_FINE: &str = "ours_fine";
    /// Another IRP rejected its own registration of one of our documents (a double registration
    /// made while GSTN's de-duplication registry was down); ours, at `ours_at`, stands.
    pub const DOUBLE_REGISTRATION: &str = "double_registration";
    pub const ALL: [&str; 7] = [
        REJECTED_KNOWN,
        REJECTED_UNKNOWN,
        IN_DOUBT_RESOLVED,
        IN_DOUBT_REQUEUED,
        IN_DOUBT_UNRESOLVED,
        OURS_FINE,
        DOUBLE_REGISTRATION,
    ];
}

/// At most this many `ours_fine` findings are listed (the summary always counts them all).
pub const MAX_LISTED_FINE: usize = 10_000;
/// At most this many in-doubt jobs are settled per run; the next run takes the rest.
const MAX_IN_DOUBT_PER_RUN: i64 = 1_000;

/// How far a run got this time.
enum Step {
    Completed,
    /// The run's lease went to another worker (ours expired): it finishes the run.
    LostLease,
    /// Transient trouble: give the lease up and come back through a retry tier.
    Retry(Vec<ErrorItem>),
    /// A GSTIN is paused until then: give the lease up and come back then.
    Wait(DateTime<Utc>, Vec<ErrorItem>),
}

pub async fn handle(
    ctx: &Ctx,
    meta: &CommandMeta,
    c: &ReconcileRejected,
    attempt: u32,
) -> Result<Disposition, StoreError> {
    let (gstin, from, to) = (c.gstin.as_ref(), c.from, c.to);
    let gstins: Vec<String> = match gstin {
        Some(g) if ctx.providers.get(g.as_str()).is_none() => {
            let errors = vec![ctx.unserved(g.as_str(), "gstin")];
            let data = json!({"errors": errors, "dead_lettered": false});
            ctx.db.enqueue_events(&[plain_event(meta, JobKind::ReconcileRejected.rejected_event(), data)]).await?;
            return Ok(Disposition::Ack);
        }
        Some(g) => vec![g.as_str().to_ascii_uppercase()],
        None => ctx.providers.gstins(), // sorted
    };
    // A lease owner per handling, not per process: two deliveries of one run in the same
    // process must not both believe they own it.
    let owner = Uuid::new_v4();
    let claim = ctx
        .db
        .claim_run(meta.message_id.as_deref(), &gstins, from.date(), to.date(), owner, ctx.settings.lease_secs)
        .await?;
    let run = match claim {
        RunClaim::Owned(run) => run,
        RunClaim::Done(run) => {
            // Every message gets its outcome: a re-sent command is answered from the stored run,
            // as a re-sent generate is answered from the stored IRN.
            tracing::info!(run_id = %run.id, "reconciliation run already completed; replaying its result");
            let summary = run.summary.clone().unwrap_or(Value::Null);
            let finished_at = run.finished_at.unwrap_or_else(Utc::now);
            let mut data = completed_data(&run, run.findings.clone(), summary, run.errors.clone(), finished_at);
            data["replayed"] = json!(true);
            ctx.db.enqueue_events(&[plain_event(meta, JobKind::ReconcileRejected.success_event(), data)]).await?;
            return Ok(Disposition::Ack);
        }
        RunClaim::Busy(until) => {
            let errors = vec![ErrorItem::worker(
                "RUN_BUSY",
                format!("another worker is running this reconciliation (lease until {until}); retrying later"),
            )];
            return Ok(Disposition::Wait { until, attempt, errors });
        }
    };
    tracing::info!(run_id = %run.id, gstins = ?run.gstins, from = %run.from_date, to = %run.to_date, "reconciliation run");
    let step = execute(ctx, meta, &run, owner).await;
    let step = match step {
        Ok(s) => s,
        Err(e) => {
            // The command is requeued; let its next delivery take the run at once.
            let _ = ctx.db.release_run(run.id, owner).await;
            return Err(e);
        }
    };
    match step {
        Step::Completed => Ok(Disposition::Ack),
        Step::LostLease => {
            tracing::warn!(run_id = %run.id, "reconciliation run taken over by another worker; leaving it to it");
            Ok(Disposition::Ack)
        }
        Step::Retry(errors) => {
            ctx.db.release_run(run.id, owner).await?;
            Ok(Disposition::Reschedule { attempt, errors })
        }
        Step::Wait(until, errors) => {
            ctx.db.release_run(run.id, owner).await?;
            Ok(Disposition::Wait { until, attempt, errors })
        }
    }
}

fn days(from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    from.iter_days().take_while(move |d| *d <= to)
}

fn dmy(d: NaiveDate) -> String {
    DocDate::new(d).to_string()
}

async fn execute(ctx: &Ctx, meta: &CommandMeta, run: &RunRow, owner: Uuid) -> Result<Step, StoreError> {
    let lease = ctx.settings.lease_secs;
    let mut paused = BTreeSet::new();
    // 1. Rejected IRNs, one call per GSTIN-day not yet recorded.
    for g in &run.gstins {
        // Every IRP the GSTIN is configured for: a registration another IRP rejected (the
        // registry's outage) is listed by that IRP, not by ours.
        let provider = ctx.providers.set(g);
        if provider.is_some() {
            if let Some(until) = ctx.db.paused_until(g).await? {
                if days(run.from_date, run.to_date).any(|d| !run.day_done(g, d)) {
                    let errors = vec![events::paused(g, until)];
                    return Ok(Step::Wait(until, errors));
                }
                paused.insert(g.clone());
            }
        }
        for day in days(run.from_date, run.to_date) {
            if run.day_done(g, day) {
                continue;
            }
            let (flags, findings, errors) = match &provider {
                None => {
                    let e = ctx.unserved(g, "gstins");
                    (Vec::new(), Vec::new(), vec![day_error(g, day, &[e])])
                }
                Some(set) => {
                    let (mut flags, mut findings, mut errors) = (Vec::new(), Vec::new(), Vec::new());
                    for p in set.entries() {
                        let p = p.as_ref();
                        let date = DocDate::new(day);
                        let fetched = call(ctx, g, p, Operation::RejectedIrns, Resend::Freely, |s| async move {
                            p.rejected_irns(&s, date).await
                        })
                        .await;
                        match fetched {
                            Ok(list) => {
                                let (f, x, e) = examine(ctx, g, day, p.irp(), &list).await?;
                                flags.extend(f);
                                findings.extend(x);
                                errors.extend(e);
                            }
                            Err(e) if e.class(Operation::RejectedIrns) == Final::Transient => {
                                tracing::warn!(gstin = %g, %day, irp = p.irp(), error = %e, "rejected IRNs unavailable; rescheduling the run");
                                return Ok(Step::Retry(e.to_error_items()));
                            }
                            Err(e) => {
                                tracing::warn!(gstin = %g, %day, irp = p.irp(), error = %e, "the IRP refused the rejected-IRN list");
                                errors.push(day_error(g, day, &e.to_error_items()));
                            }
                        }
                    }
                    (flags, findings, errors)
                }
            };
            if !ctx.db.record_run_day(run.id, owner, g, day, &flags, &findings, &errors, lease).await? {
                return Ok(Step::LostLease);
            }
        }
    }
    // 2. In-doubt jobs.
    let active: Vec<String> =
        run.gstins.iter().filter(|g| !paused.contains(*g) && ctx.providers.get(g).is_some()).cloned().collect();
    if let Some(step) = settle_in_doubt(ctx, run, owner, &active).await? {
        return Ok(step);
    }
    // 3. Ours and fine, then the final record and its event.
    complete(ctx, meta, run, owner).await
}

fn day_error(gstin: &str, day: NaiveDate, errors: &[ErrorItem]) -> Value {
    json!({"gstin": gstin, "date": dmy(day), "errors": errors_json(errors)})
}

/// Match one day's rejected IRNs with our jobs.
async fn examine(
    ctx: &Ctx,
    gstin: &str,
    day: NaiveDate,
    irp: &str,
    list: &[RejectedIrn],
) -> Result<(Vec<RejectedFlag>, Vec<Value>, Vec<Value>), StoreError> {
    let (mut flags, mut findings) = (Vec::new(), Vec::new());
    for item in list {
        let Some(irn) = item.irn.clone().filter(|s| !s.is_empty()) else {
            let item = &item.raw;
            tracing::warn!(gstin, %day, ?item, "rejected-IRN entry without an IRN; ignored");
            continue;
        };
        let surviving = item.surviving_irn.clone().filter(|s| !s.is_empty());
        let mut job = ctx.db.job_by_irn(&irn).await?;
        if job.is_none() && irn.to_ascii_lowercase() != irn {
            job = ctx.db.job_by_irn(&irn.to_ascii_lowercase()).await?;
        }
        let ack = json!({"ack_no": item.ack_no, "ack_dt": item.ack_dt});
        // A finding about one of our jobs, named by the IRP whose list had it.
        let about_job = |kind: &str, job: &JobRow, irn: String, surviving: Option<String>| {
            json!({
                "kind": kind,
                "gstin": gstin,
                "irp": irp,
                "irn": irn,
                "surviving_irn": surviving,
                "rejected_on": dmy(day),
                "job_id": job.id,
                "job_status": job.status,
                "document": document_ref(job),
                "ack_no": ack["ack_no"],
                "ack_dt": ack["ack_dt"],
            })
        };
        match job {
            // The same IRN, rejected by another IRP than the one that issued ours: that IRP's
            // registration lost the de-duplication, ours stands. Report it, flag nothing.
            Some(job) if job.irp.as_deref().is_some_and(|ours| !ours.eq_ignore_ascii_case(irp)) => {
                tracing::warn!(gstin, irn = %irn, rejected_at = irp, ours_at = ?job.irp, job_id = %job.id, "double registration: another IRP rejected its copy of our document");
                let mut f = about_job(finding::DOUBLE_REGISTRATION, &job, irn, surviving);
                f["ours_at"] = json!(job.irp);
                findings.push(f);
            }
            Some(job) => {
                tracing::warn!(gstin, irn = %irn, surviving = ?surviving, job_id = %job.id, "an IRN we generated was rejected at the IRP");
                flags.push(RejectedFlag { irn: irn.clone(), surviving_irn: surviving.clone() });
                let (irn, surviving) = (job.irn.clone().unwrap_or(irn), surviving.or(job.surviving_irn.clone()));
                findings.push(about_job(finding::REJECTED_KNOWN, &job, irn, surviving));
            }
            None => findings.push(json!({
                "kind": finding::REJECTED_UNKNOWN,
                "gstin": gstin,
                "irp": irp,
                "irn": irn,
                "surviving_irn": surviving,
                "rejected_on": dmy(day),
                "job_id": null,
                "document": {
                    "gstin": gstin,
                    "doc_type": item.doc_type,
                    "doc_number": item.doc_number,
                    "doc_date": item.doc_date,
                },
                "ack_no": ack["ack_no"],
                "ack_dt": ack["ack_dt"],
            })),
        }
    }
    Ok((flags, findings, Vec::new()))
}

/// The document a job names, for a lookup.
fn job_doc(job: &JobRow) -> Option<DocRef> {
    Some(DocRef {
        doc_type: DocType::parse(&job.doc_type).ok()?,
        doc_number: DocNumber::parse(&job.doc_number).ok()?,
        doc_date: DocDate::parse(job.doc_date.as_deref()?).ok()?,
    })
}

fn job_finding(kind: &str, job: &JobRow, extra: Value) -> Value {
    let mut f =
        json!({"kind": kind, "gstin": job.gstin, "irn": job.irn, "job_id": job.id, "document": document_ref(job)});
    if let (Some(o), Value::Object(e)) = (f.as_object_mut(), extra) {
        o.extend(e);
    }
    f
}

/// Settle the in-doubt jobs of `gstins`. `Some(step)` stops the run there.
async fn settle_in_doubt(ctx: &Ctx, run: &RunRow, owner: Uuid, gstins: &[String]) -> Result<Option<Step>, StoreError> {
    if gstins.is_empty() {
        return Ok(None);
    }
    let (after, lease) = (ctx.settings.in_doubt_after_secs, ctx.settings.lease_secs);
    let candidates = ctx.db.in_doubt_jobs(gstins, after, MAX_IN_DOUBT_PER_RUN).await?;
    for cand in candidates {
        let Some(provider) = ctx.providers.set(&cand.gstin).map(|s| match cand.irp.as_deref() {
            Some(sent_to) => s.by_name(sent_to).unwrap_or(s.primary()).clone(),
            None => s.primary().clone(),
        }) else {
            continue;
        };
        let Some(job) = ctx.db.claim_in_doubt(cand.id, owner, after, lease).await? else {
            continue; // settled meanwhile, or a generate retry holds it
        };
        let Some(doc) = job_doc(&job) else {
            ctx.db.release_in_doubt(job.id, owner, None).await?;
            let e = ErrorItem::worker("UNREADABLE_JOB", "the job's stored document type, number or date is unreadable");
            let f = job_finding(finding::IN_DOUBT_UNRESOLVED, &job, json!({"errors": [e]}));
            if !ctx.db.add_run_findings(run.id, owner, &[f], lease).await? {
                return Ok(Some(Step::LostLease));
            }
            continue;
        };
        let p = provider.as_ref();
        let d = &doc;
        // The lookup's calls go to the job's attempt log, with whatever the sweep writes to it next.
        let (found, calls) =
            attempts::scope(async {
                let found = call(ctx, &job.gstin, p, Operation::GetByDoc, Resend::Freely, |s| async move {
                    p.get_by_doc(&s, d).await
                })
                .await;
                (found, attempts::take())
            })
            .await;
        let calls = calls.as_ref();
        let f = match found {
            Ok(mut data) => {
                data.irp = Some(p.irp().to_string());
                // Still ours? (A lease that ran out while we waited on the IRP is not.)
                if !ctx.db.extend_lease(job.id, owner, lease, p.irp()).await? {
                    continue;
                }
                resolve(ctx, &job, &data, calls).await?;
                tracing::info!(job_id = %job.id, irn = %data.irn, "in-doubt job resolved: the IRP has its IRN");
                let row = JobRow { irn: Some(data.irn.clone()), ..job.clone() };
                job_finding(finding::IN_DOUBT_RESOLVED, &row, json!({"ack_no": data.ack_no}))
            }
            Err(e) if e.class(Operation::GetByDoc) == Final::NotFound => {
                let Some(request) = job.request.clone() else {
                    ctx.db.release_in_doubt(job.id, owner, calls).await?;
                    let e = ErrorItem::worker(
                        "NO_STORED_REQUEST",
                        "the IRP has no IRN for this job and no invoice is stored to send again",
                    );
                    let f = job_finding(finding::IN_DOUBT_UNRESOLVED, &job, json!({"errors": [e]}));
                    if !ctx.db.add_run_findings(run.id, owner, &[f], lease).await? {
                        return Ok(Some(Step::LostLease));
                    }
                    continue;
                };
                if !ctx.db.requeue_job(job.id, owner, calls).await? {
                    continue;
                }
                let body =
                    json!({"gstin": job.gstin, "invoice": request, "request_id": format!("reconcile-{}", run.id)});
                if let Err(e) = ctx.publish_command(JobKind::IrnGenerate.routing_key(), &body).await {
                    ctx.db.unrequeue_job(job.id).await?;
                    tracing::warn!(job_id = %job.id, error = %e, "could not re-publish the in-doubt job's command");
                    return Ok(Some(Step::Retry(vec![ErrorItem::worker(
                        "REQUEUE_FAILED",
                        format!("could not publish irn.generate again: {e}"),
                    )])));
                }
                tracing::info!(job_id = %job.id, "in-doubt job re-queued: the IRP has no IRN for it");
                job_finding(finding::IN_DOUBT_REQUEUED, &job, json!({}))
            }
            Err(e) if e.class(Operation::GetByDoc) == Final::Transient => {
                ctx.db.release_in_doubt(job.id, owner, calls).await?;
                return Ok(Some(Step::Retry(e.to_error_items())));
            }
            Err(e) => {
                ctx.db.release_in_doubt(job.id, owner, calls).await?;
                tracing::warn!(job_id = %job.id, error = %e, "in-doubt job could not be looked up");
                job_finding(finding::IN_DOUBT_UNRESOLVED, &job, json!({"errors": e.to_error_items()}))
            }
        };
        if !ctx.db.add_run_findings(run.id, owner, &[f], lease).await? {
            return Ok(Some(Step::LostLease));
        }
    }
    Ok(None)
}

/// The IRP has the in-doubt job's IRN: store it (with the lookup's `calls` in its attempt log)
/// and report `irn.generated`.
async fn resolve(ctx: &Ctx, job: &JobRow, data: &IrnData, calls: Option<&Value>) -> Result<(), StoreError> {
    // The command that created the job is long gone: its ids are not stored, so the event goes
    // to einvoice.events only, like any result whose requester is unknown.
    let meta = CommandMeta { routing_key: JobKind::IrnGenerate.routing_key().into(), ..CommandMeta::default() };
    super::generate::store_generated(ctx, &meta, job, Box::new(data.clone()), false, calls).await
}

/// Sort key: kind (in [`finding::ALL`] order), GSTIN, document, IRN.
fn sort_key(f: &Value) -> (usize, String, String, String, String, String) {
    let s = |p: &str| f.pointer(p).map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
    let kind = f["kind"].as_str().unwrap_or_default();
    (
        finding::ALL.iter().position(|k| *k == kind).unwrap_or(usize::MAX),
        s("/gstin").unwrap_or_default(),
        s("/document/doc_type").unwrap_or_default(),
        s("/document/doc_number").unwrap_or_default(),
        s("/irn").unwrap_or_default(),
        s("/job_id").unwrap_or_default(),
    )
}

/// One finding per (kind, IRN or job): a day or a job settled twice (a resumed run) counts once.
fn dedupe(findings: Vec<Value>) -> Vec<Value> {
    let mut seen = BTreeSet::new();
    let mut out: Vec<Value> = findings
        .into_iter()
        .filter(|f| {
            let id = if f["job_id"].is_null() { f["irn"].to_string() } else { f["job_id"].to_string() };
            seen.insert((f["kind"].to_string(), id))
        })
        .collect();
    out.sort_by_key(sort_key);
    out
}

async fn complete(ctx: &Ctx, meta: &CommandMeta, run: &RunRow, owner: Uuid) -> Result<Step, StoreError> {
    let Some(stored) = ctx.db.reconcile_run(run.id).await? else {
        return Ok(Step::LostLease);
    };
    let mut findings: Vec<Value> = stored.findings.as_array().cloned().unwrap_or_default();
    findings.retain(|f| f["kind"] != finding::OURS_FINE);
    let fine = ctx.db.generated_jobs_in_range(&run.gstins, run.from_date, run.to_date).await?;
    let fine_total = fine.len();
    findings.extend(fine.iter().take(MAX_LISTED_FINE).map(|j| job_finding(finding::OURS_FINE, j, json!({}))));
    let findings = dedupe(findings);
    let count = |k: &str| findings.iter().filter(|f| f["kind"] == k).count();
    let errors = stored.errors.as_array().cloned().unwrap_or_default();
    let summary = json!({
        "gstins": run.gstins.len(),
        "days": days(run.from_date, run.to_date).count(),
        "rejected_known": count(finding::REJECTED_KNOWN),
        "rejected_unknown": count(finding::REJECTED_UNKNOWN),
        "ours_fine": fine_total,
        "in_doubt_resolved": count(finding::IN_DOUBT_RESOLVED),
        "in_doubt_requeued": count(finding::IN_DOUBT_REQUEUED),
        "in_doubt_unresolved": count(finding::IN_DOUBT_UNRESOLVED),
        "double_registration": count(finding::DOUBLE_REGISTRATION),
        "errors": errors.len(),
        "ours_fine_truncated": fine_total > MAX_LISTED_FINE,
    });
    let finished_at = Utc::now();
    let findings = Value::Array(findings);
    let data = completed_data(run, findings.clone(), summary.clone(), Value::Array(errors), finished_at);
    let ev = plain_event(meta, JobKind::ReconcileRejected.success_event(), data);
    if !ctx.db.complete_run(run.id, owner, &findings, &summary, finished_at, &ev).await? {
        return Ok(Step::LostLease);
    }
    tracing::info!(run_id = %run.id, %summary, "reconciliation run completed");
    Ok(Step::Completed)
}

/// The `reconcile.completed` data for a run.
fn completed_data(run: &RunRow, findings: Value, summary: Value, errors: Value, finished_at: DateTime<Utc>) -> Value {
    json!({
        "run_id": run.id,
        "tick": run.tick,
        "gstins": run.gstins,
        "from": dmy(run.from_date),
        "to": dmy(run.to_date),
        "started_at": run.started_at,
        "finished_at": finished_at,
        "summary": summary,
        "findings": findings,
        "errors": errors,
        "replayed": false,
    })
}
