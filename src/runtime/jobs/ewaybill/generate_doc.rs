//! `ewaybill.generate` with `ewaybill`: an e-way bill without an IRN (`GENEWAYBILL`), once per
//! document key (supplier GSTIN, document type, number, year).
//!
//! - A document whose active e-way bill the store holds is answered from the store
//!   (`replayed: true`), without a call.
//! - Each call is counted on the document's row before it is made; an attempt that finds a call
//!   counted and no e-way bill (an earlier call timed out, failed with a 5xx, or the worker
//!   stopped) looks the document up (`GetEwayBillGeneratedByConsigner`) before sending again.
//! - An ambiguous answer to this attempt's own call is followed by the same lookup; when the
//!   portal has none yet, the command is rescheduled (and looks up again first).
//! - 604 ("already generated for this document") resolves to the existing e-way bill, read by
//!   the same lookup (`already_existed: true`).
use serde_json::{json, Value};

use super::super::job::Job;
use super::generate::pin_pin_km;
use crate::domain::command::ewaybill::Transport;
use crate::domain::command::ewaybill_doc::{EwbDocKey, EwbDocument};
use crate::domain::command::ewaybill_generate::EwaybillGenerate;
use crate::domain::command::JobKind;
use crate::domain::event::{CommandMeta, DocumentRef};
use crate::domain::outcome::{Final, Operation};
use crate::irp::{EwbData, IrpError};
use crate::runtime::calls::{call, Resend};
use crate::runtime::{Ctx, Disposition};
use crate::store::ewaybills::{EwbRow, EwbUpsert, ACTIVE};
use crate::store::StoreError;

pub async fn handle(
    ctx: &Ctx,
    meta: &CommandMeta,
    c: &EwaybillGenerate,
    doc: &EwbDocument,
    attempt: u32,
) -> Result<Disposition, StoreError> {
    match Job::open(ctx, meta, JobKind::EwaybillGenerate, &c.gstin, None, attempt).await? {
        Ok(job) => job.ewaybill_generate_doc(doc, &c.transport).await,
        Err(answered) => Ok(answered),
    }
}

/// How the e-way bill was come by.
enum Found {
    /// Made by this command's call.
    Made(EwbData),
    /// Made by an earlier call of ours whose answer was lost, found by lookup.
    Recovered(EwbData),
    /// The portal already had one (604), found by lookup.
    Existed(EwbData),
}

