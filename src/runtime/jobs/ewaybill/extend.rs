//! `ewaybill.extend`: extend an active e-way bill's validity (`EXTENDVALIDITY`).
//!
//! What the rules forbid is refused before any call, each problem naming its rule: outside 8
//! hours before to 8 hours after the expiry the store knows, a remaining distance over the
//! e-way bill's own, a life past 360 days from generation, a caller who is not the current
//! transporter. The portal checks the same (382, 390, 821, 384) when the store knows less.
use chrono::Utc;
use serde_json::json;

use super::super::job::Job;
use super::upsert;
use crate::domain::command::ewaybill::EwbTarget;
use crate::domain::command::ewaybill_extend::{extension_refusal, Consignment, EwaybillExtend, ExtendValidity};
use crate::domain::command::JobKind;
use crate::domain::event::{CommandMeta, ErrorItem, ErrorSource};
use crate::domain::outcome::Operation;
use crate::domain::portal::EwbAccess;
use crate::domain::problem::code;
use crate::domain::Problem;
use crate::irp::types::parse_ist;
use crate::runtime::calls::{call, Resend};
use crate::runtime::{Ctx, Disposition};
use crate::store::ewaybills::EwbRow;
use crate::store::StoreError;

pub async fn handle(
    ctx: &Ctx,
    meta: &CommandMeta,
    c: &EwaybillExtend,
    attempt: u32,
) -> Result<Disposition, StoreError> {
    let route = super::route_of(ctx, &c.target).await?;
    let access = EwbAccess::OwnerOnly;
    match Job::open_ewaybill(ctx, meta, JobKind::EwaybillExtend, &c.gstin, &route, access, attempt).await? {
        Ok(job) => job.ewaybill_extend(&c.target, &c.extend).await,
        Err(answered) => Ok(answered),
    }
}

impl Job<'_> {
    async fn ewaybill_extend(&self, target: &EwbTarget, x: &ExtendValidity) -> Result<Disposition, StoreError> {
        let cannot = |row: &EwbRow| {
            format!(
                "e-way bill {} is cancelled; a cancelled e-way bill cannot be extended (e-way bill error 379)",
                row.ewb_no
            )
        };
        let (row, job, doc) = match self.find_active_ewaybill(target, cannot).await? {
            Ok(found) => found,
            Err(d) => return Ok(d),
        };
        let (distance, transporter) = self.ctx.db.ewaybill_extras(&row.ewb_no).await?;
        let mut problems = Vec::new();
        if let Some(t) = transporter.as_deref().filter(|t| !t.eq_ignore_ascii_case(self.gstin.as_str())) {
            problems.push(Problem::new(
                "gstin",
                code::NOT_CURRENT_TRANSPORTER,
                format!(
                    "only the current transporter ({t}), or the generator when there is none, may extend an e-way bill (e-way bill error 384); e-way bill {} was handed to {t}",
                    row.ewb_no
                ),
            ));
        }
        problems.extend(extension_refusal(
            Utc::now(),
            row.valid_till.as_deref().and_then(parse_ist),
            row.ewb_date.as_deref().and_then(parse_ist),
            distance.and_then(|d| u64::try_from(d).ok()),
            x.remaining_distance,
        ));
        if !problems.is_empty() {
            let errors = problems.into_iter().map(|p| ErrorItem::from_problem(ErrorSource::Validation, p)).collect();
            return self.reject(errors, doc).await;
        }
        let p = self.provider.as_ref();
        let no = row.ewb_no.as_str();
        // Not resent blindly: a lost answer may hide an extension, and a second one would
        // extend again. A redelivery looks first (below).
        let answer = call(
            self.ctx,
            self.gstin.as_str(),
            p,
            Operation::EwaybillExtend,
            Resend::NotIfMayHaveReached,
            |s| async move { p.extend_validity(&s, no, x).await },
        )
        .await;
        let (valid_till, extended_at, already) = match answer {
            Ok(d) => (d.valid_till, d.updated_at, false),
            // 382 although the store's validity is inside the window: an earlier call whose
            // answer was lost (a timeout, a worker killed before it wrote the answer down) may
            // have extended it already; the portal's validity says.
            Err(e) if e.has_code("382") => match self.extended_meanwhile(&row).await? {
                Some(till) => (Some(till), crate::irp::types::format_ist(Utc::now()), true),
                None => return self.failed(e, Operation::EwaybillExtend, doc).await,
            },
            Err(e) => return self.failed(e, Operation::EwaybillExtend, doc).await,
        };
        let valid_till = valid_till.or_else(|| row.valid_till.clone());
        let status = match &x.consignment {
            Consignment::Moving { .. } => "M",
            Consignment::InTransit { .. } => "T",
        };
        let data = json!({
            "ewb_no": row.ewb_no, "irn": row.irn, "ewb_valid_till": valid_till,
            "previous_valid_till": row.valid_till, "extended_at": extended_at,
            "remaining_distance": x.remaining_distance, "consignment_status": status,
            "already_extended": already,
        });
        let ev = self.event("ewaybill.extended", data, job.as_ref(), doc);
        let changed = EwbRow { valid_till, ..row.clone() };
        self.ctx.db.ewaybill_extended(&upsert(&changed, None), &extended_at, &[ev]).await?;
        Ok(Disposition::Ack)
    }

    /// The e-way bill's validity at the portal when it is later than the store's: extended by a
    /// call whose answer was lost. Read by IRN, or for one made without an IRN by its document
    /// (`GetEwayBillGeneratedByConsigner`).
    async fn extended_meanwhile(&self, row: &EwbRow) -> Result<Option<String>, StoreError> {
        let at_portal = match row.irn.as_deref() {
            Some(irn) => self.ewaybill_at_irp(irn).await.ok().flatten().and_then(|f| f.valid_till),
            None => match self.ctx.db.ewaybill_document_of(&row.ewb_no).await? {
                Some((t, n)) => {
                    let found = self.ewaybill_by_doc(&t, &n).await.ok().flatten();
                    found.filter(|d| d.ewb_no == row.ewb_no).and_then(|d| d.valid_till)
                }
                None => None,
            },
        };
        let later = |till: &String| {
            let (now, before) = (parse_ist(till), row.valid_till.as_deref().and_then(parse_ist));
            matches!((now, before), (Some(n), Some(b)) if n > b)
        };
        Ok(at_portal.filter(later))
    }
}
