//! Prometheus metrics: one catalogue, one recorder, every series present from start-up.
//!
//! [`CATALOG`] is the single list of what the worker exports: name, type, help text and labels.
//! The dashboard, the alert rules and their tests read it (`tests/deploy.rs`), so an alert can
//! never watch a metric the worker does not export. Histograms have explicit buckets (they
//! aggregate across replicas; a client-side summary would not). Label values are stable
//! snake_case strings from closed sets (routing keys, outcome classes, operations, configured
//! GSTINs and IRPs), never `Debug` output and never a document number.
//!
//! The metrics labelled `gstin` ([`PER_GSTIN`]) have a series per GSTIN only for the GSTINs
//! `metrics_per_gstin` names (none by default: issue 27, thousands of GSTINs on one worker must
//! not mean thousands of series each); every other GSTIN is counted in the series without the
//! label, so `sum()` (counters) or `max()` (the budget gauge) over a metric is always the whole.
use std::sync::OnceLock;

use crate::config::MetricsPerGstin;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::domain::command::JobKind;
use crate::domain::outcome::{Class, Operation};

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Counter,
    Gauge,
    /// Explicit bucket upper bounds, in the metric's unit.
    Histogram(&'static [f64]),
}

/// One exported metric.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

pub const BUILD_INFO: &str = "einvoice_build_info";
pub const COMMANDS: &str = "einvoice_commands_total";
pub const COMMAND_DURATION: &str = "einvoice_command_duration_seconds";
pub const IRP_CALL_DURATION: &str = "einvoice_irp_call_duration_seconds";
pub const IRP_ERRORS: &str = "einvoice_irp_errors_total";
pub const IRP_ERROR_RESPONSES: &str = "einvoice_irp_error_responses_total";
pub const JOBS_IN_FLIGHT: &str = "einvoice_jobs_in_flight";
pub const COMMANDS_SET_ASIDE: &str = "einvoice_commands_set_aside_total";
pub const OUTBOX_BACKLOG: &str = "einvoice_outbox_backlog";
pub const OUTBOX_OLDEST: &str = "einvoice_outbox_oldest_unpublished_seconds";
pub const GSTINS_PAUSED: &str = "einvoice_gstins_paused";
pub const JOBS_IN_DOUBT: &str = "einvoice_jobs_in_doubt";
pub const JOBS_FAILED: &str = "einvoice_jobs_failed";
pub const TOKEN_REFRESHES: &str = "einvoice_token_refreshes_total";
pub const AUTH_FAILURES: &str = "einvoice_auth_failures_total";
pub const RESCHEDULES: &str = "einvoice_retry_reschedules_total";
pub const EVENTS_PUBLISHED: &str = "einvoice_events_published_total";
pub const EVENTS_UNROUTED: &str = "einvoice_events_unrouted_total";
pub const DEAD_LETTERS: &str = "einvoice_dead_letter_messages";
pub const RETENTION_PRUNED: &str = "einvoice_retention_pruned_rows_total";
pub const IRP_ERROR_BUDGET_USED: &str = "einvoice_irp_error_budget_used";
pub const IRP_THROTTLED: &str = "einvoice_irp_throttled_total";
pub const IRP_CIRCUITS_OPEN: &str = "einvoice_irp_circuits_open";
pub const RATE_LIMIT_WAIT: &str = "einvoice_rate_limit_wait_seconds_total";
pub const HANDLER_PANICS: &str = "einvoice_handler_panics_total";
pub const COMMANDS_FORBIDDEN: &str = "einvoice_commands_forbidden_total";
pub const EVENTS_TRUNCATED: &str = "einvoice_events_truncated_total";

