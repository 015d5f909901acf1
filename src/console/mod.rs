//! The operator console (issue 25): a small server-rendered web UI on `EINVOICE_CONSOLE_LISTEN`
//! (off by default) to find any document by the business's identifiers, act on one or on all
//! that match (retry, unpause), and read the audit trail and the IRN register.
//!
//! An adapter like the CLI: handlers parse, check the session, role and CSRF token, and call the
//! store ([`crate::store::console`], [`crate::store::ops`]) and the operator functions
//! ([`crate::operator`]: a retry here is `jobs retry`'s, lookup first). Every action asks for a
//! confirmation that says how many documents it touches, and is recorded in `operator_actions`
//! (append-only) and published as `operator.action`. See docs/console.md.
pub mod auth;
pub mod outside;
mod pages;
mod usage;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{NaiveDate, TimeZone};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use self::auth::{LoginLimiter, Session, Sessions};
use crate::config::{ConsoleRole, Settings};
use crate::domain::event::{CommandMeta, Event};
use crate::operator::{self, JobSummary};
use crate::store::console::{Cursor, NewAction, Search};
use crate::store::outbox::OutboxEvent;
use crate::store::Db;

/// The event every operator action publishes.
pub const OPERATOR_ACTION: &str = "operator.action";
/// At most this many documents per action: a filter matching more must be narrowed.
pub const MAX_ACTION: i64 = 1000;
/// Rows per page of the jobs list.
pub const PAGE: i64 = 50;
const COOKIE: &str = "einvoice_console";
const LOGIN_COOKIE: &str = "einvoice_console_login";

struct Inner {
    settings: Settings,
    db: Db,
    sessions: Sessions,
    limiter: LoginLimiter,
}

#[derive(Clone)]
struct App(Arc<Inner>);

/// Bind `addr` (a port alone binds loopback) and serve until `shutdown`; returns the bound address.
pub async fn serve(addr: &str, settings: Settings, shutdown: CancellationToken) -> std::io::Result<SocketAddr> {
    use secrecy::ExposeSecret;
    if settings.console_users.is_empty() {
        return Err(std::io::Error::other(
            "console_listen (EINVOICE_CONSOLE_LISTEN) is set but no console_users are configured; add \
             [console_users.<name>] with role and password_hash (see docs/console.md)",
        ));
    }
    let listener = tokio::net::TcpListener::bind(crate::runtime::health::bind_address(addr)).await?;
    let bound = listener.local_addr()?;
    // Its own small pool: a busy console cannot take the jobs' connections.
    let db = Db::with_ca(settings.database_url.expose_secret(), 2, settings.database_ca_file.as_deref())
        .map_err(|e| std::io::Error::other(format!("the console's database pool: {e}")))?;
    let app =
        router(App(Arc::new(Inner { settings, db, sessions: Sessions::default(), limiter: LoginLimiter::default() })));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
    });
    Ok(bound)
}

fn router(app: App) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/jobs") }))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/jobs", get(jobs))
        .route("/jobs/{id}", get(job))
        .route("/gstins", get(gstins))
        .route("/see", get(see))
        .route("/usage", get(usage::page))
        .route("/usage/export", get(usage::export))
        .route("/audit", get(audit))
        .route("/register", get(register_form))
        .route("/register/export", get(register_export))
        .route("/confirm/retry", get(confirm_retry))
        .route("/actions/retry", post(retry))
        .route("/confirm/replay", get(confirm_replay))
        .route("/actions/replay", post(replay))
        .route("/confirm/unpause", get(confirm_unpause))
        .route("/actions/unpause", post(unpause))
        .route("/confirm/outside", get(outside::confirm_outside))
        .route("/actions/outside", post(outside::mark_outside))
        .layer(axum::middleware::from_fn(hardened))
        .with_state(app)
}

