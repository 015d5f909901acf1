//! `api_calls_daily`: IRP API consumption per (India day, GSTIN, IRP, endpoint, outcome).
//!
//! Written by [`Db::add_api_calls`], one upsert per flush of a worker's in-memory counts
//! ([`crate::telemetry::usage`]); read by the console's usage page and `usage report`.
use std::collections::HashMap;

use chrono::NaiveDate;
use serde::Serialize;

use super::{Db, StoreError};
use crate::telemetry::usage::{CallKey, CallOutcome};

/// The calls of one (day, GSTIN, IRP, endpoint), by outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    pub day: NaiveDate,
    pub gstin: String,
    pub irp: String,
    pub endpoint: String,
    pub ok: i64,
    pub error: i64,
    pub failed: i64,
    /// Every call, whatever its outcome (`ok + error + failed`).
    pub calls: i64,
}

/// Which rows to read: India days `from..=to`, one GSTIN or all, limited to `allowed` (a
/// console user restricted to GSTINs) when given.
#[derive(Debug, Clone)]
pub struct UsageQuery {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub gstin: Option<String>,
    pub allowed_gstins: Option<Vec<String>>,
}

impl Db {
    /// Add `counts` to the table in one statement (a row per key; existing rows add up).
    pub async fn add_api_calls(&self, counts: &HashMap<CallKey, u64>) -> Result<(), StoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        let mut days = Vec::with_capacity(counts.len());
        let (mut gstins, mut irps, mut endpoints, mut outcomes, mut calls) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (k, n) in counts {
            days.push(k.day);
            gstins.push(k.gstin.as_str());
            irps.push(k.irp.as_str());
            endpoints.push(k.endpoint);
            outcomes.push(k.outcome.as_str());
            calls.push(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        self.client()
            .await?
            .execute(
                "INSERT INTO api_calls_daily AS a (day, gstin, irp, endpoint, outcome, calls)
                 SELECT * FROM unnest($1::date[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[])
                 ON CONFLICT (day, gstin, irp, endpoint, outcome) DO UPDATE SET calls = a.calls + EXCLUDED.calls",
                &[&days, &gstins, &irps, &endpoints, &outcomes, &calls],
            )
            .await?;
        Ok(())
    }

    /// The calls of the query's days, per day, GSTIN, IRP and endpoint (in that order).
    pub async fn api_usage(&self, q: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        let [ok, error, failed] = CallOutcome::ALL.map(CallOutcome::as_str);
        let rows = self
            .client()
            .await?
            .query(
                "SELECT day, gstin, irp, endpoint,
                        COALESCE(sum(calls) FILTER (WHERE outcome = $5), 0)::int8,
                        COALESCE(sum(calls) FILTER (WHERE outcome = $6), 0)::int8,
                        COALESCE(sum(calls) FILTER (WHERE outcome = $7), 0)::int8,
                        sum(calls)::int8
                 FROM api_calls_daily
                 WHERE day BETWEEN $1 AND $2 AND ($3::text IS NULL OR gstin = $3)
                   AND ($4::text[] IS NULL OR gstin = ANY($4))
                 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
                &[&q.from, &q.to, &q.gstin, &q.allowed_gstins, &ok, &error, &failed],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| UsageRow {
                day: r.get(0),
                gstin: r.get(1),
                irp: r.get(2),
                endpoint: r.get(3),
                ok: r.get(4),
                error: r.get(5),
                failed: r.get(6),
                calls: r.get(7),
            })
            .collect())
    }

    /// Delete the counts of days before `before` (retention); returns the rows deleted.
    pub async fn prune_api_calls(&self, before: NaiveDate) -> Result<u64, StoreError> {
        Ok(self.client().await?.execute("DELETE FROM api_calls_daily WHERE day < $1", &[&before]).await?)
    }
}
