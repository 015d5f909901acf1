//! Who may ask for what: a command's `reply_to` must name a queue its sender may use, and a
//! publisher (its AMQP user) may send only the commands and GSTINs configured for it.
//!
//! RabbitMQ checks a message's `user_id` property against the user of the connection that
//! published it, so `user_id` names the publisher truthfully; a message without one is refused
//! once `publishers` is configured. See docs/security.md for the broker permissions that go with
//! it (publishers may write only to `einvoice.commands`, the worker reads `einvoice.jobs`).
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;
use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::domain::command::JobKind;
use crate::domain::Gstin;
use crate::store::secrets::SecretBox;

/// The publisher a command the worker published itself (a batch's members, a reconciliation's
/// re-sent document) acts as: always allowed.
pub const WORKER: &str = "einvoice-worker";
/// Headers naming the publisher of a command the worker re-published (a retry tier) or published
/// itself, and the worker's tag over them and the message, so no sender can claim another's name.
pub const PUBLISHER_HEADER: &str = "x-einvoice-publisher";
pub const SEAL_HEADER: &str = "x-einvoice-seal";

fn seal_input(publisher: &str, routing_key: &str, body: &[u8]) -> Vec<u8> {
    let digest = Sha256::digest(body);
    [publisher.as_bytes(), b"\n", routing_key.as_bytes(), b"\n", digest.as_slice()].concat()
}

/// The headers that say `publisher` sent this command (`routing_key`, `body`), tagged.
pub fn sealed(seals: &SecretBox, publisher: &str, routing_key: &str, body: &[u8]) -> FieldTable {
    let mut h = FieldTable::default();
    h.insert(ShortString::from(PUBLISHER_HEADER), AMQPValue::LongString(LongString::from(publisher)));
    let tag = seals.tag(&seal_input(publisher, routing_key, body));
    h.insert(ShortString::from(SEAL_HEADER), AMQPValue::LongString(LongString::from(tag.as_str())));
    h
}

fn header(props: &BasicProperties, name: &str) -> Option<String> {
    match props.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// Who sent a delivery: the worker's sealed publisher header when its tag verifies (a command the
/// worker published or re-published), else the `user_id` the broker checked.
pub fn sender(seals: &SecretBox, props: &BasicProperties, routing_key: &str, body: &[u8]) -> Option<String> {
    if let (Some(p), Some(tag)) = (header(props, PUBLISHER_HEADER), header(props, SEAL_HEADER)) {
        if seals.verify_tag(&seal_input(&p, routing_key, body), &tag) {
            return Some(p);
        }
    }
    props.user_id().as_ref().map(|u| u.to_string())
}

/// RabbitMQ's direct reply-to pseudo-queue (and the names it gives each caller).
const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// The prefix of queues the broker names itself (exclusive to the connection that declared one).
const SERVER_NAMED: &str = "amq.gen-";

/// Why a command is refused before it is handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `REPLY_TO_FORBIDDEN` or `FORBIDDEN`.
    pub code: &'static str,
    pub message: String,
    /// The metric label (`reply_to`, `publisher`, `gstin`, `command`).
    pub reason: &'static str,
}

/// May a command's answer go to `queue`? Direct reply-to and server-named queues always; a
/// queue under a configured prefix; never one of the worker's own queues (its jobs, retry,
/// dead-letter or unrouted queues, whatever the prefixes say).
pub fn reply_to(settings: &Settings, queue: &str) -> Result<(), Refusal> {
    // Every queue the worker declares (jobs, retry tiers, dead, unrouted) is `<namespace>einvoice.…`
    // (`Topology::new`), so the prefix names them all, without building any name per message.
    let own = queue.strip_prefix(settings.namespace.as_str()).is_some_and(|rest| rest.starts_with("einvoice."));
    let allowed = !own
        && (queue.strip_prefix(DIRECT_REPLY_TO).is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
            || queue.starts_with(SERVER_NAMED)
            || settings.reply_to_prefixes.iter().any(|p| !p.is_empty() && queue.starts_with(p.as_str())));
    if allowed {
        return Ok(());
    }
    let shown = crate::domain::text::quote(queue);
    Err(Refusal {
        code: "REPLY_TO_FORBIDDEN",
        reason: "reply_to",
        message: if own {
            format!("reply_to '{shown}' is one of the worker's own queues; answers never go there")
        } else {
            format!(
                "reply_to '{shown}' is not a queue this worker answers to: use a server-named queue (declare it \
                 with an empty name), direct reply-to ({DIRECT_REPLY_TO}), or a name under a configured prefix \
                 (reply_to_prefixes, EINVOICE_REPLY_TO_PREFIXES); the answer went to the events exchange only"
            )
        },
    })
}

