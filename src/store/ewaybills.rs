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

    /// What `ewaybill.extend` checks beyond the row: the distance the e-way bill was made for
    /// and its current transporter, when known.
    pub async fn ewaybill_extras(&self, ewb_no: &str) -> Result<(Option<i64>, Option<String>), StoreError> {
        let c = self.client().await?;
        let row =
            c.query_opt("SELECT distance_km, transporter_id FROM ewaybills WHERE ewb_no = $1", &[&ewb_no]).await?;
        Ok(row.map(|r| (r.get(0), r.get(1))).unwrap_or((None, None)))
    }

    /// Record the distance and transporter an e-way bill was made with (after `record_ewaybill`).
    pub async fn set_ewaybill_transport(
        &self,
        ewb_no: &str,
        distance_km: Option<i64>,
        transporter_id: Option<&str>,
    ) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "UPDATE ewaybills SET distance_km = COALESCE($2, distance_km),
                transporter_id = COALESCE($3, transporter_id), updated_at = now() WHERE ewb_no = $1",
            &[&ewb_no, &distance_km, &transporter_id],
        )
        .await?;
        Ok(())
    }

    /// Record an extension (the row is created if only the job row knew the e-way bill).
    pub async fn ewaybill_extended(
        &self,
        e: &EwbUpsert<'_>,
        extended_at: &str,
        events: &[OutboxEvent],
    ) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "INSERT INTO ewaybills (ewb_no, gstin, irn, ewb_date, valid_till, status, extended_at)
             VALUES ($1, $2, $3, $4, $5, 'active', $6)
             ON CONFLICT (ewb_no) DO UPDATE SET extended_at = EXCLUDED.extended_at,
                valid_till = COALESCE(EXCLUDED.valid_till, ewaybills.valid_till), updated_at = now()",
            &[&e.ewb_no, &e.gstin, &e.irn, &e.ewb_date, &e.valid_till, &extended_at],
        )
        .await?;
        for ev in events {
            outbox::insert(&tx, ev).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Record a new transporter (the row is created if only the job row knew the e-way bill).
    pub async fn ewaybill_transporter_updated(
        &self,
        e: &EwbUpsert<'_>,
        transporter_id: &str,
        events: &[OutboxEvent],
    ) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "INSERT INTO ewaybills (ewb_no, gstin, irn, ewb_date, valid_till, status, transporter_id)
             VALUES ($1, $2, $3, $4, $5, 'active', $6)
             ON CONFLICT (ewb_no) DO UPDATE SET transporter_id = EXCLUDED.transporter_id, updated_at = now()",
            &[&e.ewb_no, &e.gstin, &e.irn, &e.ewb_date, &e.valid_till, &transporter_id],
        )
        .await?;
        for ev in events {
            outbox::insert(&tx, ev).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A validity read from the portal (`ewaybill.get`): another party may have extended it.
    pub async fn refresh_ewaybill_validity(&self, ewb_no: &str, valid_till: &str) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "UPDATE ewaybills SET valid_till = $2, updated_at = now() WHERE ewb_no = $1 AND valid_till IS DISTINCT FROM $2",
            &[&ewb_no, &valid_till],
        )
        .await?;
        Ok(())
    }

    /// Active e-way bills whose validity ends after `now_ist` and by `until_ist` (both
    /// `yyyy-MM-dd HH:mm:ss`, India time) and that were not yet warned about for that validity,
    /// each marked warned in the same transaction as its `ewaybill.expiring` event (`event_for`
    /// builds it), so two workers never warn twice. At most `limit` per call.
    /// `until_ist`: the latest validity any GSTIN is warned about now; `default_until_ist` the
    /// one for GSTINs without a lead of their own; `own`: (GSTIN, its latest validity).
    #[allow(clippy::too_many_arguments)]
    pub async fn warn_expiring_ewaybills(
        &self,
        now_ist: &str,
        until_ist: &str,
        default_until_ist: &str,
        own: &[(String, String)],
        limit: i64,
        event_for: impl Fn(&EwbRow, Option<String>) -> OutboxEvent,
    ) -> Result<usize, StoreError> {
        let (gstins, untils): (Vec<&str>, Vec<&str>) = own.iter().map(|(g, u)| (g.as_str(), u.as_str())).unzip();
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let rows = tx
            .query(
                "SELECT e.ewb_no, e.gstin, e.irn, e.ewb_date, e.valid_till, e.status, e.cancel_date,
                        (SELECT j.irp FROM jobs j WHERE j.irn = e.irn AND e.irn IS NOT NULL LIMIT 1)
                 FROM ewaybills e
                 WHERE e.status = 'active' AND e.valid_till > $1 AND e.valid_till <= $2
                   AND e.valid_till <= coalesce(
                         (SELECT o.until FROM unnest($4::text[], $5::text[]) AS o(gstin, until) WHERE o.gstin = e.gstin),
                         $6)
                   AND e.expiry_warned_for IS DISTINCT FROM e.valid_till
                 ORDER BY e.valid_till LIMIT $3 FOR UPDATE OF e SKIP LOCKED",
                &[&now_ist, &until_ist, &limit, &gstins, &untils, &default_until_ist],
            )
            .await?;
        for r in &rows {
            let e = EwbRow::from(r);
            tx.execute("UPDATE ewaybills SET expiry_warned_for = valid_till WHERE ewb_no = $1", &[&e.ewb_no]).await?;
            outbox::insert(&tx, &event_for(&e, r.get(7))).await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    }
}

