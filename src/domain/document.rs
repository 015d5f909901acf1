//! Document identity: type, number, date, financial year, and the
//! [`DocumentKey`] that makes an invoice unique at the IRP.
//!
//! The IRP refuses a second IRN for the same seller GSTIN + document type +
//! document number within one financial year (April–March). That tuple is
//! therefore our idempotency key, and the IRN itself is a hash of it.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use once_cell::sync::Lazy;
use regex::Regex;
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::domain::gstin::Gstin;
use crate::domain::problem::code;

/// Why a document type, number or date was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DocumentError {
    /// Typ not INV/CRN/DBN.
    #[error("document type '{0}' is not valid; expected INV (invoice), CRN (credit note) or DBN (debit note)")]
    DocType(String),
    /// Empty document number.
    #[error("document number is empty")]
    NumberEmpty,
    /// Longer than 16 characters.
    #[error("document number '{value}' has {len} characters; the IRP allows at most 16")]
    NumberLength {
        /// Trimmed input.
        value: String,
        /// Its length in characters.
        len: usize,
    },
    /// Starts with 0, '/', '-' or another non-alphanumeric.
    #[error("document number '{0}' must start with a letter or a digit 1-9, not 0, '/' or '-'")]
    NumberStart(String),
    /// Holds characters other than letters, digits, '/', '-'.
    #[error("document number '{0}' may contain only letters, digits, '/' and '-'")]
    NumberChars(String),
    /// Not dd/MM/yyyy.
    #[error("date '{0}' is not in dd/MM/yyyy format (for example 01/04/2025)")]
    DateFormat(String),
    /// dd/MM/yyyy-shaped but not a calendar date.
    #[error("date '{0}' does not exist in the calendar")]
    DateInvalid(String),
}

impl DocumentError {
    /// The stable problem code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            DocumentError::DocType(_) => code::INVALID_DOC_TYPE,
            DocumentError::NumberEmpty => code::REQUIRED,
            DocumentError::NumberLength { .. } => code::DOC_NUMBER_LENGTH,
            DocumentError::NumberStart(_) => code::DOC_NUMBER_START,
            DocumentError::NumberChars(_) => code::DOC_NUMBER_CHARS,
            DocumentError::DateFormat(_) => code::DATE_FORMAT,
            DocumentError::DateInvalid(_) => code::DATE_INVALID,
        }
    }
}

/// `DocDtls.Typ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocType {
    /// Tax invoice.
    Inv,
    /// Credit note.
    Crn,
    /// Debit note.
    Dbn,
}

impl DocType {
    /// Parses `INV`/`CRN`/`DBN`, ignoring surrounding spaces and case.
    pub fn parse(s: &str) -> Result<DocType, DocumentError> {
        match s.trim().to_ascii_uppercase().as_str() {
            "INV" => Ok(DocType::Inv),
            "CRN" => Ok(DocType::Crn),
            "DBN" => Ok(DocType::Dbn),
            _ => Err(DocumentError::DocType(s.trim().to_string())),
        }
    }

    /// The schema string.
    pub fn as_str(self) -> &'static str {
        match self {
            DocType::Inv => "INV",
            DocType::Crn => "CRN",
            DocType::Dbn => "DBN",
        }
    }

    /// Credit and debit notes adjust an earlier invoice, so the IRP does not
    /// check their tax amounts against the rate.
    pub fn is_note(self) -> bool {
        matches!(self, DocType::Crn | DocType::Dbn)
    }
}

impl fmt::Display for DocType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for DocType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

static DOC_NUMBER: Lazy<Regex> = Lazy::new(|| Regex::new(r"^[A-Za-z1-9][A-Za-z0-9/-]{0,15}$").expect("static regex"));

/// `DocDtls.No`: at most 16 characters of letters, digits, `/` and `-`, not
/// starting with `0`, `/` or `-`.
///
/// Kept exactly as given (only trimmed): the number is printed on the
/// invoice and matched back in the ERP, so we must not rewrite it. The IRP
/// compares numbers case-insensitively for uniqueness, which only matters for
/// [`DocumentKey::irn`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DocNumber(String);