const COMMAND_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];
const IRP_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Every metric the worker exports.
pub const CATALOG: &[MetricDef] = &[
    MetricDef {
        name: BUILD_INFO,
        kind: Kind::Gauge,
        help: "Always 1; the version label says which build is running.",
        labels: &["version"],
    },
    MetricDef {
        name: COMMANDS,
        kind: Kind::Counter,
        help: "Commands handled, by routing key and outcome class (success, rejected, failed, in_doubt, paused, \
               dead_lettered, rescheduled, requeued).",
        labels: &["routing_key", "outcome"],
    },
    MetricDef {
        name: COMMAND_DURATION,
        kind: Kind::Histogram(COMMAND_BUCKETS),
        help: "Time from receiving a command to settling its delivery, in seconds.",
        labels: &["routing_key"],
    },
    MetricDef {
        name: IRP_CALL_DURATION,
        kind: Kind::Histogram(IRP_BUCKETS),
        help: "Duration of one IRP HTTP exchange (including authentication), in seconds.",
        labels: &["irp", "operation"],
    },
    MetricDef {
        name: IRP_ERRORS,
        kind: Kind::Counter,
        help: "IRP calls that did not succeed, by IRP, operation and how the worker classed the answer.",
        labels: &["irp", "operation", "class"],
    },
    MetricDef {
        name: IRP_ERROR_RESPONSES,
        kind: Kind::Counter,
        help: "Error responses the IRP sent for a GSTIN (NIC blocks a GSTIN after 20,000 in a few days).",
        labels: &["gstin"],
    },
    MetricDef { name: JOBS_IN_FLIGHT, kind: Kind::Gauge, help: "Commands this process is handling now.", labels: &[] },
    MetricDef {
        name: COMMANDS_SET_ASIDE,
        kind: Kind::Counter,
        help: "Deliveries set aside because their GSTIN was at its in-flight cap (gstin_max_in_flight).",
        labels: &[],
    },
    MetricDef {
        name: HANDLER_PANICS,
        kind: Kind::Counter,
        help: "Commands whose handler panicked (a bug): each was rejected and dead-lettered.",
        labels: &[],
    },
    MetricDef {
        name: COMMANDS_FORBIDDEN,
        kind: Kind::Counter,
        help: "Commands refused because their sender may not send them (reason: reply_to, publisher, command, \
               gstin, batch_id).",
        labels: &["reason"],
    },
    MetricDef {
        name: EVENTS_TRUNCATED,
        kind: Kind::Counter,
        help: "Events larger than the outbox's limit, stored without their dispensable fields.",
        labels: &[],
    },
    MetricDef {
        name: OUTBOX_BACKLOG,
        kind: Kind::Gauge,
        help: "Result events committed but not yet published to RabbitMQ.",
        labels: &[],
    },
    MetricDef {
        name: OUTBOX_OLDEST,
        kind: Kind::Gauge,
        help: "Age of the oldest unpublished result event, in seconds (0 when none).",
        labels: &[],
    },
    MetricDef {
        name: GSTINS_PAUSED,
        kind: Kind::Gauge,
        help: "GSTINs whose IRP work is paused now (after a configuration error, or their daily error budget).",
        labels: &[],
    },
    MetricDef {
        name: JOBS_IN_DOUBT,
        kind: Kind::Gauge,
        help: "Generate jobs whose IRP call may have reached the IRP and that are not settled yet.",
        labels: &[],
    },
    MetricDef {
        name: JOBS_FAILED,
        kind: Kind::Gauge,
        help: "Generate jobs that ended failed (irn.failed) in the last 24 hours.",
        labels: &[],
    },
    MetricDef {
        name: TOKEN_REFRESHES,
        kind: Kind::Counter,
        help: "IRP authentications (new tokens) made by this process, by GSTIN.",
        labels: &["gstin"],
    },
    MetricDef {
        name: AUTH_FAILURES,
        kind: Kind::Counter,
        help: "IRP authentications that failed, by GSTIN.",
        labels: &["gstin"],
    },
    MetricDef {
        name: RESCHEDULES,
        kind: Kind::Counter,
        help: "Commands sent through a durable retry tier, by tier (1 = the shortest delay).",
        labels: &["tier"],
    },
    MetricDef {
        name: EVENTS_PUBLISHED,
        kind: Kind::Counter,
        help: "Result events published to the events exchange, by event type.",
        labels: &["event_type"],
    },
    MetricDef {
        name: EVENTS_UNROUTED,
        kind: Kind::Counter,
        help: "Result events no queue was bound for (kept in the unrouted queue).",
        labels: &[],
    },
    MetricDef {
        name: DEAD_LETTERS,
        kind: Kind::Gauge,
        help: "Messages waiting in the dead-letter queue.",
        labels: &[],
    },
    MetricDef {
        name: RETENTION_PRUNED,
        kind: Kind::Counter,
        help: "Rows deleted by retention, by table.",
        labels: &["table"],
    },
    MetricDef {
        name: IRP_ERROR_BUDGET_USED,
        kind: Kind::Gauge,
        help: "Share of NIC's blocking threshold used today (India day) by a GSTIN's IRP error responses: the larger \
               of its count / error_budget_gstin_per_day and its client ID's count / error_budget_client_per_day. \
               The worker warns at error_budget_warn_share and pauses the GSTIN at error_budget_pause_share.",
        labels: &["gstin"],
    },
    MetricDef {
        name: IRP_CIRCUITS_OPEN,
        kind: Kind::Gauge,
        help: "GSTINs whose circuit to this IRP is open or half-open now (shared by every worker process, so \
               every replica reports the same).",
        labels: &["irp"],
    },
    MetricDef {
        name: IRP_THROTTLED,
        kind: Kind::Counter,
        help: "Throttling answers (HTTP 429, 658, GEN5005) by IRP: each one slowed the credential down for its \
               Retry-After.",
        labels: &["irp"],
    },
    MetricDef {
        name: RATE_LIMIT_WAIT,
        kind: Kind::Counter,
        help: "Seconds IRP calls waited for a rate limit slot or a throttle's Retry-After, by IRP.",
        labels: &["irp"],
    },
];