impl Job<'_> {
    async fn ewaybill_generate_doc(&self, doc: &EwbDocument, transport: &Transport) -> Result<Disposition, StoreError> {
        let key = doc.key(self.gstin);
        let docref = document_ref(&key, doc);
        let state = self.ctx.db.claim_ewaybill_document(&key, &doc.doc_date.to_string()).await?;
        if let Some(no) = &state.ewb_no {
            // A cancelled one is not answered again: the portal decides whether the document may
            // have another (604 otherwise).
            if let Some(row) = self.ctx.db.ewaybill(no).await?.filter(EwbRow::is_active) {
                let data = generated_data(&row, true, true);
                return self.emit(self.event("ewaybill.generated", data, None, Some(docref))).await;
            }
        }
        // An earlier call may have reached the portal: look before sending again.
        if state.calls > 0 {
            match self.ewaybill_by_doc(&key.doc_type, &key.doc_no).await {
                Ok(Some(d)) => return self.doc_generated(&key, docref, transport, Found::Recovered(d)).await,
                Ok(None) => {}
                Err(e) => return self.failed(e, Operation::EwaybillByDoc, Some(docref)).await,
            }
        }
        self.ctx.db.ewaybill_document_calling(&key).await?;
        let p = self.provider.as_ref();
        let request = doc.request(transport);
        let req = &request;
        let answer = call(
            self.ctx,
            self.gstin.as_str(),
            p,
            Operation::EwaybillGenerateDoc,
            Resend::NotIfMayHaveReached,
            |s| async move { p.generate_ewaybill_doc(&s, req).await },
        )
        .await;
        let found = match answer {
            Ok(d) => Found::Made(d),
            Err(e) if e.class(Operation::EwaybillGenerateDoc) == Final::EwaybillExists => {
                match self.ewaybill_by_doc(&key.doc_type, &key.doc_no).await {
                    Ok(Some(d)) => Found::Existed(d),
                    // 604 for an e-way bill the lookup cannot see (cancelled): the portal's refusal stands.
                    Ok(None) => return self.failed(e, Operation::EwaybillGenerateDoc, Some(docref)).await,
                    Err(e) => return self.failed(e, Operation::EwaybillByDoc, Some(docref)).await,
                }
            }
            Err(e) if e.may_have_reached_irp() => {
                tracing::warn!(doc_type = %key.doc_type, doc_no = %key.doc_no, error = %e, "GENEWAYBILL may have reached the portal; looking the document up before any resend");
                match self.ewaybill_by_doc(&key.doc_type, &key.doc_no).await {
                    Ok(Some(d)) => Found::Recovered(d),
                    // Not there (yet): come back later, and look again before sending.
                    Ok(None) => {
                        return Ok(Disposition::Reschedule { attempt: self.attempt, errors: e.to_error_items() })
                    }
                    Err(e2) => return self.failed(e2, Operation::EwaybillByDoc, Some(docref)).await,
                }
            }
            Err(e) => return self.failed(e, Operation::EwaybillGenerateDoc, Some(docref)).await,
        };
        self.doc_generated(&key, docref, transport, found).await
    }

    /// The active e-way bill the portal has for a document of ours (`GetEwayBillGeneratedByConsigner`).
    pub(super) async fn ewaybill_by_doc(&self, t: &str, n: &str) -> Result<Option<EwbData>, IrpError> {
        let p = self.provider.as_ref();
        call(self.ctx, self.gstin.as_str(), p, Operation::EwaybillByDoc, Resend::Freely, |s| async move {
            p.ewaybill_by_doc(&s, t, n).await
        })
        .await
    }

    async fn doc_generated(
        &self,
        key: &EwbDocKey,
        docref: DocumentRef,
        transport: &Transport,
        found: Found,
    ) -> Result<Disposition, StoreError> {
        let (d, already) = match found {
            Found::Made(d) | Found::Recovered(d) => (d, false),
            Found::Existed(d) => (d, true),
        };
        let row = EwbRow {
            ewb_no: d.ewb_no.clone(),
            gstin: self.gstin.as_str().to_string(),
            irn: None,
            ewb_date: d.ewb_date.clone(),
            valid_till: d.valid_till.clone(),
            status: ACTIVE.into(),
            cancel_date: None,
        };
        // What ewaybill.extend checks later: the distance (NIC's own when 0 was sent).
        let km = if transport.distance > 0 { Some(transport.distance) } else { pin_pin_km(&d.raw) };
        let km = km.and_then(|k| i64::try_from(k).ok());
        let ev = self.event("ewaybill.generated", generated_data(&row, already, false), None, Some(docref));
        let up = EwbUpsert {
            ewb_no: &row.ewb_no,
            gstin: &row.gstin,
            irn: None,
            ewb_date: row.ewb_date.as_deref(),
            valid_till: row.valid_till.as_deref(),
            response: Some(&d.raw),
        };
        self.ctx.db.record_document_ewaybill(key, &up, km, transport.trans_id.as_deref(), &[ev]).await?;
        Ok(Disposition::Ack)
    }
}

fn generated_data(e: &EwbRow, already: bool, replayed: bool) -> Value {
    json!({
        "irn": null, "ewb_no": e.ewb_no, "ewb_date": e.ewb_date, "ewb_valid_till": e.valid_till,
        "already_existed": already, "replayed": replayed,
    })
}

fn document_ref(key: &EwbDocKey, doc: &EwbDocument) -> DocumentRef {
    DocumentRef {
        gstin: key.gstin.clone(),
        doc_type: key.doc_type.clone(),
        doc_number: doc.doc_no.clone(),
        financial_year: doc.doc_date.financial_year().to_string(),
        doc_date: Some(doc.doc_date.to_string()),
    }
}
