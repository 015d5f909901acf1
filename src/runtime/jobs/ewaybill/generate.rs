//! `ewaybill.generate`: an e-way bill made from an IRN (found by IRN or document), once: an
//! active e-way bill in the store answers without a call, and 4002/604 resolve to the existing one.
//! With `ewaybill` (a document), one made without an IRN: see [`super::generate_doc`].
use serde_json::{json, Value};

use super::super::job::{issuer_of_target, target_doc, Job};
use super::upsert;
use crate::domain::command::ewaybill::{document_age_problem, Transport};
use crate::domain::command::ewaybill_generate::{EwaybillGenerate, EwbSource};
use crate::domain::command::{JobKind, Target};
use crate::domain::event::{CommandMeta, DocumentRef, ErrorItem, ErrorSource};
use crate::domain::outcome::{Final, Operation};
use crate::domain::DocDate;
use crate::irp::EwbData;
use crate::runtime::calls::{call, Resend};
use crate::runtime::events::document_ref;
use crate::runtime::{Ctx, Disposition};
use crate::store::ewaybills::{EwbRow, ACTIVE};
use crate::store::{JobRow, StoreError};

pub async fn handle(
    ctx: &Ctx,
    meta: &CommandMeta,
    c: &EwaybillGenerate,
    attempt: u32,
) -> Result<Disposition, StoreError> {
    let target = match &c.source {
        EwbSource::Irn(t) => t,
        EwbSource::Document(d) => return super::generate_doc::handle(ctx, meta, c, d, attempt).await,
    };
    let issuer = issuer_of_target(ctx, &c.gstin, target).await?;
    match Job::open(ctx, meta, JobKind::EwaybillGenerate, &c.gstin, issuer, attempt).await? {
        Ok(job) => job.ewaybill_generate(target, &c.transport).await,
        Err(answered) => Ok(answered),
    }
}

impl Job<'_> {
    async fn ewaybill_generate(&self, target: &Target, transport: &Transport) -> Result<Disposition, StoreError> {
        let r = match self.resolve(target).await? {
            Ok(r) => r,
            Err(e) => return self.failed(e, Operation::GetByIrn, target_doc(self, target)).await,
        };
        let doc = r.doc.clone().or_else(|| r.job.as_ref().map(document_ref));
        if r.status.as_deref() == Some("CNL") {
            let errors = vec![ErrorItem::worker(
                "4000",
                format!("IRN {} is cancelled, so no e-way bill can be made from it (the IRP would answer 4000)", r.irn),
            )];
            return self.reject(errors, doc).await;
        }
        // The 180-day rule, when we know the document's date.
        let doc_date = r.job.as_ref().and_then(|j| j.doc_date.as_deref()).and_then(|d| DocDate::parse(d).ok());
        if let Some(p) = doc_date.and_then(|d| document_age_problem(d, crate::domain::invoice::india_today(), "irn")) {
            return self.reject(vec![ErrorItem::from_problem(ErrorSource::Validation, p)], doc).await;
        }
        let irn = r.irn.as_str();
        if let Some(existing) = self.ctx.db.ewaybill_for_irn(irn).await?.filter(EwbRow::is_active) {
            return self.ewaybill_generated(irn, &existing, true, r.job.as_ref(), doc, None).await;
        }
        let p = self.provider.as_ref();
        let request = transport.request(irn);
        let req = &request;
        let answer =
            call(self.ctx, self.gstin.as_str(), p, Operation::EwaybillGenerate, Resend::Freely, |s| async move {
                p.generate_ewaybill(&s, req).await
            })
            .await;
        let (row, already, raw) = match answer {
            Ok(d) => (self.row(irn, &d), false, Some(d.raw)),
            Err(e) if e.class(Operation::EwaybillGenerate) == Final::EwaybillExists => {
                // 4002 names no e-way bill: read it by IRN.
                match self.ewaybill_at_irp(irn).await {
                    Ok(Some(found)) => (found, true, None),
                    Ok(None) => return self.failed(e, Operation::EwaybillGenerate, doc).await,
                    Err(e) => return self.failed(e, Operation::EwaybillByIrn, doc).await,
                }
            }
            Err(e) => return self.failed(e, Operation::EwaybillGenerate, doc).await,
        };
        let d = self.ewaybill_generated(irn, &row, already, r.job.as_ref(), doc, raw.as_ref()).await?;
        if !already {
            // What ewaybill.extend checks later: the distance (NIC's own when 0 was sent) and
            // the transporter.
            let km = if transport.distance > 0 { Some(transport.distance) } else { raw.as_ref().and_then(pin_pin_km) };
            let km = km.and_then(|k| i64::try_from(k).ok());
            self.ctx.db.set_ewaybill_transport(&row.ewb_no, km, transport.trans_id.as_deref()).await?;
        }
        Ok(d)
    }

    /// The store's row for an active e-way bill the IRP answered for `irn`.
    pub(super) fn row(&self, irn: &str, d: &EwbData) -> EwbRow {
        EwbRow {
            ewb_no: d.ewb_no.clone(),
            gstin: self.gstin.as_str().to_string(),
            irn: Some(irn.to_string()),
            ewb_date: d.ewb_date.clone(),
            valid_till: d.valid_till.clone(),
            status: ACTIVE.into(),
            cancel_date: None,
        }
    }

    async fn ewaybill_generated(
        &self,
        irn: &str,
        e: &EwbRow,
        already: bool,
        job: Option<&JobRow>,
        doc: Option<DocumentRef>,
        raw: Option<&Value>,
    ) -> Result<Disposition, StoreError> {
        let data = json!({
            "irn": irn, "ewb_no": e.ewb_no, "ewb_date": e.ewb_date, "ewb_valid_till": e.valid_till,
            "already_existed": already,
        });
        let ev = self.event("ewaybill.generated", data, job, doc);
        self.ctx.db.record_ewaybill(&upsert(e, raw), &[ev]).await?;
        Ok(Disposition::Ack)
    }
}

/// NIC's PIN-to-PIN distance when 0 was sent: `InfoDtls` `EWBPPD` "Pin-Pin calc distance: 57KM".
pub(super) fn pin_pin_km(raw: &Value) -> Option<u64> {
    let infos = raw.get("InfoDtls")?.as_array()?;
    let d = infos.iter().find(|i| i.get("InfCd").and_then(Value::as_str) == Some("EWBPPD"))?;
    let text = d.get("Desc").and_then(Value::as_str)?;
    let digits: String = text.rsplit(':').next()?.chars().filter(char::is_ascii_digit).collect();
    digits.parse().ok()
}
