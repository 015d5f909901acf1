//! Runs one operator command (`jobs`, `dead`, `gstin`, `prune`) with the worker's configuration
//! and turns its outcome into the exit code (see [`crate::operator::OpError::exit_code`]).
use std::future::Future;
use std::process::ExitCode;

use crate::config::Settings;
use crate::operator::OpError;
use crate::telemetry;

/// Run an operator command with the worker's configuration; its error picks the exit code
/// (1 nothing matched or refused, 2 usage, 3 PostgreSQL/RabbitMQ unreachable).
pub async fn run<F, Fut>(f: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(Settings) -> Fut,
    Fut: Future<Output = Result<(), OpError>>,
{
    let settings = Settings::load()?;
    telemetry::init(settings.log_format, "warn");
    match f(settings).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(e.exit_code()))
        }
    }
}
