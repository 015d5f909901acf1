//! `usage report`: the IRP API consumption per GSTIN, endpoint and India day, with the cost at
//! the configured price per call: the numbers of the console's usage page
//! ([`crate::operator::usage`]).
use clap::{Subcommand, ValueEnum};

use crate::config::Settings;
use crate::operator::usage::{range, report, Report, Totals};
use crate::operator::OpError;
use crate::store::usage::UsageQuery;
use crate::store::Db;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UsageFormat {
    /// A table for people, with totals.
    Text,
    /// The console's CSV export.
    Csv,
    /// One JSON document: lines, totals per GSTIN and overall.
    Json,
}

#[derive(Subcommand)]
pub enum UsageCmd {
    /// IRP calls per India day, GSTIN, IRP and endpoint (by outcome: ok, error, failed), with the
    /// cost at `api_price_per_call`. Counts reach the table every `usage_flush_secs`.
    Report {
        /// First India day, YYYY-MM-DD (default: six days before --to).
        #[arg(long, default_value = "")]
        from: String,
        /// Last India day, inclusive, YYYY-MM-DD (default: today in India).
        #[arg(long, default_value = "")]
        to: String,
        /// Only this GSTIN.
        #[arg(long)]
        gstin: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: UsageFormat,
    },
}

pub async fn usage(settings: &Settings, cmd: UsageCmd) -> Result<(), OpError> {
    use secrecy::ExposeSecret;
    let UsageCmd::Report { from, to, gstin, format } = cmd;
    let (from, to) = range(&from, &to).map_err(OpError::Usage)?;
    let gstin = gstin.map(|g| g.trim().to_ascii_uppercase()).filter(|g| !g.is_empty());
    let db = Db::with_ca(settings.database_url.expose_secret(), 1, settings.database_ca_file.as_deref())?;
    let r = report(&db, settings, &UsageQuery { from, to, gstin, allowed_gstins: None }).await?;
    match format {
        UsageFormat::Csv => print!("{}", r.csv()),
        UsageFormat::Json => println!("{}", serde_json::to_string_pretty(&r).expect("serialisable")),
        UsageFormat::Text => print!("{}", text(&r)),
    }
    Ok(())
}

fn cost(t: &Totals) -> String {
    t.cost.map(|c| c.to_string()).unwrap_or_else(|| "-".into())
}

/// The report as aligned columns, then the totals per GSTIN and overall.
pub fn text(r: &Report) -> String {
    let mut out = format!("IRP API calls, {} to {} (India days)\n", r.from, r.to);
    if r.lines.is_empty() {
        out.push_str("no calls\n");
        return out;
    }
    out.push_str(&format!(
        "{:<10}  {:<15}  {:<12}  {:<28}  {:>8}  {:>8}  {:>8}  {:>8}  {:>10}\n",
        "day", "gstin", "irp", "endpoint", "calls", "ok", "error", "failed", "cost"
    ));
    for l in &r.lines {
        let x = &l.row;
        out.push_str(&format!(
            "{:<10}  {:<15}  {:<12}  {:<28}  {:>8}  {:>8}  {:>8}  {:>8}  {:>10}\n",
            x.day.to_string(),
            x.gstin,
            x.irp,
            x.endpoint,
            x.calls,
            x.ok,
            x.error,
            x.failed,
            l.cost.map(|c| c.to_string()).unwrap_or_else(|| "-".into())
        ));
    }
    out.push('\n');
    for (g, t) in r.per_gstin.iter().map(|(g, t)| (g.as_str(), t)).chain([("total", &r.total)]) {
        out.push_str(&format!(
            "{:<15}  calls {}  ok {}  error {}  failed {}  cost {}\n",
            g,
            t.calls,
            t.ok,
            t.error,
            t.failed,
            cost(t)
        ));
    }
    if r.total.unpriced_calls > 0 && r.total.cost.is_some() {
        out.push_str(&format!(
            "{} calls went to IRPs without api_price_per_call: not in the cost\n",
            r.total.unpriced_calls
        ));
    }
    out
}
