//! Marking documents "registered outside" / "cancelled outside" (issue 25): the business
//! registered (or cancelled) a document on the portal by hand, so its job stops being pending,
//! failed, rejected or in-doubt work. Operator only, on one job (the job page) or on all that
//! match the filter (the jobs list), each through a confirmation that says how many documents it
//! touches; one audit row and one `operator.action` event per action. Which states may be marked
//! is [`JobStatus::may_mark_outside`]. Also the job page's attempt history.
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::auth::Session;
use super::OPERATOR_ACTION;
use super::{html as page_html, pages, reason_of, retry_targets, status_page, store_error, App, FilterForm};
use crate::config::ConsoleRole;
use crate::domain::event::{CommandMeta, Event};
use crate::domain::job::Outside;
use crate::domain::JobStatus;
use crate::store::console::NewAction;
use crate::store::outbox::OutboxEvent;
use crate::store::outside::{Marked, OutsideFields};
use crate::store::JobRow;

/// `registered` or `cancelled` (the form's `outcome`).
pub fn outcome_of(s: &str) -> Option<Outside> {
    match s.trim() {
        "registered" => Some(Outside::Registered),
        "cancelled" => Some(Outside::Cancelled),
        _ => None,
    }
}

fn outcome_text(o: Outside) -> &'static str {
    match o {
        Outside::Registered => "registered",
        Outside::Cancelled => "cancelled",
    }
}

/// The audit trail's name for the action.
pub fn action_name(o: Outside) -> &'static str {
    match o {
        Outside::Registered => "mark_registered_outside",
        Outside::Cancelled => "mark_cancelled_outside",
    }
}

/// The optional IRN / ack / e-way bill fields as typed, checked: an IRN is 64 hex characters
/// (kept lower-case), an ack number 1 to 20 digits, an ack date `YYYY-MM-DD HH:MM:SS` (the IRP's
/// form; `YYYY-MM-DDTHH:MM` from a browser's date-time input is read too), an e-way bill number
/// 12 digits. Err: what is wrong, for the operator.
pub fn fields_of(irn: &str, ack_no: &str, ack_dt: &str, ewb_no: &str) -> Result<OutsideFields, String> {
    let t = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let irn = match t(irn) {
        Some(i) if i.len() == 64 && i.bytes().all(|b| b.is_ascii_hexdigit()) => Some(i.to_ascii_lowercase()),
        Some(i) => {
            return Err(format!("the IRN must be 64 hexadecimal characters (given: {} characters)", i.chars().count()))
        }
        None => None,
    };
    let digits =
        |s: &str, min: usize, max: usize| s.len() >= min && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit());
    let ack_no = match t(ack_no) {
        Some(a) if digits(&a, 1, 20) => Some(a),
        Some(_) => return Err("the ack number must be 1 to 20 digits".into()),
        None => None,
    };
    let ack_dt = match t(ack_dt) {
        Some(d) => {
            let parsed = chrono::NaiveDateTime::parse_from_str(&d, "%Y-%m-%d %H:%M:%S")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(&d, "%Y-%m-%dT%H:%M"))
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(&d, "%Y-%m-%dT%H:%M:%S"))
                .map_err(|_| "the ack date must be YYYY-MM-DD HH:MM:SS (India time)".to_string())?;
            Some(parsed.format("%Y-%m-%d %H:%M:%S").to_string())
        }
        None => None,
    };
    let ewb_no = match t(ewb_no) {
        Some(e) if digits(&e, 12, 12) => Some(e),
        Some(_) => return Err("the e-way bill number must be 12 digits".into()),
        None => None,
    };
    Ok(OutsideFields { irn, ack_no, ack_dt, ewb_no })
}