impl DocNumber {
    /// Trims and validates a document number.
    pub fn parse(s: &str) -> Result<DocNumber, DocumentError> {
        let v = s.trim();
        if v.is_empty() {
            return Err(DocumentError::NumberEmpty);
        }
        let len = v.chars().count();
        if len > 16 {
            return Err(DocumentError::NumberLength { value: v.to_string(), len });
        }
        if DOC_NUMBER.is_match(v) {
            return Ok(DocNumber(v.to_string()));
        }
        // Say which rule broke: the first character, or a later one.
        let first_ok = v.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '1'..='9'));
        if first_ok {
            Err(DocumentError::NumberChars(v.to_string()))
        } else {
            Err(DocumentError::NumberStart(v.to_string()))
        }
    }

    /// The number as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DocNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for DocNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

static DATE_SHAPE: Lazy<Regex> = Lazy::new(|| Regex::new(r"^[0-9]{2}/[0-9]{2}/[0-9]{4}$").expect("static regex"));

/// A document date, written `dd/MM/yyyy` in IRP JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocDate(NaiveDate);

impl DocDate {
    /// Parses `dd/MM/yyyy` strictly: two-digit day and month, four-digit
    /// year, and a date that exists (no 31/02). Surrounding spaces are ignored.
    pub fn parse(s: &str) -> Result<DocDate, DocumentError> {
        let v = s.trim();
        if !DATE_SHAPE.is_match(v) {
            return Err(DocumentError::DateFormat(v.to_string()));
        }
        // Shape is ASCII digits and slashes, so these slices and parses are safe.
        let num = |r: std::ops::Range<usize>| v[r].parse::<u32>().unwrap_or(0);
        let (d, m, y) = (num(0..2), num(3..5), num(6..10));
        NaiveDate::from_ymd_opt(y as i32, m, d).map(DocDate).ok_or_else(|| DocumentError::DateInvalid(v.to_string()))
    }

    /// Wraps a calendar date.
    pub fn new(date: NaiveDate) -> DocDate {
        DocDate(date)
    }

    /// The calendar date.
    pub fn date(self) -> NaiveDate {
        self.0
    }

    /// The Indian financial year (April–March) the date falls in.
    pub fn financial_year(self) -> FinancialYear {
        FinancialYear::from_date(self)
    }
}

impl fmt::Display for DocDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%d/%m/%Y"))
    }
}

impl Serialize for DocDate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An Indian financial year, April to March, shown as `2025-26`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FinancialYear {
    start_year: i32,
}

impl FinancialYear {
    /// The financial year a date falls in: January–March belong to the year
    /// that started the previous April.
    pub fn from_date(date: DocDate) -> FinancialYear {
        let d = date.date();
        let start_year = if d.month() >= 4 { d.year() } else { d.year() - 1 };
        FinancialYear { start_year }
    }

    /// The financial year starting in April of `start_year`.
    pub fn starting(start_year: i32) -> FinancialYear {
        FinancialYear { start_year }
    }

    /// The calendar year in which it starts (2025 for 2025-26).
    pub fn start_year(self) -> i32 {
        self.start_year
    }
}

impl fmt::Display for FinancialYear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:02}", self.start_year, (self.start_year + 1).rem_euclid(100))
    }
}

impl Serialize for FinancialYear {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What the IRP considers "the same document": seller, type, number, year.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct DocumentKey {
    /// Seller GSTIN.
    pub gstin: Gstin,
    /// INV/CRN/DBN.
    pub doc_type: DocType,
    /// Document number as given.
    pub doc_number: DocNumber,
    /// Financial year of the document date.
    pub financial_year: FinancialYear,
}

impl DocumentKey {
    /// Builds the key, deriving the financial year from the document date.
    pub fn new(gstin: Gstin, doc_type: DocType, doc_number: DocNumber, date: DocDate) -> Self {
        DocumentKey { gstin, doc_type, doc_number, financial_year: date.financial_year() }
    }

    /// The IRN this document gets: lowercase hex SHA-256 of
    /// GSTIN + financial year + doc type + doc number, concatenated.
    ///
    /// The IRP treats document numbers case-insensitively when checking
    /// uniqueness (`inv/1` and `INV/1` collide), so the number is upper-cased
    /// here to make the hash, and so our idempotency, agree with it.
    pub fn irn(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.gstin.as_str());
        h.update(self.financial_year.to_string());
        h.update(self.doc_type.as_str());
        h.update(self.doc_number.as_str().to_uppercase());
        hex::encode(h.finalize())
    }
}

impl fmt::Display for DocumentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/{}", self.gstin, self.doc_type, self.doc_number, self.financial_year)
    }
}

