//! Configuration: embedded defaults, then an optional TOML file (`EINVOICE_CONFIG`), then
//! environment variables prefixed `EINVOICE_` (nested keys split on `__`).
//!
//! We use `figment` (the layering Svix uses) rather than hand-parsing env vars: it merges the
//! three sources, reports which source a bad value came from, and deserialises secrets straight
//! into `secrecy::SecretString`, so a password never lives in a plain `String` we could log.
use std::collections::BTreeMap;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Which IRP protocol a GSTIN is registered through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// The Whitebooks GSP REST API (the GSP does the NIC encryption).
    Whitebooks,
    /// The NIC IRP direct API, with RSA/AES payload encryption done here.
    Nic,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Whitebooks => "whitebooks",
            ProviderKind::Nic => "nic",
        }
    }
}

/// Sandbox tokens live 1 h, production tokens 6 h; the keys and URLs differ too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    #[default]
    Sandbox,
    Production,
}

/// Credentials and endpoint for one seller GSTIN at its primary IRP; `failover` lists further
/// IRPs (the same keys, each with its own `irp` name) in priority order.
///
/// `Serialize` exists only to seal a GSTIN managed in the database (`store::gstins`): it writes
/// the secrets in clear, so its output goes straight into the `SecretBox` (or through
/// [`GstinConfig::public_json`], which drops them), never to a log or an event.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct GstinConfig {
    pub provider: ProviderKind,
    /// Which IRP this is: `NIC1`, `NIC2`, `IRIS`, `CYGNET`, `CLEAR`, `EY`, … (default: `NIC1` for
    /// the `nic` provider, `whitebooks` for the GSP). Recorded on every IRN it issues.
    #[serde(default)]
    pub irp: Option<String>,
    /// Further IRPs for this GSTIN, tried in order when the ones before are down (never for a
    /// document whose generate may have reached another IRP).
    #[serde(default)]
    pub failover: Vec<GstinConfig>,
    #[serde(default)]
    pub environment: Environment,
    pub base_url: String,
    /// Whitebooks: the account e-mail sent as `?email=`.
    #[serde(default)]
    pub email: String,
    #[serde(deserialize_with = "string_or_number")]
    pub username: String,
    #[serde(deserialize_with = "secret_string_or_number", serialize_with = "expose_for_sealing")]
    pub password: SecretString,
    #[serde(deserialize_with = "string_or_number")]
    pub client_id: String,
    #[serde(deserialize_with = "secret_string_or_number", serialize_with = "expose_for_sealing")]
    pub client_secret: SecretString,
    /// Whitebooks: the caller's public IP as registered with the GSP.
    #[serde(default = "default_ip")]
    pub ip_address: String,
    /// NIC: the IRP's encryption public key (PEM), inline or from a file.
    /// One shared copy per distinct text ([`SharedText`]).
    #[serde(default, deserialize_with = "shared_text", serialize_with = "serialize_shared_text")]
    pub public_key_pem: Option<SharedText>,
    #[serde(default)]
    pub public_key_file: Option<String>,
    /// NIC: the IRP's signing key/certificate (PEM) used to verify SignedInvoice/SignedQRCode.
    #[serde(
        default,
        alias = "signing_cert_pem",
        deserialize_with = "shared_text",
        serialize_with = "serialize_shared_text"
    )]
    pub signing_key_pem: Option<SharedText>,
    #[serde(default, alias = "signing_cert_file")]
    pub signing_key_file: Option<String>,
    /// The IRP's reporting window for this seller, in days (30 for AATO ≥ ₹10 cr from 1-Apr-2025):
    /// older documents are rejected before any call. Overrides `reporting_window_days`.
    #[serde(default)]
    pub reporting_window_days: Option<u32>,
    /// Whitebooks `type` names, overridable because the GSP's documented and deployed names differ.
    #[serde(default)]
    pub type_names: BTreeMap<String, String>,
    /// NIC: how the client headers are spelled (see [`HeaderSpelling`]).
    #[serde(default)]
    pub header_spelling: HeaderSpelling,
    /// The quota of this GSTIN's credential (its GSP plan, or what NIC allows): the worker paces
    /// its calls to it instead of collecting 429s. Unset: no pacing (a 429 still slows it down).
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// The seller's UPI id (`name@bank`): the payee of the B2C QR code the worker makes for a
    /// `b2c.qr` that carries its invoice. Without it such a command is refused.
    #[serde(default)]
    pub upi_id: Option<String>,
    /// The payee name in that QR (`pn`); unset: the invoice's trade name, else its legal name.
    #[serde(default)]
    pub payee_name: Option<String>,
    /// `ewaybill.expiring` this many seconds before an e-way bill of this GSTIN ends; overrides
    /// `ewb_expiry_warn_secs` (0: never for this GSTIN). A transporter that loads late wants
    /// warning earlier than one whose trucks leave the day the bill is made.
    #[serde(default)]
    pub ewb_expiry_warn_secs: Option<u64>,
}

/// What one publisher (an AMQP user) may ask for: `[publishers."erp-north"] gstins = [...],
/// commands = [...]`; `"*"` in either list means all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublisherConfig {
    /// Seller GSTINs whose commands this publisher may send (`"*"`: all, including commands that
    /// name none, such as a reconciliation of every GSTIN).
    #[serde(default, deserialize_with = "text_list")]
    pub gstins: Vec<String>,
    /// Routing keys (`irn.generate`, `irn.cancel`, …) this publisher may send (`"*"`: all).
    #[serde(default, deserialize_with = "text_list")]
    pub commands: Vec<String>,
}

/// A list given as a TOML array or as comma-separated text (environment variables).
fn text_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::List(l) => l.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
        Raw::Text(t) => t.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
    })
}

/// `metrics_per_gstin`: which GSTINs have series of their own in the per-GSTIN metrics (issue 27:
/// the number of series must not grow with the number of GSTINs unless asked for).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub enum MetricsPerGstin {
    /// None: every GSTIN is counted in the series without a `gstin` label.
    #[default]
    Off,
    /// Every GSTIN (`true`, `"*"`).
    All,
    /// These GSTINs (upper-case); the others are counted in the unlabelled series.
    Only(std::collections::BTreeSet<String>),
}

impl MetricsPerGstin {
    /// Does this GSTIN get series of its own?
    pub fn labels(&self, gstin: &str) -> bool {
        match self {
            MetricsPerGstin::Off => false,
            MetricsPerGstin::All => true,
            MetricsPerGstin::Only(list) => list.contains(gstin) || list.iter().any(|g| g.eq_ignore_ascii_case(gstin)),
        }
    }
}

impl<'de> Deserialize<'de> for MetricsPerGstin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            List(Vec<String>),
            Text(String),
        }
        let list: Vec<String> = match Raw::deserialize(d)? {
            Raw::Flag(true) => return Ok(MetricsPerGstin::All),
            Raw::Flag(false) => return Ok(MetricsPerGstin::Off),
            Raw::List(l) => l,
            Raw::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
                "true" | "*" => return Ok(MetricsPerGstin::All),
                "false" | "" => return Ok(MetricsPerGstin::Off),
                _ => t.split(',').map(str::to_string).collect(),
            },
        };
        let list: std::collections::BTreeSet<String> =
            list.iter().map(|g| g.trim().to_ascii_uppercase()).filter(|g| !g.is_empty()).collect();
        Ok(if list.contains("*") {
            MetricsPerGstin::All
        } else if list.is_empty() {
            MetricsPerGstin::Off
        } else {
            MetricsPerGstin::Only(list)
        })
    }
}

/// `rate_limit = { requests_per_minute = 30, burst = 5 }`: a token bucket that refills
/// `requests_per_minute` tokens a minute and holds at most `burst`. One bucket per credential
/// (client ID) and one per GSTIN, kept in Postgres so every worker process shares them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub requests_per_minute: u32,
    /// Calls allowed back to back after a quiet spell (at least 1).
    #[serde(default = "one")]
    pub burst: u32,
}

impl RateLimit {
    /// Tokens per second.
    pub fn per_second(&self) -> f64 {
        f64::from(self.requests_per_minute) / 60.0
    }

    /// Both numbers must be at least 1; `at` names where the setting came from.
    pub fn check(&self, at: &str) -> Result<(), ConfigError> {
        if self.requests_per_minute == 0 || self.burst == 0 {
            return Err(ConfigError::Invalid(format!(
                "{at}: requests_per_minute ({}) and burst ({}) must both be at least 1; leave rate_limit out for no limit",
                self.requests_per_minute, self.burst
            )));
        }
        Ok(())
    }
}

fn one() -> u32 {
    1
}

impl GstinConfig {
    /// The IRP's name as recorded and reported (`data.irp`).
    pub fn irp_name(&self) -> String {
        match (&self.irp, self.provider) {
            (Some(n), _) => n.trim().to_string(),
            (None, ProviderKind::Nic) => "NIC1".into(),
            (None, ProviderKind::Whitebooks) => "whitebooks".into(),
        }
    }

    /// The names of the GSTIN's IRPs: the primary, then the failover entries in order.
    pub fn irp_names(&self) -> impl Iterator<Item = String> + '_ {
        std::iter::once(self.irp_name()).chain(self.failover.iter().map(GstinConfig::irp_name))
    }
}