/// Every answer: no caching, no framing, no script, no referrer; cut off after 60 s.
async fn hardened(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut r = match tokio::time::timeout(Duration::from_secs(60), next.run(req)).await {
        Ok(r) => r,
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the console did not answer in time\n").into_response(),
    };
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The search filter as the forms send it (empty fields are no filter).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FilterForm {
    pub gstin: String,
    pub status: String,
    pub doc_type: String,
    pub error_code: String,
    pub irp: String,
    pub from: String,
    pub to: String,
    pub doc_number: String,
    pub irn: String,
    pub ewb_no: String,
    pub request_id: String,
    pub batch_id: String,
    pub job_id: String,
}

fn opt(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// The longest reason an action may give: it goes into the audit row and the `operator.action`
/// event, whose size must not be the form's (axum lets a form be 2 MB).
const MAX_REASON_CHARS: usize = 500;

/// The reason an action gives for the audit log: required, at most [`MAX_REASON_CHARS`].
#[allow(clippy::result_large_err)] // as the session checks: the refusal page is the answer
fn reason_of(s: &Session, raw: &str) -> Result<String, Response> {
    reason_text(raw).map_err(|(title, text)| status_page(StatusCode::BAD_REQUEST, Some(s), title, &text))
}

fn reason_text(raw: &str) -> Result<String, (&'static str, String)> {
    let reason = opt(raw).ok_or(("Reason needed", "Say why, for the audit log.".to_string()))?;
    let n = reason.chars().count();
    if n > MAX_REASON_CHARS {
        return Err((
            "Reason too long",
            format!("The reason has {n} characters; at most {MAX_REASON_CHARS} are kept."),
        ));
    }
    Ok(reason)
}

/// A date input's day as the instant it starts in India (the filings' calendar).
fn india_day(s: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
    let Some(s) = opt(s) else { return Ok(None) };
    let d = NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|_| format!("'{s}' is not a date (YYYY-MM-DD)"))?;
    let t = chrono_tz::Asia::Kolkata
        .from_local_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"))
        .single()
        .expect("India has no DST");
    Ok(Some(t.with_timezone(&chrono::Utc)))
}

/// Percent-encode a query value (everything but RFC 3986's unreserved characters).
pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl FilterForm {
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("gstin", &self.gstin),
            ("status", &self.status),
            ("doc_type", &self.doc_type),
            ("error_code", &self.error_code),
            ("irp", &self.irp),
            ("from", &self.from),
            ("to", &self.to),
            ("doc_number", &self.doc_number),
            ("irn", &self.irn),
            ("ewb_no", &self.ewb_no),
            ("request_id", &self.request_id),
            ("batch_id", &self.batch_id),
            ("job_id", &self.job_id),
        ]
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (k, v.as_str()))
        .collect()
    }

    /// The filter as a query string (links to the next page and to the confirmation).
    pub fn query_string(&self) -> String {
        self.pairs().iter().map(|(k, v)| format!("{k}={}", enc(v))).collect::<Vec<_>>().join("&")
    }

    /// The store's search, limited to what `session` may see.
    fn search(&self, session: &Session) -> Result<Search, String> {
        let to = india_day(&self.to)?.map(|t| t + chrono::Duration::days(1));
        let job_id = match opt(&self.job_id) {
            Some(s) => Some(Uuid::parse_str(&s).map_err(|_| format!("job id '{s}' is not a UUID"))?),
            None => None,
        };
        if let Some(s) = opt(&self.status) {
            s.parse::<crate::domain::JobStatus>().map_err(|_| format!("status '{s}' is not a job status"))?;
        }
        Ok(Search {
            gstin: opt(&self.gstin),
            status: opt(&self.status),
            doc_type: opt(&self.doc_type),
            error_code: opt(&self.error_code),
            irp: opt(&self.irp),
            from: india_day(&self.from)?,
            to,
            doc_number: opt(&self.doc_number),
            irn: opt(&self.irn),
            ewb_no: opt(&self.ewb_no),
            request_id: opt(&self.request_id),
            batch_id: opt(&self.batch_id),
            job_id,
            allowed_gstins: session.gstins.clone(),
        })
    }
}

