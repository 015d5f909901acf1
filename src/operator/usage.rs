//! The API consumption report (issue 25): calls per GSTIN, per IRP endpoint, per India day, with
//! the cost at the configured price per call (`api_price_per_call`). One model for the console's
//! usage page, its CSV export and `einvoice-worker usage report`, so they always agree.
use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::config::Settings;
use crate::store::usage::{UsageQuery, UsageRow};
use crate::store::{Db, StoreError};
use crate::telemetry::usage::india_today;

/// Days shown when no range is given: the last 7, today included.
pub const DEFAULT_DAYS: i64 = 7;
/// The longest range one report covers.
pub const MAX_DAYS: i64 = 400;

/// One line of the report: a (day, GSTIN, IRP, endpoint) and its cost.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    #[serde(flatten)]
    pub row: UsageRow,
    /// The IRP's price per call, when configured.
    pub price_per_call: Option<Decimal>,
    /// `calls × price_per_call` (every call is billed, whatever its outcome).
    pub cost: Option<Decimal>,
}

/// Totals of a set of lines.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    pub ok: i64,
    pub error: i64,
    pub failed: i64,
    pub calls: i64,
    /// The cost of the priced calls (`None` when no line has a price).
    pub cost: Option<Decimal>,
    /// Calls to IRPs without a configured price: not in `cost`.
    pub unpriced_calls: i64,
}

impl Totals {
    fn add(&mut self, l: &Line) {
        self.ok += l.row.ok;
        self.error += l.row.error;
        self.failed += l.row.failed;
        self.calls += l.row.calls;
        match l.cost {
            Some(c) => self.cost = Some(self.cost.unwrap_or_default() + c),
            None => self.unpriced_calls += l.row.calls,
        }
    }
}

/// The report of India days `from..=to`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub lines: Vec<Line>,
    /// Per GSTIN, in GSTIN order.
    pub per_gstin: BTreeMap<String, Totals>,
    pub total: Totals,
}

impl Report {
    /// Price the rows with `settings`' `api_price_per_call` and add them up.
    pub fn new(from: NaiveDate, to: NaiveDate, rows: Vec<UsageRow>, settings: &Settings) -> Report {
        let lines: Vec<Line> = rows
            .into_iter()
            .map(|row| {
                let price = settings.price_per_call(&row.irp);
                let cost = price.map(|p| p * Decimal::from(row.calls));
                Line { row, price_per_call: price, cost }
            })
            .collect();
        let mut total = Totals::default();
        let mut per_gstin: BTreeMap<String, Totals> = BTreeMap::new();
        for l in &lines {
            total.add(l);
            per_gstin.entry(l.row.gstin.clone()).or_default().add(l);
        }
        Report { from, to, lines, per_gstin, total }
    }

    /// The report as CSV (a header line, then one line per row; the totals are the sums).
    pub fn csv(&self) -> String {
        let money = |d: Option<Decimal>| d.map(|d| d.to_string()).unwrap_or_default();
        let mut out = String::from("day,gstin,irp,endpoint,ok,error,failed,calls,price_per_call,cost\r\n");
        for l in &self.lines {
            let r = &l.row;
            // GSTINs, IRP names and endpoints are [A-Za-z0-9_-]: nothing to quote or neutralise
            // except a configured IRP name, which is quoted when it needs to be.
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{}\r\n",
                r.day,
                r.gstin,
                csv_field(&r.irp),
                r.endpoint,
                r.ok,
                r.error,
                r.failed,
                r.calls,
                money(l.price_per_call),
                money(l.cost)
            ));
        }
        out
    }
}

fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_string() };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The India-day range of `from`/`to` (`YYYY-MM-DD`, either may be empty): by default the last
/// [`DEFAULT_DAYS`] days up to `to` (today when empty). At most [`MAX_DAYS`] days.
pub fn range(from: &str, to: &str) -> Result<(NaiveDate, NaiveDate), String> {
    let day = |s: &str, name: &str| -> Result<Option<NaiveDate>, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| format!("{name} '{s}' is not a date (YYYY-MM-DD)"))
    };
    let to = day(to, "to")?.unwrap_or_else(india_today);
    let from = day(from, "from")?.unwrap_or(to - Duration::days(DEFAULT_DAYS - 1));
    if from > to {
        return Err(format!("from {from} is after to {to}"));
    }
    if (to - from).num_days() + 1 > MAX_DAYS {
        return Err(format!("{from} to {to} is more than {MAX_DAYS} days; narrow the range"));
    }
    Ok((from, to))
}

/// Read and price the report.
pub async fn report(db: &Db, settings: &Settings, q: &UsageQuery) -> Result<Report, StoreError> {
    let rows = db.api_usage(q).await?;
    Ok(Report::new(q.from, q.to, rows, settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(gstin: &str, irp: &str, endpoint: &str, ok: i64, error: i64) -> UsageRow {
        UsageRow {
            day: NaiveDate::from_ymd_opt(2026, 12, 7).unwrap(),
            gstin: gstin.into(),
            irp: irp.into(),
            endpoint: endpoint.into(),
            ok,
            error,
            failed: 0,
            calls: ok + error,
        }
    }

    #[test]
    fn cost_is_calls_times_the_price_in_exact_decimals() {
        let s = Settings::from_toml("[api_price_per_call]\nwhitebooks = \"0.1\"\n").unwrap();
        let rows = vec![
            row("27AAKFU7303M1ZP", "whitebooks", "generate", 3, 0),
            row("29AAGCP4821K1Z3", "whitebooks", "auth", 1, 0),
            row("29AAGCP4821K1Z3", "whitebooks", "generate", 2, 1),
            row("29AAGCP4821K1Z3", "NIC1", "generate", 5, 0),
        ];
        let r = Report::new(rows[0].day, rows[0].day, rows, &s);
        let d = |t: &str| t.parse::<Decimal>().unwrap();
        // 0.1 × 3 is exactly 0.3 (a float would say 0.30000000000000004).
        assert_eq!(r.lines[0].cost, Some(d("0.3")));
        assert_eq!(r.lines[3].cost, None);
        assert_eq!(r.total.calls, 12);
        assert_eq!(r.total.cost, Some(d("0.7")));
        assert_eq!(r.total.unpriced_calls, 5);
        assert_eq!(r.per_gstin.len(), 2);
        assert_eq!(r.per_gstin["29AAGCP4821K1Z3"].calls, 9);
        assert_eq!(r.per_gstin["29AAGCP4821K1Z3"].error, 1);
        let csv = r.csv();
        assert!(csv.starts_with("day,gstin,irp,endpoint,ok,error,failed,calls,price_per_call,cost\r\n"), "{csv}");
        assert!(csv.contains("2026-12-07,29AAGCP4821K1Z3,whitebooks,generate,2,1,0,3,0.1,0.3\r\n"), "{csv}");
        assert!(csv.contains("2026-12-07,29AAGCP4821K1Z3,NIC1,generate,5,0,0,5,,\r\n"), "{csv}");
    }

    #[test]
    fn ranges_default_to_the_last_week_and_are_bounded() {
        let (from, to) = range("", "2026-12-07").unwrap();
        assert_eq!((from.to_string(), to.to_string()), ("2026-12-01".into(), "2026-12-07".into()));
        assert_eq!(range("", "").unwrap().1, india_today());
        assert!(range("2026-12-08", "2026-12-07").is_err());
        assert!(range("07/12/2026", "").unwrap_err().contains("not a date"));
        assert!(range("2020-01-01", "2026-12-07").unwrap_err().contains("more than"));
    }
}