/// NIC: the spelling of the client headers. NIC documents `client_id`, `client_secret`, `Gstin`;
/// gst_irn sends `client-id`, `client-secret`, `gstin`, and the real IRP accepts both. `user_name`
/// and `AuthToken` are the same in both (gst_irn sends `user_name` too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HeaderSpelling {
    /// NIC's documented names (the default).
    #[default]
    Underscore,
    /// The hyphenated names gst_irn sends, for a GSP or proxy that wants them.
    Hyphen,
}

/// Environment variables that look numeric arrive as numbers; credentials are still text.
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        S(String),
        I(i64),
        U(u64),
        F(f64),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::S(s) => s,
        Raw::I(i) => i.to_string(),
        Raw::U(u) => u.to_string(),
        Raw::F(f) => f.to_string(),
    })
}

/// The secret's text, for [`GstinConfig`]'s sealed copy only.
fn expose_for_sealing<S: serde::Serializer>(v: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    use secrecy::ExposeSecret;
    s.serialize_str(v.expose_secret())
}

/// A PEM key text as a section holds it: one shared copy per distinct text (issue 27). Thousands
/// of GSTINs of one IRP carry the same two keys; as `String`s each section kept its own copy
/// (~1 KB each for NIC), which was most of what a NIC row cost in memory at start.
pub type SharedText = std::sync::Arc<str>;

/// Read an optional text into the process's one copy of it ([`SharedText`]). The texts kept are
/// bounded: past [`SHARED_TEXTS_MAX`] distinct texts a new one is simply not shared.
fn shared_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SharedText>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(|t| share_text(&t)))
}

/// The distinct texts [`shared_text`] keeps at most (a deployment has one or two keys per IRP).
const SHARED_TEXTS_MAX: usize = 256;

/// The process's copy of `text` (made the first time it is seen).
pub fn share_text(text: &str) -> SharedText {
    static TEXTS: std::sync::Mutex<Option<std::collections::HashSet<SharedText>>> = std::sync::Mutex::new(None);
    let mut texts = TEXTS.lock().unwrap_or_else(|e| e.into_inner());
    let texts = texts.get_or_insert_with(Default::default);
    if let Some(t) = texts.get(text) {
        return t.clone();
    }
    let t: SharedText = text.into();
    if texts.len() < SHARED_TEXTS_MAX {
        texts.insert(t.clone());
    }
    t
}

fn serialize_shared_text<S: serde::Serializer>(v: &Option<SharedText>, s: S) -> Result<S::Ok, S::Error> {
    v.as_deref().serialize(s)
}

/// The keys of a GSTIN section that are secrets (never shown, never stored in clear).
pub const GSTIN_SECRET_KEYS: [&str; 2] = ["password", "client_secret"];

impl GstinConfig {
    /// The section as JSON without its secrets (its failover entries' neither): what
    /// `gstin list` shows and the `gstins.settings` column holds.
    pub fn public_json(&self) -> serde_json::Value {
        fn strip(v: &mut serde_json::Value) {
            if let Some(o) = v.as_object_mut() {
                for k in GSTIN_SECRET_KEYS {
                    o.remove(k);
                }
                if let Some(serde_json::Value::Array(f)) = o.get_mut("failover") {
                    f.iter_mut().for_each(strip);
                }
            }
        }
        let mut v = serde_json::to_value(self).expect("a GSTIN section serialises");
        strip(&mut v);
        v
    }

    /// The checks a GSTIN section passes wherever it comes from (the file, the environment, the
    /// database): a rate limit of at least 1, https:// for production IRPs, a UPI id that is one.
    pub fn check(&self, gstin: &str) -> Result<(), ConfigError> {
        let g = self;
        if let Some(r) = &g.rate_limit {
            r.check(&format!("gstins.\"{gstin}\".rate_limit (EINVOICE_GSTINS__{gstin}__RATE_LIMIT__…)"))?;
        }
        let entries = std::iter::once((format!("gstins.\"{gstin}\".base_url (EINVOICE_GSTINS__{gstin}__BASE_URL)"), g))
            .chain(
                g.failover.iter().enumerate().map(|(i, f)| (format!("gstins.\"{gstin}\".failover[{i}].base_url"), f)),
            );
        for (key, e) in entries {
            let production = e.environment == Environment::Production || g.environment == Environment::Production;
            if production && !e.base_url.trim_start().get(..8).is_some_and(|p| p.eq_ignore_ascii_case("https://")) {
                let scheme = e.base_url.trim_start().split_once("://").map_or("no scheme", |(s, _)| s);
                return Err(ConfigError::Invalid(format!(
                    "{key} must be an https:// URL (it has {scheme}): GSTIN {gstin} has environment = \"production\", \
                     and its IRP requests carry its credentials and invoices; http:// is for the sandbox only"
                )));
            }
        }
        if let Some(upi) = g.upi_id.as_deref().filter(|u| !crate::domain::command::b2c::is_upi_id(u)) {
            return Err(ConfigError::Invalid(format!(
                "gstins.\"{gstin}\".upi_id (EINVOICE_GSTINS__{gstin}__UPI_ID) is '{upi}', which is not a UPI id such as \
                 seller@bank"
            )));
        }
        Ok(())
    }
}

fn secret_string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    string_or_number(d).map(SecretString::from)
}

/// `EINVOICE_RETRY_TIERS_SECS`: "5,30,300" (or a TOML array), strictly ascending positive seconds.
fn retry_tiers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<u64>),
        One(u64),
        Text(String),
    }
    let bad = |why: &str| {
        serde::de::Error::custom(format!("retry_tiers_secs {why}: give ascending seconds, e.g. \"5,30,300\""))
    };
    let tiers = match Raw::deserialize(d)? {
        Raw::List(v) => v,
        Raw::One(n) => vec![n],
        Raw::Text(s) => s
            .split(',')
            .map(|t| t.trim().parse::<u64>().map_err(|_| bad(&format!("has '{}', which is not a number", t.trim()))))
            .collect::<Result<_, _>>()?,
    };
    if tiers.is_empty() || tiers[0] == 0 || tiers.windows(2).any(|w| w[0] >= w[1]) {
        return Err(bad("must be positive and strictly ascending"));
    }
    // The delay is a per-queue TTL in milliseconds (a 32-bit value at the broker).
    if tiers.iter().any(|t| *t > u64::from(u32::MAX) / 1000) {
        return Err(bad("has a tier longer than 49 days"));
    }
    Ok(tiers)
}

/// A number as TOML or the environment gives it (an integer, a float or text), for settings that
/// become exact decimals.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    I(i64),
    U(u64),
    F(f64),
    S(String),
}

