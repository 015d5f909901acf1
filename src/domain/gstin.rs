//! GSTIN: the 15-character GST identification number.
//!
//! Layout of a regular GSTIN, `27AAPFU0939F1ZV`:
//! * `27`: state code,
//! * `AAPFU0939F`: the holder's PAN,
//! * `1`: entity number for that PAN in that state,
//! * `Z`: by default (other letters/digits mark special registrations),
//! * `V`: check digit over the first 14 characters (base-36, Luhn-style).
//!
//! A [`Gstin`] value exists only if the text passed validation, so code that
//! holds one never re-checks it ("parse, don't validate").

use std::fmt;
use std::str::FromStr;

use once_cell::sync::Lazy;
use regex::Regex;
use serde::{Serialize, Serializer};
use thiserror::Error;

use crate::domain::codes;
use crate::domain::problem::code;

const ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// The kind of registration a GSTIN's shape reveals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GstinKind {
    /// Normal taxpayer (PAN-based).
    Regular,
    /// Government department without a PAN.
    Government,
    /// UN body / embassy (Unique Identification Number).
    Uin,
    /// Non-resident taxable person (`…NR?`).
    Nri,
    /// Online information / database access provider from abroad (`99…OS?`).
    Oidar,
    /// Tax deductor at source (13th character `D`).
    Tds,
    /// Tax collector at source, i.e. e-commerce operators (13th character `C`).
    Tcs,
    /// Accepted only in relaxed mode: PAN-shaped numbers that break the
    /// production rules for characters 13–14, as NIC sandbox test GSTINs
    /// such as `02AMBPG7773M002` do.
    SandboxTest,
}

// Patterns from the GST developer portal (taxpayer returns API). Order
// matters: the special registrations are tried before the broad regular one
// so that e.g. a TCS GSTIN is reported as TCS.
static PATTERNS: Lazy<Vec<(GstinKind, Regex)>> = Lazy::new(|| {
    let p = |k, r: &str| (k, Regex::new(r).expect("static GSTIN regex"));
    vec![
        p(GstinKind::Tcs, r"^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]C[0-9A-Z]$"),
        p(GstinKind::Tds, r"^[0-9]{2}[A-Z]{4}[A-Z0-9][0-9]{4}[A-Z][1-9A-Z]D[0-9A-Z]$"),
        p(GstinKind::Government, r"^[0-9]{2}[A-Z]{4}[0-9]{5}[A-Z][0-9]Z[0-9]$"),
        p(GstinKind::Uin, r"^[0-9]{4}[A-Z]{3}[0-9]{5}[UO]N[A-Z0-9]$"),
        p(GstinKind::Nri, r"^[0-9]{4}[A-Z]{3}[0-9]{5}NR[0-9A-Z]$"),
        p(GstinKind::Oidar, r"^99[0-9]{2}[A-Z]{3}[0-9]{5}OS[0-9A-Z]$"),
        p(GstinKind::Regular, r"^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z][Z1-9ABD-J][0-9A-Z]$"),
    ]
});

// Relaxed mode only: state + PAN + any three alphanumerics.
static SANDBOX_PATTERN: Lazy<Regex> =
    Lazy::new(|| Regex::new(r"^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][0-9A-Z]{3}$").expect("static regex"));

/// Why a text is not a GSTIN. Messages name the value and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GstinError {
    /// Nothing (or only spaces) was given.
    #[error("GSTIN is empty; expected 15 characters such as 27AAPFU0939F1ZV")]
    Empty,
    /// Not 15 characters after trimming.
    #[error("GSTIN '{value}' has {len} characters; a GSTIN has exactly 15")]
    Length {
        /// The trimmed, upper-cased input.
        value: String,
        /// Its length in characters.
        len: usize,
    },
    /// 15 characters, but not in any known GSTIN layout.
    #[error(
        "GSTIN '{value}' is not in a valid GSTIN layout (2-digit state code, 10-character PAN, entity number, 'Z', check character)"
    )]
    Format {
        /// The trimmed, upper-cased input.
        value: String,
    },
    /// The first two digits are not a GST state code.
    #[error("GSTIN '{value}' starts with '{state}', which is not a GST state code")]
    StateCode {
        /// The trimmed, upper-cased input.
        value: String,
        /// Its first two characters.
        state: String,
    },
    /// The last character is not the check digit of the first 14.
    #[error("GSTIN '{value}' ends in '{found}' but its check character should be '{expected}'; the number is probably mistyped")]
    CheckDigit {
        /// The trimmed, upper-cased input.
        value: String,
        /// The character computed from the first 14.
        expected: char,
        /// The 15th character given.
        found: char,
    },
}