/// A reason as the console takes it (required, at most 500 characters), for `jobs mark-outside`.
pub fn checked_reason(raw: &str) -> Result<String, String> {
    super::reason_text(raw).map_err(|(_, text)| text)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct OutcomeQuery {
    outcome: String,
}

/// The documents a mark on `f` would touch: (all that match, those it applies to).
async fn targets(app: &App, s: &Session, f: &FilterForm, to: Outside) -> Result<(Vec<JobRow>, Vec<JobRow>), Response> {
    let (all, _) = retry_targets(app, s, f).await?;
    let markable = all.iter().filter(|j| j.status.may_mark_outside(to)).cloned().collect();
    Ok((all, markable))
}

fn bad(s: &Session, title: &str, text: &str) -> Response {
    status_page(StatusCode::BAD_REQUEST, Some(s), title, text)
}

fn confirm_page(
    s: &Session,
    f: &FilterForm,
    to: Outside,
    all: usize,
    markable: usize,
    note: Option<String>,
) -> Response {
    let mut hidden: Vec<(&str, String)> = f.pairs().into_iter().map(|(k, v)| (k, v.to_string())).collect();
    hidden.sort();
    let what = outcome_text(to);
    let allowed = JobStatus::markable(to).join(", ");
    let summary = format!(
        "This will mark {markable} document(s) as {what} outside the worker (on the portal, by hand): they are never \
         claimed, retried or sent to the IRP again, a re-sent irn.generate for one is answered irn.rejected \
         ({}), and the IRN register lists them as {}. {all} match the filter; {} of them are not {allowed} and will \
         not be touched.",
        if to == Outside::Registered { "REGISTERED_OUTSIDE" } else { "CANCELLED_OUTSIDE" },
        if to == Outside::Registered { "\"registered elsewhere\"" } else { "\"cancelled\"" },
        all - markable
    );
    // The IRN and its fields belong to one document: asked for only when one is marked.
    let one = markable == 1 && !f.job_id.trim().is_empty();
    let title = format!("Mark {what} outside");
    page_html(pages::page(
        &title,
        Some(s),
        html! {
            p.note role="status" { (summary) }
            @if let Some(n) = &note { p.error role="alert" { (n) } }
            @if !hidden.is_empty() {
                table {
                    caption { "For" }
                    tbody { @for (k, v) in &hidden { tr { th scope="row" { (k) } td { code { (v) } } } } }
                }
            }
            @if markable > 0 {
                form method="post" action="/actions/outside" {
                    input type="hidden" name="csrf" value=(s.csrf);
                    input type="hidden" name="expected" value=(markable);
                    input type="hidden" name="outcome" value=(what);
                    @for (k, v) in &hidden { input type="hidden" name=(k) value=(v); }
                    p { label for="reason" { "Reason (kept in the audit log)" } input #reason name="reason" required maxlength="500"; }
                    @if one {
                        fieldset {
                            legend { "As the portal shows it (optional)" }
                            div.grid {
                                p { label for="given_irn" { "IRN (64 hex characters)" } input #given_irn name="given_irn" maxlength="64" pattern="[0-9a-fA-F]{64}"; }
                                p { label for="given_ack_no" { "Ack number" } input #given_ack_no name="given_ack_no" maxlength="20" pattern="[0-9]{1,20}"; }
                                p { label for="given_ack_dt" { "Ack date (YYYY-MM-DD HH:MM:SS, India time)" } input #given_ack_dt name="given_ack_dt" maxlength="19"; }
                                p { label for="given_ewb_no" { "E-way bill number (12 digits)" } input #given_ewb_no name="given_ewb_no" maxlength="12" pattern="[0-9]{12}"; }
                            }
                        }
                    }
                    button.danger type="submit" { (title) " (" (markable) ")" }
                    " " a href="/jobs" { "Cancel" }
                }
            }
        },
    ))
}

pub(super) async fn confirm_outside(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<OutcomeQuery>,
    Query(f): Query<FilterForm>,
) -> Response {
    let s = match app.operator(&headers, None) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(to) = outcome_of(&q.outcome) else {
        return bad(&s, "Bad outcome", "Say registered or cancelled.");
    };
    match targets(&app, &s, &f, to).await {
        Ok((all, markable)) => confirm_page(&s, &f, to, all.len(), markable.len(), None),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub(super) struct OutsideForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    expected: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    given_irn: String,
    #[serde(default)]
    given_ack_no: String,
    #[serde(default)]
    given_ack_dt: String,
    #[serde(default)]
    given_ewb_no: String,
    #[serde(flatten)]
    filter: FilterForm,
}

/// The `operator.action` event of an action (as `record` in the console's root builds it).
pub(crate) fn action_event(a: &NewAction) -> OutboxEvent {
    let data = json!({
        "action_id": a.action_id, "action": a.action, "actor": a.actor, "role": a.role, "filter": a.filter,
        "count": a.count, "done": a.done, "reason": a.reason, "job_ids": a.job_ids,
    });
    OutboxEvent { event: Event::new(OPERATOR_ACTION, &CommandMeta::default(), data), reply_to: None }
}

pub(super) async fn mark_outside(State(app): State<App>, headers: HeaderMap, Form(f): Form<OutsideForm>) -> Response {
    let s = match app.operator(&headers, Some(&f.csrf)) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(to) = outcome_of(&f.outcome) else {
        return bad(&s, "Bad outcome", "Say registered or cancelled.");
    };
    let reason = match reason_of(&s, &f.reason) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let fields = match fields_of(&f.given_irn, &f.given_ack_no, &f.given_ack_dt, &f.given_ewb_no) {
        Ok(x) => x,
        Err(e) => return bad(&s, "Bad field", &e),
    };
    let (all, markable) = match targets(&app, &s, &f.filter, to).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if fields != OutsideFields::default() && (markable.len() != 1 || f.filter.job_id.trim().is_empty()) {
        return bad(&s, "One document only", "An IRN, ack or e-way bill number can be given for one document only.");
    }
    let expected: i64 = f.expected.trim().parse().unwrap_or(-1);
    if markable.len() as i64 != expected {
        return confirm_page(
            &s,
            &f.filter,
            to,
            all.len(),
            markable.len(),
            Some(format!("The matching documents changed since you confirmed {expected}: confirm again.")),
        );
    }
    let search = f.filter.search(&s).expect("checked by retry_targets");
    let ids: Vec<Uuid> = markable.iter().map(|j| j.id).collect();
    let action_id = Uuid::new_v4();
    let note = json!({
        "status": to.status(), "reason": reason, "actor": s.user, "at": chrono::Utc::now(), "action_id": action_id,
    });
    let given = json!({"irn": fields.irn, "ack_no": fields.ack_no, "ack_dt": fields.ack_dt, "ewb_no": fields.ewb_no});
    let build = |done: &[Uuid]| {
        let a = NewAction {
            action_id,
            actor: s.user.clone(),
            role: s.role.as_str().into(),
            action: action_name(to).into(),
            filter: serde_json::to_value(&search).expect("serialisable"),
            count: ids.len() as i32,
            done: done.len() as i32,
            reason: Some(reason.clone()),
            job_ids: done.to_vec(),
            result: json!({"matched": all.len(), "given": given}),
        };
        let ev = action_event(&a);
        (a, ev)
    };
    let marked = match app.0.db.mark_outside(to, &ids, &fields, &note, build).await {
        Ok(Marked::Done(m)) => m,
        Ok(Marked::IrnTaken { job_id }) => {
            return bad(&s, "IRN in use", &format!("Job {job_id} has this IRN already: nothing was marked."))
        }
        Err(e) => return store_error(&s, e),
    };
    tracing::info!(user = %s.user, count = marked.len(), outcome = outcome_text(to), "console: marked outside");
    let ok = marked.len() == ids.len();
    let text = format!(
        "{} of {} document(s) marked {} outside{}",
        marked.len(),
        ids.len(),
        outcome_text(to),
        if ok { "." } else { "; the others changed state meanwhile (e.g. an attempt took them): look again." }
    );
    page_html(pages::done(&s, "Marked", &text, ok))
}

/// The job page's links to mark this one job (operators, when its state allows).
pub(super) fn job_actions(s: &Session, id: Uuid, status: &str) -> Markup {
    let status: Option<JobStatus> = status.parse().ok();
    let may = |to| s.role == ConsoleRole::Operator && status.is_some_and(|st| st.may_mark_outside(to));
    html! {
        @if may(Outside::Registered) {
            p { a href={ "/confirm/outside?outcome=registered&job_id=" (id) } { "Mark registered outside (on the portal)…" } }
        }
        @if may(Outside::Cancelled) {
            p { a href={ "/confirm/outside?outcome=cancelled&job_id=" (id) } { "Mark cancelled outside (on the portal)…" } }
        }
    }
}

/// The jobs list's links to mark all that match (operators, with a filter given).
pub(super) fn list_actions(s: &Session, query: &str) -> Markup {
    html! {
        @if s.role == ConsoleRole::Operator && !query.is_empty() {
            p {
                a href={ "/confirm/outside?outcome=registered&" (query) } { "Mark all that match registered outside…" }
                " · "
                a href={ "/confirm/outside?outcome=cancelled&" (query) } { "Mark all that match cancelled outside…" }
            }
        }
    }
}

/// The job's outside mark and its attempts (every IRP call, newest first), for the job page.
pub(super) fn history(outside: Option<&Value>, attempts: Option<&Value>) -> Markup {
    let s = |v: &Value, k: &str| match &v[k] {
        Value::Null => String::new(),
        Value::String(x) => x.clone(),
        x => x.to_string(),
    };
    let rows: Vec<&Value> = attempts.and_then(Value::as_array).map(|a| a.iter().rev().collect()).unwrap_or_default();
    html! {
        @if let Some(o) = outside {
            h2 { "Marked outside the worker" }
            p.note { (s(o, "status")) " by " (s(o, "actor")) " at " (s(o, "at")) ": " (s(o, "reason")) }
        }
        h2 { "Attempts (IRP calls, newest first)" }
        @if rows.is_empty() {
            p { "None recorded." }
        } @else {
            table {
                caption { "The last " (crate::runtime::attempts::MAX_ATTEMPTS) " calls at most" }
                thead { tr { th scope="col" { "When (UTC)" } th scope="col" { "IRP" } th scope="col" { "Operation" }
                    th scope="col" { "Outcome" } th scope="col" { "HTTP" } th scope="col" { "IRP codes" }
                    th scope="col" { "Duration (ms)" } th scope="col" { "Error" } } }
                tbody {
                    @for a in &rows {
                        tr {
                            td { (s(a, "at")) } td { (s(a, "irp")) } td { (s(a, "operation")) } td { (s(a, "outcome")) }
                            td { (s(a, "http_status")) } td { code { (s(a, "codes")) } } td { (s(a, "duration_ms")) }
                            td { (s(a, "error")) }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_fields_are_checked() {
        let irn = "A".repeat(64);
        let f = fields_of(&irn, " 112010036563310 ", "2026-11-02T10:15", "").unwrap();
        assert_eq!(f.irn.as_deref(), Some("a".repeat(64).as_str()));
        assert_eq!(f.ack_no.as_deref(), Some("112010036563310"));
        assert_eq!(f.ack_dt.as_deref(), Some("2026-11-02 10:15:00"));
        assert_eq!(f.ewb_no, None);
        assert!(fields_of(&"g".repeat(64), "", "", "").unwrap_err().contains("64 hexadecimal"));
        assert!(fields_of(&"a".repeat(63), "", "", "").is_err());
        assert!(fields_of("", "12a", "", "").is_err());
        assert!(fields_of("", "", "02/11/2026", "").is_err());
        assert!(fields_of("", "", "", "12345678901").is_err());
        assert_eq!(fields_of("", "", "", "123456789012").unwrap().ewb_no.as_deref(), Some("123456789012"));
        assert_eq!(fields_of(" ", "", "", "").unwrap(), OutsideFields::default());
    }

    #[test]
    fn outcomes_and_names() {
        assert_eq!(outcome_of("registered"), Some(Outside::Registered));
        assert_eq!(outcome_of("cancelled"), Some(Outside::Cancelled));
        assert_eq!(outcome_of("gone"), None);
        assert_eq!(action_name(Outside::Cancelled), "mark_cancelled_outside");
    }
}
