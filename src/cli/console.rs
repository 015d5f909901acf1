//! `console hash-password` (a console user's Argon2id hash, from standard input) and
//! `register export` (the IRN register of a GSTIN for a return period, as the console exports it).
use std::io::Read;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

use crate::config::Settings;
use crate::operator::OpError;
use crate::store::console::{parse_period, register_csv};
use crate::store::Db;

#[derive(Subcommand)]
pub enum ConsoleCmd {
    /// Read a password from standard input (one line) and print its Argon2id hash for
    /// `console_users.<name>.password_hash`. The password is never echoed or logged.
    HashPassword,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RegisterFormat {
    Csv,
    Json,
}

#[derive(Subcommand)]
pub enum RegisterCmd {
    /// Print the register: every IRN and e-way bill of the GSTIN whose document date is in the
    /// period, with its status (active, cancelled, rejected, registered elsewhere) and IRP.
    Export {
        #[arg(long)]
        gstin: String,
        /// The return period, YYYY-MM (by document date).
        #[arg(long)]
        period: String,
        #[arg(long, value_enum, default_value = "csv")]
        format: RegisterFormat,
    },
}

pub fn console(cmd: ConsoleCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ConsoleCmd::HashPassword => {
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input)?;
            let password = input.lines().next().unwrap_or("");
            if password.len() < 12 {
                eprintln!("error: give a password of at least 12 characters on standard input");
                return Ok(ExitCode::from(super::exit::USAGE));
            }
            println!("{}", crate::console::auth::hash_password(password));
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn register(settings: &Settings, cmd: RegisterCmd) -> Result<(), OpError> {
    use secrecy::ExposeSecret;
    let RegisterCmd::Export { gstin, period, format } = cmd;
    let (y, m) = parse_period(&period)
        .ok_or_else(|| OpError::Usage(format!("--period '{period}': give the return period as YYYY-MM")))?;
    let db = Db::with_ca(settings.database_url.expose_secret(), 1, settings.database_ca_file.as_deref())?;
    let lines = db.irn_register(&gstin.trim().to_ascii_uppercase(), y, m).await?;
    match format {
        RegisterFormat::Csv => print!("{}", register_csv(&lines)),
        RegisterFormat::Json => println!("{}", serde_json::to_string_pretty(&lines).expect("serialisable")),
    }
    Ok(())
}
