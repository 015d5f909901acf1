//! The e-way bill's transport rules (Part B and the transporter), in one table for both places
//! that take them: the invoice's `EwbDtls` (checked through the field table) and the
//! `ewaybill.generate` / `ewaybill.update_vehicle` commands. Each rule has one problem code, so
//! the same vehicle number, transport document number or mode gets the same code in both.
//!
//! Text rules are checked as the field table checks every text: the length first
//! ([`code::TEXT_LENGTH`]), then the format (the rule's own code).
//!
//! The vehicle number formats are NIC's list of valid formats (e-invoice portal, general master
//! "Valid Formats of Vehicle Numbers"; the e-way bill portal lists the same):
//! `AB121234`, `AB12A1234`, `AB12AB1234`, `AB12ABC1234`, `ABC1234`, `AB123A1234` (the first two
//! letters a state code), `DF…` (defence), `TR…`/`TM…` (temporary registration, at least 7
//! characters), `BP…` (Bhutan) and `NP…` (Nepal), at least 7 characters, and the Bharat series
//! (`22BH1234AA`). A one-digit RTO number is written with a leading zero (`DL1C1234` is entered
//! as `DL01C1234`), as NIC's advisory on vehicle numbers asks.
use std::collections::HashMap;

use once_cell::sync::Lazy;
use regex::Regex;
use serde_json::Value;

use crate::domain::problem::code;

/// NIC's documented range for `Distance` (km); 0 asks NIC for the PIN-to-PIN distance.
pub const MAX_DISTANCE_KM: u64 = 4000;
/// [`MAX_DISTANCE_KM`] as the field table's inclusive range (decimal text).
pub const DISTANCE_RANGE: (&str, &str) = ("0", "4000");

/// A text field's rule: length in characters, then a pattern whose failure is `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextRule {
    pub len: (usize, usize),
    pub pattern: &'static str,
    /// The problem code when the pattern does not match.
    pub code: &'static str,
    /// What a valid value looks like, completing "… must be …" / "… but it must be …".
    pub expected: &'static str,
}

/// `TransDocNo` / `trans_doc_no`: the transport document (LR, RR, airway bill, bill of lading).
pub const TRANS_DOC_NO: TextRule = TextRule {
    len: (1, 15),
    pattern: "^[a-zA-Z0-9/-]{1,15}$",
    code: code::TRANS_DOC_NO_FORMAT,
    expected: "1 to 15 letters, digits, '/' or '-'",
};

/// `VehNo` / `vehicle_no`: a vehicle registration number in one of NIC's formats (module docs).
pub const VEHICLE_NO: TextRule = TextRule {
    len: (4, 20),
    pattern: concat!(
        "^(",
        "[A-Z]{2}[0-9]{2}[A-Z]{0,3}[0-9]{4}",
        "|[A-Z]{3}[0-9]{4}",
        "|[A-Z]{2}[0-9]{3}[A-Z][0-9]{4}",
        "|DF[A-Z0-9]{6,18}",
        "|T[RM][A-Z0-9]{5,18}",
        "|[BN]P[A-Z0-9]{5,18}",
        "|[0-9]{2}BH[0-9]{4}[A-Z]{1,2}",
        ")$"
    ),
    code: code::VEHICLE_NO_INVALID,
    expected: "a vehicle registration number in one of NIC's formats, without spaces or dashes, \
               such as KA01AB1234, KA01A1234, ABC1234, a temporary TR… number, a BP…/NP… or DF… number, or 22BH1234AA",
};

/// `VehType` / `vehicle_type`: R regular, O over-dimensional cargo.
pub const VEHICLE_TYPE: TextRule = TextRule {
    len: (1, 1),
    pattern: "^[OR]$",
    code: code::VEHICLE_TYPE,
    expected: "R (regular) or O (over-dimensional cargo)",
};

/// `TransName`: the transporter's name (length only; free text otherwise).
pub const TRANS_NAME_LEN: (usize, usize) = (3, 100);

/// `TransId`: the transporter's GSTIN or TRANSIN (same layout and check digit as a GSTIN).
pub const TRANS_ID_PATTERN: &str = "^[0-9]{2}[0-9A-Z]{13}$";

/// The text rules, for lookups by problem code.
pub const TEXT_RULES: &[TextRule] = &[TRANS_DOC_NO, VEHICLE_NO, VEHICLE_TYPE];

static COMPILED: Lazy<HashMap<&'static str, Regex>> = Lazy::new(|| {
    TEXT_RULES
        .iter()
        .map(|r| r.pattern)
        .chain([TRANS_ID_PATTERN])
        .map(|p| (p, Regex::new(p).expect("transport pattern")))
        .collect()
});

/// What is wrong with a text value under a [`TextRule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Too short or too long: [`code::TEXT_LENGTH`], with the character count.
    Length(usize),
    /// Of the right length but not the rule's format: the rule's code.
    Format,
}

impl TextRule {
    /// Length, then pattern, as the field table checks every text field.
    pub fn check(&self, value: &str) -> Result<(), Fault> {
        let n = value.chars().count();
        if n < self.len.0 || n > self.len.1 {
            return Err(Fault::Length(n));
        }
        if !COMPILED[self.pattern].is_match(value) {
            return Err(Fault::Format);
        }
        Ok(())
    }

    /// The problem code for `fault`.
    pub fn code_for(&self, fault: Fault) -> &'static str {
        match fault {
            Fault::Length(_) => code::TEXT_LENGTH,
            Fault::Format => self.code,
        }
    }
}

