//! `verify`: check suppliers' signed e-invoices offline, as `einvoice.verify` does, against the
//! configured IRP signing keys (`irp_signing_keys`), and print each verdict as a text line or
//! one JSON document. Exit codes as `validate`: 0 every file verified, 1 one did not, 2 usage
//! or configuration.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine as _;
use serde_json::{json, Value};

use super::{exit, OutputFormat};
use crate::domain::text::escape_controls;
use crate::irp::verify::{self as v, Input, KeyRing, Ours, Verification};

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Files: a signed QR code or SignedInvoice (the JWT as text), a JSON document with
    /// `SignedQRCode` / `SignedInvoice` (an IRP answer), or a PNG/JPEG image of the QR code.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The buyer GSTIN the purchases must be addressed to; default: any configured GSTIN (none
    /// configured: the buyer is not checked).
    #[arg(long)]
    gstin: Option<String>,
    /// `text`: one line per file; `json`: one JSON document with every file's verdict.
    #[arg(long, value_enum, default_value = "text")]
    format: OutputFormat,
}

const PNG_MAGIC: &[u8] = b"\x89PNG";
const JPEG_MAGIC: &[u8] = b"\xFF\xD8\xFF";

/// What a file holds: an image, a JSON document, or a JWT.
pub fn input_of(bytes: &[u8]) -> Input {
    if bytes.starts_with(PNG_MAGIC) || bytes.starts_with(JPEG_MAGIC) {
        return Input::Image(bytes.to_vec());
    }
    let text = String::from_utf8_lossy(bytes);
    match serde_json::from_str::<Value>(text.trim()) {
        Ok(Value::String(s)) => Input::Jwt(s),
        Ok(d @ Value::Object(_)) => Input::Document(d),
        _ => Input::Jwt(text.trim().to_string()),
    }
}

/// The body of an `einvoice.verify` for a file (`publish einvoice.verify --file`).
pub fn command_body(path: &Path) -> anyhow::Result<Value> {
    let bytes = std::fs::read(path)?;
    Ok(match input_of(&bytes) {
        Input::Image(b) => json!({"qr_image": base64::engine::general_purpose::STANDARD.encode(b)}),
        Input::Document(d) => json!({"signed_invoice": d}),
        Input::Jwt(t) => {
            let invoice = crate::irp::jwt::data_unverified(&t).is_ok_and(|d| d.get("SellerDtls").is_some());
            if invoice {
                json!({"signed_invoice": t})
            } else {
                json!({"signed_qr_code": t})
            }
        }
    })
}

pub fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let settings = match super::load_settings() {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let ring = match KeyRing::from_settings(&settings) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: irp_signing_keys: {e}");
            return Ok(ExitCode::from(exit::USAGE));
        }
    };
    if ring.keys.is_empty() {
        eprintln!("warning: no IRP signing key is configured (irp_signing_keys): every signature is an UNKNOWN_KEY");
    }
    let ours = match &args.gstin {
        Some(g) => Ours::Any(vec![g.as_str()]),
        None if settings.gstins.is_empty() => Ours::Anyone,
        None => Ours::Any(settings.gstins.keys().map(String::as_str).collect()),
    };
    let mut results: Vec<(String, Verification)> = Vec::new();
    for f in &args.files {
        let answer = match std::fs::read(f) {
            Ok(bytes) => v::verify(&ring, &input_of(&bytes), &ours, None, Default::default()),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", f.display());
                return Ok(ExitCode::from(exit::USAGE));
            }
        };
        results.push((f.display().to_string(), answer));
    }
    let ok = results.iter().all(|(_, a)| a.valid);
    match args.format {
        OutputFormat::Text => {
            for (file, a) in &results {
                let esc = |s: &str| escape_controls(s).into_owned();
                let f = a.fields.clone().unwrap_or_default();
                let by =
                    a.signed_by.as_ref().map_or(String::new(), |s| format!(" signed by {} key {}", s.irp, s.key_id));
                let doc = format!(
                    "{} {} {} of {} to {}, total {}, IRN {}",
                    f.doc_type.as_deref().unwrap_or("?"),
                    f.doc_number.as_deref().unwrap_or("?"),
                    f.doc_date.as_deref().unwrap_or("?"),
                    f.supplier_gstin.as_deref().unwrap_or("?"),
                    f.buyer_gstin.as_deref().unwrap_or("?"),
                    f.total_value.map_or("?".into(), |t| t.to_string()),
                    f.irn.as_deref().unwrap_or("?"),
                );
                if a.valid {
                    println!("{}: valid ({}){by}", esc(file), esc(&doc));
                } else {
                    let reason = a.reason.map_or("", |r| r.as_str());
                    println!("{}: invalid [{reason}] {}", esc(file), esc(a.message.as_deref().unwrap_or("")));
                }
            }
        }
        OutputFormat::Json => {
            let files: Vec<Value> = results
                .iter()
                .map(|(file, a)| {
                    let mut d = serde_json::to_value(a).expect("a verification serialises");
                    d["file"] = json!(escape_controls(file));
                    d
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&json!({"ok": ok, "files": files}))?);
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(exit::REJECTED) })
}
