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
        /// pending | in_flight | in_doubt | generated | rejected | failed | cancelled | registered_outside | cancelled_outside
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
    /// Send a failed, in-doubt or refused (rejected) job again, through the worker's lookup-first path.
    Retry {
        /// A job id or document key.
        job: String,
        #[command(flatten)]
        out: Output,
    },
    /// Mark a job registered or cancelled outside the worker (the business did it on the portal by
    /// hand): it is never claimed, retried or sent to the IRP again. Audited as in the console.
    MarkOutside {
        /// A job id or document key.
        job: String,
        /// registered (a pending, in_doubt, failed or rejected job) | cancelled (also a generated
        /// or registered_outside one).
        #[arg(long)]
        outcome: String,
        /// Why, for the audit log (required, at most 500 characters).
        #[arg(long)]
        reason: String,
        /// The IRN the portal gave (64 hex characters).
        #[arg(long, default_value = "")]
        irn: String,
        /// The ack number (digits).
        #[arg(long, default_value = "")]
        ack_no: String,
        /// The ack date, YYYY-MM-DD HH:MM:SS (India time).
        #[arg(long, default_value = "")]
        ack_dt: String,
        /// The e-way bill number (12 digits).
        #[arg(long, default_value = "")]
        ewb_no: String,
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
    /// Add a GSTIN to the database; every running worker serves it within seconds. The password
    /// and client secret come from --password-file/--client-secret-file or standard input (one a
    /// line), never from the command line.
    Add {
        gstin: String,
        #[command(flatten)]
        fields: Box<super::gstins::GstinFields>,
        #[command(flatten)]
        secrets: super::gstins::SecretSources,
        /// Store it disabled (`gstin enable` turns it on).
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        out: Output,
    },
    /// Change a database GSTIN's settings (not its secrets); jobs in flight keep the old ones.
    Update {
        gstin: String,
        #[command(flatten)]
        fields: Box<super::gstins::GstinFields>,
        #[command(flatten)]
        out: Output,
    },
    /// Replace a database GSTIN's API password (from --password-file or standard input): its
    /// stored tokens are dropped, so the next token is asked for with the new password.
    RotatePassword {
        gstin: String,
        /// The failover IRP whose password changes (default: the primary IRP's).
        #[arg(long)]
        irp: Option<String>,
        /// Replace the client secret too (from --client-secret-file, or the next line of input).
        #[arg(long)]
        client_secret: bool,
        #[command(flatten)]
        secrets: super::gstins::SecretSources,
        #[command(flatten)]
        out: Output,
    },
    /// Stop serving a database GSTIN: its new commands are answered with GSTIN_DISABLED.
    Disable {
        gstin: String,
        #[command(flatten)]
        out: Output,
    },
    /// Serve a disabled database GSTIN again.
    Enable {
        gstin: String,
        #[command(flatten)]
        out: Output,
    },
    /// The GSTINs in the database and their settings (never a secret), and the file's GSTINs.
    List {
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
        JobsCmd::MarkOutside { job, outcome, reason, irn, ack_no, ack_dt, ewb_no, out } => {
            let args = super::outside::MarkArgs { outcome, reason, irn, ack_no, ack_dt, ewb_no };
            let r = super::outside::jobs_mark_outside(&db, &job, &args).await?;
            out.print(&r, |r| {
                format!("job {} ({}) marked {} (audit action {})\n", r.job_id, r.previous_status, r.status, r.action_id)
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

/// The IRP names of a stored section (its settings without the secrets).
#[derive(serde::Deserialize)]
struct GstinConfigNames {
    provider: crate::config::ProviderKind,
    #[serde(default)]
    irp: Option<String>,
    #[serde(default)]
    failover: Vec<GstinConfigNames>,
}

impl GstinConfigNames {
    fn name(&self) -> String {
        match (&self.irp, self.provider) {
            (Some(n), _) => n.clone(),
            (None, crate::config::ProviderKind::Nic) => "NIC1".into(),
            (None, crate::config::ProviderKind::Whitebooks) => "whitebooks".into(),
        }
    }
    fn names(&self) -> Vec<String> {
        std::iter::once(self.name()).chain(self.failover.iter().map(Self::name)).collect()
    }
}

async fn set_enabled(settings: &Settings, db: &Db, gstin: &str, enable: bool, out: Output) -> Result<(), OpError> {
    let v = super::gstins::set_enabled(settings, db, gstin, enable).await?;
    let gstin = gstin.trim().to_ascii_uppercase();
    let what = if enable { "enabled" } else { "disabled" };
    tracing::info!(gstin, version = v, what, "operator changed a GSTIN");
    out.print(&serde_json::json!({"gstin": gstin, "version": v, "enabled": enable}), |_| {
        format!("{gstin} {what}, version {v}\n")
    });
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
        GstinCmd::Add { gstin, fields, secrets, disabled, out } => {
            let v = super::gstins::add(settings, &db, &gstin, &fields, &secrets, disabled).await?;
            let gstin = gstin.trim().to_ascii_uppercase();
            tracing::info!(gstin, version = v, "operator added a GSTIN");
            let what = if disabled { "added (disabled)" } else { "added" };
            out.print(&serde_json::json!({"gstin": gstin, "version": v, "enabled": !disabled}), |_| {
                format!("{gstin} {what}, version {v}\n")
            });
        }
        GstinCmd::Update { gstin, fields, out } => {
            let v = super::gstins::update(settings, &db, &gstin, &fields).await?;
            let gstin = gstin.trim().to_ascii_uppercase();
            tracing::info!(gstin, version = v, "operator updated a GSTIN");
            out.print(&serde_json::json!({"gstin": gstin, "version": v}), |_| {
                format!("{gstin} updated, version {v}\n")
            });
        }
        GstinCmd::RotatePassword { gstin, irp, client_secret, secrets, out } => {
            let v =
                super::gstins::rotate_password(settings, &db, &gstin, irp.as_deref(), &secrets, client_secret).await?;
            let gstin = gstin.trim().to_ascii_uppercase();
            tracing::info!(gstin, version = v, "operator rotated a GSTIN's password");
            out.print(&serde_json::json!({"gstin": gstin, "version": v}), |_| {
                format!("{gstin}: new password stored (version {v}); its tokens were dropped\n")
            });
        }
        GstinCmd::Disable { gstin, out } => set_enabled(settings, &db, &gstin, false, out).await?,
        GstinCmd::Enable { gstin, out } => set_enabled(settings, &db, &gstin, true, out).await?,
        GstinCmd::List { out } => {
            let rows = db.gstins_list().await?;
            let file: Vec<&String> = settings.gstins.keys().collect();
            let value = serde_json::json!({"database": rows, "configuration_file": file});
            out.print(&value, |_| {
                let mut s = format!(
                    "{:<15}  {:<8}  {:<10}  {:<24}  {:>7}  {:<20}  {}\n",
                    "GSTIN", "STATE", "PROVIDER", "IRPS", "VERSION", "UPDATED", "UPI ID"
                );
                for r in &rows {
                    let t = |k: &str| r.settings.get(k).and_then(|v| v.as_str()).unwrap_or("-").to_string();
                    let irps: Vec<String> = serde_json::from_value::<GstinConfigNames>(r.settings.clone())
                        .map(|n| n.names())
                        .unwrap_or_default();
                    s += &format!(
                        "{:<15}  {:<8}  {:<10}  {:<24}  {:>7}  {:<20}  {}\n",
                        r.gstin,
                        if r.enabled { "enabled" } else { "disabled" },
                        t("provider"),
                        irps.join("+"),
                        r.version,
                        r.updated_at.format("%Y-%m-%d %H:%M:%S"),
                        t("upi_id"),
                    );
                }
                for g in &file {
                    s += &format!("{g:<15}  {:<8}  (configuration file: wins over the database)\n", "file");
                }
                s + &format!("{} GSTIN(s) in the database, {} in the configuration\n", rows.len(), file.len())
            });
        }
    }
    Ok(())
}

pub async fn prune(settings: &Settings, out: Output) -> Result<(), OpError> {
    let db = db(settings).await?;
    let p = crate::runtime::retention::prune_once(
        &db,
        settings.outbox_retention_days,
        settings.job_retention_days,
        settings.usage_retention_days,
    )
    .await?;
    out.print(&p, |p| {
        format!(
            "deleted: {} outbox events, {} jobs, {} QR images, {} e-way bills, {} reconciliation runs\n",
            p.outbox, p.jobs, p.qr_png, p.ewaybills, p.reconcile_runs
        )
    });
    Ok(())
}