/// The metrics with a `gstin` label (see the module's note on cardinality).
pub const PER_GSTIN: &[&str] = &[TOKEN_REFRESHES, AUTH_FAILURES, IRP_ERROR_RESPONSES, IRP_ERROR_BUDGET_USED];

/// The counter `name` for a GSTIN: its own series when `per_gstin` names it, else the unlabelled
/// series every other GSTIN shares.
pub fn gstin_counter(per_gstin: &MetricsPerGstin, name: &'static str, gstin: &str) -> metrics::Counter {
    if per_gstin.labels(gstin) {
        metrics::counter!(name, "gstin" => gstin.to_ascii_uppercase())
    } else {
        metrics::counter!(name)
    }
}

/// Outcome classes of [`COMMANDS`].
pub const OUTCOMES: &[&str] =
    &["success", "rejected", "failed", "in_doubt", "paused", "dead_lettered", "rescheduled", "requeued"];

/// The process-wide recorder (installed once, shared by every worker in the process).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let mut builder = PrometheusBuilder::new();
        for def in CATALOG {
            if let Kind::Histogram(buckets) = def.kind {
                builder = builder
                    .set_buckets_for_metric(Matcher::Full(def.name.to_string()), buckets)
                    .expect("the catalogue's buckets are non-empty");
            }
        }
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (an embedding application): keep ours
        // renderable either way.
        let _ = metrics::set_global_recorder(recorder);
        for def in CATALOG {
            let help = def.help;
            match def.kind {
                Kind::Counter => metrics::describe_counter!(def.name, help),
                Kind::Gauge => metrics::describe_gauge!(def.name, help),
                Kind::Histogram(_) => metrics::describe_histogram!(def.name, metrics::Unit::Seconds, help),
            }
        }
        metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        for def in CATALOG.iter().filter(|d| d.labels.is_empty()) {
            match def.kind {
                Kind::Counter => metrics::counter!(def.name).absolute(0),
                Kind::Gauge => metrics::gauge!(def.name).set(0.0),
                Kind::Histogram(_) => drop(metrics::histogram!(def.name)),
            }
        }
        for kind in JobKind::ALL {
            let rk = kind.routing_key();
            for outcome in OUTCOMES {
                metrics::counter!(COMMANDS, "routing_key" => rk, "outcome" => *outcome).increment(0);
            }
            drop(metrics::histogram!(COMMAND_DURATION, "routing_key" => rk));
        }
        // The main event types; others appear with their first event (the set is closed: event
        // types are the worker's own names, never taken from a message).
        for ev in ["irn.generated", "irn.rejected", "irn.failed", "irn.in_doubt", "irn.cancelled", "gstin.paused"] {
            metrics::counter!(EVENTS_PUBLISHED, "event_type" => ev).increment(0);
        }
        metrics::counter!(RETENTION_PRUNED, "table" => "outbox").increment(0);
        metrics::counter!(RETENTION_PRUNED, "table" => "jobs").increment(0);
        handle
    })
}

