//! The console's API consumption page (issue 25): IRP calls per GSTIN, per IRP endpoint, per
//! India day for a date range (the last 7 days by default), with totals and the cost at the
//! configured price per call, and the same table as CSV. Viewers and operators see it; a user
//! limited to GSTINs sees only theirs. The numbers are [`crate::operator::usage`]'s, as the
//! `usage report` command prints them.
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use rust_decimal::Decimal;
use serde::Deserialize;

use super::auth::Session;
use super::{enc, html as page_response, opt, pages, status_page, store_error, App};
use crate::operator::usage::{range, report, Report, Totals};
use crate::store::usage::UsageQuery;

/// The page's filter as its form sends it (empty: the default).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct UsageForm {
    from: String,
    to: String,
    gstin: String,
}

impl UsageForm {
    /// The store's query limited to what `s` may see, or the refusal page.
    #[allow(clippy::result_large_err)] // the refusal is the page to answer with
    fn query(&self, s: &Session) -> Result<UsageQuery, Response> {
        let (from, to) = range(&self.from, &self.to)
            .map_err(|e| status_page(StatusCode::BAD_REQUEST, Some(s), "Bad date range", &e))?;
        let gstin = opt(&self.gstin).map(|g| g.to_ascii_uppercase());
        if gstin.as_deref().is_some_and(|g| !s.may_see(g)) {
            return Err(status_page(StatusCode::FORBIDDEN, Some(s), "Not allowed", "Give one of your GSTINs."));
        }
        Ok(UsageQuery { from, to, gstin, allowed_gstins: s.gstins.clone() })
    }

    fn query_string(&self, q: &UsageQuery) -> String {
        let mut out = format!("from={}&to={}", q.from, q.to);
        if let Some(g) = &q.gstin {
            out.push_str(&format!("&gstin={}", enc(g)));
        }
        out
    }
}

/// `GET /usage`: the page.
pub(super) async fn page(State(app): State<App>, headers: HeaderMap, Query(f): Query<UsageForm>) -> Response {
    let s = match app.session(&headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = match f.query(&s) {
        Ok(q) => q,
        Err(r) => return r,
    };
    match report(&app.0.db, &app.0.settings, &q).await {
        Ok(r) => page_response(render(&s, &f, &q, &r, app.0.settings.usage_flush_secs)),
        Err(e) => store_error(&s, e),
    }
}

/// `GET /usage/export`: the same table as CSV.
pub(super) async fn export(State(app): State<App>, headers: HeaderMap, Query(f): Query<UsageForm>) -> Response {
    let s = match app.session(&headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = match f.query(&s) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let r = match report(&app.0.db, &app.0.settings, &q).await {
        Ok(r) => r,
        Err(e) => return store_error(&s, e),
    };
    let name = match &q.gstin {
        Some(g) => format!("api-usage-{g}-{}-{}.csv", q.from, q.to),
        None => format!("api-usage-{}-{}.csv", q.from, q.to),
    };
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        r.csv(),
    )
        .into_response()
}

fn money(d: Option<Decimal>) -> Markup {
    match d {
        Some(d) => html! { "₹" (d) },
        None => html! { span title="no price configured for this IRP (api_price_per_call)" { "—" } },
    }
}

fn totals_cells(t: &Totals) -> Markup {
    html! { td { (t.calls) } td { (t.ok) } td { (t.error) } td { (t.failed) } td { (money(t.cost)) } }
}

fn render(s: &Session, f: &UsageForm, q: &UsageQuery, r: &Report, flush_secs: u64) -> Markup {
    let qs = f.query_string(q);
    pages::page(
        "API usage",
        Some(s),
        html! {
            p { "IRP API calls per GSTIN, endpoint and India day, authentication included, and their cost at the \
                 configured price per call (" code { "api_price_per_call" } "; every call is billed, whatever its outcome). \
                 Workers write their counts every " (flush_secs) " s." }
            form method="get" action="/usage" {
                fieldset {
                    legend { "Days and GSTIN" }
                    div.grid {
                        p { label for="from" { "From (India date)" } input #from type="date" name="from" value=(q.from); }
                        p { label for="to" { "To (India date, inclusive)" } input #to type="date" name="to" value=(q.to); }
                        p { label for="gstin" { "GSTIN (empty: all yours)" } input #gstin type="text" name="gstin" value=(f.gstin.trim()); }
                    }
                    button type="submit" { "Show" }
                    " " a href={ "/usage/export?" (qs) } download { "Download as CSV" }
                }
            }
            h2 { "Totals, " (r.from) " to " (r.to) }
            @if r.lines.is_empty() { p { "No IRP calls in these days." } } @else {
                table {
                    caption { "Calls and cost per GSTIN" }
                    thead { tr {
                        th scope="col" { "GSTIN" } th scope="col" { "Calls" } th scope="col" { "OK" }
                        th scope="col" { "IRP error" } th scope="col" { "Failed (no answer)" } th scope="col" { "Cost" }
                    } }
                    tbody {
                        @for (g, t) in &r.per_gstin { tr { th scope="row" { (g) } (totals_cells(t)) } }
                    }
                    tfoot { tr { th scope="row" { "All" } (totals_cells(&r.total)) } }
                }
                @if r.total.unpriced_calls > 0 && r.total.cost.is_some() {
                    p.note { (r.total.unpriced_calls) " calls went to IRPs without a configured price: they are not in the cost." }
                }
                h2 { "Per day, GSTIN and endpoint" }
                table {
                    caption { "Calls per India day, GSTIN, IRP and endpoint" }
                    thead { tr {
                        th scope="col" { "Day" } th scope="col" { "GSTIN" } th scope="col" { "IRP" } th scope="col" { "Endpoint" }
                        th scope="col" { "Calls" } th scope="col" { "OK" } th scope="col" { "IRP error" }
                        th scope="col" { "Failed (no answer)" } th scope="col" { "Price per call" } th scope="col" { "Cost" }
                    } }
                    tbody {
                        @for l in &r.lines { tr {
                            td { (l.row.day) } td { (l.row.gstin) } td { (l.row.irp) } td { code { (l.row.endpoint) } }
                            td { (l.row.calls) } td { (l.row.ok) } td { (l.row.error) } td { (l.row.failed) }
                            td { (money(l.price_per_call)) } td { (money(l.cost)) }
                        } }
                    }
                }
            }
        },
    )
}
