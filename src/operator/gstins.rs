//! `gstin add|update|rotate-password|disable|enable|list`: the GSTINs managed in the database.
//!
//! A section is put together from (in order, later wins) the stored one (`update`), a TOML file
//! with the keys of a `[gstins."<GSTIN>"]` section (`--from-file`, the only way to give failover
//! entries), and the flags; the secrets come from files (`--password-file`,
//! `--client-secret-file`) or standard input, never from the command line (argv is visible to
//! every user of the machine, and lands in shell histories), and are never printed.
use std::io::BufRead;

use clap::Args;
use secrecy::SecretString;
use serde_json::{json, Map, Value};

use super::OpError;
use crate::config::{GstinConfig, Settings};
use crate::store::gstins::Changed;
use crate::store::secrets::SecretBox;
use crate::store::Db;

/// The settings of a GSTIN a flag can give (each overrides `--from-file` and the stored value).
#[derive(Args, Debug, Default, Clone)]
pub struct GstinFields {
    /// A TOML file with the keys of a `[gstins."<GSTIN>"]` section (failover entries included).
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<std::path::PathBuf>,
    /// whitebooks | nic
    #[arg(long)]
    pub provider: Option<String>,
    /// The IRP's name (NIC1, NIC2, IRIS, …).
    #[arg(long)]
    pub irp: Option<String>,
    /// sandbox | production
    #[arg(long)]
    pub environment: Option<String>,
    #[arg(long)]
    pub base_url: Option<String>,
    #[arg(long)]
    pub email: Option<String>,
    #[arg(long)]
    pub username: Option<String>,
    #[arg(long)]
    pub client_id: Option<String>,
    #[arg(long)]
    pub ip_address: Option<String>,
    #[arg(long, value_name = "FILE")]
    pub public_key_file: Option<String>,
    #[arg(long, value_name = "FILE")]
    pub signing_key_file: Option<String>,
    /// The seller's UPI id (name@bank), for B2C QR codes.
    #[arg(long)]
    pub upi_id: Option<String>,
    #[arg(long)]
    pub payee_name: Option<String>,
    /// The credential's quota: calls a minute (with --burst).
    #[arg(long)]
    pub requests_per_minute: Option<u32>,
    #[arg(long, requires = "requests_per_minute")]
    pub burst: Option<u32>,
    #[arg(long)]
    pub reporting_window_days: Option<u32>,
    /// Publish `ewaybill.expiring` this many hours before this GSTIN's e-way bills end
    /// (overrides `ewb_expiry_warn_secs`; 0: never).
    #[arg(long)]
    pub ewb_expiry_warn_hours: Option<u32>,
}

/// Where the secrets come from.
#[derive(Args, Debug, Default, Clone)]
pub struct SecretSources {
    /// Read the API password from this file (its first line); else from standard input.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<std::path::PathBuf>,
    /// Read the client secret from this file (its first line); else from standard input (the
    /// line after the password's).
    #[arg(long, value_name = "FILE")]
    pub client_secret_file: Option<std::path::PathBuf>,
}

/// The first line of a file, without its line ending.
fn first_line(path: &std::path::Path, what: &str) -> Result<String, OpError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| OpError::Usage(format!("reading the {what} from {}: {e}", path.display())))?;
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r').to_string();
    if line.is_empty() {
        return Err(OpError::Usage(format!("{} holds no {what} (its first line is empty)", path.display())));
    }
    Ok(line)
}

/// Reads secrets from standard input, one a line, in the order asked for.
struct Stdin {
    lines: std::io::Lines<std::io::StdinLock<'static>>,
}

impl Stdin {
    fn new() -> Stdin {
        Stdin { lines: std::io::stdin().lock().lines() }
    }

    fn next(&mut self, what: &str) -> Result<String, OpError> {
        let line = self
            .lines
            .next()
            .transpose()
            .map_err(|e| OpError::Usage(format!("reading the {what} from standard input: {e}")))?
            .unwrap_or_default();
        let line = line.trim_end_matches('\r').to_string();
        if line.is_empty() {
            return Err(OpError::Usage(format!(
                "no {what} on standard input: pipe it in (one secret a line) or give --{}-file",
                what.replace(' ', "-")
            )));
        }
        Ok(line)
    }
}