/// Register the series whose label values come from the configuration (GSTINs, their IRPs,
/// retry tiers), so that every series exists before its first sample: the unlabelled series of
/// the per-GSTIN metrics always, a GSTIN's own only when `per_gstin` names it.
pub fn register_configured<'a>(
    gstins: impl IntoIterator<Item = (&'a str, &'a str)>,
    tiers: usize,
    per_gstin: &MetricsPerGstin,
) {
    handle();
    let mut irps = std::collections::BTreeSet::new();
    let mut own: std::collections::BTreeSet<String> = match per_gstin {
        MetricsPerGstin::Only(list) => list.clone(),
        _ => Default::default(),
    };
    for (gstin, irp) in gstins {
        if per_gstin.labels(gstin) {
            own.insert(gstin.to_ascii_uppercase());
        }
        irps.insert(irp.to_string());
    }
    for name in [TOKEN_REFRESHES, AUTH_FAILURES, IRP_ERROR_RESPONSES] {
        metrics::counter!(name).increment(0);
        for gstin in &own {
            metrics::counter!(name, "gstin" => gstin.clone()).increment(0);
        }
    }
    metrics::gauge!(IRP_ERROR_BUDGET_USED).increment(0.0);
    for gstin in own {
        metrics::gauge!(IRP_ERROR_BUDGET_USED, "gstin" => gstin).increment(0.0);
    }
    for irp in irps {
        metrics::counter!(IRP_THROTTLED, "irp" => irp.clone()).increment(0);
        metrics::gauge!(IRP_CIRCUITS_OPEN, "irp" => irp.clone()).set(0.0);
        metrics::counter!(RATE_LIMIT_WAIT, "irp" => irp.clone()).increment(0);
        for op in Operation::ALL {
            drop(metrics::histogram!(IRP_CALL_DURATION, "irp" => irp.clone(), "operation" => op.as_str()));
            for class in Class::ALL {
                metrics::counter!(IRP_ERRORS, "irp" => irp.clone(), "operation" => op.as_str(), "class" => class.as_str())
                    .increment(0);
            }
        }
    }
    for tier in 1..=tiers {
        metrics::counter!(RESCHEDULES, "tier" => tier.to_string()).increment(0);
    }
    metrics::counter!(HANDLER_PANICS).increment(0);
    metrics::counter!(EVENTS_TRUNCATED).increment(0);
    for reason in ["reply_to", "publisher", "command", "gstin", "batch_id"] {
        metrics::counter!(COMMANDS_FORBIDDEN, "reason" => reason).increment(0);
    }
}

/// The outcome class a result event stands for, for [`COMMANDS`].
pub fn outcome_of_event(event_type: &str) -> &'static str {
    match event_type.rsplit('.').next().unwrap_or("") {
        "rejected" => "rejected",
        "failed" => "failed",
        "in_doubt" => "in_doubt",
        "paused" => "paused",
        _ => "success",
    }
}

/// How bad an outcome is, so a command that wrote several events is counted once, by its worst.
pub fn outcome_rank(outcome: &str) -> u8 {
    match outcome {
        "success" => 0,
        "in_doubt" => 1,
        "paused" => 2,
        "rejected" => 3,
        "failed" => 4,
        _ => 5,
    }
}

tokio::task_local! {
    /// The worst outcome among the events one command has written so far.
    static OUTCOME: std::cell::Cell<&'static str>;
}

