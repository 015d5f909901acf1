//! `jobs mark-outside`: the console's "mark registered / cancelled outside" for one job from the
//! command line (see `console::outside` and docs/console.md). The same checks, the same audit
//! row (`operator_actions`, actor `cli:<login>`) and `operator.action` event.
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::{find_job, OpError};
use crate::console::outside::{action_event, action_name, checked_reason, fields_of, outcome_of};
use crate::store::console::{NewAction, Search};
use crate::store::outside::Marked;
use crate::store::Db;

/// What `jobs mark-outside` did.
#[derive(Debug, Clone, Serialize)]
pub struct MarkedOutside {
    pub job_id: Uuid,
    pub previous_status: String,
    pub status: String,
    pub action_id: Uuid,
}

/// The raw arguments, checked here as the console checks its form.
#[derive(Debug, Clone, Default)]
pub struct MarkArgs {
    pub outcome: String,
    pub reason: String,
    pub irn: String,
    pub ack_no: String,
    pub ack_dt: String,
    pub ewb_no: String,
}

/// The login running the command, for the audit row.
fn actor() -> String {
    let who = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    format!("cli:{}", crate::domain::text::escape_controls(&who))
}

pub async fn jobs_mark_outside(db: &Db, key: &str, a: &MarkArgs) -> Result<MarkedOutside, OpError> {
    let to = outcome_of(&a.outcome)
        .ok_or_else(|| OpError::Usage(format!("--outcome '{}': registered or cancelled", a.outcome)))?;
    let reason = checked_reason(&a.reason).map_err(OpError::Usage)?;
    let fields = fields_of(&a.irn, &a.ack_no, &a.ack_dt, &a.ewb_no).map_err(OpError::Usage)?;
    let j = find_job(db, key).await?;
    if !j.status.may_mark_outside(to) {
        return Err(OpError::Refused(format!(
            "job {} is {}: only {} jobs can be marked {}",
            j.id,
            j.status,
            crate::domain::JobStatus::markable(to).join(", "),
            to.status()
        )));
    }
    let action_id = Uuid::new_v4();
    let actor = actor();
    let note = json!({"status": to.status(), "reason": reason, "actor": actor, "at": chrono::Utc::now(), "action_id": action_id});
    let given = json!({"irn": fields.irn, "ack_no": fields.ack_no, "ack_dt": fields.ack_dt, "ewb_no": fields.ewb_no});
    let search = Search { job_id: Some(j.id), ..Default::default() };
    let build = |done: &[Uuid]| {
        let a = NewAction {
            action_id,
            actor: actor.clone(),
            role: "operator".into(),
            action: action_name(to).into(),
            filter: serde_json::to_value(&search).expect("serialisable"),
            count: 1,
            done: done.len() as i32,
            reason: Some(reason.clone()),
            job_ids: done.to_vec(),
            result: json!({"matched": 1, "given": given}),
        };
        let ev = action_event(&a);
        (a, ev)
    };
    match db.mark_outside(to, &[j.id], &fields, &note, build).await? {
        Marked::Done(ids) if ids.len() == 1 => Ok(MarkedOutside {
            job_id: j.id,
            previous_status: j.status.to_string(),
            status: to.status().to_string(),
            action_id,
        }),
        Marked::Done(_) => Err(OpError::Refused(format!("job {} changed meanwhile: look at it again", j.id))),
        Marked::IrnTaken { job_id } => Err(OpError::Refused(format!("job {job_id} has this IRN already"))),
    }
}
