//! `validate`: check invoice JSON files offline exactly as the worker checks an `irn.generate`
//! (the contract's schema, then the worker's rules, with the worker's configuration) and print
//! every problem, as text lines or one JSON document.
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{json, Value};

use super::{exit, OutputFormat};
use crate::domain::command::generate::Generate;
use crate::domain::command::{parse_command, Command, JobKind, ParseOptions};
use crate::domain::event::DocumentRef;
use crate::domain::text::escape_controls;
use crate::domain::Problem;

#[derive(clap::Args)]
pub struct ValidateArgs {
    /// Invoice files (NIC schema v1.1), or `-` for standard input. A file holding a whole
    /// `irn.generate` command ({"gstin", "invoice"}) is checked as that command.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Accept NIC sandbox test GSTINs whose check digit is wrong (as EINVOICE_RELAXED_GSTIN_CHECK_DIGIT).
    #[arg(long)]
    relaxed_gstin: bool,
    /// `text`: one line per problem; `json`: one JSON document with every problem of every file.
    #[arg(long, value_enum, default_value = "text")]
    format: OutputFormat,
}

/// One file's verdict.
struct Checked {
    file: String,
    document: Option<DocumentRef>,
    problems: Vec<Problem>,
}

/// Check one file's text as the worker checks an `irn.generate` (schema, then rules).
fn check_invoice(text: &str, opts: &ParseOptions) -> Checked {
    let mut out = Checked { file: String::new(), document: None, problems: Vec::new() };
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            out.problems.push(Problem::new("", "INVALID_JSON", format!("the file is not JSON: {e}")));
            return out;
        }
    };
    // A whole command is checked as it is; a bare invoice as the command that would carry it,
    // its seller as the envelope GSTIN (whose problems are then the invoice's own, at
    // SellerDtls.Gstin, so they are not listed twice) and its paths without the `invoice.` prefix.
    let bare = value.get("invoice").is_none();
    let body = if bare {
        json!({"gstin": value.pointer("/SellerDtls/Gstin").cloned().unwrap_or(Value::Null), "invoice": value})
    } else {
        value
    };
    match parse_command(JobKind::IrnGenerate.routing_key(), body.to_string().as_bytes(), opts) {
        Ok(parsed) => {
            if let Command::IrnGenerate(Generate { invoice, .. }) = &parsed.command {
                out.document = Some(DocumentRef::new(invoice.key(), Some(invoice.doc_date())));
            }
        }
        Err(rej) => {
            out.problems = rej
                .problems
                .into_iter()
                .filter(|p| !(bare && p.path == "gstin"))
                .map(|mut p| {
                    if bare {
                        p.path = p.path.strip_prefix("invoice.").unwrap_or(&p.path).to_string();
                        if p.path == "invoice" {
                            p.path.clear();
                        }
                    }
                    p
                })
                .collect();
        }
    }
    out
}

/// `validate`: exit 0 when every file is valid, 1 when one has a problem, 2 when the
/// configuration does not load.
pub fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    // The worker's own configuration: schema, rate master, reporting windows (per seller too),
    // ship-to rules, relaxed GSTIN check, message size limit.
    let settings = match super::load_settings() {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let mut opts = settings.parse_options();
    opts.validation.relaxed_gstin_check_digit |= args.relaxed_gstin;
    let mut results = Vec::new();
    for f in &args.files {
        let (name, text) = if f.as_os_str() == "-" {
            let mut text = String::new();
            let read = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text);
            ("-".to_string(), read.map(|_| text))
        } else {
            (f.display().to_string(), std::fs::read_to_string(f))
        };
        let mut checked = match text {
            Ok(text) => check_invoice(&text, &opts),
            Err(e) => Checked {
                file: String::new(),
                document: None,
                problems: vec![Problem::new("", "UNREADABLE", format!("cannot read the file: {e}"))],
            },
        };
        checked.file = name;
        results.push(checked);
    }
    let ok = results.iter().all(|r| r.problems.is_empty());
    match args.format {
        OutputFormat::Text => print_text(&results),
        OutputFormat::Json => print_json(ok, &results)?,
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(exit::REJECTED) })
}

/// Messages and paths may quote the file: no control character reaches the terminal as such.
fn esc(s: &str) -> String {
    escape_controls(s).into_owned()
}

/// One line per valid file (its document) or per problem.
fn print_text(results: &[Checked]) {
    for r in results {
        match &r.document {
            Some(d) if r.problems.is_empty() => {
                println!("{}: ok ({}/{}/{}/{})", esc(&r.file), d.gstin, d.doc_type, d.doc_number, d.financial_year)
            }
            _ => {
                for p in &r.problems {
                    println!("{}: {} [{}] {}", esc(&r.file), esc(&p.path), esc(&p.code), esc(&p.message));
                }
            }
        }
    }
}

/// One JSON document: the overall verdict and every file's problems.
fn print_json(ok: bool, results: &[Checked]) -> serde_json::Result<()> {
    let files: Vec<Value> = results
        .iter()
        .map(|r| {
            let problems: Vec<Value> = r
                .problems
                .iter()
                .map(|p| json!({"path": esc(&p.path), "code": esc(&p.code), "message": esc(&p.message)}))
                .collect();
            json!({"file": esc(&r.file), "ok": r.problems.is_empty(), "document": r.document, "problems": problems})
        })
        .collect();
    println!("{}", serde_json::to_string_pretty(&json!({"ok": ok, "files": files}))?);
    Ok(())
}