/// The secrets asked for (`password`, `client_secret`): from their files, else standard input.
fn read_secrets(src: &SecretSources, password: bool, client_secret: bool) -> Result<Map<String, Value>, OpError> {
    let mut out = Map::new();
    let mut stdin: Option<Stdin> = None;
    for (key, what, file, wanted) in [
        ("password", "password", &src.password_file, password),
        ("client_secret", "client secret", &src.client_secret_file, client_secret),
    ] {
        let value = match file {
            Some(path) => first_line(path, what)?,
            None if wanted => stdin.get_or_insert_with(Stdin::new).next(what)?,
            None => continue,
        };
        out.insert(key.into(), Value::String(value));
    }
    Ok(out)
}

fn read_toml(path: &std::path::Path) -> Result<Map<String, Value>, OpError> {
    use figment::providers::{Format, Toml};
    let v: Value = figment::Figment::from(Toml::file_exact(path))
        .extract()
        .map_err(|e| OpError::Usage(format!("{}: {e}", path.display())))?;
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(OpError::Usage(format!("{} is not a table of settings", path.display()))),
    }
}

impl GstinFields {
    /// Lay the file's and the flags' settings over `base`.
    fn apply(&self, base: &mut Map<String, Value>) -> Result<(), OpError> {
        if let Some(path) = &self.from_file {
            base.extend(read_toml(path)?);
        }
        let text = [
            ("provider", &self.provider),
            ("irp", &self.irp),
            ("environment", &self.environment),
            ("base_url", &self.base_url),
            ("email", &self.email),
            ("username", &self.username),
            ("client_id", &self.client_id),
            ("ip_address", &self.ip_address),
            ("public_key_file", &self.public_key_file),
            ("signing_key_file", &self.signing_key_file),
            ("upi_id", &self.upi_id),
            ("payee_name", &self.payee_name),
        ];
        for (k, v) in text {
            if let Some(v) = v {
                base.insert(k.into(), Value::String(v.clone()));
            }
        }
        if let Some(rpm) = self.requests_per_minute {
            base.insert("rate_limit".into(), json!({"requests_per_minute": rpm, "burst": self.burst.unwrap_or(1)}));
        }
        if let Some(d) = self.reporting_window_days {
            base.insert("reporting_window_days".into(), json!(d));
        }
        if let Some(h) = self.ewb_expiry_warn_hours {
            base.insert("ewb_expiry_warn_secs".into(), json!(u64::from(h) * 3600));
        }
        Ok(())
    }
}

/// The section from its JSON, checked as the configuration checks one, and its IRPs built (a NIC
/// public key that does not read is refused here, not at the first invoice).
fn finish(settings: &Settings, gstin: &str, section: Map<String, Value>) -> Result<GstinConfig, String> {
    let cfg: GstinConfig =
        serde_json::from_value(Value::Object(section)).map_err(|e| format!("gstins.\"{gstin}\": {e}"))?;
    cfg.check(gstin).map_err(|e| e.to_string())?;
    let http = crate::irp::registry::http_client(settings).map_err(|e| e.to_string())?;
    crate::irp::registry::build_set(&http, gstin, &cfg).map_err(|e| e.to_string())?;
    Ok(cfg)
}

fn gstin_arg(settings: &Settings, g: &str) -> Result<String, OpError> {
    let g = g.trim().to_ascii_uppercase();
    crate::domain::Gstin::parse(&g, settings.relaxed_gstin_check_digit)
        .map_err(|e| OpError::Usage(format!("GSTIN {g}: {e}")))?;
    Ok(g)
}

fn sbox(settings: &Settings) -> Result<SecretBox, OpError> {
    SecretBox::from_config(settings.token_key.as_ref()).map_err(|e| OpError::Usage(e.to_string()))
}

/// Refuse a GSTIN the configuration file or environment defines: the worker would ignore the
/// database's row for it (the file wins), so writing it would only mislead.
fn not_in_file(settings: &Settings, gstin: &str) -> Result<(), OpError> {
    if settings.gstins.contains_key(gstin) {
        return Err(OpError::Refused(format!(
            "GSTIN {gstin} is defined in the configuration (EINVOICE_CONFIG or EINVOICE_GSTINS__{gstin}__*), which \
             wins over the database: change it there, or remove it there first to manage it with this command"
        )));
    }
    Ok(())
}

/// A production GSTIN's credentials must not be sealed under the public development key.
fn check_key(settings: &Settings, cfg: &GstinConfig, gstin: &str) -> Result<(), OpError> {
    if cfg.environment == crate::config::Environment::Production {
        let mut probe = settings.clone();
        probe.gstins.insert(gstin.to_string(), cfg.clone());
        probe.check_token_key().map_err(|e| OpError::Refused(e.to_string()))?;
    }
    Ok(())
}

