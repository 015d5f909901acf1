//! `ewaybill.update_transporter`: hand an e-way bill to another transporter (`UPDATETRANSPORTER`).
//!
//! The transporter is named by a GSTIN or by a TRANSIN, the 15-character enrolment id of a
//! transporter without a GST registration: it begins with `88` and carries no GSTIN check
//! character (field reference 2026-12 §2), so it is its own type, never read as a GSTIN.
use std::fmt;

use once_cell::sync::Lazy;
use regex::Regex;

use super::ewaybill::{parse_ewb_target, EwbTarget};
use super::{CommandBody, ParseOptions, Reader};
use crate::domain::problem::code;
use crate::domain::{Gstin, Problem};

static TRANSIN: Lazy<Regex> = Lazy::new(|| Regex::new(r"^88[0-9A-Z]{13}$").expect("static regex"));

/// Who transports the goods: a registered transporter's GSTIN or an enrolled one's TRANSIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransporterId {
    Gstin(Gstin),
    /// `88…`, 15 characters, upper-case; no check character.
    Transin(String),
}

impl TransporterId {
    /// Upper-cases `s`; a `88…` id is a TRANSIN, anything else must be a GSTIN (its check
    /// digit checked unless `relaxed`).
    pub fn parse(s: &str, relaxed: bool) -> Result<TransporterId, String> {
        let id = s.trim().to_ascii_uppercase();
        if id.starts_with("88") {
            return if TRANSIN.is_match(&id) {
                Ok(TransporterId::Transin(id))
            } else {
                Err(format!("'{id}' is not a TRANSIN: 88 followed by 13 letters or digits (15 characters)"))
            };
        }
        Gstin::parse(&id, relaxed)
            .map(TransporterId::Gstin)
            .map_err(|e| format!("'{id}' is neither a GSTIN ({e}) nor a TRANSIN (88 followed by 13 letters or digits)"))
    }

    pub fn as_str(&self) -> &str {
        match self {
            TransporterId::Gstin(g) => g.as_str(),
            TransporterId::Transin(t) => t,
        }
    }

    /// `gstin` or `transin`, as events report it.
    pub fn kind(&self) -> &'static str {
        match self {
            TransporterId::Gstin(_) => "gstin",
            TransporterId::Transin(_) => "transin",
        }
    }
}

impl fmt::Display for TransporterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transporter id at `field`, reported with [`code::TRANS_ID_INVALID`].
pub(super) fn transporter_id(r: &mut Reader<'_>, field: &str, required: bool) -> Option<TransporterId> {
    let s = if required { r.req_str(field)? } else { r.opt_str(field).filter(|s| !s.is_empty())? };
    match TransporterId::parse(&s, r.relaxed) {
        Ok(t) => Some(t),
        Err(message) => {
            r.problems.push(Problem::new(field, code::TRANS_ID_INVALID, message));
            None
        }
    }
}

#[derive(Debug, Clone)]
pub struct EwaybillUpdateTransporter {
    pub gstin: Gstin,
    pub target: EwbTarget,
    pub transporter_id: TransporterId,
}

impl CommandBody for EwaybillUpdateTransporter {
    fn parse(r: &mut Reader<'_>, _opts: &ParseOptions) -> Option<Self> {
        let gstin = r.gstin("gstin", true);
        let target = parse_ewb_target(r);
        let transporter_id = transporter_id(r, "transporter_id", true);
        Some(EwaybillUpdateTransporter { gstin: gstin?, target: target?, transporter_id: transporter_id? })
    }

    fn gstin(&self) -> Option<&Gstin> {
        Some(&self.gstin)
    }
}

#[cfg(test)]
mod tests {
    use super::TransporterId;

    #[test]
    fn a_transin_is_not_a_gstin() {
        let t = TransporterId::parse("88aabct1234a1zq", false).unwrap();
        assert_eq!((t.kind(), t.as_str()), ("transin", "88AABCT1234A1ZQ"));
        let g = TransporterId::parse("29AAGCP4821K1Z3", false).unwrap();
        assert_eq!(g.kind(), "gstin");
        assert!(TransporterId::parse("29AAGCP4821K1Z4", false).unwrap_err().contains("neither a GSTIN"));
        assert!(TransporterId::parse("88AABCT1234A1Z", false).unwrap_err().contains("not a TRANSIN"));
        assert!(TransporterId::parse("88AABCT1234A1Z-", false).is_err());
    }
}
