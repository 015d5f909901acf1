//! Which of NIC's portals holds a document, read from its number.
//!
//! NIC runs two e-way bill portals (EWB1, EWB2) beside its two e-invoice IRPs (e-Invoice1 = NIC1,
//! e-Invoice2 = NIC2). An e-way bill number's third digit names the portal that made it (1–7:
//! EWB1, 8–9: EWB2), and an e-invoice AckNo's first digit the IRP (1: NIC1, 2: NIC2) (TaxPro's
//! help on multiple IRPs; NIC's interoperable-services note, field notes 2026-12 §2). The portals
//! answer "get" and Part-B (vehicle) updates for each other's e-way bills when the call carries
//! the `irp` header naming the owner; cancel, transporter updates and extension only at the owner
//! (444–449 otherwise).
use std::fmt;

/// One of NIC's two sides: e-Invoice1 with e-Way Bill1, or e-Invoice2 with e-Way Bill2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NicPortal {
    One,
    Two,
}

impl NicPortal {
    /// The IRP's name as configured (`irp = "NIC1"`) and as sent in the `irp` header.
    pub fn irp(self) -> &'static str {
        match self {
            NicPortal::One => "NIC1",
            NicPortal::Two => "NIC2",
        }
    }

    /// The e-way bill portal's name, for messages.
    pub fn ewb_portal(self) -> &'static str {
        match self {
            NicPortal::One => "EWB1",
            NicPortal::Two => "EWB2",
        }
    }

    /// `NIC1` / `NIC2` (any case), the names the configuration and the `irp` header use.
    pub fn from_irp(name: &str) -> Option<NicPortal> {
        match name.trim().to_ascii_uppercase().as_str() {
            "NIC1" => Some(NicPortal::One),
            "NIC2" => Some(NicPortal::Two),
            _ => None,
        }
    }

    /// The IRP an AckNo's first digit names (1: NIC1, 2: NIC2); `None` for anything else (a
    /// private IRP's own numbering).
    pub fn from_ack_no(ack_no: &str) -> Option<NicPortal> {
        let t = ack_no.trim();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        match t.as_bytes()[0] {
            b'1' => Some(NicPortal::One),
            b'2' => Some(NicPortal::Two),
            _ => None,
        }
    }

    /// The other NIC side.
    pub fn other(self) -> NicPortal {
        match self {
            NicPortal::One => NicPortal::Two,
            NicPortal::Two => NicPortal::One,
        }
    }
}

impl fmt::Display for NicPortal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.irp())
    }
}

/// An e-way bill number: 12 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EwbNo(String);

/// Why a text is not an e-way bill number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an e-way bill number (12 digits)")]
pub struct EwbNoError(pub String);

impl EwbNo {
    pub fn parse(s: &str) -> Result<EwbNo, EwbNoError> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(EwbNo(s.to_string()))
        } else {
            Err(EwbNoError(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The portal that made it: third digit 1–7 → EWB1, 8–9 → EWB2; `None` for 0 (no portal
    /// numbers so).
    pub fn portal(&self) -> Option<NicPortal> {
        match self.0.as_bytes()[2] {
            b'1'..=b'7' => Some(NicPortal::One),
            b'8' | b'9' => Some(NicPortal::Two),
            _ => None,
        }
    }
}

impl fmt::Display for EwbNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a call about an existing e-way bill may reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EwbAccess {
    /// Get and Part-B (vehicle) updates: at the owner, or at the other NIC portal with the `irp` header.
    CrossPortal,
    /// Cancel, transporter update, extension: only at the owner.
    OwnerOnly,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_third_digit_names_the_ewaybill_portal() {
        for (no, portal) in [
            ("181000000001", Some(NicPortal::One)),
            ("121234567890", Some(NicPortal::One)),
            ("377234567890", Some(NicPortal::One)),
            ("188000000001", Some(NicPortal::Two)),
            ("399234567890", Some(NicPortal::Two)),
            ("100000000000", None),
        ] {
            assert_eq!(EwbNo::parse(no).unwrap().portal(), portal, "{no}");
        }
        for bad in ["", "18100000000", "1810000000011", "18100000000A", "-81000000001"] {
            let e = EwbNo::parse(bad).unwrap_err();
            assert!(e.to_string().contains("12 digits"), "{e}");
        }
        assert!(EwbNo::parse(" 181000000001").is_err());
        assert_eq!(EwbNo::parse("181000000001").unwrap().as_str(), "181000000001");
    }

    #[test]
    fn the_ack_nos_first_digit_names_the_irp() {
        assert_eq!(NicPortal::from_ack_no("112010000000001"), Some(NicPortal::One));
        assert_eq!(NicPortal::from_ack_no("232010000000001"), Some(NicPortal::Two));
        assert_eq!(NicPortal::from_ack_no("412010000000001"), None);
        assert_eq!(NicPortal::from_ack_no("2x"), None);
        assert_eq!(NicPortal::from_ack_no(""), None);
        assert_eq!(NicPortal::from_irp("nic2"), Some(NicPortal::Two));
        assert_eq!(NicPortal::from_irp("IRIS"), None);
        assert_eq!((NicPortal::One.other(), NicPortal::Two.ewb_portal()), (NicPortal::Two, "EWB2"));
    }
}