impl GstinError {
    /// The stable problem code for this error (see [`crate::domain::problem::code`]).
    pub fn code(&self) -> &'static str {
        match self {
            GstinError::Empty => code::REQUIRED,
            GstinError::Length { .. } | GstinError::Format { .. } => code::GSTIN_FORMAT,
            GstinError::StateCode { .. } => code::GSTIN_STATE_CODE,
            GstinError::CheckDigit { .. } => code::GSTIN_CHECK_DIGIT,
        }
    }
}

/// A validated GSTIN, stored trimmed and upper-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gstin(String);

impl Gstin {
    /// Parses a GSTIN: trims, upper-cases, checks length, layout, state code
    /// and (unless `relaxed_check_digit`) the check digit.
    ///
    /// Relaxed mode exists for the NIC sandbox, whose published test GSTINs
    /// (`29AWGPV7107B1Z1`, `02AMBPG7773M002`, …) fail the check digit and
    /// sometimes the production layout. It skips the check digit and also
    /// accepts any PAN-shaped GSTIN ([`GstinKind::SandboxTest`]). Never use it
    /// in production: a typo'd GSTIN would reach the IRP.
    pub fn parse(s: &str, relaxed_check_digit: bool) -> Result<Gstin, GstinError> {
        let value = s.trim().to_ascii_uppercase();
        if value.is_empty() {
            return Err(GstinError::Empty);
        }
        let len = value.chars().count();
        if len != 15 {
            return Err(GstinError::Length { value, len });
        }
        if kind_of(&value, relaxed_check_digit).is_none() {
            return Err(GstinError::Format { value });
        }
        let state = &value[..2];
        if !codes::is_valid_state_code(state) {
            let state = state.to_string();
            return Err(GstinError::StateCode { value, state });
        }
        if !relaxed_check_digit {
            // Layout passed, so all 15 are ASCII alphanumerics and this is Some.
            if let Some(expected) = check_digit(&value[..14]) {
                let found = value.as_bytes()[14] as char;
                if found != expected {
                    return Err(GstinError::CheckDigit { value, expected, found });
                }
            }
        }
        Ok(Gstin(value))
    }

    /// The two-digit state code the GSTIN was issued in (its first two characters).
    pub fn state_code(&self) -> &str {
        &self.0[..2]
    }

    /// The GSTIN text (15 upper-case characters).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The registration kind its layout shows.
    pub fn kind(&self) -> GstinKind {
        // Always Some for a parsed value; relaxed=true also covers sandbox ones.
        kind_of(&self.0, true).unwrap_or(GstinKind::SandboxTest)
    }
}

fn kind_of(value: &str, relaxed: bool) -> Option<GstinKind> {
    PATTERNS
        .iter()
        .find(|(_, re)| re.is_match(value))
        .map(|(k, _)| *k)
        .or_else(|| (relaxed && SANDBOX_PATTERN.is_match(value)).then_some(GstinKind::SandboxTest))
}

/// Computes the GSTIN check character for the first 14 characters.
///
/// Base-36 Luhn: walk left to right, weight alternately 1 and 2, add the
/// quotient and remainder of each product by 36, and the check character is
/// the one that brings the sum to a multiple of 36. Returns `None` unless
/// `first14` is exactly 14 ASCII letters/digits (case-insensitive).
pub fn check_digit(first14: &str) -> Option<char> {
    if first14.len() != 14 {
        return None;
    }
    let mut sum: u32 = 0;
    for (i, b) in first14.bytes().enumerate() {
        let value = ALPHABET.iter().position(|&a| a == b.to_ascii_uppercase())? as u32;
        let factor = if i % 2 == 0 { 1 } else { 2 };
        let d = value * factor;
        sum += d / 36 + d % 36;
    }
    Some(ALPHABET[((36 - sum % 36) % 36) as usize] as char)
}

impl fmt::Display for Gstin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Gstin {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Strict parse (check digit enforced).
impl FromStr for Gstin {
    type Err = GstinError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Gstin::parse(s, false)
    }
}