/// `EINVOICE_GST_RATES`: a list of percentages (`[0, 0.25, 5, 18]`; TOML and the environment give
/// integers or floats), each turned into an exact decimal from its shortest text, so `0.1` is 0.1.
fn gst_rates<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<Decimal>>, D::Error> {
    let bad = |v: &dyn std::fmt::Display| {
        serde::de::Error::custom(format!(
            "gst_rates has {v}, which is not a finite percentage: give numbers, e.g. [0, 5, 18]"
        ))
    };
    Vec::<NumberOrText>::deserialize(d)?
        .into_iter()
        .map(|r| match r {
            NumberOrText::I(i) => Ok(Decimal::from(i)),
            NumberOrText::U(u) => Ok(Decimal::from(u)),
            NumberOrText::F(f) if f.is_finite() => f.to_string().parse::<Decimal>().map_err(|_| bad(&f)),
            NumberOrText::F(f) => Err(bad(&f)),
            // The environment gives `nan` and `inf` as text.
            NumberOrText::S(s) => Err(bad(&format!("'{s}'"))),
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

fn yes() -> bool {
    true
}

fn default_ip() -> String {
    "127.0.0.1".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Everything the worker needs to run. Every field has an environment variable
/// `EINVOICE_<FIELD>` (upper-case); the README lists them.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub amqp_url: String,
    pub database_url: SecretString,
    /// Prefix for every exchange and queue name; lets tests and tenants share a broker.
    pub namespace: String,
    pub prefetch: u16,
    /// Postgres connections for the jobs of one worker process (the outbox relay has one more of
    /// its own). Unset: `prefetch` clamped to 4..=32, because a job can hold two connections at
    /// once (its own and the session's), so a pool much smaller than `prefetch` stalls jobs.
    #[serde(default)]
    pub db_pool_size: Option<usize>,
    /// Jobs of one GSTIN in flight at once in this process (fair share: one GSTIN's backlog
    /// cannot take every slot). Unset: off (the prefetch), because a cap sets a backlog of one GSTIN aside
    /// through the retry tiers (paced to come back as the cap frees up), pure cost where no other
    /// GSTIN waits. See [`Settings::gstin_cap`] and `runtime::fair_share`.
    #[serde(default)]
    pub gstin_max_in_flight: Option<u16>,
    pub delivery_limit: u32,
    pub max_message_bytes: usize,
    pub http_connect_timeout_ms: u64,
    pub http_read_timeout_ms: u64,
    pub retry_min_delay_ms: u64,
    pub retry_max_delay_ms: u64,
    pub retry_max_times: usize,
    /// How long a job may keep being rescheduled for transient failures before `*.failed`.
    pub retry_max_age_secs: u64,
    /// Delays of the durable retry queues, one queue per tier: the n-th failure waits the n-th
    /// (then the last) tier; a benign wait (busy document, paused GSTIN, a rate-limit slot, an open
    /// circuit) goes through the longest tier no longer than it and does not advance the failure count.
    #[serde(deserialize_with = "retry_tiers")]
    pub retry_tiers_secs: Vec<u64>,
    /// Refresh a token this long before its expiry.
    pub token_refresh_margin_secs: i64,
    /// base64 of 32 bytes, or a comma-separated list (rotation: the first encrypts, all decrypt):
    /// encrypts tokens and SEKs at rest. Unset = a built-in development key.
    #[serde(default)]
    pub token_key: Option<SecretString>,
    /// How long a worker owns a document's generate call before another may look it up.
    pub lease_secs: i64,
    pub relaxed_gstin_check_digit: bool,
    /// Apply the IRP's 30-day reporting window (AATO ≥ ₹10 cr) before calling it.
    #[serde(default)]
    pub reporting_window_days: Option<u32>,
    /// The GST rate master (%), when it differs from the built-in one (e.g. a new slab).
    #[serde(default, deserialize_with = "gst_rates")]
    pub gst_rates: Option<Vec<Decimal>>,
    /// Ship-to rules of GSTN's advisory of 17 Jun 2026 (2323, 2325, ship-to GSTIN with an e-way
    /// bill): `off` (default; reported on hold), `on`, or the date they apply from (`2026-08-01`).
    #[serde(default)]
    pub ship_to_rules: crate::domain::invoice::ShipToRules,
    /// The rail document rule (railway receipt 9 digits, parcel way bill 10; e-way bill error
    /// 4042): `on`, `off`, or the date it applies from (default `2026-01-01`).
    #[serde(default = "rail_doc_rules_default")]
    pub rail_doc_rules: crate::domain::invoice::ShipToRules,
    /// E-way bills without an IRN: a TDS/TCS GSTIN refused as the supplier: `on`, `off`, or the
    /// date it applies from (default `2026-01-01`).
    #[serde(default = "tds_tcs_supplier_rule_default")]
    pub tds_tcs_supplier_rule: crate::domain::invoice::ShipToRules,
    /// E-way bills without an IRN: an explicit distance when dispatch and delivery PINs are the
    /// same: `on`, `off`, or the date it applies from (default `2026-06-01`).
    #[serde(default = "same_pin_distance_rule_default")]
    pub same_pin_distance_rule: crate::domain::invoice::ShipToRules,
    /// Cache GSTIN details this long.
    pub gstin_cache_secs: i64,
    /// Jobs pending longer than this are "in doubt" for reconciliation.
    pub in_doubt_after_secs: i64,
    /// How long a configuration error pauses one GSTIN's work.
    pub pause_secs: i64,
    /// Cron expression for the built-in reconciliation schedule (off when unset).
    #[serde(default)]
    pub reconcile_schedule: Option<String>,
    pub log_format: LogFormat,
    /// Address for `/healthz`, `/readyz`, `/status` and `/metrics` (off when unset), e.g.
    /// `0.0.0.0:9090`; a port alone (`9090`, `:9090`) binds loopback only.
    #[serde(default)]
    pub health_listen: Option<String>,
    /// The bearer token `/status` asks for (`Authorization: Bearer <token>`); unset: `/status`
    /// answers 403. `/healthz`, `/readyz` and `/metrics` need none.
    #[serde(default)]
    pub status_token: Option<SecretString>,
    /// Put a rendered QR PNG (`qr_png_base64`) in result events. Off: events carry only the signed
    /// QR string and no image is rendered or stored, for consumers that draw the QR themselves.
    #[serde(default = "yes")]
    pub qr_png: bool,
    /// Which seller GSTINs get series of their own in the metrics labelled `gstin` (token
    /// refreshes, auth failures, IRP error responses, error budget used). Off by default: a
    /// worker with thousands of GSTINs would export thousands of series each; every GSTIN
    /// without its own series is counted in the series without a `gstin` label, so
    /// `sum(...)`/`max(...)` is always the whole. `true` or `"*"`: every GSTIN; a list (TOML
    /// array, or comma-separated in `EINVOICE_METRICS_PER_GSTIN`): those GSTINs only.
    #[serde(default)]
    pub metrics_per_gstin: MetricsPerGstin,
    /// Add `print_block` to `irn.generated` / `irn.details`: IRN, AckNo, AckDt and the QR image,
    /// plus an SVG of the three for the invoice print (rendered even when `qr_png` is off).
    #[serde(default)]
    pub print_block: bool,
    /// Published outbox rows older than this many days are deleted (0 keeps them forever).
    pub outbox_retention_days: u32,
    /// Finished jobs (with their IRN, ack and signed documents) older than this many days are
    /// deleted (0 keeps them forever). GST law keeps tax records for 72 months from the due date of
    /// the year's annual return (CGST Act s.36), which is up to about eight years from an invoice.
    pub job_retention_days: u32,
    /// How often a worker runs retention (0 = never; `einvoice-worker prune` runs it by hand).
    pub retention_interval_secs: u64,
    /// `ewaybill.expiring` is published this long before an active e-way bill's `valid_till`
    /// (default 8 hours: the extension window opens then); 0 = never.
    pub ewb_expiry_warn_secs: u64,
    /// How often a worker looks for e-way bills to warn about (`ewaybill.expiring`).
    pub ewb_expiry_scan_secs: u64,
    /// `/readyz` fails when the oldest unpublished result event is older than this (the relay is stuck).
    pub ready_outbox_max_age_secs: u64,
    /// An IRP's circuit opens after this many consecutive transport failures or 5xx answers …
    pub breaker_failures: u32,
    /// … for this long; then calls probe it again (one failure re-opens it, a success closes it).
    pub breaker_open_secs: u64,
    /// A document whose generate may have reached an IRP that is now down (its circuit open)
    /// waits for that IRP; after this many seconds from its first attempt it may move to the
    /// next available IRP, where GSTN's registry answers 2295 if the first IRP did register it
    /// (resolved to that IRN). 0 (the default): never, it waits for its IRP. See
    /// docs/architecture.md, "An ambiguous document and another IRP".
    pub ambiguous_failover_secs: u64,
    /// A PEM file of CA certificates to trust for PostgreSQL TLS (with `sslmode=verify-ca|verify-full`).
    #[serde(default)]
    pub database_ca_file: Option<String>,
    /// A PEM file of extra CA certificates to trust for IRP calls (a private CA, a TLS-inspecting proxy).
    #[serde(default)]
    pub http_ca_file: Option<String>,
    /// NIC blocks a GSTIN's e-invoice and e-way bill APIs after more than 20,000 error responses
    /// (and a client ID after more than 1 lakh): the daily counts the error budget measures against.
    pub error_budget_gstin_per_day: u64,
    pub error_budget_client_per_day: u64,
    /// At this share of a threshold the worker warns (`gstin.error_budget`, once a day per key) …
    pub error_budget_warn_share: f64,
    /// … and at this one it pauses the GSTIN until India midnight (`gstin.paused`, `ERROR_BUDGET`).
    pub error_budget_pause_share: f64,
    /// Queue-name prefixes a command's `reply_to` may name, beside the server-named queues
    /// (`amq.gen-…`) and direct reply-to (`amq.rabbitmq.reply-to`), which are always allowed:
    /// `erp-replies.` allows `erp-replies.north`. Never one of the worker's own queues.
    #[serde(default, deserialize_with = "text_list")]
    pub reply_to_prefixes: Vec<String>,
    /// Who may publish what, by AMQP user (the `user_id` property, which RabbitMQ checks against
    /// the connection's user). Empty: every publisher may send every command for every GSTIN.
    #[serde(default)]
    pub publishers: BTreeMap<String, PublisherConfig>,
    #[serde(default)]
    pub gstins: BTreeMap<String, GstinConfig>,
    /// Each IRP's signing public keys, by IRP name (`[[irp_signing_keys.NIC1]]`), with the dates
    /// each was in use: `einvoice.verify` checks a supplier's signed e-invoice against them.
    #[serde(default)]
    pub irp_signing_keys: BTreeMap<String, Vec<IrpSigningKey>>,
    /// Address of the operator console (off when unset), e.g. `0.0.0.0:8443` behind a TLS proxy;
    /// a port alone binds loopback. See docs/console.md.
    #[serde(default)]
    pub console_listen: Option<String>,
    /// The console's users, by login name (`[console_users.asha]`): a role, an Argon2id password
    /// hash (`einvoice-worker console hash-password`) and optionally the GSTINs they may see.
    #[serde(default)]
    pub console_users: BTreeMap<String, ConsoleUser>,
    /// Mark the console's session cookie `Secure` (set when browsers reach it over HTTPS, i.e.
    /// behind a TLS-terminating proxy).
    #[serde(default)]
    pub console_secure_cookie: bool,
    /// A console session ends this long after login.
    #[serde(default = "console_session_secs_default")]
    pub console_session_secs: u64,
    /// How often a worker adds the IRP calls it counted in memory to `api_calls_daily` (API
    /// consumption); a crash loses at most this many seconds of counts. At least 1.
    #[serde(default = "usage_flush_secs_default")]
    pub usage_flush_secs: u64,
    /// `api_calls_daily` rows older than this many days are deleted by retention (0 keeps them).
    #[serde(default = "usage_retention_days_default")]
    pub usage_retention_days: u32,
    /// The price of one API call, by IRP name (`[api_price_per_call]`, `whitebooks = "0.30"`,
    /// case-insensitive), as a decimal string in rupees: the console and `usage report` show
    /// calls × price. An IRP without a price shows no cost.
    #[serde(default, deserialize_with = "prices")]
    pub api_price_per_call: BTreeMap<String, Decimal>,
}

fn usage_flush_secs_default() -> u64 {
    10
}

fn usage_retention_days_default() -> u32 {
    400
}

/// `api_price_per_call`: IRP name → a non-negative decimal (a string, as money should be given;
/// a TOML or environment number is taken from its shortest text). Keys lower-cased (the
/// environment lower-cases them anyway). An error names the entry.
fn prices<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Decimal>, D::Error> {
    BTreeMap::<String, NumberOrText>::deserialize(d)?
        .into_iter()
        .map(|(irp, raw)| {
            let text = match raw {
                NumberOrText::I(i) => i.to_string(),
                NumberOrText::U(u) => u.to_string(),
                NumberOrText::F(f) => f.to_string(),
                NumberOrText::S(s) => s.trim().to_string(),
            };
            let price = parse_price(&text).map_err(|why| {
                serde::de::Error::custom(format!("api_price_per_call.{}: '{text}' {why}", irp.to_ascii_lowercase()))
            })?;
            Ok((irp.to_ascii_lowercase(), price))
        })
        .collect()
}

/// A price per call: a plain non-negative decimal number of rupees (`0.25`, `1`), at most 6 places.
pub fn parse_price(text: &str) -> Result<Decimal, &'static str> {
    const WHY: &str = "is not a price: give a non-negative decimal number of rupees, e.g. \"0.25\"";
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(WHY);
    }
    let p = text.parse::<Decimal>().map_err(|_| WHY)?;
    if p.scale() > 6 {
        return Err("has more than 6 decimal places");
    }
    Ok(p.normalize())
}

fn console_session_secs_default() -> u64 {
    8 * 3600
}

/// What a console user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleRole {
    /// Reads only: search, job pages, the audit trail, exports.
    Viewer,
    /// Reads and acts: retry, unpause.
    Operator,
}

