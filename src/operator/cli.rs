//! The operator's subcommands as the binary parses them, and their output: a table for people
//! by default, `--json` for scripts. Exit codes: see [`super::OpError::exit_code`].
use chrono::Utc;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::{OpError, Select};
use crate::config::Settings;
use crate::store::ops::JobFilter;
use crate::store::Db;

#[derive(Subcommand)]
pub enum JobsCmd {
    /// Jobs by state, newest first.
    List {
        /// pending | in_flight | in_doubt | generated | rejected | failed | cancelled
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        gstin: Option<String>,
        /// Updated since: an RFC 3339 time or an age (30m, 6h, 7d).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[command(flatten)]
        out: Output,
    },
    /// One job: state, attempts, IRN, last errors, IRP, and the events sent for it.
    Show {
        /// A job id, or a document key GSTIN/TYPE/NUMBER/YEAR (e.g. 29AAGCP4821K1Z3/INV/R7-1/2026-27).
        job: String,
        #[command(flatten)]
        out: Output,
    },
    /// Send a failed or in-doubt job again, through the worker's lookup-first path.
    Retry {
        /// A job id or document key.
        job: String,
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Subcommand)]
pub enum DeadCmd {
    /// Show dead-lettered messages (they stay in the queue).
    List {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        out: Output,
    },
    /// Publish dead-lettered commands again (after fixing what made them fail); each is removed
    /// from the dead-letter queue once the broker confirmed its copy.
    Replay {
        /// Only the message with this AMQP message id.
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        message_id: Option<String>,
        /// Every dead-lettered message (at most --limit).
        #[arg(long)]
        all: bool,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Subcommand)]
pub enum GstinCmd {
    /// GSTINs paused now, with the reason.
    Paused {
        #[command(flatten)]
        out: Output,
    },
    /// End a GSTIN's pause now (after fixing its credentials or configuration).
    Unpause {
        gstin: String,
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Args, Clone, Copy)]
pub struct Output {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl Output {
    fn print<T: Serialize>(self, value: &T, human: impl FnOnce(&T) -> String) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value).expect("serialisable"));
        } else {
            print!("{}", human(value));
        }
    }
}

async fn db(settings: &Settings) -> Result<Db, OpError> {
    use secrecy::ExposeSecret;
    let db = Db::with_ca(settings.database_url.expose_secret(), 1, settings.database_ca_file.as_deref())?;
    db.ping().await?;
    Ok(db)
}

fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

pub async fn jobs(settings: &Settings, cmd: JobsCmd) -> Result<(), OpError> {
    let db = db(settings).await?;
    match cmd {
        JobsCmd::List { status, gstin, since, limit, out } => {
            let since = since.map(|s| super::parse_since(&s, Utc::now())).transpose()?;
            let filter = JobFilter { status, gstin, since, limit };
            let jobs = super::jobs_list(&db, &filter).await?;
            out.print(&jobs, |jobs| {
                let mut s = format!(
                    "{:<36}  {:<10}  {:<15}  {:<28}  {:>3}  {:<20}  {}\n",
                    "JOB ID", "STATUS", "GSTIN", "DOCUMENT", "TRY", "UPDATED", "LAST ERROR / IRN"
                );
                for j in jobs {
                    let doc = format!("{}/{}/{}", j.doc_type, j.doc_number, j.financial_year);
                    let tail = j.irn.clone().or_else(|| j.last_error.clone()).unwrap_or_default();
                    s += &format!(
                        "{:<36}  {:<10}  {:<15}  {:<28}  {:>3}  {:<20}  {}\n",
                        j.job_id,
                        j.status,
                        j.gstin,
                        doc,
                        j.attempts,
                        j.updated_at.format("%Y-%m-%d %H:%M:%S"),
                        tail
                    );
                }
                s + &format!("{} job(s)\n", jobs.len())
            });
            if jobs.is_empty() {
                return Err(OpError::NotFound("no job matches".into()));
            }
        }
        JobsCmd::Show { job, out } => {
            let d = super::jobs_show(&db, &job).await?;
            out.print(&d, |d| {
                let j = &d.summary;
                let mut s = format!(
                    "job        {}\nstatus     {}\ndocument   {} {}/{}/{} dated {}\nirp        {}\nattempts   {} (first {})\nirn        {}\nack        {} {}\n",
                    j.job_id,
                    j.status,
                    j.gstin,
                    j.doc_type,
                    j.doc_number,
                    j.financial_year,
                    opt(&j.doc_date),
                    opt(&j.irp),
                    j.attempts,
                    d.first_attempt_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into()),
                    opt(&j.irn),
                    opt(&j.ack_no),
                    opt(&d.ack_dt),
                );
                if let Some(e) = &d.errors {
                    s += &format!("errors     {e}\n");
                }
                s += "events\n";
                for e in &d.events {
                    let published = e.published_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "not yet".into());
                    s += &format!("  {:<22} {}  published {published}\n", e.event_type, e.created_at.to_rfc3339());
                }
                s
            });
        }
        JobsCmd::Retry { job, out } => {
            let r = super::jobs_retry(&db, settings, &job).await?;
            out.print(&r, |r| {
                format!(
                    "job {} ({}) sent again as message {} (request id {}): {}\n",
                    r.job_id, r.previous_status, r.message_id, r.request_id, r.path
                )
            });
        }
    }
    Ok(())
}

