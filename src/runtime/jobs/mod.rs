//! The job handlers: one module per job kind, reached through [`dispatch`].
//!
//! Each module handles one command type of `domain::command` (its body, already parsed and
//! valid) and ends in a [`Disposition`] after committing the command's outcome and events:
//! [`generate`] (`irn.generate`, the path that must never register a document twice),
//! [`cancel`] (`irn.cancel`), [`get`] (`irn.get`), [`gstin_details`] (`gstin.details`),
//! [`ewaybill`] (`ewaybill.get`, `.generate`, `.update_vehicle`, `.extend`, `.update_transporter`,
//! `.cancel`, one submodule each),
//! [`b2c`] (`b2c.qr`), [`reconcile`] (`reconcile.rejected`), [`job_status`] (`job.status`, from
//! the store only) [`verify`] (`einvoice.verify`, offline) and [`batch`] (every `*_batch`
//! command, one handler for the table `domain::command::batch::BATCHES`). What the IRP-bound ones share (the
//! GSTIN's IRP, its pause, rejections, lookups) is in [`job`].
//!
//! Every handler checks what it can before calling the IRP (a cancel past 24 hours, or of an
//! IRN we know is cancelled, costs no call), then maps the IRP's answer through the outcome
//! table in `domain::outcome`.
pub mod b2c;
pub mod batch;
pub mod cancel;
pub mod ewaybill;
pub mod generate;
pub mod get;
pub mod gstin_details;
mod job;
pub mod job_status;
pub mod reconcile;
pub mod verify;

pub use batch::member_answered as batch_member_answered;

use super::{attempts, Ctx, Disposition};
use crate::domain::command::Command;
use crate::domain::event::CommandMeta;
use crate::store::StoreError;

/// Run one valid command's handler: the one place that maps a command to its slice.
///
/// Boxed: a message's future holds only the handler it runs, not the largest of them (unboxed,
/// every in-flight message held ~41 KB; see docs/benchmark.md).
pub async fn dispatch(ctx: &Ctx, meta: &CommandMeta, cmd: &Command, attempt: u32) -> Result<Disposition, StoreError> {
    match cmd {
        // The two that store a job's outcome keep its IRP calls for the job's attempt log.
        Command::IrnGenerate(c) => Box::pin(attempts::scope(generate::handle(ctx, meta, c, attempt))).await,
        Command::IrnCancel(c) => Box::pin(attempts::scope(cancel::handle(ctx, meta, c, attempt))).await,
        Command::IrnGet(c) => Box::pin(get::handle(ctx, meta, c, attempt)).await,
        Command::GstinDetails(c) => Box::pin(gstin_details::handle(ctx, meta, c, attempt)).await,
        Command::EwaybillGet(c) => Box::pin(ewaybill::get::handle(ctx, meta, c, attempt)).await,
        Command::B2cQr(c) => Box::pin(b2c::handle(ctx, meta, c, attempt)).await,
        Command::ReconcileRejected(c) => Box::pin(reconcile::handle(ctx, meta, c, attempt)).await,
        Command::EwaybillGenerate(c) => Box::pin(ewaybill::generate::handle(ctx, meta, c, attempt)).await,
        Command::EwaybillUpdateVehicle(c) => Box::pin(ewaybill::update_vehicle::handle(ctx, meta, c, attempt)).await,
        Command::EwaybillCancel(c) => Box::pin(ewaybill::cancel::handle(ctx, meta, c, attempt)).await,
        Command::EwaybillExtend(c) => Box::pin(ewaybill::extend::handle(ctx, meta, c, attempt)).await,
        Command::EwaybillUpdateTransporter(c) => {
            Box::pin(ewaybill::update_transporter::handle(ctx, meta, c, attempt)).await
        }
        Command::JobStatus(c) => Box::pin(job_status::handle(ctx, meta, c, attempt)).await,
        Command::EinvoiceVerify(c) => Box::pin(verify::handle(ctx, meta, c, attempt)).await,
        Command::IrnGenerateBatch(c)
        | Command::EinvoiceVerifyBatch(c)
        | Command::IrnCancelBatch(c)
        | Command::EwaybillGenerateBatch(c)
        | Command::EwaybillUpdateVehicleBatch(c)
        | Command::EwaybillExtendBatch(c)
        | Command::EwaybillCancelBatch(c) => Box::pin(batch::handle(ctx, meta, c, attempt)).await,
    }
}