impl ConsoleRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsoleRole::Viewer => "viewer",
            ConsoleRole::Operator => "operator",
        }
    }
}

/// One console user (`[console_users.<name>]`, or `EINVOICE_CONSOLE_USERS__<name>__ROLE`, …).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleUser {
    pub role: ConsoleRole,
    /// A PHC string `$argon2id$v=19$…` (`einvoice-worker console hash-password`); or
    /// `EINVOICE_CONSOLE_USERS__<name>__PASSWORD_HASH_FILE`.
    pub password_hash: SecretString,
    /// Only these seller GSTINs (empty: all).
    #[serde(default)]
    pub gstins: Vec<String>,
}

/// One signing public key of an IRP, and the days it signed (both inclusive, India dates; open
/// when unset). An IRN dated outside them is not accepted as signed by this key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrpSigningKey {
    /// The `kid` the IRP puts in its JWT headers for this key.
    pub key_id: String,
    #[serde(default)]
    pub valid_from: Option<chrono::NaiveDate>,
    #[serde(default)]
    pub valid_to: Option<chrono::NaiveDate>,
    /// The PEM public key (SPKI or PKCS#1), inline; or `public_key_file`.
    #[serde(default)]
    pub public_key_pem: Option<String>,
    #[serde(default)]
    pub public_key_file: Option<String>,
}

#[derive(Serialize)]
struct Defaults {
    amqp_url: &'static str,
    database_url: &'static str,
    namespace: &'static str,
    prefetch: u16,
    delivery_limit: u32,
    max_message_bytes: usize,
    http_connect_timeout_ms: u64,
    http_read_timeout_ms: u64,
    retry_min_delay_ms: u64,
    retry_max_delay_ms: u64,
    retry_max_times: usize,
    retry_max_age_secs: u64,
    retry_tiers_secs: &'static str,
    token_refresh_margin_secs: i64,
    lease_secs: i64,
    relaxed_gstin_check_digit: bool,
    gstin_cache_secs: i64,
    in_doubt_after_secs: i64,
    pause_secs: i64,
    log_format: LogFormat,
    outbox_retention_days: u32,
    job_retention_days: u32,
    retention_interval_secs: u64,
    ewb_expiry_warn_secs: u64,
    ewb_expiry_scan_secs: u64,
    ready_outbox_max_age_secs: u64,
    breaker_failures: u32,
    breaker_open_secs: u64,
    ambiguous_failover_secs: u64,
    error_budget_gstin_per_day: u64,
    error_budget_client_per_day: u64,
    error_budget_warn_share: f64,
    error_budget_pause_share: f64,
}

fn tds_tcs_supplier_rule_default() -> crate::domain::invoice::ShipToRules {
    crate::domain::invoice::TDS_TCS_SUPPLIER_RULE_DEFAULT
}

fn same_pin_distance_rule_default() -> crate::domain::invoice::ShipToRules {
    crate::domain::invoice::SAME_PIN_DISTANCE_RULE_DEFAULT
}

fn rail_doc_rules_default() -> crate::domain::invoice::ShipToRules {
    crate::domain::invoice::RAIL_DOC_RULES_DEFAULT
}

/// The token key used only when EINVOICE_TOKEN_KEY is unset (development and the demo); `run`
/// warns about it and a production GSTIN refuses it.
pub const DEV_TOKEN_KEY: [u8; 32] = *b"einvoice-worker-dev-key-NOT-PROD";

pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/einvoice";

impl Settings {
    fn defaults() -> Defaults {
        Defaults {
            amqp_url: DEFAULT_AMQP_URL,
            database_url: DEFAULT_DATABASE_URL,
            namespace: "",
            prefetch: 32,
            delivery_limit: 5,
            max_message_bytes: 1024 * 1024,
            http_connect_timeout_ms: 5_000,
            http_read_timeout_ms: 30_000,
            retry_min_delay_ms: 500,
            retry_max_delay_ms: 10_000,
            retry_max_times: 4,
            retry_max_age_secs: 6 * 3600,
            retry_tiers_secs: "5,30,300",
            token_refresh_margin_secs: 600,
            lease_secs: 120,
            relaxed_gstin_check_digit: false,
            gstin_cache_secs: 24 * 3600,
            in_doubt_after_secs: 900,
            pause_secs: 300,
            log_format: LogFormat::Text,
            outbox_retention_days: 90,
            job_retention_days: 2922,
            retention_interval_secs: 3600,
            ewb_expiry_warn_secs: 8 * 3600,
            ewb_expiry_scan_secs: 60,
            ready_outbox_max_age_secs: 300,
            breaker_failures: 5,
            breaker_open_secs: 30,
            ambiguous_failover_secs: 0,
            // NIC's blocking thresholds (einv-apisandbox.nic.in/NoteonTopErrors.html): warn at a
            // quarter, pause at half, far enough below that a storm is stopped before the block.
            error_budget_gstin_per_day: 20_000,
            error_budget_client_per_day: 100_000,
            error_budget_warn_share: 0.25,
            error_budget_pause_share: 0.5,
        }
    }