/// What the store knows of a document's e-way bill without an IRN.
#[derive(Debug, Clone, PartialEq)]
pub struct EwbDocState {
    pub ewb_no: Option<String>,
    /// `GENEWAYBILL` calls made for it so far (any may have reached the portal).
    pub calls: i32,
}

impl Db {
    /// Claim a document key for an e-way bill without an IRN (creating its row), and say what
    /// is known of it.
    pub async fn claim_ewaybill_document(
        &self,
        key: &crate::domain::command::ewaybill_doc::EwbDocKey,
        doc_date: &str,
    ) -> Result<EwbDocState, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_one(
                "INSERT INTO ewaybill_documents (gstin, doc_type, doc_no, doc_year, doc_date)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (gstin, doc_type, doc_no, doc_year) DO UPDATE SET updated_at = now()
                 RETURNING ewb_no, calls",
                &[&key.gstin, &key.doc_type, &key.doc_no, &key.year, &doc_date],
            )
            .await?;
        Ok(EwbDocState { ewb_no: row.get(0), calls: row.get(1) })
    }

    /// The document (type, number) an e-way bill without an IRN was made for, when we made it.
    pub async fn ewaybill_document_of(&self, ewb_no: &str) -> Result<Option<(String, String)>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt("SELECT doc_type, doc_no FROM ewaybill_documents WHERE ewb_no = $1 LIMIT 1", &[&ewb_no])
            .await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// Count a `GENEWAYBILL` call for the document before it is made.
    pub async fn ewaybill_document_calling(
        &self,
        key: &crate::domain::command::ewaybill_doc::EwbDocKey,
    ) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "UPDATE ewaybill_documents SET calls = calls + 1, updated_at = now()
             WHERE gstin = $1 AND doc_type = $2 AND doc_no = $3 AND doc_year = $4",
            &[&key.gstin, &key.doc_type, &key.doc_no, &key.year],
        )
        .await?;
        Ok(())
    }

    /// Record the e-way bill made (or found) for a document, its document row and its events,
    /// in one transaction.
    pub async fn record_document_ewaybill(
        &self,
        key: &crate::domain::command::ewaybill_doc::EwbDocKey,
        e: &EwbUpsert<'_>,
        distance_km: Option<i64>,
        transporter_id: Option<&str>,
        events: &[OutboxEvent],
    ) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "INSERT INTO ewaybills (ewb_no, gstin, irn, ewb_date, valid_till, status, response, distance_km, transporter_id)
             VALUES ($1, $2, NULL, $3, $4, 'active', $5, $6, $7)
             ON CONFLICT (ewb_no) DO UPDATE SET
                ewb_date = COALESCE(EXCLUDED.ewb_date, ewaybills.ewb_date),
                valid_till = COALESCE(EXCLUDED.valid_till, ewaybills.valid_till),
                response = COALESCE(EXCLUDED.response, ewaybills.response),
                distance_km = COALESCE(ewaybills.distance_km, EXCLUDED.distance_km),
                transporter_id = COALESCE(ewaybills.transporter_id, EXCLUDED.transporter_id),
                updated_at = now()",
            &[&e.ewb_no, &e.gstin, &e.ewb_date, &e.valid_till, &e.response, &distance_km, &transporter_id],
        )
        .await?;
        tx.execute(
            "UPDATE ewaybill_documents SET ewb_no = $5, updated_at = now()
             WHERE gstin = $1 AND doc_type = $2 AND doc_no = $3 AND doc_year = $4",
            &[&key.gstin, &key.doc_type, &key.doc_no, &key.year, &e.ewb_no],
        )
        .await?;
        for ev in events {
            outbox::insert(&tx, ev).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
