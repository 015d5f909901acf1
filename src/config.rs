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

/// Credentials and endpoint for one seller GSTIN.
#[derive(Debug, Clone, Deserialize)]
pub struct GstinConfig {
    pub provider: ProviderKind,
    #[serde(default)]
    pub environment: Environment,
    pub base_url: String,
    /// Whitebooks: the account e-mail sent as `?email=`.
    #[serde(default)]
    pub email: String,
    #[serde(deserialize_with = "string_or_number")]
    pub username: String,
    #[serde(deserialize_with = "secret_string_or_number")]
    pub password: SecretString,
    #[serde(deserialize_with = "string_or_number")]
    pub client_id: String,
    #[serde(deserialize_with = "secret_string_or_number")]
    pub client_secret: SecretString,
    /// Whitebooks: the caller's public IP as registered with the GSP.
    #[serde(default = "default_ip")]
    pub ip_address: String,
    /// NIC: the IRP's encryption public key (PEM), inline or from a file.
    #[serde(default)]
    pub public_key_pem: Option<String>,
    #[serde(default)]
    pub public_key_file: Option<String>,
    /// NIC: the IRP's signing key/certificate (PEM) used to verify SignedInvoice/SignedQRCode.
    #[serde(default, alias = "signing_cert_pem")]
    pub signing_key_pem: Option<String>,
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

fn secret_string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    string_or_number(d).map(SecretString::from)
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
    pub delivery_limit: u32,
    pub max_message_bytes: usize,
    pub http_connect_timeout_ms: u64,
    pub http_read_timeout_ms: u64,
    pub retry_min_delay_ms: u64,
    pub retry_max_delay_ms: u64,
    pub retry_max_times: usize,
    /// How long a job may keep being rescheduled for transient failures before `*.failed`.
    pub retry_max_age_secs: u64,
    /// Refresh a token this long before its expiry.
    pub token_refresh_margin_secs: i64,
    /// base64 of 32 bytes: encrypts tokens and SEKs at rest. Unset = a built-in development key.
    #[serde(default)]
    pub token_key: Option<SecretString>,
    /// How long a worker owns a document's generate call before another may look it up.
    pub lease_secs: i64,
    pub relaxed_gstin_check_digit: bool,
    /// Apply the IRP's 30-day reporting window (AATO ≥ ₹10 cr) before calling it.
    #[serde(default)]
    pub reporting_window_days: Option<u32>,
    /// The GST rate master (%), when it differs from the built-in one (e.g. a new slab).
    #[serde(default)]
    pub gst_rates: Option<Vec<f64>>,
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
    /// Address for `/healthz`, `/readyz` and `/metrics` (off when unset), e.g. `0.0.0.0:9090`.
    #[serde(default)]
    pub health_listen: Option<String>,
    #[serde(default)]
    pub gstins: BTreeMap<String, GstinConfig>,
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
    token_refresh_margin_secs: i64,
    lease_secs: i64,
    relaxed_gstin_check_digit: bool,
    gstin_cache_secs: i64,
    in_doubt_after_secs: i64,
    pause_secs: i64,
    log_format: LogFormat,
}

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
            token_refresh_margin_secs: 600,
            lease_secs: 120,
            relaxed_gstin_check_digit: false,
            gstin_cache_secs: 24 * 3600,
            in_doubt_after_secs: 900,
            pause_secs: 300,
            log_format: LogFormat::Text,
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
                        Some(format!("gstins.{}.{}", gstin.to_ascii_uppercase(), field.to_ascii_lowercase()).into())
                    })
                    .lowercase(false),
            );
        Self::from_figment(fig)
    }

    /// Defaults plus the given TOML text: used by tests and the demo, which build their
    /// configuration in code.
    pub fn from_toml(toml: &str) -> Result<Settings, ConfigError> {
        Self::from_figment(Figment::from(Serialized::defaults(Self::defaults())).merge(Toml::string(toml)))
    }

    fn from_figment(fig: Figment) -> Result<Settings, ConfigError> {
        let mut s: Settings = fig.extract().map_err(|e| ConfigError::Invalid(e.to_string()))?;
        // Env keys arrive lower-cased; GSTINs are upper-case everywhere else.
        s.gstins = std::mem::take(&mut s.gstins).into_iter().map(|(k, v)| (k.to_ascii_uppercase(), v)).collect();
        Ok(s)
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
                ..defaults
            },
            reporting_window_by_gstin: self
                .gstins
                .iter()
                .filter_map(|(g, c)| c.reporting_window_days.map(|d| (g.clone(), d)))
                .collect(),
        }
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

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file missing: {0}")]
    Missing(String),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

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
}