pub async fn dead(settings: &Settings, cmd: DeadCmd) -> Result<(), OpError> {
    let (limit, select, out) = match &cmd {
        DeadCmd::List { limit, out } => (*limit, None, *out),
        DeadCmd::Replay { message_id, all: _, limit, out } => {
            (*limit, Some(message_id.as_deref().map_or(Select::All, Select::MessageId)), *out)
        }
    };
    let replaying = select.is_some();
    let msgs = super::dead(settings, limit, select).await?;
    out.print(&msgs, |msgs| {
        let mut s = String::new();
        for m in msgs {
            s += &format!(
                "{:<24} message {:<36} reason {:<15} {} bytes  {}\n",
                m.routing_key,
                opt(&m.message_id),
                opt(&m.reason),
                m.bytes,
                m.preview
            );
        }
        s + &format!("{} message(s) {}\n", msgs.len(), if replaying { "published again" } else { "dead-lettered" })
    });
    if msgs.is_empty() {
        return Err(OpError::NotFound(
            if replaying { "no dead-lettered message matched" } else { "the dead-letter queue is empty" }.into(),
        ));
    }
    Ok(())
}

pub async fn gstin(settings: &Settings, cmd: GstinCmd) -> Result<(), OpError> {
    let db = db(settings).await?;
    match cmd {
        GstinCmd::Paused { out } => {
            let pauses = db.pauses().await?;
            out.print(&pauses, |ps| {
                let mut s = String::new();
                for p in ps {
                    s += &format!("{}  paused until {}  {}\n", p.gstin, p.paused_until.to_rfc3339(), p.reason);
                }
                s + &format!("{} GSTIN(s) paused\n", ps.len())
            });
        }
        GstinCmd::Unpause { gstin, out } => {
            let gstin = gstin.trim().to_ascii_uppercase();
            if !db.unpause_gstin(&gstin).await? {
                return Err(OpError::NotFound(format!("GSTIN {gstin} is not paused")));
            }
            tracing::info!(gstin, "operator ended the GSTIN's pause");
            out.print(&serde_json::json!({"gstin": gstin, "unpaused": true}), |_| format!("{gstin} unpaused\n"));
        }
    }
    Ok(())
}

pub async fn prune(settings: &Settings, out: Output) -> Result<(), OpError> {
    let db = db(settings).await?;
    let p =
        crate::runtime::retention::prune_once(&db, settings.outbox_retention_days, settings.job_retention_days).await?;
    out.print(&p, |p| {
        format!(
            "deleted: {} outbox events, {} jobs, {} QR images, {} e-way bills, {} reconciliation runs\n",
            p.outbox, p.jobs, p.qr_png, p.ewaybills, p.reconcile_runs
        )
    });
    Ok(())
}
