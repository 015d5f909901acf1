//! E-way bill rows: what the worker knows of each e-way bill, and so of each IRN's e-way bill.
//!
//! Every change is written in the same transaction as the events that report it (the outbox),
//! so a step of the `irn.cancel` saga is either done and announced, or neither.
use serde_json::Value;
use tokio_postgres::Row;

use super::outbox::{self, OutboxEvent};
use super::{Db, StoreError};

pub const ACTIVE: &str = "active";
pub const CANCELLED: &str = "cancelled";

#[derive(Debug, Clone, PartialEq)]
pub struct EwbRow {
    pub ewb_no: String,
    pub gstin: String,
    pub irn: Option<String>,
    pub ewb_date: Option<String>,
    pub valid_till: Option<String>,
    pub status: String,
    pub cancel_date: Option<String>,
}

impl EwbRow {
    pub fn is_active(&self) -> bool {
        self.status == ACTIVE
    }
}

const COLUMNS: &str = "ewb_no, gstin, irn, ewb_date, valid_till, status, cancel_date";

impl From<&Row> for EwbRow {
    fn from(r: &Row) -> Self {
        EwbRow {
            ewb_no: r.get(0),
            gstin: r.get(1),
            irn: r.get(2),
            ewb_date: r.get(3),
            valid_till: r.get(4),
            status: r.get(5),
            cancel_date: r.get(6),
        }
    }
}

/// A new or changed e-way bill.
#[derive(Debug, Clone)]
pub struct EwbUpsert<'a> {
    pub ewb_no: &'a str,
    pub gstin: &'a str,
    pub irn: Option<&'a str>,
    pub ewb_date: Option<&'a str>,
    pub valid_till: Option<&'a str>,
    pub response: Option<&'a Value>,
}

impl Db {
    pub async fn ewaybill(&self, ewb_no: &str) -> Result<Option<EwbRow>, StoreError> {
        let c = self.client().await?;
        let row = c.query_opt(&format!("SELECT {COLUMNS} FROM ewaybills WHERE ewb_no = $1"), &[&ewb_no]).await?;
        Ok(row.as_ref().map(EwbRow::from))
    }

    /// The IRN's latest e-way bill: one made after the IRN (this table), else one made with it
    /// (`EwbDtls` in `irn.generate`, kept on the job row), which is active unless recorded here
    /// as cancelled.
    pub async fn ewaybill_for_irn(&self, irn: &str) -> Result<Option<EwbRow>, StoreError> {
        let c = self.client().await?;
        let q = format!("SELECT {COLUMNS} FROM ewaybills WHERE irn = $1 ORDER BY created_at DESC LIMIT 1");
        if let Some(r) = c.query_opt(&q, &[&irn]).await? {
            return Ok(Some(EwbRow::from(&r)));
        }
        let row = c
            .query_opt(
                "SELECT ewb_no, gstin, irn, ewb_dt, ewb_valid_till FROM jobs
                 WHERE irn = $1 AND ewb_no IS NOT NULL AND ewb_no <> '' LIMIT 1",
                &[&irn],
            )
            .await?;
        Ok(row.map(|r| EwbRow {
            ewb_no: r.get(0),
            gstin: r.get(1),
            irn: r.get(2),
            ewb_date: r.get(3),
            valid_till: r.get(4),
            status: ACTIVE.into(),
            cancel_date: None,
        }))
    }

    /// Record an active e-way bill (made, or found at the IRP) with its events.
    pub async fn record_ewaybill(&self, e: &EwbUpsert<'_>, events: &[OutboxEvent]) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "INSERT INTO ewaybills (ewb_no, gstin, irn, ewb_date, valid_till, status, response)
             VALUES ($1, $2, $3, $4, $5, 'active', $6)
             ON CONFLICT (ewb_no) DO UPDATE SET
                irn = COALESCE(ewaybills.irn, EXCLUDED.irn),
                ewb_date = COALESCE(EXCLUDED.ewb_date, ewaybills.ewb_date),
                valid_till = COALESCE(EXCLUDED.valid_till, ewaybills.valid_till),
                response = COALESCE(EXCLUDED.response, ewaybills.response),
                updated_at = now()",
            &[&e.ewb_no, &e.gstin, &e.irn, &e.ewb_date, &e.valid_till, &e.response],
        )
        .await?;
        for ev in events {
            outbox::insert(&tx, ev).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Record an e-way bill as cancelled (creating its row if only the job row knew it), with
    /// its events: one step of the cancel saga, done and announced together.
    pub async fn cancel_ewaybill(
        &self,
        e: &EwbUpsert<'_>,
        cancel_date: &str,
        events: &[OutboxEvent],
    ) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "INSERT INTO ewaybills (ewb_no, gstin, irn, ewb_date, valid_till, status, cancel_date)
             VALUES ($1, $2, $3, $4, $5, 'cancelled', $6)
             ON CONFLICT (ewb_no) DO UPDATE SET status = 'cancelled',
                cancel_date = COALESCE(ewaybills.cancel_date, EXCLUDED.cancel_date),
                irn = COALESCE(ewaybills.irn, EXCLUDED.irn), updated_at = now()",
            &[&e.ewb_no, &e.gstin, &e.irn, &e.ewb_date, &e.valid_till, &cancel_date],
        )
        .await?;
        for ev in events {
            outbox::insert(&tx, ev).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Record a vehicle update (the row is created if only the job row knew the e-way bill).
    pub async fn ewaybill_vehicle_updated(
        &self,
        e: &EwbUpsert<'_>,
        vehicle_no: &str,
        updated_at: &str,
        events: &[OutboxEvent],
    ) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "INSERT INTO ewaybills (ewb_no, gstin, irn, ewb_date, valid_till, status, vehicle_no, vehicle_updated_at)
             VALUES ($1, $2, $3, $4, $5, 'active', $6, $7)
             ON CONFLICT (ewb_no) DO UPDATE SET vehicle_no = EXCLUDED.vehicle_no,
                vehicle_updated_at = EXCLUDED.vehicle_updated_at,
                valid_till = COALESCE(EXCLUDED.valid_till, ewaybills.valid_till), updated_at = now()",
            &[&e.ewb_no, &e.gstin, &e.irn, &e.ewb_date, &e.valid_till, &vehicle_no, &updated_at],
        )
        .await?;
        for ev in events {
            outbox::insert(&tx, ev).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