impl Serialize for Gstin {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN_GOOD: &[&str] = &[
        "29AAACP7879D1Z0",
        "09AAJCM7191E1Z5",
        "37AABCA7365E2ZP",
        "27AAPFU0939F1ZV",
        // From the sample invoices.
        "29AAGCP4821K1Z3",
        "29AADCT5519H1Z4",
        "27AAKFU7303M1ZP",
        "33AAFCR6612L1ZA",
        "36AAGCS1234K1ZC",
        "27AABCV9876P1Z7",
    ];

    const SANDBOX: &[&str] = &["29AWGPV7107B1Z1", "02AMBPG7773M002", "36AMBPG7773M002"];

    #[test]
    fn known_good_pass_strict() {
        for g in KNOWN_GOOD {
            let parsed = Gstin::parse(g, false).unwrap_or_else(|e| panic!("{g}: {e}"));
            assert_eq!(parsed.as_str(), *g);
            assert_eq!(parsed.kind(), GstinKind::Regular);
            assert_eq!(check_digit(&g[..14]), g.chars().last());
        }
    }

    #[test]
    fn sandbox_fail_strict_pass_relaxed() {
        for g in SANDBOX {
            assert!(Gstin::parse(g, false).is_err(), "{g} should fail strict");
            let ok = Gstin::parse(g, true).unwrap_or_else(|e| panic!("{g}: {e}"));
            assert_eq!(ok.state_code(), &g[..2]);
        }
        assert_eq!(
            Gstin::parse("29AWGPV7107B1Z1", false),
            Err(GstinError::CheckDigit { value: "29AWGPV7107B1Z1".into(), expected: 'F', found: '1' })
        );
        assert_eq!(Gstin::parse("02AMBPG7773M002", true).unwrap().kind(), GstinKind::SandboxTest);
    }

    #[test]
    fn trims_and_uppercases() {
        let g = Gstin::parse("  27aapfu0939f1zv ", false).unwrap();
        assert_eq!(g.to_string(), "27AAPFU0939F1ZV");
        assert_eq!(g.state_code(), "27");
        assert_eq!(serde_json::to_value(&g).unwrap(), serde_json::json!("27AAPFU0939F1ZV"));
        assert_eq!("27AAPFU0939F1ZV".parse::<Gstin>().unwrap(), g);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(Gstin::parse("   ", false), Err(GstinError::Empty));
        let e = Gstin::parse("27AAPFU0939F1Z", false).unwrap_err();
        assert_eq!(e.code(), code::GSTIN_FORMAT);
        assert!(e.to_string().contains("14 characters"), "{e}");
        let e = Gstin::parse("27AAPFU0939F1-V", false).unwrap_err();
        assert!(matches!(e, GstinError::Format { .. }));
        // "00" passes the layout but is no state.
        let mut g = String::from("00AAPFU0939F1Z");
        g.push(check_digit(&g).unwrap());
        let e = Gstin::parse(&g, false).unwrap_err();
        assert_eq!(e.code(), code::GSTIN_STATE_CODE);
        // Multibyte input must not panic on slicing.
        assert!(Gstin::parse("२७AAPFU0939F1ZV", false).is_err());
        assert!(Gstin::parse("ÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄ", true).is_err());
    }

    #[test]
    fn special_kinds() {
        let with_check = |s: &str| {
            let mut g = s.to_string();
            g.push(check_digit(s).unwrap());
            Gstin::parse(&g, false).unwrap().kind()
        };
        assert_eq!(with_check("07AAACA1234A1C"), GstinKind::Tcs);
        assert_eq!(with_check("07DELA12345B1D"), GstinKind::Tds);
        assert_eq!(with_check("07DELA12345B1Z"), GstinKind::Government);
        assert_eq!(with_check("0717UNO00123UN"), GstinKind::Uin);
        assert_eq!(with_check("9917USA29001OS"), GstinKind::Oidar);
        assert_eq!(with_check("0717USA29001NR"), GstinKind::Nri);
    }

    #[test]
    fn check_digit_rejects_bad_input() {
        assert_eq!(check_digit("123"), None);
        assert_eq!(check_digit("27AAPFU0939F1-"), None);
        assert_eq!(check_digit("27aapfu0939f1z"), Some('V'));
    }
}
