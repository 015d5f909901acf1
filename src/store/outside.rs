//! Jobs an operator marks as registered or cancelled outside the worker (on the portal, by hand),
//! and a job's attempt log (issue 25). See docs/console.md.
use serde_json::Value;
use uuid::Uuid;

use super::console::{insert_action, NewAction};
use super::outbox::OutboxEvent;
use super::{Db, StoreError};
use crate::domain::job::Outside;
use crate::domain::JobStatus;

/// What an operator may say about a document registered outside (all optional, checked at the edge).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutsideFields {
    pub irn: Option<String>,
    pub ack_no: Option<String>,
    pub ack_dt: Option<String>,
    pub ewb_no: Option<String>,
}

/// What [`Db::mark_outside`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Marked {
    /// These jobs were marked (the others had changed state meanwhile), with the action recorded.
    Done(Vec<Uuid>),
    /// The IRN given is another job's: nothing was changed or recorded.
    IrnTaken { job_id: Uuid },
}

impl Db {
    /// Mark `ids` as `to` (those still in a state [`JobStatus::may_mark_outside`] allows), store
    /// `fields` and `note` on each, and record the action (built by `action` from the ids marked)
    /// with its event: one transaction, so a job is never marked without its audit row.
    pub async fn mark_outside(
        &self,
        to: Outside,
        ids: &[Uuid],
        fields: &OutsideFields,
        note: &Value,
        action: impl FnOnce(&[Uuid]) -> (NewAction, OutboxEvent),
    ) -> Result<Marked, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        if let Some(irn) = &fields.irn {
            // `irn.cancel` and `irn.get` find a job by its IRN: two jobs must not share one.
            let other =
                tx.query_opt("SELECT id FROM jobs WHERE irn = $1 AND NOT (id = ANY($2)) LIMIT 1", &[irn, &ids]).await?;
            if let Some(r) = other {
                return Ok(Marked::IrnTaken { job_id: r.get(0) });
            }
        }
        let status = to.status().as_str();
        let allowed = JobStatus::markable(to);
        let cancel_date = crate::irp::types::format_ist(chrono::Utc::now());
        let rows = tx
            .query(
                "UPDATE jobs SET status = $2::text,
                    irn = COALESCE($3, irn), ack_no = COALESCE($4, ack_no), ack_dt = COALESCE($5, ack_dt),
                    ewb_no = COALESCE($6, ewb_no),
                    irp = CASE WHEN $2::text = 'registered_outside' THEN NULL ELSE irp END,
                    cancel_date = CASE WHEN $2::text = 'cancelled_outside' THEN COALESCE(cancel_date, $7) ELSE cancel_date END,
                    outside = $8, lease_owner = NULL, lease_until = NULL, in_doubt_reported_at = NULL, updated_at = now()
                 WHERE id = ANY($1) AND status = ANY($9)
                 RETURNING id",
                &[
                    &ids,
                    &status,
                    &fields.irn,
                    &fields.ack_no,
                    &fields.ack_dt,
                    &fields.ewb_no,
                    &cancel_date,
                    note,
                    &allowed,
                ],
            )
            .await?;
        let marked: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
        let (a, event) = action(&marked);
        insert_action(&tx, &a, &event).await?;
        tx.commit().await?;
        Ok(Marked::Done(marked))
    }

    /// A job's attempt log (its IRP calls, newest last) and its outside mark, for the console.
    pub async fn job_history(&self, id: Uuid) -> Result<(Option<Value>, Option<Value>), StoreError> {
        let c = self.client().await?;
        Ok(c.query_opt("SELECT attempt_log, outside FROM jobs WHERE id = $1", &[&id])
            .await?
            .map(|r| (r.get(0), r.get(1)))
            .unwrap_or_default())
    }
}