/// Run one command's handling, returning what its events say of its outcome (`None`: it wrote
/// no event, e.g. it was rescheduled).
pub async fn track_outcome<F: std::future::Future>(f: F) -> (F::Output, Option<&'static str>) {
    OUTCOME
        .scope(std::cell::Cell::new(""), async move {
            let out = f.await;
            let seen = OUTCOME.with(|c| c.get());
            (out, (!seen.is_empty()).then_some(seen))
        })
        .await
}

/// Note that the current command wrote an event of this type (called where events are stored;
/// a no-op outside [`track_outcome`]).
pub fn note_event(event_type: &str) {
    let outcome = outcome_of_event(event_type);
    let _ = OUTCOME.try_with(|c| {
        if c.get().is_empty() || outcome_rank(outcome) > outcome_rank(c.get()) {
            c.set(outcome);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogued_metric_is_rendered_from_start_up() {
        register_configured([("29AAGCP4821K1Z3", "whitebooks")], 3, &MetricsPerGstin::All);
        let text = handle().render();
        for def in CATALOG {
            assert!(text.contains(&format!("# HELP {} ", def.name)), "{} is missing:\n{text}", def.name);
            assert!(text.contains(&format!("# TYPE {} ", def.name)), "{} has no TYPE line", def.name);
        }
        assert!(text.contains("# TYPE einvoice_command_duration_seconds histogram"), "{text}");
        assert!(text.contains("einvoice_command_duration_seconds_bucket{routing_key=\"irn.generate\",le=\"0.5\"}"));
        assert!(!text.contains("Some("), "a Debug string leaked into a label:\n{text}");
    }

    /// Issue 27: by default no GSTIN has series of its own, however many there are; the
    /// unlabelled series is there and counts them all. Opted in, the named GSTINs have theirs.
    #[test]
    fn per_gstin_series_only_when_asked_for() {
        let gstins: Vec<String> = (0..50).map(|i| format!("33ZZPGS{i:04}F1Z5")).collect();
        let pairs = || gstins.iter().map(|g| (g.as_str(), "nic1"));
        register_configured(pairs(), 1, &MetricsPerGstin::Off);
        for g in &gstins {
            gstin_counter(&MetricsPerGstin::Off, AUTH_FAILURES, g).increment(1);
        }
        let text = handle().render();
        assert!(!gstins.iter().any(|g| text.contains(g.as_str())), "a per-GSTIN series by default:\n{text}");
        for name in PER_GSTIN {
            assert!(text.lines().any(|l| l.starts_with(&format!("{name} "))), "no unlabelled {name}:\n{text}");
        }
        let total = |text: &str| -> f64 {
            let line = text.lines().find(|l| l.starts_with(&format!("{AUTH_FAILURES} "))).unwrap();
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        assert!(total(&text) >= 50.0, "{text}");
        let only = MetricsPerGstin::Only(gstins[..3].iter().cloned().collect());
        register_configured(pairs(), 1, &only);
        gstin_counter(&only, AUTH_FAILURES, &gstins[0]).increment(1);
        let text = handle().render();
        for name in PER_GSTIN {
            assert!(text.contains(&format!("{name}{{gstin=\"{}\"}}", gstins[2])), "{name} of a listed GSTIN:\n{text}");
        }
        assert!(text.contains(&format!("{AUTH_FAILURES}{{gstin=\"{}\"}} 1", gstins[0])), "{text}");
        assert!(!text.contains(gstins[3].as_str()), "an unlisted GSTIN has a series:\n{text}");
        register_configured(pairs(), 1, &MetricsPerGstin::All);
        let text = handle().render();
        assert!(gstins.iter().all(|g| text.contains(&format!("{TOKEN_REFRESHES}{{gstin=\"{g}\"}}"))), "{text}");
    }

    #[test]
    fn event_types_map_to_outcome_classes() {
        assert_eq!(outcome_of_event("irn.generated"), "success");
        assert_eq!(outcome_of_event("irn.rejected"), "rejected");
        assert_eq!(outcome_of_event("ewaybill.failed"), "failed");
        assert_eq!(outcome_of_event("irn.in_doubt"), "in_doubt");
        assert_eq!(outcome_of_event("gstin.paused"), "paused");
        assert!(outcome_rank("failed") > outcome_rank("success"));
    }
}