/// The calendar date in India at `now`. The IRP judges "future", "30 days" and its daily limits
/// by IST, and a UTC host is 5½ hours behind around midnight.
pub fn india_date(now: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDate {
    now.with_timezone(&chrono_tz::Asia::Kolkata).date_naive()
}

/// Today's date in India (the IRP's calendar).
pub fn india_today() -> chrono::NaiveDate {
    india_date(chrono::Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_type() {
        assert_eq!(DocType::parse(" crn ").unwrap(), DocType::Crn);
        assert_eq!(DocType::Dbn.as_str(), "DBN");
        let e = DocType::parse("BIL").unwrap_err();
        assert_eq!(e.code(), code::INVALID_DOC_TYPE);
        assert!(e.to_string().contains("'BIL'"));
    }

    #[test]
    fn doc_number_rules() {
        assert_eq!(DocNumber::parse(" smp/0001 ").unwrap().as_str(), "smp/0001");
        assert!(DocNumber::parse("1234567890123456").is_ok());
        let code_of = |s: &str| DocNumber::parse(s).unwrap_err().code();
        assert_eq!(code_of("12345678901234567"), code::DOC_NUMBER_LENGTH);
        assert_eq!(code_of("0123"), code::DOC_NUMBER_START);
        assert_eq!(code_of("/123"), code::DOC_NUMBER_START);
        assert_eq!(code_of("-123"), code::DOC_NUMBER_START);
        assert_eq!(code_of("_123"), code::DOC_NUMBER_START);
        assert_eq!(code_of("A 123"), code::DOC_NUMBER_CHARS);
        assert_eq!(code_of("A_123"), code::DOC_NUMBER_CHARS);
        assert_eq!(code_of("INVé1"), code::DOC_NUMBER_CHARS);
        assert_eq!(code_of("  "), code::REQUIRED);
    }

    #[test]
    fn dates() {
        let d = DocDate::parse("01/04/2025").unwrap();
        assert_eq!(d.date(), NaiveDate::from_ymd_opt(2025, 4, 1).unwrap());
        assert_eq!(d.to_string(), "01/04/2025");
        assert_eq!(DocDate::parse("29/02/2024").unwrap().to_string(), "29/02/2024");
        assert_eq!(DocDate::parse("29/02/2025").unwrap_err().code(), code::DATE_INVALID);
        assert_eq!(DocDate::parse("00/01/2025").unwrap_err().code(), code::DATE_INVALID);
        for bad in ["1/4/2025", "2025-04-01", "01-04-2025", "01/04/25", "01/04/2025x", "٠١/٠٤/٢٠٢٥"] {
            assert_eq!(DocDate::parse(bad).unwrap_err().code(), code::DATE_FORMAT, "{bad}");
        }
    }

    #[test]
    fn financial_year() {
        let fy = |s| DocDate::parse(s).unwrap().financial_year().to_string();
        assert_eq!(fy("01/04/2025"), "2025-26");
        assert_eq!(fy("31/03/2025"), "2024-25");
        assert_eq!(fy("15/01/2000"), "1999-00");
        assert_eq!(FinancialYear::starting(2099).to_string(), "2099-00");
    }

    fn key(no: &str) -> DocumentKey {
        DocumentKey::new(
            Gstin::parse("29AAGCP4821K1Z3", false).unwrap(),
            DocType::Inv,
            DocNumber::parse(no).unwrap(),
            DocDate::parse("01/04/2025").unwrap(),
        )
    }

    #[test]
    fn key_display_serialize_irn() {
        let k = key("SMP/0001");
        assert_eq!(k.to_string(), "29AAGCP4821K1Z3/INV/SMP/0001/2025-26");
        assert_eq!(
            serde_json::to_value(&k).unwrap(),
            serde_json::json!({
                "gstin": "29AAGCP4821K1Z3",
                "doc_type": "INV",
                "doc_number": "SMP/0001",
                "financial_year": "2025-26"
            })
        );
        let expected = hex::encode(Sha256::digest(b"29AAGCP4821K1Z32025-26INVSMP/0001"));
        assert_eq!(k.irn(), expected);
        assert_eq!(k.irn().len(), 64);
        // Case-insensitive at NIC, so the IRN ignores case too.
        assert_eq!(key("smp/0001").irn(), expected);
        assert_ne!(key("SMP/0002").irn(), expected);
    }
}
