//! The console's HTML: server-rendered `maud` templates (every interpolated value escaped), no
//! script at all, labelled controls, visible focus, high-contrast colours.
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde_json::Value;

use super::auth::Session;
use super::FilterForm;
use crate::operator::{JobDetail, JobSummary};
use crate::store::console::{Action, Dashboard};
use crate::store::ops::Pause;

const CSS: &str = "
body{font:16px/1.45 system-ui,sans-serif;color:#111;background:#fff;margin:0}
header{background:#1a1a2e;color:#fff;padding:.5rem 1rem;display:flex;gap:1.5rem;align-items:center;flex-wrap:wrap}
header a{color:#fff} header form{margin-left:auto}
main{padding:1rem;max-width:80rem}
a{color:#0645ad} a:focus,button:focus,input:focus,select:focus{outline:3px solid #ffbf47;outline-offset:1px}
table{border-collapse:collapse;width:100%;margin:.5rem 0} th,td{border:1px solid #767676;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f0f0f0} code,pre{font-family:ui-monospace,monospace;font-size:.9em} pre{background:#f6f6f6;padding:.5rem;overflow:auto;max-height:30rem}
fieldset{border:1px solid #767676;margin:.5rem 0} .grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(14rem,1fr));gap:.5rem 1rem}
label{display:block;font-weight:600} input,select{font:inherit;padding:.2rem;width:100%;box-sizing:border-box;border:1px solid #555}
button{font:inherit;padding:.3rem .9rem;background:#0b5394;color:#fff;border:0;cursor:pointer} button.danger{background:#a4000f}
.note{background:#fff4ce;border-left:4px solid #8a6d00;padding:.5rem} .error{background:#fde7e9;border-left:4px solid #a4000f;padding:.5rem}
.ok{background:#dff6dd;border-left:4px solid #107c10;padding:.5rem}
";

/// A whole page: header with navigation and the user (or none on the login page).
pub fn page(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · einvoice-worker console" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    strong { "einvoice-worker" }
                    @if let Some(s) = session {
                        nav aria-label="Main" {
                            a href="/jobs" { "Jobs" } " · "
                            a href="/see" { "See" } " · "
                            a href="/usage" { "API usage" } " · "
                            a href="/gstins" { "Paused GSTINs" } " · "
                            a href="/register" { "IRN register" } " · "
                            a href="/audit" { "Audit log" }
                        }
                        form method="post" action="/logout" {
                            span { (s.user) " (" (s.role.as_str()) ") " }
                            input type="hidden" name="csrf" value=(s.csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

pub fn login(csrf: &str, error: Option<&str>) -> Markup {
    page(
        "Log in",
        None,
        html! {
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(csrf);
                p { label for="username" { "User name" } input #username name="username" autocomplete="username" required autofocus; }
                p { label for="password" { "Password" } input #password type="password" name="password" autocomplete="current-password" required; }
                button type="submit" { "Log in" }
            }
        },
    )
}

pub fn message(title: &str, session: Option<&Session>, text: &str) -> Markup {
    page(title, session, html! { p.error role="alert" { (text) } p { a href="/jobs" { "Back to the jobs" } } })
}

fn field(id: &str, label: &str, value: &str, kind: &str) -> Markup {
    html! { p { label for=(id) { (label) } input #(id) type=(kind) name=(id) value=(value); } }
}

const STATUSES: &[&str] = &[
    "pending",
    "in_flight",
    "in_doubt",
    "generated",
    "rejected",
    "failed",
    "cancelled",
    "registered_outside",
    "cancelled_outside",
];

/// The search form, filled with `f`.
pub fn filter_form(f: &FilterForm) -> Markup {
    html! {
        form method="get" action="/jobs" role="search" {
            fieldset {
                legend { "Find documents" }
                div.grid {
                    (field("irn", "IRN", &f.irn, "text"))
                    (field("doc_number", "Document number", &f.doc_number, "text"))
                    (field("ewb_no", "E-way bill number", &f.ewb_no, "text"))
                    (field("request_id", "Request id", &f.request_id, "text"))
                    (field("batch_id", "Batch id", &f.batch_id, "text"))
                    (field("gstin", "GSTIN", &f.gstin, "text"))
                    p {
                        label for="status" { "Status" }
                        select #status name="status" {
                            option value="" { "any" }
                            @for s in STATUSES { option value=(s) selected[f.status == *s] { (s) } }
                        }
                    }
                    (field("doc_type", "Kind (document type: INV, CRN, DBN)", &f.doc_type, "text"))
                    (field("error_code", "Error code", &f.error_code, "text"))
                    (field("irp", "IRP", &f.irp, "text"))
                    (field("from", "Updated from (date)", &f.from, "date"))
                    (field("to", "Updated to (date, inclusive)", &f.to, "date"))
                }
                button type="submit" { "Search" }
                " " a href="/jobs" { "Clear" }
            }
        }
    }
}

/// What the jobs page lists under its filter.
pub struct JobList<'a> {
    /// This page of matching jobs.
    pub rows: &'a [JobSummary],
    /// How many match (at most the count's cap).
    pub total: i64,
    /// `total` is the cap: more match.
    pub capped: bool,
    /// The next page's cursor.
    pub next: Option<String>,
    /// E-way bills made without an IRN that match the e-way bill or document number.
    pub ewbs: &'a [crate::store::console::EwbDocLine],
    /// The links to act on all that match, by the module that owns each action.
    pub actions: Markup,
}

pub fn jobs(session: &Session, f: &FilterForm, list: JobList<'_>) -> Markup {
    let JobList { rows, total, capped, next, ewbs, actions } = list;
    let query = f.query_string();
    page(
        "Jobs",
        Some(session),
        html! {
            (filter_form(f))
            p role="status" { (if capped { format!("More than {total}") } else { total.to_string() }) " document(s) match." }
            @if session.role == crate::config::ConsoleRole::Operator && total > 0 {
                p { a href={ "/confirm/retry?" (query) } { "Retry all that match…" } }
            }
            (actions)
            table {
                caption { "Matching jobs, newest first" }
                thead { tr { th scope="col" { "Document" } th scope="col" { "GSTIN" } th scope="col" { "Status" } th scope="col" { "IRP" }
                    th scope="col" { "Tries" } th scope="col" { "Updated (UTC)" } th scope="col" { "IRN / last error" } } }
                tbody {
                    @for j in rows {
                        tr {
                            td { a href={ "/jobs/" (j.job_id) } { (j.doc_type) " " (j.doc_number) " / " (j.financial_year) } }
                            td { (j.gstin) } td { (j.status) } td { (j.irp.as_deref().unwrap_or("-")) } td { (j.attempts) }
                            td { (j.updated_at.format("%Y-%m-%d %H:%M:%S")) }
                            td { code { (j.irn.clone().or_else(|| j.last_error.clone()).unwrap_or_default()) } }
                        }
                    }
                }
            }
            @if let Some(n) = next { p { a href={ "/jobs?" (query) "&after=" (n) } rel="next" { "Next page" } } }
            @if !ewbs.is_empty() {
                table {
                    caption { "E-way bills made without an IRN that match the e-way bill or document number" }
                    thead { tr { th scope="col" { "Document" } th scope="col" { "Document date" } th scope="col" { "GSTIN" }
                        th scope="col" { "E-way bill" } th scope="col" { "Status" } th scope="col" { "Valid till" } th scope="col" { "Calls" } } }
                    tbody {
                        @for e in ewbs {
                            tr {
                                td { (e.doc_type) " " (e.doc_number) } td { (e.doc_date) } td { (e.gstin) }
                                td { code { (e.ewb_no.as_deref().unwrap_or("-")) } }
                                td { (e.status.as_deref().unwrap_or("not made yet")) }
                                td { (e.valid_till.as_deref().unwrap_or("-")) } td { (e.calls) }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// `extra`: the outside-mark links and the attempt history (see `console::outside`).
pub fn job(session: &Session, d: &JobDetail, command: Option<&Value>, answer: Option<&Value>, extra: Markup) -> Markup {
    let j = &d.summary;
    page(
        &format!("{} {} / {}", j.doc_type, j.doc_number, j.financial_year),
        Some(session),
        html! {
            table {
                tbody {
                    tr { th scope="row" { "Job" } td { code { (j.job_id) } } }
                    tr { th scope="row" { "Status" } td { (j.status) } }
                    tr { th scope="row" { "GSTIN" } td { (j.gstin) } }
                    tr { th scope="row" { "Document date" } td { (j.doc_date.as_deref().unwrap_or("-")) } }
                    tr { th scope="row" { "IRP" } td { (j.irp.as_deref().unwrap_or("-")) } }
                    tr { th scope="row" { "Attempts" } td { (j.attempts) " (first " (d.first_attempt_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into())) ")" } }
                    tr { th scope="row" { "IRN" } td { code { (j.irn.as_deref().unwrap_or("-")) } } }
                    tr { th scope="row" { "Ack" } td { (j.ack_no.as_deref().unwrap_or("-")) " " (d.ack_dt.as_deref().unwrap_or("")) } }
                }
            }
            @if session.role == crate::config::ConsoleRole::Operator && matches!(j.status.as_str(), "failed" | "in_doubt") {
                p { a href={ "/confirm/retry?job_id=" (j.job_id) } { "Retry this document…" } }
            }
            (extra)
            h2 { "Last errors" }
            @match &d.errors { Some(e) => { pre { (pretty(e)) } } None => { p { "None." } } }
            h2 { "IRP answer (stored)" }
            @match answer { Some(a) => { pre { (pretty(a)) } } None => { p { "None stored." } } }
            h2 { "Events" }
            table {
                thead { tr { th scope="col" { "Event" } th scope="col" { "Written" } th scope="col" { "Published" } } }
                tbody {
                    @for e in &d.events {
                        tr { td { (e.event_type) } td { (e.created_at.to_rfc3339()) }
                             td { (e.published_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "not yet".into())) } }
                    }
                }
            }
            h2 { "Command (the stored invoice)" }
            @match command { Some(c) => { pre { (pretty(c)) } } None => { p { "None stored." } } }
        },
    )
}

/// What a confirmation page describes.
pub struct Confirm<'a> {
    pub title: &'a str,
    pub action: &'a str,
    pub summary: String,
    pub count: i64,
    pub hidden: Vec<(&'a str, String)>,
    pub note: Option<String>,
}

pub fn confirm(session: &Session, c: Confirm<'_>) -> Markup {
    page(
        c.title,
        Some(session),
        html! {
            p.note role="status" { (c.summary) }
            @if let Some(n) = &c.note { p.error role="alert" { (n) } }
            @if !c.hidden.is_empty() {
                table {
                    caption { "For" }
                    tbody { @for (k, v) in &c.hidden { tr { th scope="row" { (k) } td { code { (v) } } } } }
                }
            }
            @if c.count > 0 {
                form method="post" action=(c.action) {
                    input type="hidden" name="csrf" value=(session.csrf);
                    input type="hidden" name="expected" value=(c.count);
                    @for (k, v) in &c.hidden { input type="hidden" name=(k) value=(v); }
                    p { label for="reason" { "Reason (kept in the audit log)" } input #reason name="reason" required maxlength="500"; }
                    button.danger type="submit" { (c.title) " (" (c.count) ")" }
                    " " a href="/jobs" { "Cancel" }
                }
            }
        },
    )
}

pub fn done(session: &Session, title: &str, text: &str, ok: bool) -> Markup {
    page(
        title,
        Some(session),
        html! {
            @if ok { p.ok role="status" { (text) } } @else { p.error role="alert" { (text) } }
            p { a href="/audit" { "See the audit log" } " · " a href="/jobs" { "Back to the jobs" } }
        },
    )
}

pub fn pauses(session: &Session, pauses: &[Pause]) -> Markup {
    page(
        "Paused GSTINs",
        Some(session),
        html! {
            @if session.role == crate::config::ConsoleRole::Operator && session.gstins.is_none() {
                p { a href="/confirm/replay" { "Replay dead-lettered commands…" } }
            }
            @if pauses.is_empty() { p { "No GSTIN is paused." } }
            table {
                thead { tr { th scope="col" { "GSTIN" } th scope="col" { "Paused until (UTC)" } th scope="col" { "Reason" } th scope="col" { "Action" } } }
                tbody {
                    @for p in pauses {
                        tr { td { (p.gstin) } td { (p.paused_until.format("%Y-%m-%d %H:%M:%S")) } td { code { (p.reason.to_string()) } }
                             td { @if session.role == crate::config::ConsoleRole::Operator { a href={ "/confirm/unpause?gstin=" (p.gstin) } { "Unpause…" } } } }
                    }
                }
            }
        },
    )
}

pub fn audit(session: &Session, rows: &[(i64, Action)], next: Option<i64>) -> Markup {
    page(
        "Audit log",
        Some(session),
        html! {
            p { "Every operator action, newest first. This log cannot be changed or deleted." }
            table {
                thead { tr { th scope="col" { "When (UTC)" } th scope="col" { "Who" } th scope="col" { "Action" } th scope="col" { "Filter" }
                    th scope="col" { "Documents" } th scope="col" { "Reason" } } }
                tbody {
                    @for (_, a) in rows {
                        tr { td { (a.at.format("%Y-%m-%d %H:%M:%S")) } td { (a.actor) " (" (a.role) ")" } td { (a.action) }
                             td { code { (a.filter.to_string()) } } td { (a.done) " of " (a.count) } td { (a.reason.as_deref().unwrap_or("")) } }
                    }
                }
            }
            @if let Some(n) = next { p { a href={ "/audit?before=" (n) } rel="next" { "Older" } } }
        },
    )
}

pub fn register_form(session: &Session, gstin: &str, period: &str) -> Markup {
    page(
        "IRN register",
        Some(session),
        html! {
            p { "Every IRN and e-way bill of a GSTIN for a return period (by document date), with its status and issuing IRP: what GSTR-1's e-invoice table is ticked off against." }
            form method="get" action="/register/export" {
                div.grid {
                    (field("gstin", "GSTIN", gstin, "text"))
                    (field("period", "Return period (YYYY-MM)", period, "month"))
                    p { label for="format" { "Format" } select #format name="format" { option value="csv" { "CSV" } option value="json" { "JSON" } } }
                }
                button type="submit" { "Download" }
            }
        },
    )
}

/// Seconds as "3 h 12 min", "45 s".
fn age(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// The last 24 hours as bars (done above, failed below the axis): a server-drawn SVG with a
/// text title per bar for screen readers, and the same figures in a table beside it.
fn chart(hourly: &[(chrono::DateTime<chrono::Utc>, i64, i64)]) -> Markup {
    let (w, h, mid) = (720.0, 200.0, 130.0);
    let max = hourly.iter().map(|(_, d, f)| (*d).max(*f)).max().unwrap_or(0).max(1) as f64;
    let bw = w / hourly.len().max(1) as f64;
    html! {
        svg width="720" height="200" viewBox="0 0 720 200" role="img" aria-labelledby="chart-title" {
            title #chart-title { "Documents done (blue, up) and failed or rejected (red, down) per hour, last 24 hours" }
            line x1="0" y1=(mid) x2=(w) y2=(mid) stroke="#111" {}
            @for (i, (t, done, failed)) in hourly.iter().enumerate() {
                @let x = i as f64 * bw + 2.0;
                @let up = *done as f64 / max * (mid - 10.0);
                @let down = *failed as f64 / max * (h - mid - 10.0);
                g {
                    title { (t.format("%H:00 UTC")) ": " (done) " done, " (failed) " failed" }
                    rect x=(x) y=(mid - up) width=(bw - 4.0) height=(up) fill="#0b5394" {}
                    rect x=(x) y=(mid) width=(bw - 4.0) height=(down) fill="#a4000f" {}
                }
            }
        }
    }
}

pub fn see(session: &Session, d: &Dashboard) -> Markup {
    page(
        "See",
        Some(session),
        html! {
            h2 { "Waiting, per GSTIN and IRP" }
            @if d.pending.is_empty() { p { "Nothing is waiting." } } @else {
                table {
                    thead { tr { th scope="col" { "GSTIN" } th scope="col" { "IRP" } th scope="col" { "Documents not finished" } th scope="col" { "Oldest waiting" } } }
                    tbody { @for (g, irp, n, secs) in &d.pending { tr { td { (g) } td { (irp) } td { (n) } td { (age(*secs)) } } } }
                }
            }
            h2 { "Last 24 hours" }
            (chart(&d.hourly))
            details {
                summary { "The figures per hour" }
                table {
                    thead { tr { th scope="col" { "Hour (UTC)" } th scope="col" { "Done" } th scope="col" { "Failed or rejected" } } }
                    tbody { @for (t, done, failed) in &d.hourly { tr { td { (t.format("%Y-%m-%d %H:00")) } td { (done) } td { (failed) } } } }
                }
            }
            h2 { "Errors by code, last 24 hours" }
            @if d.errors.is_empty() { p { "No errors." } } @else {
                table {
                    thead { tr { th scope="col" { "Code" } th scope="col" { "Documents" } th scope="col" { "Find" } } }
                    tbody { @for (code, n) in &d.errors { tr { td { code { (code) } } td { (n) }
                        td { a href={ "/jobs?error_code=" (super::enc(code)) } { "the documents" } } } } }
                }
            }
            h2 { "E-way bills expiring within 24 hours" }
            @if d.expiring.is_empty() { p { "None." } } @else {
                table {
                    thead { tr { th scope="col" { "E-way bill" } th scope="col" { "GSTIN" } th scope="col" { "Valid till (India time)" } } }
                    tbody { @for (no, g, till) in &d.expiring { tr { td { (no) } td { (g) } td { (till) } } } }
                }
            }
            h2 { "Error budget used today" }
            p { "IRP error responses today (India date); NIC blocks a GSTIN after 20,000 and a client ID after 1 lakh." }
            @if d.error_budget.is_empty() { p { "None today." } } @else {
                table {
                    thead { tr { th scope="col" { "Key" } th scope="col" { "Error responses" } } }
                    tbody { @for (k, n) in &d.error_budget { tr { td { code { (k) } } td { (n) } } } }
                }
            }
        },
    )
}