    /// Load defaults ← `$EINVOICE_CONFIG` (TOML) ← `EINVOICE_*` environment variables.
    pub fn load() -> Result<Settings, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Self::defaults()));
        if let Ok(path) = std::env::var("EINVOICE_CONFIG") {
            if !std::path::Path::new(&path).exists() {
                return Err(ConfigError::Missing(format!("EINVOICE_CONFIG points at '{path}', which does not exist")));
            }
            fig = fig.merge(Toml::file(path));
        }
        fig = fig
            .merge(
                Env::prefixed("EINVOICE_")
                    .ignore(&["CONFIG"])
                    .filter(|k| !k.as_str().starts_with("GSTINS__"))
                    .split("__"),
            )
            // EINVOICE_GSTINS__<GSTIN>__<KEY>: keep the GSTIN upper-case so it overrides the
            // file's `[gstins."<GSTIN>"]` table instead of creating a second, lower-cased entry.
            .merge(
                Env::raw()
                    .filter_map(|k| {
                        let rest = k.as_str().strip_prefix("EINVOICE_GSTINS__")?;
                        let (gstin, field) = rest.split_once("__")?;
                        Some(gstin_env_key(gstin, field).into())
                    })
                    .lowercase(false),
            );
        // `<KEY>_FILE` variables: the value is read from that file (Docker/Kubernetes secrets).
        for (key, value) in check_env(std::env::vars_os())? {
            fig = fig.merge(Serialized::default(&key, value));
        }
        Self::from_figment(fig)
    }

    /// The configured price of one call to `irp` (`api_price_per_call`), if any.
    pub fn price_per_call(&self, irp: &str) -> Option<Decimal> {
        self.api_price_per_call.get(&irp.to_ascii_lowercase()).copied()
    }

    /// Refuse the built-in development token key when any GSTIN talks to the production IRP:
    /// its bytes are public, so tokens and SEKs at rest would be readable by anyone.
    pub fn check_token_key(&self) -> Result<(), ConfigError> {
        use base64::Engine;
        use secrecy::ExposeSecret;
        let Some(prod) = self.gstins.iter().find(|(_, g)| g.environment == Environment::Production) else {
            return Ok(());
        };
        // A key list seals with its first key; that one must not be the dev key.
        let first =
            self.token_key.as_ref().map(|k| k.expose_secret().split(',').next().unwrap_or("").trim().to_string());
        let dev = match first {
            None => true,
            Some(k) => base64::engine::general_purpose::STANDARD
                .decode(k)
                .is_ok_and(|b| b.as_slice() == DEV_TOKEN_KEY.as_slice()),
        };
        if dev {
            return Err(ConfigError::Invalid(format!(
                "GSTIN {} has environment = \"production\" but EINVOICE_TOKEN_KEY is the built-in development \
                 key; set EINVOICE_TOKEN_KEY (or EINVOICE_TOKEN_KEY_FILE) to the base64 of 32 random bytes, \
                 e.g. `openssl rand -base64 32`",
                prod.0
            )));
        }
        Ok(())
    }

    /// Defaults plus the given TOML text: used by tests and the demo, which build their
    /// configuration in code.
    pub fn from_toml(toml: &str) -> Result<Settings, ConfigError> {
        Self::from_figment(Figment::from(Serialized::defaults(Self::defaults())).merge(Toml::string(toml)))
    }

    fn from_figment(fig: Figment) -> Result<Settings, ConfigError> {
        let mut s: Settings = fig.extract().map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if s.db_pool_size == Some(0) {
            return Err(ConfigError::Invalid("db_pool_size (EINVOICE_DB_POOL_SIZE) must be at least 1".into()));
        }
        if s.gstin_max_in_flight == Some(0) {
            return Err(ConfigError::Invalid(
                "gstin_max_in_flight (EINVOICE_GSTIN_MAX_IN_FLIGHT) must be at least 1".into(),
            ));
        }
        if s.usage_flush_secs == 0 {
            return Err(ConfigError::Invalid("usage_flush_secs (EINVOICE_USAGE_FLUSH_SECS) must be at least 1".into()));
        }
        // Env keys arrive lower-cased; GSTINs are upper-case everywhere else.
        s.gstins = std::mem::take(&mut s.gstins).into_iter().map(|(k, v)| (k.to_ascii_uppercase(), v)).collect();
        s.check_error_budget()?;
        s.check_publishers()?;
        s.check_console_users()?;
        for (gstin, g) in &s.gstins {
            g.check(gstin)?;
        }
        crate::irp::verify::KeyRing::from_settings(&s).map_err(ConfigError::Invalid)?;
        Ok(s)
    }

    /// Every publisher names known commands and valid GSTINs (or `"*"`), so a typo cannot
    /// silently lock a publisher out (or in).
    fn check_publishers(&self) -> Result<(), ConfigError> {
        use crate::domain::command::JobKind;
        for (user, p) in &self.publishers {
            for c in p.commands.iter().filter(|c| *c != "*") {
                if JobKind::from_routing_key(c).is_none() {
                    let known: Vec<&str> = JobKind::ALL.iter().map(|k| k.routing_key()).collect();
                    return Err(ConfigError::Invalid(format!(
                        "publishers.\"{user}\".commands names '{c}', which is not a command; use \"*\" or some of: {}",
                        known.join(", ")
                    )));
                }
            }
            for g in p.gstins.iter().filter(|g| *g != "*") {
                if let Err(e) = crate::domain::Gstin::parse(g, self.relaxed_gstin_check_digit) {
                    return Err(ConfigError::Invalid(format!("publishers.\"{user}\".gstins: {e}")));
                }
            }
        }
        Ok(())
    }

    /// Every console user has an Argon2id hash (not a plain password) and valid GSTINs.
    fn check_console_users(&self) -> Result<(), ConfigError> {
        use secrecy::ExposeSecret;
        for (name, u) in &self.console_users {
            // Environment keys arrive lower-cased: a mixed-case name in the file could not be
            // completed from the environment, and logins are matched lower-cased.
            if name.chars().any(|c| c.is_uppercase()) {
                return Err(ConfigError::Invalid(format!(
                    "console_users.{name}: write console user names in lower case ({})",
                    name.to_lowercase()
                )));
            }
            if !u.password_hash.expose_secret().trim().starts_with("$argon2id$") {
                return Err(ConfigError::Invalid(format!(
                    "console_users.{name}.password_hash (EINVOICE_CONSOLE_USERS__{name}__PASSWORD_HASH) is not an \
                     Argon2id hash ($argon2id$...); make one with `einvoice-worker console hash-password`"
                )));
            }
            for g in &u.gstins {
                if let Err(e) = crate::domain::Gstin::parse(g, self.relaxed_gstin_check_digit) {
                    return Err(ConfigError::Invalid(format!("console_users.{name}.gstins: {e}")));
                }
            }
        }
        Ok(())
    }

    /// The error budget's thresholds are counts ≥ 1 and its shares 0 < warn < pause ≤ 1.
    fn check_error_budget(&self) -> Result<(), ConfigError> {
        if self.error_budget_gstin_per_day == 0 || self.error_budget_client_per_day == 0 {
            return Err(ConfigError::Invalid(
                "error_budget_gstin_per_day (EINVOICE_ERROR_BUDGET_GSTIN_PER_DAY) and error_budget_client_per_day \
                 (EINVOICE_ERROR_BUDGET_CLIENT_PER_DAY) must be at least 1"
                    .into(),
            ));
        }
        let (warn, pause) = (self.error_budget_warn_share, self.error_budget_pause_share);
        if !(warn > 0.0 && warn < pause && pause <= 1.0) {
            return Err(ConfigError::Invalid(format!(
                "error_budget_warn_share (EINVOICE_ERROR_BUDGET_WARN_SHARE, {warn}) and error_budget_pause_share \
                 (EINVOICE_ERROR_BUDGET_PAUSE_SHARE, {pause}) must satisfy 0 < warn < pause <= 1, e.g. 0.25 and 0.5"
            )));
        }
        Ok(())
    }

    /// How commands are checked, from this configuration (the worker and `publish` alike).
    /// `today` is read now (India date), so call it per message in a long-running worker.
    pub fn parse_options(&self) -> crate::domain::command::ParseOptions {
        let defaults = crate::domain::invoice::ValidationOptions::default();
        crate::domain::command::ParseOptions {
            max_message_bytes: self.max_message_bytes,
            validation: crate::domain::invoice::ValidationOptions {
                relaxed_gstin_check_digit: self.relaxed_gstin_check_digit,
                reporting_window_days: self.reporting_window_days,
                allowed_gst_rates: self.gst_rates.clone().unwrap_or_else(|| defaults.allowed_gst_rates.clone()),
                ship_to_rules: self.ship_to_rules,
                rail_doc_rules: self.rail_doc_rules,
                tds_tcs_supplier_rule: self.tds_tcs_supplier_rule,
                same_pin_distance_rule: self.same_pin_distance_rule,
                ..defaults
            },
            reporting_window_by_gstin: self
                .gstins
                .iter()
                .filter_map(|(g, c)| c.reporting_window_days.map(|d| (g.clone(), d)))
                .collect(),
        }
    }

    /// Jobs of one GSTIN in flight at once: `gstin_max_in_flight`, or the prefetch (no cap). A
    /// value at or above the prefetch turns the cap off.
    pub fn gstin_cap(&self) -> usize {
        self.gstin_max_in_flight.map_or((self.prefetch as usize).max(1), usize::from)
    }

    /// The jobs' connections: `db_pool_size`, or `prefetch` clamped to 4..=32.
    pub fn pool_size(&self) -> usize {
        self.db_pool_size.unwrap_or((self.prefetch as usize).clamp(4, 32))
    }

    /// [`Settings::pool_size`] split in two pools: (finishing work and everything else, claims of
    /// new documents). A quarter (at least one) is for claims, so that at a high prefetch the
    /// claims of new messages queue among themselves and never ahead of the finishes of jobs
    /// whose IRP call has returned.
    pub fn pool_sizes(&self) -> (usize, usize) {
        let total = self.pool_size();
        let intake = (total / 4).max(1);
        (total.saturating_sub(intake).max(1), intake)
    }

    pub fn http_connect_timeout(&self) -> Duration {
        Duration::from_millis(self.http_connect_timeout_ms)
    }
    pub fn http_read_timeout(&self) -> Duration {
        Duration::from_millis(self.http_read_timeout_ms)
    }
    /// An exchange or queue name with this deployment's namespace.
    pub fn name(&self, base: &str) -> String {
        format!("{}{}", self.namespace, base)
    }
}

/// Where the password of `url`'s user-info is, as a byte range: everything between the first `:`
/// of the user-info and the last `@`. Works on text that is not a valid URL (`amqp:u:S3CRET@host`,
/// `u:S3CRET@host`, a bad port, an unencoded `/` in the password), since that is when an error
/// message quotes it; it may take more than the password, never less.
fn password_span(url: &str) -> Option<std::ops::Range<usize>> {
    let at = url.rfind('@')?;
    let head = &url[..at];
    let start = match head.find("://") {
        Some(i) => i + 3,
        // `scheme:user:password`: skip the scheme's colon when another one follows.
        None => match head.find(':') {
            Some(i) if head[i + 1..].contains(':') => i + 1,
            _ => 0,
        },
    };
    let colon = start + head[start..].find(':')?;
    Some(colon + 1..at)
}

