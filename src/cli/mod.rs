//! The binary's subcommands that are more than a call into the library: `validate`, `publish`
//! and the operator commands' glue. `main.rs` keeps only the clap tree and the dispatch.
//!
//! `cli` is the top layer: it may use every other module; nothing else in the crate uses it.
pub mod console;
pub mod operator;
pub mod publish;
pub mod usage;
pub mod validate;
pub mod verify;

use std::process::ExitCode;

use crate::config::Settings;

/// `--format` of `validate` and `verify`: lines for a person, or one JSON document.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// Exit codes of `validate` and `publish` (docs/guide.md, "Command line").
pub mod exit {
    pub const REJECTED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const UNREACHABLE: u8 = 3;
    pub const FAILED: u8 = 4;
    pub const TIMED_OUT: u8 = 5;
}

/// The worker's configuration for `validate` and `publish`; when it does not load, the error
/// is printed and the exit code is [`exit::USAGE`].
fn load_settings() -> Result<Settings, ExitCode> {
    Settings::load().map_err(|e| {
        eprintln!("error: loading the configuration (EINVOICE_CONFIG, EINVOICE_*): {e}");
        ExitCode::from(exit::USAGE)
    })
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM: how `run` and `sim` are stopped.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