pub async fn add(
    settings: &Settings,
    db: &Db,
    gstin: &str,
    fields: &GstinFields,
    secrets: &SecretSources,
    disabled: bool,
) -> Result<i64, OpError> {
    let gstin = gstin_arg(settings, gstin)?;
    not_in_file(settings, &gstin)?;
    let mut section = Map::new();
    fields.apply(&mut section)?;
    let has = |k: &str| section.contains_key(k);
    let (need_pw, need_cs) = (!has("password"), !has("client_secret"));
    section.extend(read_secrets(secrets, need_pw, need_cs)?);
    let cfg = finish(settings, &gstin, section).map_err(OpError::Usage)?;
    check_key(settings, &cfg, &gstin)?;
    let sbox = sbox(settings)?;
    if !db.gstin_add(&gstin, &cfg, &sbox).await? {
        return Err(OpError::Refused(format!(
            "GSTIN {gstin} is already in the database: use `gstin update` or `gstin rotate-password`"
        )));
    }
    if disabled {
        return changed(&gstin, Ok(db.gstin_set_enabled(&gstin, false).await?));
    }
    Ok(1)
}

fn changed(gstin: &str, r: Result<Changed, String>) -> Result<i64, OpError> {
    match r {
        Ok(Changed::Done(v)) => Ok(v),
        Ok(Changed::NotFound) => Err(OpError::NotFound(format!(
            "GSTIN {gstin} is not in the database (`gstin list` shows those that are; `gstin add` adds one)"
        ))),
        Err(e) => Err(OpError::Usage(e)),
    }
}

pub async fn update(settings: &Settings, db: &Db, gstin: &str, fields: &GstinFields) -> Result<i64, OpError> {
    let gstin = gstin_arg(settings, gstin)?;
    not_in_file(settings, &gstin)?;
    let sbox = sbox(settings)?;
    // Read the file before the transaction: a bad file costs no lock.
    let mut overlay = Map::new();
    fields.apply(&mut overlay)?;
    if overlay.keys().any(|k| crate::config::GSTIN_SECRET_KEYS.contains(&k.as_str())) {
        return Err(OpError::Usage(
            "a password or client secret changes with `gstin rotate-password`, not `update`".into(),
        ));
    }
    let r = db
        .gstin_modify(&gstin, &sbox, false, |cfg| {
            let Value::Object(mut section) = serde_json::to_value(&*cfg).expect("a GSTIN section serialises") else {
                unreachable!("a section serialises to an object")
            };
            section.extend(overlay);
            let new = finish(settings, &gstin, section)?;
            if new.environment == crate::config::Environment::Production {
                check_key(settings, &new, &gstin).map_err(|e| e.to_string())?;
            }
            *cfg = new;
            Ok(())
        })
        .await?;
    changed(&gstin, r)
}

/// Replace the password (and, with `--client-secret-file` or `client_secret`, the client secret)
/// of the GSTIN's primary IRP, or of its failover entry `irp`.
pub async fn rotate_password(
    settings: &Settings,
    db: &Db,
    gstin: &str,
    irp: Option<&str>,
    secrets: &SecretSources,
    client_secret: bool,
) -> Result<i64, OpError> {
    let gstin = gstin_arg(settings, gstin)?;
    not_in_file(settings, &gstin)?;
    let sbox = sbox(settings)?;
    let new = read_secrets(secrets, true, client_secret)?;
    let r = db
        .gstin_modify(&gstin, &sbox, true, |cfg| {
            let entry = match irp {
                None => cfg,
                Some(name) if cfg.irp_name().eq_ignore_ascii_case(name) => cfg,
                Some(name) => {
                    let names: Vec<String> = cfg.irp_names().collect();
                    cfg.failover
                        .iter_mut()
                        .find(|f| f.irp_name().eq_ignore_ascii_case(name))
                        .ok_or_else(|| format!("GSTIN {gstin} has no IRP named {name} (it has {})", names.join(", ")))?
                }
            };
            if let Some(Value::String(p)) = new.get("password") {
                entry.password = SecretString::from(p.clone());
            }
            if let Some(Value::String(s)) = new.get("client_secret") {
                entry.client_secret = SecretString::from(s.clone());
            }
            Ok(())
        })
        .await?;
    changed(&gstin, r)
}

pub async fn set_enabled(settings: &Settings, db: &Db, gstin: &str, enabled: bool) -> Result<i64, OpError> {
    let gstin = gstin_arg(settings, gstin)?;
    changed(&gstin, Ok(db.gstin_set_enabled(&gstin, enabled).await?))
}