/// The text rule whose format failure is `code`, if any.
pub fn by_code(code: &str) -> Option<&'static TextRule> {
    TEXT_RULES.iter().find(|r| r.code == code)
}

/// Is `id` (upper-cased) shaped like a transporter GSTIN or TRANSIN? The check digit is the
/// GSTIN reader's.
pub fn is_trans_id_shape(id: &str) -> bool {
    COMPILED[TRANS_ID_PATTERN].is_match(id)
}

/// Upper-case a vehicle number and drop the spaces and dashes people write in it.
pub fn normalise_vehicle(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace() && *c != '-').collect::<String>().to_ascii_uppercase()
}

/// A distance in whole km within `0..=MAX_DISTANCE_KM`, from a JSON number (read from its text,
/// so `120.0` is 120) or a string of digits.
pub fn distance_km(v: &Value) -> Option<u64> {
    use rust_decimal::prelude::ToPrimitive;
    let km = match v {
        Value::Number(_) => crate::domain::invoice::money::from_json(v)
            .filter(|d| d.fract().is_zero() && !d.is_sign_negative())
            .and_then(|d| d.to_u64()),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    km.filter(|d| *d <= MAX_DISTANCE_KM)
}

/// How the goods move: the e-way bill system's `TransMode` (problem code
/// [`code::TRANS_MODE_INVALID`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransMode {
    Road = 1,
    Rail = 2,
    Air = 3,
    Ship = 4,
}

impl TransMode {
    pub fn parse(s: &str) -> Option<TransMode> {
        match s.trim() {
            "1" => Some(TransMode::Road),
            "2" => Some(TransMode::Rail),
            "3" => Some(TransMode::Air),
            "4" => Some(TransMode::Ship),
            _ => None,
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            TransMode::Road => "1",
            TransMode::Rail => "2",
            TransMode::Air => "3",
            TransMode::Ship => "4",
        }
    }
}

/// "… expected 1 (road), 2 (rail), 3 (air) or 4 (ship)".
pub const TRANS_MODES: &str = "1 (road), 2 (rail), 3 (air) or 4 (ship)";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vehicle_numbers_follow_nic_formats() {
        for ok in [
            "KA01AB1234",  // AB12AB1234
            "KA12A1234",   // AB12A1234
            "MH121234",    // AB121234
            "KA01ABC1234", // AB12ABC1234
            "ABC1234",     // ABC1234
            "KA123A1234",  // AB123A1234
            "DF123456",    // defence
            "TR0123456789",
            "TM12345",
            "BP1234567", // Bhutan
            "NP1234567", // Nepal
            "22BH1234AA",
            "22BH1234A",
        ] {
            assert_eq!(VEHICLE_NO.check(ok), Ok(()), "{ok}");
        }
        for bad in [
            "TN10AB12",     // three digits where four are needed
            "DL1CAB1234",   // one-digit RTO: NIC wants DL01CAB1234
            "DL1C1234",     // likewise DL01C1234
            "TR/12/A/1234", // separators are not part of the number
            "TR1234",       // temporary numbers have at least 7 characters
            "BP12345X!",
            "1234KA01",
            "KA01AB12345",
            "ka01ab1234", // upper-cased before the check
        ] {
            assert_eq!(VEHICLE_NO.check(bad), Err(Fault::Format), "{bad}");
        }
        assert_eq!(VEHICLE_NO.check("X1"), Err(Fault::Length(2)));
        assert_eq!(VEHICLE_NO.code_for(Fault::Format), "VEHICLE_NO_INVALID");
        assert_eq!(VEHICLE_NO.code_for(Fault::Length(2)), "TEXT_LENGTH");
        assert_eq!(normalise_vehicle("ka 01-ab 1234"), "KA01AB1234");
    }

    #[test]
    fn document_type_distance_and_mode() {
        assert_eq!(TRANS_DOC_NO.check("LR-88213/A"), Ok(()));
        assert_eq!(TRANS_DOC_NO.check("LR#88213"), Err(Fault::Format));
        assert_eq!(TRANS_DOC_NO.check("LR-8821300000001"), Err(Fault::Length(16)));
        assert_eq!(TRANS_DOC_NO.code, "TRANS_DOC_NO_FORMAT");
        assert_eq!(VEHICLE_TYPE.check("O"), Ok(()));
        assert_eq!(VEHICLE_TYPE.check("X"), Err(Fault::Format));
        assert_eq!(by_code("VEHICLE_TYPE"), Some(&VEHICLE_TYPE));
        assert_eq!(DISTANCE_RANGE.1.parse::<u64>().unwrap(), MAX_DISTANCE_KM);
        assert_eq!(distance_km(&json!(120)), Some(120));
        assert_eq!(distance_km(&json!(120.0)), Some(120));
        assert_eq!(distance_km(&json!("0")), Some(0));
        for bad in [json!(4001), json!(12.5), json!(-1), json!("12.0"), json!(true)] {
            assert_eq!(distance_km(&bad), None, "{bad}");
        }
        assert_eq!(TransMode::parse(" 3 "), Some(TransMode::Air));
        assert_eq!(TransMode::parse("5"), None);
        assert!(is_trans_id_shape("29AAGCP4821K1Z3"));
        assert!(!is_trans_id_shape("29AAGCP4821K1Z"));
    }
}
