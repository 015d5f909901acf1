//! Logging: `tracing` with text or JSON output (`EINVOICE_LOG_FORMAT`), filtered by `RUST_LOG`.
pub mod metrics;
pub mod usage;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Install the global subscriber once. Later calls (tests) are ignored.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // The relay publishes events `mandatory` and keeps what the broker returns (einvoice.unrouted);
    // lapin would also log every returned message, body and all, as a warning.
    let filter = filter.add_directive("lapin::returned_messages=error".parse().expect("a valid directive"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Text => builder.compact().try_init(),
    };
}