/// `url` with its password replaced by `***`, for error messages and logs (see [`password_span`]);
/// each address of a comma-separated list on its own.
pub fn redact_url(url: &str) -> String {
    url.split(',')
        .map(|u| match password_span(u) {
            Some(r) if !r.is_empty() => format!("{}***{}", &u[..r.start], &u[r.end..]),
            _ => u.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `text` (an error message about `url`) with `url` quoted redacted, and whatever still shows
/// `url`'s password (decoded, or quoted in part) replaced by `***`.
pub fn scrub_url(text: &str, url: &str) -> String {
    let mut out = text.to_string();
    for u in url.split(',').chain(std::iter::once(url)) {
        let u = u.trim();
        if !u.is_empty() {
            out = out.replace(u, &redact_url(u));
        }
        let Some(r) = password_span(u) else { continue };
        let raw = &u[r];
        let decoded = percent_decode(raw);
        for secret in [raw, decoded.as_str()] {
            // A one- or two-letter password would match ordinary words; such a password is no secret.
            if secret.chars().count() >= 3 {
                out = out.replace(secret, "***");
            }
        }
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file missing: {0}")]
    Missing(String),
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("unknown environment variable {name}; did you mean {suggestion}?")]
    UnknownVariable { name: String, suggestion: String },
}

/// The figment key of `EINVOICE_GSTINS__<GSTIN>__<FIELD>`: the GSTIN upper-case, the field
/// lower-case, and `__` inside the field nesting a table (`RATE_LIMIT__BURST` → `rate_limit.burst`).
fn gstin_env_key(gstin: &str, field: &str) -> String {
    format!("gstins.{}.{}", gstin.to_ascii_uppercase(), field.to_ascii_lowercase().replace("__", "."))
}

/// `EINVOICE_*` variables read by the tools (`demo`, `bench`) or by `load` itself, not by [`Settings`].
pub const TOOL_VARIABLES: &[&str] = &[
    "EINVOICE_CONFIG",
    "EINVOICE_DEMO_DATABASE_URL",
    "EINVOICE_BENCH_DATABASE_URL",
    // tests/it/console.rs: copy the browser test's screenshots into docs/img (the tests also run
    // the binary, which must not refuse it as a misspelt setting).
    "EINVOICE_UPDATE_SCREENSHOTS",
];

/// How an environment variable's key part matches a struct's fields.
enum FieldMatch {
    Plain,
    /// `<field>_FILE`: the value of `<field>` is in that file.
    File(&'static str),
    Unknown,
}

fn match_field(head: &str, nested: bool, fields: &[&'static str]) -> FieldMatch {
    if fields.contains(&head) {
        return FieldMatch::Plain;
    }
    match head.strip_suffix("_file").and_then(|b| fields.iter().find(|f| **f == b)) {
        Some(base) if !nested => FieldMatch::File(base),
        _ => FieldMatch::Unknown,
    }
}

/// Check every `EINVOICE_*` variable against the settings' fields (a misspelt one fails the start
/// instead of being ignored) and read the `_FILE` ones. Returns (figment key path, file content).
fn check_env(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Result<Vec<(String, String)>, ConfigError> {
    check_vars(vars, true)
}

/// Check variable names only (deployment manifests, tests): the same rules as at start-up,
/// without reading the files `*_FILE` variables name.
pub fn check_variable_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<(), ConfigError> {
    check_vars(names.into_iter().map(|n| (n.into(), "".into())), false).map(drop)
}

fn check_vars(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    read_files: bool,
) -> Result<Vec<(String, String)>, ConfigError> {
    let vars: BTreeMap<String, String> =
        vars.filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned()))).collect();
    let mut files = Vec::new();
    for (name, value) in &vars {
        let Some(rest) = name.strip_prefix("EINVOICE_") else { continue };
        if TOOL_VARIABLES.contains(&name.as_str()) {
            continue;
        }
        // (key path prefix, env name prefix, the part naming a field, its struct's fields)
        let console_user = rest.strip_prefix("CONSOLE_USERS__").and_then(|u| u.split_once("__"));
        let (path, env_prefix, key, fields) = match rest.strip_prefix("GSTINS__") {
            // EINVOICE_CONSOLE_USERS__<name>__<FIELD>[_FILE] (figment lower-cases the name).
            None if console_user.is_some() => {
                let (user, key) = console_user.expect("checked");
                (
                    format!("console_users.{}.", user.to_ascii_lowercase()),
                    format!("EINVOICE_CONSOLE_USERS__{user}__"),
                    key,
                    field_names::<ConsoleUser>(),
                )
            }
            Some(g) => {
                let (gstin, key) = g.split_once("__").unwrap_or((g, ""));
                (
                    format!("gstins.{}.", gstin.to_ascii_uppercase()),
                    format!("EINVOICE_GSTINS__{gstin}__"),
                    key,
                    field_names::<GstinConfig>(),
                )
            }
            None => (String::new(), "EINVOICE_".to_string(), rest, field_names::<Settings>()),
        };
        let (head, nested) = match key.split_once("__") {
            Some((h, _)) => (h, true),
            None => (key, false),
        };
        match match_field(&head.to_ascii_lowercase(), nested, fields) {
            FieldMatch::Plain => {}
            FieldMatch::File(base) => {
                let plain = format!("{env_prefix}{}", base.to_ascii_uppercase());
                if vars.contains_key(&plain) {
                    return Err(ConfigError::Invalid(format!("both {plain} and {name} are set; set only one")));
                }
                if !read_files {
                    continue;
                }
                let text = std::fs::read_to_string(value)
                    .map_err(|e| ConfigError::Invalid(format!("{name}: cannot read '{value}': {e}")))?;
                // Secret files usually end with a newline that is not part of the secret.
                files.push((format!("{path}{base}"), text.trim_end_matches(['\n', '\r']).to_string()));
            }
            FieldMatch::Unknown => {
                let mut candidates: Vec<String> = fields
                    .iter()
                    .flat_map(|f| {
                        [
                            format!("{env_prefix}{}", f.to_ascii_uppercase()),
                            format!("{env_prefix}{}_FILE", f.to_ascii_uppercase()),
                        ]
                    })
                    .collect();
                if path.is_empty() {
                    candidates.extend(TOOL_VARIABLES.iter().map(|t| t.to_string()));
                }
                let suggestion = closest(name, &candidates);
                return Err(ConfigError::UnknownVariable { name: name.clone(), suggestion });
            }
        }
    }
    Ok(files)
}

/// The candidate with the smallest edit distance to `name`.
fn closest(name: &str, candidates: &[String]) -> String {
    candidates.iter().min_by_key(|c| edit_distance(name, c)).cloned().unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The field names serde knows for `T`, read from its derived `Deserialize` (so a field added
/// to [`Settings`] is a valid variable without a second list to maintain).
fn field_names<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Error as _, Visitor};
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(Self::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(Self::Error::custom("probed"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// `%XX` escapes of a URL query value decoded (a file path may be written `%2Fetc%2F…`).
pub fn percent_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    /// Issue 27: two sections with the same PEM text (as thousands of one IRP's GSTINs have)
    /// hold one copy of it, whichever way they were read, and seal and open unchanged.
    #[test]
    fn equal_pem_texts_are_one_shared_copy() {
        let pem = "-----BEGIN PUBLIC KEY-----\nshared-text-test\n-----END PUBLIC KEY-----\n";
        let section = |g: &str| {
            format!(
                "[gstins.\"{g}\"]\nprovider = \"nic\"\nbase_url = \"http://127.0.0.1:1\"\nusername = \"u\"\n\
                 password = \"p\"\nclient_id = \"c\"\nclient_secret = \"s\"\npublic_key_pem = \"\"\"\n{pem}\"\"\"\n\
                 signing_cert_pem = \"\"\"\n{pem}\"\"\"\n"
            )
        };
        let s = Settings::from_toml(&(section("29AAGCP4821K1Z3") + &section("27AAKFU7303M1ZP"))).unwrap();
        let (a, b) = (&s.gstins["29AAGCP4821K1Z3"], &s.gstins["27AAKFU7303M1ZP"]);
        let key = a.public_key_pem.as_ref().unwrap();
        assert_eq!(&**key, pem);
        assert!(std::sync::Arc::ptr_eq(key, b.public_key_pem.as_ref().unwrap()));
        assert!(std::sync::Arc::ptr_eq(key, b.signing_key_pem.as_ref().unwrap()), "the alias is shared too");
        // The sealed form (JSON) reads back into the same copy.
        let back: GstinConfig = serde_json::from_slice(&serde_json::to_vec(a).unwrap()).unwrap();
        assert!(std::sync::Arc::ptr_eq(key, back.public_key_pem.as_ref().unwrap()));
        assert_eq!(back.signing_key_pem.as_deref(), Some(pem));
        let none: GstinConfig = serde_json::from_value(serde_json::json!({"provider": "whitebooks",
            "base_url": "x", "username": "u", "password": "p", "client_id": "c", "client_secret": "s"}))
        .unwrap();
        assert!(none.public_key_pem.is_none() && none.signing_key_pem.is_none());
    }

    #[test]
    fn toml_gstin_section_parses_and_hides_the_password() {
        let s = Settings::from_toml(
            r#"
            [gstins."29aagcp4821k1z3"]
            provider = "whitebooks"
            base_url = "http://127.0.0.1:1"
            username = "API_29AAGCP4821K1Z3"
            password = "hunter2"
            client_id = "cid"
            client_secret = "csecret"
            "#,
        )
        .unwrap();
        let g = &s.gstins["29AAGCP4821K1Z3"];
        assert_eq!(g.password.expose_secret(), "hunter2");
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("csecret"), "{dbg}");
        assert_eq!(s.prefetch, 32);
    }

    #[test]
    fn retry_tiers_parse_from_text_or_array_and_must_ascend() {
        assert_eq!(Settings::from_toml("").unwrap().retry_tiers_secs, [5, 30, 300]);
        assert_eq!(Settings::from_toml("retry_tiers_secs = \"1, 2,60\"").unwrap().retry_tiers_secs, [1, 2, 60]);
        assert_eq!(Settings::from_toml("retry_tiers_secs = [2, 600]").unwrap().retry_tiers_secs, [2, 600]);
        for bad in ["\"30,5\"", "\"0,5\"", "\"\"", "\"5,x\""] {
            let e = Settings::from_toml(&format!("retry_tiers_secs = {bad}")).unwrap_err().to_string();
            assert!(e.contains("retry_tiers_secs"), "{bad}: {e}");
        }
    }

    #[test]
    fn numeric_password_from_toml_is_text() {
        let s = Settings::from_toml(
            r#"
            [gstins."29AAGCP4821K1Z3"]
            provider = "nic"
            base_url = "http://127.0.0.1:1"
            username = "u"
            password = 123456
            client_id = 42
            client_secret = "s"
            signing_cert_file = "/x.pem"
            "#,
        )
        .unwrap();
        let g = &s.gstins["29AAGCP4821K1Z3"];
        assert_eq!(g.password.expose_secret(), "123456");
        assert_eq!(g.client_id, "42");
        assert_eq!(g.signing_key_file.as_deref(), Some("/x.pem"));
    }

    #[test]
    fn a_upi_id_is_checked_when_the_configuration_is_loaded() {
        let section = |upi: &str| {
            format!(
                "print_block = true\n[gstins.\"29AAGCP4821K1Z3\"]\nprovider = \"whitebooks\"\nbase_url = \"http://x\"\n\
                 username = \"u\"\npassword = \"p\"\nclient_id = \"c\"\nclient_secret = \"s\"\nupi_id = \"{upi}\"\n"
            )
        };
        let s = Settings::from_toml(&section("prakash.eng@okaxis")).unwrap();
        assert!(s.print_block);
        assert_eq!(s.gstins["29AAGCP4821K1Z3"].upi_id.as_deref(), Some("prakash.eng@okaxis"));
        let e = Settings::from_toml(&section("prakash at okaxis")).unwrap_err().to_string();
        assert!(e.contains("upi_id") && e.contains("EINVOICE_GSTINS__29AAGCP4821K1Z3__UPI_ID"), "{e}");
        assert!(!Settings::from_toml("").unwrap().print_block, "off by default");
    }

    #[test]
    fn ewaybill_doc_rule_switches() {
        use crate::domain::invoice::{ShipToRules, SAME_PIN_DISTANCE_RULE_DEFAULT, TDS_TCS_SUPPLIER_RULE_DEFAULT};
        let default = Settings::from_toml("").unwrap().parse_options().validation;
        assert_eq!(default.tds_tcs_supplier_rule, TDS_TCS_SUPPLIER_RULE_DEFAULT);
        assert_eq!(default.same_pin_distance_rule, SAME_PIN_DISTANCE_RULE_DEFAULT);
        let off = Settings::from_toml("tds_tcs_supplier_rule = \"off\"\nsame_pin_distance_rule = \"off\"").unwrap();
        let v = off.parse_options().validation;
        assert_eq!((v.tds_tcs_supplier_rule, v.same_pin_distance_rule), (ShipToRules::Off, ShipToRules::Off));
    }

    #[test]
    fn rail_doc_rules_switch() {
        use crate::domain::invoice::{ShipToRules, RAIL_DOC_RULES_DEFAULT};
        let default = Settings::from_toml("").unwrap();
        assert_eq!(default.parse_options().validation.rail_doc_rules, RAIL_DOC_RULES_DEFAULT);
        let off = Settings::from_toml(r#"rail_doc_rules = "off""#).unwrap();
        assert_eq!(off.parse_options().validation.rail_doc_rules, ShipToRules::Off);
    }

    #[test]
    fn ship_to_rules_switch() {
        use crate::domain::invoice::ShipToRules;
        let off = Settings::from_toml("").unwrap();
        assert_eq!(off.parse_options().validation.ship_to_rules, ShipToRules::Off);
        let on = Settings::from_toml(r#"ship_to_rules = "on""#).unwrap();
        assert_eq!(on.parse_options().validation.ship_to_rules, ShipToRules::On);
        let dated = Settings::from_toml(r#"ship_to_rules = "2026-08-01""#).unwrap();
        let d = chrono::NaiveDate::from_ymd_opt(2026, 8, 1).unwrap();
        assert_eq!(dated.parse_options().validation.ship_to_rules, ShipToRules::From(d));
        let err = Settings::from_toml(r#"ship_to_rules = "sometimes""#).unwrap_err().to_string();
        assert!(err.contains("sometimes") && err.contains("2026-08-01"), "{err}");
    }

    #[test]
    fn gst_rates_are_exact_decimals() {
        let s = Settings::from_toml("gst_rates = [0, 0.1, 0.25, 18, 18.0, 40]").unwrap();
        let d = |t: &str| t.parse::<Decimal>().unwrap();
        assert_eq!(s.gst_rates, Some(vec![d("0"), d("0.1"), d("0.25"), d("18"), d("18.00"), d("40")]));
        let o = s.parse_options().validation;
        assert!(crate::domain::codes::is_allowed_rate(d("0.10"), &o.allowed_gst_rates));
        let err = Settings::from_toml("gst_rates = [5, nan]").unwrap_err().to_string();
        assert!(err.contains("NaN") && err.contains("not a finite percentage"), "{err}");
        let err = Settings::from_toml("gst_rates = [inf]").unwrap_err().to_string();
        assert!(err.contains("not a finite percentage"), "{err}");
        let err = Settings::from_toml(r#"gst_rates = [5, "nan"]"#).unwrap_err().to_string();
        assert!(err.contains("'nan'") && err.contains("not a finite percentage"), "{err}");
        assert_eq!(Settings::from_toml("").unwrap().gst_rates, None);
    }

    #[test]
    fn prices_per_call_are_decimals_and_a_bad_one_names_its_entry() {
        let s = Settings::from_toml("[api_price_per_call]\nwhitebooks = \"0.25\"\nNIC1 = \"1\"\nIRIS = 0.1\n").unwrap();
        let d = |t: &str| t.parse::<Decimal>().unwrap();
        assert_eq!(s.price_per_call("WhiteBooks"), Some(d("0.25")));
        assert_eq!(s.price_per_call("nic1"), Some(d("1")));
        assert_eq!(s.price_per_call("IRIS"), Some(d("0.1")));
        assert_eq!(s.price_per_call("NIC2"), None);
        for bad in ["\"-1\"", "\"0,25\"", "\"1e3\"", "\"\"", "-0.5", "\"0.0000001\""] {
            let err =
                Settings::from_toml(&format!("[api_price_per_call]\nwhitebooks = {bad}\n")).unwrap_err().to_string();
            assert!(err.contains("api_price_per_call.whitebooks: '"), "{bad}: {err}");
        }
        assert!(Settings::from_toml("").unwrap().api_price_per_call.is_empty());
        assert_eq!(Settings::from_toml("").unwrap().usage_flush_secs, 10);
        let err = Settings::from_toml("usage_flush_secs = 0").unwrap_err().to_string();
        assert!(err.contains("usage_flush_secs"), "{err}");
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn a_console_users_hash_file_fills_the_hash_and_a_plain_password_is_refused() {
        let path = std::env::temp_dir().join(format!("einvoice-console-hash-{}", std::process::id()));
        std::fs::write(&path, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g\n").unwrap();
        let name = "EINVOICE_CONSOLE_USERS__Asha__PASSWORD_HASH_FILE";
        let files =
            check_env(vars(&[(name, path.to_str().unwrap()), ("EINVOICE_CONSOLE_USERS__Asha__ROLE", "viewer")]))
                .unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].0, "console_users.asha.password_hash");
        let mut fig = Figment::from(Serialized::defaults(Settings::defaults()))
            .merge(Toml::string("[console_users.asha]\nrole = \"operator\""));
        for (k, v) in files {
            fig = fig.merge(Serialized::default(&k, v));
        }
        let s = Settings::from_figment(fig).unwrap();
        assert_eq!(s.console_users["asha"].role, ConsoleRole::Operator);
        assert!(s.console_users["asha"].password_hash.expose_secret().starts_with("$argon2id$"));
        let err = Settings::from_toml("[console_users.ravi]\nrole = \"viewer\"\npassword_hash = \"hunter2\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an Argon2id hash") && err.contains("console hash-password"), "{err}");
        let err = Settings::from_toml("[console_users.Ravi]\nrole = \"viewer\"\npassword_hash = \"$argon2id$x\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lower case (ravi)"), "{err}");
        let err = check_env(vars(&[("EINVOICE_CONSOLE_USERS__asha__PASWORD_HASH", "x")])).unwrap_err().to_string();
        assert!(err.contains("EINVOICE_CONSOLE_USERS__asha__PASSWORD_HASH"), "a typo is named: {err}");
    }

    #[test]
    fn a_gstin_password_file_fills_the_password() {
        let path = std::env::temp_dir().join(format!("einvoice-pw-{}", std::process::id()));
        std::fs::write(&path, "s3cret 42\n").unwrap();
        let name = "EINVOICE_GSTINS__29aagcp4821k1z3__PASSWORD_FILE";
        let files = check_env(vars(&[(name, path.to_str().unwrap()), ("PATH", "/bin")])).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(files, vec![("gstins.29AAGCP4821K1Z3.password".to_string(), "s3cret 42".to_string())]);
        let mut fig = Figment::from(Serialized::defaults(Settings::defaults())).merge(Toml::string(
            "[gstins.\"29AAGCP4821K1Z3\"]\nprovider = \"nic\"\nbase_url = \"x\"\nusername = \"u\"\nclient_id = \"c\"\nclient_secret = \"s\"",
        ));
        for (k, v) in files {
            fig = fig.merge(Serialized::default(&k, v));
        }
        let s = Settings::from_figment(fig).unwrap();
        assert_eq!(s.gstins["29AAGCP4821K1Z3"].password.expose_secret(), "s3cret 42");
    }

    #[test]
    fn path_fields_ending_in_file_are_values_and_typos_get_the_closest_name() {
        let ok = vars(&[
            ("EINVOICE_GSTINS__27AAKFU7303M1ZP__PUBLIC_KEY_FILE", "/k.pem"),
            ("EINVOICE_GSTINS__27AAKFU7303M1ZP__TYPE_NAMES__GET_BY_DOC", "X"),
            ("EINVOICE_GSTINS__27AAKFU7303M1ZP__SIGNING_CERT_FILE", "/c.pem"),
            ("EINVOICE_PREFETCH", "4"),
            ("EINVOICE_CONFIG", "/x.toml"),
        ]);
        assert_eq!(check_env(ok).unwrap(), vec![]);
        let err = check_env(vars(&[("EINVOICE_TOKEN_KYE", "x")])).unwrap_err().to_string();
        assert!(err.contains("did you mean EINVOICE_TOKEN_KEY?"), "{err}");
        let err = check_env(vars(&[("EINVOICE_AMQP_URL_FIEL", "x")])).unwrap_err().to_string();
        assert!(err.contains("did you mean EINVOICE_AMQP_URL_FILE?"), "{err}");
    }

    #[test]
    fn rate_limit_on_a_gstin_and_error_budget_settings() {
        let gstin = |extra: &str| {
            format!(
                "[gstins.\"29AAGCP4821K1Z3\"]\nprovider = \"whitebooks\"\nbase_url = \"x\"\nusername = \"u\"\n\
                 password = \"p\"\nclient_id = \"c\"\nclient_secret = \"s\"\n{extra}"
            )
        };
        let s = Settings::from_toml(&gstin("rate_limit = { requests_per_minute = 30, burst = 5 }")).unwrap();
        let r = s.gstins["29AAGCP4821K1Z3"].rate_limit.unwrap();
        assert_eq!(r, RateLimit { requests_per_minute: 30, burst: 5 });
        assert!((r.per_second() - 0.5).abs() < 1e-9);
        assert_eq!(Settings::from_toml(&gstin("")).unwrap().gstins["29AAGCP4821K1Z3"].rate_limit, None);
        let burst1 = Settings::from_toml(&gstin("rate_limit = { requests_per_minute = 6 }")).unwrap();
        assert_eq!(burst1.gstins["29AAGCP4821K1Z3"].rate_limit.unwrap().burst, 1);
        let e = Settings::from_toml(&gstin("rate_limit = { requests_per_minute = 0, burst = 5 }")).unwrap_err();
        assert!(e.to_string().contains("gstins.\"29AAGCP4821K1Z3\".rate_limit"), "{e}");
        let e = Settings::from_toml(&gstin("rate_limit = { requests_per_minute = 5, brust = 5 }")).unwrap_err();
        assert!(e.to_string().contains("brust"), "{e}");
        // Nested keys from the environment reach the table.
        assert_eq!(gstin_env_key("29aagcp4821k1z3", "RATE_LIMIT__BURST"), "gstins.29AAGCP4821K1Z3.rate_limit.burst");
        assert_eq!(gstin_env_key("29AAGCP4821K1Z3", "PASSWORD"), "gstins.29AAGCP4821K1Z3.password");
        let names =
            ["EINVOICE_GSTINS__29AAGCP4821K1Z3__RATE_LIMIT__REQUESTS_PER_MINUTE", "EINVOICE_ERROR_BUDGET_WARN_SHARE"];
        check_variable_names(names).unwrap();

        let d = Settings::from_toml("").unwrap();
        assert_eq!((d.error_budget_gstin_per_day, d.error_budget_client_per_day), (20_000, 100_000));
        assert_eq!((d.error_budget_warn_share, d.error_budget_pause_share), (0.25, 0.5));
        for bad in ["error_budget_warn_share = 0.6", "error_budget_pause_share = 1.5", "error_budget_gstin_per_day = 0"]
        {
            let e = Settings::from_toml(bad).unwrap_err().to_string();
            assert!(e.contains("EINVOICE_ERROR_BUDGET_"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_dev_key_is_refused_for_production_only() {
        let toml = |env: &str, key: &str| {
            format!(
                "{key}\n[gstins.\"29AAGCP4821K1Z3\"]\nprovider = \"nic\"\nenvironment = \"{env}\"\nbase_url = \"https://x\"\n\
                 username = \"u\"\npassword = \"p\"\nclient_id = \"c\"\nclient_secret = \"s\""
            )
        };
        assert!(Settings::from_toml(&toml("sandbox", "")).unwrap().check_token_key().is_ok());
        assert!(Settings::from_toml(&toml("production", "")).unwrap().check_token_key().is_err());
        let real = "token_key = \"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\"";
        assert!(Settings::from_toml(&toml("production", real)).unwrap().check_token_key().is_ok());
    }

    #[test]
    fn production_irp_urls_must_be_https() {
        let toml = |env: &str, url: &str, failover: &str| {
            format!(
                "[gstins.\"29AAGCP4821K1Z3\"]\nprovider = \"nic\"\nenvironment = \"{env}\"\nbase_url = \"{url}\"\n\
                 username = \"u\"\npassword = \"p\"\nclient_id = \"c\"\nclient_secret = \"s\"\n{failover}"
            )
        };
        let failover = |url: &str| {
            format!(
                "[[gstins.\"29AAGCP4821K1Z3\".failover]]\nirp = \"IRIS\"\nprovider = \"nic\"\nbase_url = \"{url}\"\n\
                 username = \"u\"\npassword = \"p\"\nclient_id = \"c\"\nclient_secret = \"s\"\n"
            )
        };
        // Sandbox (the simulator on loopback included) may use http.
        Settings::from_toml(&toml("sandbox", "http://127.0.0.1:8080", &failover("http://127.0.0.1:8081"))).unwrap();
        Settings::from_toml(&toml("production", "https://api.einvoice1.gst.gov.in", "")).unwrap();
        Settings::from_toml(&toml("production", "HTTPS://api.einvoice1.gst.gov.in", "")).unwrap();
        for url in ["http://api.einvoice1.gst.gov.in", "http://127.0.0.1:8080", "api.einvoice1.gst.gov.in", " http://x"]
        {
            let e = Settings::from_toml(&toml("production", url, "")).unwrap_err().to_string();
            assert!(
                e.contains("gstins.\"29AAGCP4821K1Z3\".base_url (EINVOICE_GSTINS__29AAGCP4821K1Z3__BASE_URL)")
                    && e.contains("https://")
                    && e.contains("production"),
                "{url}: {e}"
            );
        }
        // A production GSTIN's failover entries too (their own environment left at its default).
        let e = Settings::from_toml(&toml(
            "production",
            "https://api.einvoice1.gst.gov.in",
            &failover("http://api.einvoice6.gst.gov.in"),
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("gstins.\"29AAGCP4821K1Z3\".failover[0].base_url"), "{e}");
        // A production failover entry of a sandbox GSTIN.
        let prod_failover =
            failover("http://x").replace("irp = \"IRIS\"", "irp = \"IRIS\"\nenvironment = \"production\"");
        let e = Settings::from_toml(&toml("sandbox", "http://127.0.0.1:1", &prod_failover)).unwrap_err().to_string();
        assert!(e.contains("failover[0].base_url"), "{e}");
    }

    #[test]
    fn url_passwords_are_redacted_even_from_urls_that_do_not_parse() {
        let cases = [
            ("amqp://guest:S3CRET@127.0.0.1:5672/%2f", "amqp://guest:***@127.0.0.1:5672/%2f"),
            ("amqp:u:S3CRET@host:5672", "amqp:u:***@host:5672"),
            ("amqp:S3CRET@host", "amqp:***@host"),
            ("u:S3CRET@host", "u:***@host"),
            ("amqp://u:S3CRET@host:notaport/%2f", "amqp://u:***@host:notaport/%2f"),
            ("amqp://u:S3/CR@ET@host", "amqp://u:***@host"),
            ("amqp://u:S3CRET:more@host", "amqp://u:***@host"),
            ("postgres://u:S3CRET@db:5432/x?sslmode=require", "postgres://u:***@db:5432/x?sslmode=require"),
            ("postgresql://u:S3CRET@[::1]:5432/x", "postgresql://u:***@[::1]:5432/x"),
            ("amqp://a:S3CRET@n1,amqp://b:S3CRET@n2:5672", "amqp://a:***@n1,amqp://b:***@n2:5672"),
            // Nothing to hide.
            ("amqp://guest@127.0.0.1:5672/%2f", "amqp://guest@127.0.0.1:5672/%2f"),
            ("postgres://postgres@127.0.0.1/einvoice", "postgres://postgres@127.0.0.1/einvoice"),
            ("host=db user=u", "host=db user=u"),
        ];
        for (url, want) in cases {
            let got = redact_url(url);
            assert_eq!(got, want, "{url}");
            assert!(!got.contains("S3CRET") && !got.contains("CR@ET"), "{url}: {got}");
        }
        // An error text that quotes the URL, or the password alone, decoded.
        let url = "amqp:u:S3CRET%21@host";
        let text = format!("Invalid URL: '{url}' (password S3CRET! rejected)");
        let clean = scrub_url(&text, url);
        assert!(!clean.contains("S3CRET"), "{clean}");
        assert!(clean.contains("amqp:u:***@host"), "{clean}");
    }
}