fn html(m: maud::Markup) -> Response {
    Html(m.into_string()).into_response()
}

fn status_page(code: StatusCode, session: Option<&Session>, title: &str, text: &str) -> Response {
    (code, Html(pages::message(title, session, text).into_string())).into_response()
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

// The refusal is the page to answer with, built at most once per request: boxing it buys nothing.
#[allow(clippy::result_large_err)]
impl App {
    fn set_cookie(&self, name: &str, value: &str, max_age: u64) -> HeaderValue {
        let secure = if self.0.settings.console_secure_cookie { "; Secure" } else { "" };
        HeaderValue::from_str(&format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"))
            .expect("token is a valid header value")
    }

    /// The request's session, or the answer to give instead (to the login page).
    fn session(&self, headers: &HeaderMap) -> Result<Session, Response> {
        cookie(headers, COOKIE)
            .and_then(|id| self.0.sessions.get(&id))
            .ok_or_else(|| Redirect::to("/login").into_response())
    }

    /// An operator's session whose form carried its CSRF token: checked on the server for every
    /// action, whatever the page showed.
    fn operator(&self, headers: &HeaderMap, csrf: Option<&str>) -> Result<Session, Response> {
        let s = self.session(headers)?;
        if s.role != ConsoleRole::Operator {
            return Err(status_page(
                StatusCode::FORBIDDEN,
                Some(&s),
                "Not allowed",
                &format!("{} has the role {}: only operators may act on documents", s.user, s.role.as_str()),
            ));
        }
        if let Some(given) = csrf {
            if !auth::same_secret(given, &s.csrf) {
                return Err(status_page(
                    StatusCode::FORBIDDEN,
                    Some(&s),
                    "Not allowed",
                    "this form is stale or not from this console (CSRF token mismatch); open the page again",
                ));
            }
        }
        Ok(s)
    }
}

async fn login_page() -> Response {
    let token = auth::random_token();
    let mut r = html(pages::login(&token, None));
    // A pre-login CSRF token (double submit): a cross-site page cannot log a browser in as someone else.
    let c =
        HeaderValue::from_str(&format!("{LOGIN_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=1800"))
            .expect("valid");
    r.headers_mut().append(header::SET_COOKIE, c);
    r
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    username: String,
    password: String,
}

async fn login(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let again = |code: StatusCode, msg: &str| {
        let token = auth::random_token();
        let mut r = (code, Html(pages::login(&token, Some(msg)).into_string())).into_response();
        let c = HeaderValue::from_str(&format!(
            "{LOGIN_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=1800"
        ))
        .expect("valid");
        r.headers_mut().append(header::SET_COOKIE, c);
        r
    };
    if f.csrf.is_empty() || !cookie(&headers, LOGIN_COOKIE).is_some_and(|c| auth::same_secret(&c, &f.csrf)) {
        return again(StatusCode::FORBIDDEN, "The login form expired; please log in again.");
    }
    let name = f.username.trim().to_ascii_lowercase();
    let user_key = format!("user:{name}");
    let keys = [user_key.clone(), format!("ip:{}", peer.ip())];
    if let Some(wait) = app.0.limiter.blocked(&keys) {
        return again(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many failed logins; try again in {} minute(s).", wait.as_secs().div_ceil(60).max(1)),
        );
    }
    // Argon2 takes tens of milliseconds of CPU: off the async threads.
    let users = app.0.settings.console_users.clone();
    let (n, p) = (name.clone(), f.password);
    let found =
        tokio::task::spawn_blocking(move || auth::check_login(&users, &n, &p).map(|(k, u)| (k.clone(), u.clone())))
            .await
            .ok()
            .flatten();
    let Some((name, user)) = found else {
        app.0.limiter.failed(&keys);
        tracing::warn!(user = %crate::domain::text::escape_controls(&name), "console login refused");
        return again(StatusCode::UNAUTHORIZED, "Wrong user name or password.");
    };
    app.0.limiter.succeeded(&user_key);
    let ttl = app.0.settings.console_session_secs;
    let id = app.0.sessions.start(Session::for_user(&name, &user, Duration::from_secs(ttl)));
    tracing::info!(user = %name, role = user.role.as_str(), "console login");
    let mut r = Redirect::to("/jobs").into_response();
    r.headers_mut().append(header::SET_COOKIE, app.set_cookie(COOKIE, &id, ttl));
    r
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(State(app): State<App>, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Response {
    if let Ok(s) = app.session(&headers) {
        if auth::same_secret(&f.csrf, &s.csrf) {
            if let Some(id) = cookie(&headers, COOKIE) {
                app.0.sessions.end(&id);
            }
        }
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().append(header::SET_COOKIE, app.set_cookie(COOKIE, "", 0));
    r
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Page {
    after: String,
}

fn store_error(s: &Session, e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "console: store error");
    status_page(StatusCode::SERVICE_UNAVAILABLE, Some(s), "Store unavailable", "PostgreSQL did not answer; try again.")
}

async fn jobs(
    State(app): State<App>,
    headers: HeaderMap,
    Query(f): Query<FilterForm>,
    Query(p): Query<Page>,
) -> Response {
    let s = match app.session(&headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let search = match f.search(&s) {
        Ok(q) => q,
        Err(e) => return status_page(StatusCode::BAD_REQUEST, Some(&s), "Bad filter", &e),
    };
    let after = Cursor::decode(&p.after);
    let (rows, total, ewbs) = match tokio::try_join!(
        app.0.db.search_jobs(&search, after, PAGE + 1),
        app.0.db.count_jobs(&search, 10_000),
        app.0.db.search_ewaybill_documents(&search, PAGE)
    ) {
        Ok(x) => x,
        Err(e) => return store_error(&s, e),
    };
    let next = (rows.len() as i64 > PAGE)
        .then(|| rows.get(PAGE as usize - 1).map(|j| Cursor { updated_at: j.updated_at, id: j.id }.encode()))
        .flatten();
    let shown: Vec<JobSummary> = rows.iter().take(PAGE as usize).map(JobSummary::from).collect();
    // The outside-mark links come from their module (pages only lays them out).
    let actions = outside::list_actions(&s, &f.query_string());
    let list = pages::JobList { rows: &shown, total, capped: total >= 10_000, next, ewbs: &ewbs, actions };
    html(pages::jobs(&s, &f, list))
}

/// Keys whose values are never shown, at any depth of a stored answer (belt and braces: the
/// worker stores no credentials in jobs).
fn redact(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                let k = k.to_ascii_lowercase();
                if ["token", "sek", "password", "secret", "appkey", "app_key", "client_secret"]
                    .iter()
                    .any(|s| k.contains(s))
                {
                    *x = json!("[redacted]");
                } else {
                    redact(x);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

async fn job(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let s = match app.session(&headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let not_found = |s: &Session| status_page(StatusCode::NOT_FOUND, Some(s), "Not found", "No such job.");
    let Ok(id) = Uuid::parse_str(&id) else { return not_found(&s) };
    let row = match app.0.db.job(id).await {
        Ok(Some(j)) if s.may_see(&j.gstin) => j,
        Ok(_) => return not_found(&s),
        Err(e) => return store_error(&s, e),
    };
    let key = id.to_string();
    let (detail, answer, (attempts, marked)) = match tokio::try_join!(
        operator::jobs_show(&app.0.db, &key),
        async { app.0.db.job_response(id).await.map_err(operator::OpError::from) },
        async { app.0.db.job_history(id).await.map_err(operator::OpError::from) }
    ) {
        Ok(x) => x,
        Err(e) => return store_error(&s, e),
    };
    let mut command = row.request.clone();
    let mut answer = answer;
    let mut attempts = attempts;
    command.iter_mut().chain(answer.iter_mut()).chain(attempts.iter_mut()).for_each(redact);
    let extra = maud::html! {
        (outside::job_actions(&s, id, &detail.summary.status))
        (outside::history(marked.as_ref(), attempts.as_ref()))
    };
    html(pages::job(&s, &detail, command.as_ref(), answer.as_ref(), extra))
}

async fn gstins(State(app): State<App>, headers: HeaderMap) -> Response {
    let s = match app.session(&headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match app.0.db.pauses().await {
        Ok(p) => html(pages::pauses(&s, &p.into_iter().filter(|p| s.may_see(&p.gstin)).collect::<Vec<_>>())),
        Err(e) => store_error(&s, e),
    }
}

async fn see(State(app): State<App>, headers: HeaderMap) -> Response {
    let s = match app.session(&headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut d = match app.0.db.dashboard().await {
        Ok(d) => d,
        Err(e) => return store_error(&s, e),
    };
    if s.gstins.is_some() {
        // A user limited to GSTINs sees theirs only (the hourly totals are of those documents too
        // only when unlimited: they are left out).
        d.pending.retain(|(g, ..)| s.may_see(g));
        d.expiring.retain(|(_, g, _)| s.may_see(g));
        d.error_budget.retain(|(k, _)| k.strip_prefix("gstin:").is_some_and(|g| s.may_see(g)));
        d.errors.clear();
        d.hourly.iter_mut().for_each(|h| (h.1, h.2) = (0, 0));
    }
    html(pages::see(&s, &d))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Before {
    before: Option<i64>,
}

async fn audit(State(app): State<App>, headers: HeaderMap, Query(b): Query<Before>) -> Response {
    let s = match app.session(&headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match app.0.db.actions(b.before, PAGE + 1).await {
        Ok(mut rows) => {
            let next = (rows.len() as i64 > PAGE).then(|| rows[PAGE as usize - 1].0);
            rows.truncate(PAGE as usize);
            html(pages::audit(&s, &rows, next))
        }
        Err(e) => store_error(&s, e),
    }
}

/// The documents an action on `f` would touch: (all that match, those it applies to). Err: the
/// page to show instead.
async fn retry_targets(
    app: &App,
    s: &Session,
    f: &FilterForm,
) -> Result<(Vec<crate::store::JobRow>, Vec<crate::store::JobRow>), Response> {
    let search = f.search(s).map_err(|e| status_page(StatusCode::BAD_REQUEST, Some(s), "Bad filter", &e))?;
    if search == (Search { allowed_gstins: search.allowed_gstins.clone(), ..Default::default() }) {
        return Err(status_page(
            StatusCode::BAD_REQUEST,
            Some(s),
            "Filter needed",
            "An action on every document needs at least one filter.",
        ));
    }
    let all = app.0.db.matching_jobs(&search, MAX_ACTION + 1).await.map_err(|e| store_error(s, e))?;
    if all.len() as i64 > MAX_ACTION {
        return Err(status_page(
            StatusCode::BAD_REQUEST,
            Some(s),
            "Too many documents",
            &format!("More than {MAX_ACTION} documents match: narrow the filter (e.g. by GSTIN, error code or dates)."),
        ));
    }
    let retryable = all.iter().filter(|j| operator::retry_path(j).is_ok()).cloned().collect();
    Ok((all, retryable))
}

fn retry_confirm(s: &Session, f: &FilterForm, all: usize, retryable: usize, note: Option<String>) -> Response {
    let mut hidden: Vec<(&str, String)> = f.pairs().into_iter().map(|(k, v)| (k, v.to_string())).collect();
    hidden.sort();
    html(pages::confirm(
        s,
        pages::Confirm {
            title: "Retry",
            action: "/actions/retry",
            summary: format!(
                "This will send {retryable} document(s) to the IRP again (an in-doubt one is looked up first, so none is \
                 registered twice). {all} match the filter; {} of them are not failed or in doubt and will not be touched.",
                all - retryable
            ),
            count: retryable as i64,
            hidden,
            note,
        },
    ))
}

async fn confirm_retry(State(app): State<App>, headers: HeaderMap, Query(f): Query<FilterForm>) -> Response {
    let s = match app.operator(&headers, None) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match retry_targets(&app, &s, &f).await {
        Ok((all, retryable)) => retry_confirm(&s, &f, all.len(), retryable.len(), None),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
    /// The count the confirmation page showed (text: urlencoded forms with `flatten` carry strings).
    #[serde(default)]
    expected: String,
    #[serde(default)]
    reason: String,
    #[serde(flatten)]
    filter: FilterForm,
}

/// Record an action in the audit trail with its `operator.action` event.
async fn record(app: &App, s: &Session, a: NewAction) -> Result<(), Response> {
    let data = json!({
        "action_id": a.action_id, "action": a.action, "actor": a.actor, "role": a.role, "filter": a.filter,
        "count": a.count, "done": a.done, "reason": a.reason, "job_ids": a.job_ids,
    });
    let event = OutboxEvent { event: Event::new(OPERATOR_ACTION, &CommandMeta::default(), data), reply_to: None };
    app.0.db.record_action(&a, &event).await.map(drop).map_err(|e| store_error(s, e))
}

async fn retry(State(app): State<App>, headers: HeaderMap, Form(f): Form<ActionForm>) -> Response {
    let s = match app.operator(&headers, Some(&f.csrf)) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let reason = match reason_of(&s, &f.reason) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let (all, retryable) = match retry_targets(&app, &s, &f.filter).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let expected: i64 = f.expected.trim().parse().unwrap_or(-1);
    if retryable.len() as i64 != expected {
        // What matches changed since the confirmation: confirm the new count instead of acting on it.
        return retry_confirm(
            &s,
            &f.filter,
            all.len(),
            retryable.len(),
            Some(format!("The matching documents changed since you confirmed {expected}: confirm again.")),
        );
    }
    let results = match operator::jobs_retry_rows(&app.0.db, &app.0.settings, &retryable).await {
        Ok(r) => r,
        Err(e) => return status_page(StatusCode::SERVICE_UNAVAILABLE, Some(&s), "Broker unavailable", &e.to_string()),
    };
    let done: Vec<Uuid> = results.iter().filter_map(|r| r.as_ref().ok().map(|r| r.job_id)).collect();
    let errors: Vec<String> = results.iter().filter_map(|r| r.as_ref().err().map(|e| e.to_string())).take(20).collect();
    let search = f.filter.search(&s).expect("checked by retry_targets");
    let action = NewAction {
        action_id: Uuid::new_v4(),
        actor: s.user.clone(),
        role: s.role.as_str().into(),
        action: "retry".into(),
        filter: serde_json::to_value(&search).expect("serialisable"),
        count: retryable.len() as i32,
        done: done.len() as i32,
        reason: Some(reason),
        job_ids: done.clone(),
        result: json!({"matched": all.len(), "errors": errors}),
    };
    if let Err(r) = record(&app, &s, action).await {
        return r;
    }
    tracing::info!(user = %s.user, count = done.len(), "console: retry");
    let ok = errors.is_empty();
    let text = format!(
        "{} of {} document(s) sent again{}",
        done.len(),
        retryable.len(),
        if ok { ".".to_string() } else { format!("; not sent: {}", errors.join("; ")) }
    );
    html(pages::done(&s, "Retried", &text, ok))
}

/// Dead letters examined per confirmation and replayed per action.
const DEAD_LIMIT: usize = 1000;

async fn confirm_replay(State(app): State<App>, headers: HeaderMap) -> Response {
    let s = match app.operator(&headers, None) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if s.gstins.is_some() {
        return status_page(
            StatusCode::FORBIDDEN,
            Some(&s),
            "Not allowed",
            "Dead letters are of every GSTIN: only an operator not limited to GSTINs may replay them.",
        );
    }
    // Looked at, not taken: each stays in the queue (see operator::dead).
    let n = match operator::dead(&app.0.settings, DEAD_LIMIT, None).await {
        Ok(m) => m.len(),
        Err(e) => return status_page(StatusCode::SERVICE_UNAVAILABLE, Some(&s), "Broker unavailable", &e.to_string()),
    };
    html(pages::confirm(
        &s,
        pages::Confirm {
            title: "Replay dead letters",
            action: "/actions/replay",
            summary: format!(
                "This will publish {n} dead-lettered command(s) again (as `einvoice-worker dead replay --all` does), each \
                 with a fresh retry budget; the worker answers one it already handled from the store."
            ),
            count: n as i64,
            hidden: Vec::new(),
            note: None,
        },
    ))
}

async fn replay(State(app): State<App>, headers: HeaderMap, Form(f): Form<ActionForm>) -> Response {
    let s = match app.operator(&headers, Some(&f.csrf)) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if s.gstins.is_some() {
        return status_page(StatusCode::FORBIDDEN, Some(&s), "Not allowed", "Dead letters are of every GSTIN.");
    }
    let reason = match reason_of(&s, &f.reason) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let expected: usize = f.expected.trim().parse().unwrap_or(0);
    // At most the count confirmed: a message dead-lettered since is left for the next look.
    let replayed = match operator::dead(&app.0.settings, expected, Some(operator::Select::All)).await {
        Ok(m) => m,
        Err(e) => return status_page(StatusCode::SERVICE_UNAVAILABLE, Some(&s), "Broker unavailable", &e.to_string()),
    };
    let action = NewAction {
        action_id: Uuid::new_v4(),
        actor: s.user.clone(),
        role: s.role.as_str().into(),
        action: "replay".into(),
        filter: json!({"dead_letters": "all"}),
        count: expected as i32,
        done: replayed.len() as i32,
        reason: Some(reason),
        job_ids: Vec::new(),
        result: json!({"message_ids": replayed.iter().filter_map(|m| m.message_id.clone()).collect::<Vec<_>>()}),
    };
    if let Err(r) = record(&app, &s, action).await {
        return r;
    }
    let text = format!("{} of {expected} dead-lettered command(s) published again.", replayed.len());
    html(pages::done(&s, "Replayed", &text, replayed.len() == expected))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GstinQuery {
    gstin: String,
}

async fn confirm_unpause(State(app): State<App>, headers: HeaderMap, Query(q): Query<GstinQuery>) -> Response {
    let s = match app.operator(&headers, None) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let gstin = q.gstin.trim().to_ascii_uppercase();
    let paused = match app.0.db.paused_until(&gstin).await {
        Ok(p) => p.filter(|_| s.may_see(&gstin)),
        Err(e) => return store_error(&s, e),
    };
    html(pages::confirm(
        &s,
        pages::Confirm {
            title: "Unpause",
            action: "/actions/unpause",
            summary: match paused {
                Some(t) => format!(
                    "This will end the pause of GSTIN {gstin} (paused until {} UTC): its waiting documents are sent to the IRP again.",
                    t.format("%Y-%m-%d %H:%M:%S")
                ),
                None => format!("GSTIN {gstin} is not paused: nothing to do."),
            },
            count: paused.map_or(0, |_| 1),
            hidden: vec![("gstin", gstin.clone())],
            note: None,
        },
    ))
}

async fn unpause(State(app): State<App>, headers: HeaderMap, Form(f): Form<ActionForm>) -> Response {
    let s = match app.operator(&headers, Some(&f.csrf)) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let gstin = f.filter.gstin.trim().to_ascii_uppercase();
    let reason = match reason_of(&s, &f.reason) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if !s.may_see(&gstin) {
        return status_page(StatusCode::FORBIDDEN, Some(&s), "Not allowed", "This GSTIN is not among yours.");
    }
    let ended = match app.0.db.unpause_gstin(&gstin).await {
        Ok(e) => e,
        Err(e) => return store_error(&s, e),
    };
    let action = NewAction {
        action_id: Uuid::new_v4(),
        actor: s.user.clone(),
        role: s.role.as_str().into(),
        action: "unpause".into(),
        filter: json!({"gstin": gstin}),
        count: 1,
        done: i32::from(ended),
        reason: Some(reason),
        job_ids: Vec::new(),
        result: json!({"was_paused": ended}),
    };
    if let Err(r) = record(&app, &s, action).await {
        return r;
    }
    let text = if ended { format!("{gstin} unpaused.") } else { format!("{gstin} was not paused.") };
    html(pages::done(&s, "Unpause", &text, ended))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RegisterQuery {
    gstin: String,
    period: String,
    format: String,
}

async fn register_form(State(app): State<App>, headers: HeaderMap, Query(q): Query<RegisterQuery>) -> Response {
    match app.session(&headers) {
        Ok(s) => html(pages::register_form(&s, &q.gstin, &q.period)),
        Err(r) => r,
    }
}

async fn register_export(State(app): State<App>, headers: HeaderMap, Query(q): Query<RegisterQuery>) -> Response {
    use crate::store::console::{parse_period, register_csv};
    let s = match app.session(&headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let gstin = q.gstin.trim().to_ascii_uppercase();
    let Some((y, m)) = parse_period(&q.period) else {
        return status_page(StatusCode::BAD_REQUEST, Some(&s), "Bad period", "Give the return period as YYYY-MM.");
    };
    if gstin.is_empty() || !s.may_see(&gstin) {
        return status_page(StatusCode::FORBIDDEN, Some(&s), "Not allowed", "Give one of your GSTINs.");
    }
    let lines = match app.0.db.irn_register(&gstin, y, m).await {
        Ok(l) => l,
        Err(e) => return store_error(&s, e),
    };
    let name = format!("irn-register-{gstin}-{y:04}-{m:02}");
    let (body, ctype, ext) = if q.format == "json" {
        (serde_json::to_string_pretty(&lines).expect("serialisable"), "application/json", "json")
    } else {
        (register_csv(&lines), "text/csv; charset=utf-8", "csv")
    };
    (
        [
            (header::CONTENT_TYPE, ctype.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}.{ext}\"")),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_encoded() {
        let f = FilterForm { doc_number: "SMP/4711 &x=1".into(), gstin: " ".into(), ..Default::default() };
        assert_eq!(f.query_string(), "doc_number=SMP%2F4711%20%26x%3D1");
    }

    #[test]
    fn a_reason_is_required_and_bounded() {
        assert_eq!(reason_text("  fixed the buyer master "), Ok("fixed the buyer master".into()));
        assert_eq!(reason_text(" \t").unwrap_err().0, "Reason needed");
        assert_eq!(reason_text(&"é".repeat(MAX_REASON_CHARS)).map(|r| r.chars().count()), Ok(MAX_REASON_CHARS));
        let (title, text) = reason_text(&"x".repeat(MAX_REASON_CHARS + 1)).unwrap_err();
        assert_eq!(title, "Reason too long");
        assert!(text.contains("501 characters"), "{text}");
    }

    #[test]
    fn dates_are_india_days() {
        let t = india_day("2026-11-01").unwrap().unwrap();
        assert_eq!(t.to_rfc3339(), "2026-10-31T18:30:00+00:00");
        assert!(india_day("01/11/2026").is_err());
        assert_eq!(india_day(" ").unwrap(), None);
    }

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let mut v = json!({"Irn": "x", "data": [{"AuthToken": "t", "Sek": "s", "ok": 1}]});
        redact(&mut v);
        assert_eq!(v, json!({"Irn": "x", "data": [{"AuthToken": "[redacted]", "Sek": "[redacted]", "ok": 1}]}));
    }
}
