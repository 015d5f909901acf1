//! `irn.get`: an IRN's details, from our store when we have them (the signed data outlives the
//! IRP's two-day window), else from the IRP.
use serde_json::json;

use super::job::{issuer_of_target, Job};
use crate::domain::command::get::Get;
use crate::domain::command::{JobKind, Target};
use crate::domain::event::CommandMeta;
use crate::domain::outcome::Operation;
use crate::runtime::events::{fetched_irn_data, irn_data, job_event};
use crate::runtime::{Ctx, Disposition};
use crate::store::StoreError;

pub async fn handle(ctx: &Ctx, meta: &CommandMeta, c: &Get, attempt: u32) -> Result<Disposition, StoreError> {
    let issuer = issuer_of_target(ctx, &c.gstin, &c.target).await?;
    match Job::open(ctx, meta, JobKind::IrnGet, &c.gstin, issuer, attempt).await? {
        Ok(job) => job.get(&c.target).await,
        Err(answered) => Ok(answered),
    }
}

impl Job<'_> {
    async fn get(&self, target: &Target) -> Result<Disposition, StoreError> {
        let db = &self.ctx.db;
        let (job, doc) = match target {
            Target::Irn(irn) => (db.job_by_irn(irn).await?, None),
            Target::Document(d) => (db.job_by_key(&self.key(d)).await?, Some(self.doc_ref(d))),
        };
        // Our own record has the signed data and outlives the IRP's two-day window.
        if let Some(job) = job.filter(|j| j.irn.is_some() && j.status.has_irn_outcome()) {
            let mut data = irn_data(self.ctx, &job, true).await?;
            data["source"] = json!("store");
            return self.emit(job_event(self.meta, &job, "irn.details", data)).await;
        }
        let found = match target {
            Target::Irn(irn) => self.lookup_irn(irn).await,
            Target::Document(d) => self.lookup_doc(d).await,
        };
        match found {
            Ok(d) => {
                let mut data = fetched_irn_data(self.ctx, &d).await?;
                data["source"] = json!("irp");
                self.emit(self.event("irn.details", data, None, doc)).await
            }
            Err(e) => self.failed(e, Operation::GetByIrn, doc).await,
        }
    }
}
