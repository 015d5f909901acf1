//! The job types other than generate (filled in next).
use super::{Ctx, Disposition};
use crate::domain::command::Command;
use crate::domain::event::CommandMeta;
use crate::store::StoreError;

pub async fn handle(_ctx: &Ctx, _meta: &CommandMeta, _cmd: &Command, _attempt: u32) -> Result<Disposition, StoreError> {
    Ok(Disposition::Ack)
}