/// May `user` (the message's `user_id`) send a `kind` command for `gstin`? Always, when no
/// publisher is configured.
pub fn publisher(settings: &Settings, user: Option<&str>, kind: JobKind, gstin: Option<&Gstin>) -> Result<(), Refusal> {
    if settings.publishers.is_empty() || user == Some(WORKER) {
        return Ok(());
    }
    let forbidden = |reason, message| Err(Refusal { code: "FORBIDDEN", reason, message });
    let Some(user) = user else {
        return forbidden(
            "publisher",
            "the command carries no user_id: set the AMQP user_id property to the connection's user (publishers are \
             configured by user)"
                .into(),
        );
    };
    let shown = crate::domain::text::quote(user);
    let Some(p) = settings.publishers.get(user) else {
        return forbidden("publisher", format!("publisher '{shown}' is not configured under publishers"));
    };
    let all = |l: &[String]| l.iter().any(|x| x == "*");
    if !all(&p.commands) && !p.commands.iter().any(|c| c == kind.routing_key()) {
        return forbidden(
            "command",
            format!("publisher '{shown}' may not send {} (publishers.\"{shown}\".commands)", kind.routing_key()),
        );
    }
    let gstin_ok = match gstin {
        _ if all(&p.gstins) => true,
        Some(g) => p.gstins.iter().any(|x| x.eq_ignore_ascii_case(g.as_str())),
        // A command that names no GSTIN acts for all of them.
        None => false,
    };
    if !gstin_ok {
        let what = gstin.map_or_else(|| "every GSTIN (the command names none)".to_string(), |g| format!("GSTIN {g}"));
        return forbidden(
            "gstin",
            format!("publisher '{shown}' may not act for {what} (publishers.\"{shown}\".gstins)"),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::Topology;
    use crate::config::PublisherConfig;

    fn settings(toml: &str) -> Settings {
        Settings::from_toml(&format!("namespace = \"ns.\"\n{toml}")).expect("settings")
    }

    #[test]
    fn answers_go_only_to_queues_the_sender_may_use() {
        let s = settings("reply_to_prefixes = [\"erp-replies.\"]");
        let t = Topology::new(&s);
        for ok in
            ["amq.rabbitmq.reply-to", "amq.rabbitmq.reply-to.g1h2AA==", "amq.gen-JzTY20BRgKO", "erp-replies.north"]
        {
            assert_eq!(reply_to(&s, ok), Ok(()), "{ok}");
        }
        for bad in ["victim.q", "ns.einvoice.unrouted", "ns.einvoice.jobs", "ns.einvoice.dead", "erp-replies"] {
            let r = reply_to(&s, bad).unwrap_err();
            assert_eq!(r.code, "REPLY_TO_FORBIDDEN", "{bad}");
        }
        for q in t.retry_queues() {
            assert!(reply_to(&s, &q).is_err(), "{q}");
        }
    }

    #[test]
    fn publishers_act_only_for_their_gstins_and_commands() {
        let g = |s: &str| Gstin::parse(s, false).unwrap();
        let (ka, mh) = (g("29AAGCP4821K1Z3"), g("27AAKFU7303M1ZP"));
        let open = settings("");
        assert!(publisher(&open, None, JobKind::IrnCancel, Some(&ka)).is_ok(), "no publishers: open");
        let mut s = settings("");
        s.publishers.insert(
            "erp-north".into(),
            PublisherConfig {
                gstins: vec![ka.to_string()],
                commands: vec!["irn.generate".into(), "job.status".into()],
            },
        );
        s.publishers.insert("ops".into(), PublisherConfig { gstins: vec!["*".into()], commands: vec!["*".into()] });
        assert!(publisher(&s, Some("erp-north"), JobKind::IrnGenerate, Some(&ka)).is_ok());
        let r = publisher(&s, Some("erp-north"), JobKind::IrnGenerate, Some(&mh)).unwrap_err();
        assert_eq!((r.code, r.reason), ("FORBIDDEN", "gstin"));
        assert_eq!(publisher(&s, Some("erp-north"), JobKind::IrnCancel, Some(&ka)).unwrap_err().reason, "command");
        assert_eq!(publisher(&s, Some("erp-north"), JobKind::JobStatus, None).unwrap_err().reason, "gstin");
        assert_eq!(publisher(&s, Some("stranger"), JobKind::IrnGenerate, Some(&ka)).unwrap_err().reason, "publisher");
        assert_eq!(publisher(&s, None, JobKind::IrnGenerate, Some(&ka)).unwrap_err().reason, "publisher");
        assert!(publisher(&s, Some("ops"), JobKind::ReconcileRejected, None).is_ok());
    }

    #[test]
    fn only_the_worker_can_seal_a_publisher() {
        let key = |b: u8| {
            secrecy::SecretString::from(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [b; 32]))
        };
        let seals = SecretBox::from_config(Some(&key(1))).unwrap();
        let body = br#"{"gstin":"29AAGCP4821K1Z3"}"#;
        let props = BasicProperties::default().with_headers(sealed(&seals, "erp-north", "irn.cancel", body));
        assert_eq!(sender(&seals, &props, "irn.cancel", body).as_deref(), Some("erp-north"));
        assert_eq!(sender(&seals, &props, "irn.generate", body), None, "sealed for another routing key");
        assert_eq!(sender(&seals, &props, "irn.cancel", b"{}"), None, "sealed for another body");
        let other = SecretBox::from_config(Some(&key(2))).unwrap();
        assert_eq!(sender(&other, &props, "irn.cancel", body), None, "another key's seal");
        let forged = BasicProperties::default()
            .with_headers(sealed(&other, WORKER, "irn.cancel", body))
            .with_user_id("erp-south".into());
        assert_eq!(sender(&seals, &forged, "irn.cancel", body).as_deref(), Some("erp-south"));
    }

    #[test]
    fn a_publisher_naming_an_unknown_command_fails_the_start() {
        let e =
            Settings::from_toml("[publishers.\"erp\"]\ncommands = [\"irn.generat\"]\ngstins = [\"*\"]\n").unwrap_err();
        assert!(e.to_string().contains("irn.generat"), "{e}");
        let s = Settings::from_toml("[publishers.\"erp\"]\ncommands = \"irn.generate, irn.cancel\"\ngstins = \"*\"\n")
            .unwrap();
        assert_eq!(s.publishers["erp"].commands, ["irn.generate", "irn.cancel"]);
    }
}
