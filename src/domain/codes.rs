//! Master data the IRP validates against: state codes, PIN ranges, units,
//! GST rates, supply types and cancel reasons.
//!
//! These are small, slow-changing lists, so they live in code. The one that
//! changes most (the GST rate master) is only a *default*: callers pass their
//! own list through `ValidationOptions::allowed_gst_rates`.

use rust_decimal::Decimal;

/// A GST state (or pseudo-state) code as used in `Stcd`, `Pos` and the first
/// two digits of a GSTIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    /// Two-digit code, e.g. `"29"`.
    pub code: &'static str,
    /// Display name, e.g. `"Karnataka"`.
    pub name: &'static str,
}

/// All state codes the e-invoice schema accepts.
///
/// Note `28` (the pre-2014 Andhra Pradesh code) is absent: GST started after
/// the split, so AP has always been `37` under GST. `25` is kept because
/// GSTINs issued before the Daman & Diu / DNH merger still carry it. `96`
/// (Other Countries) is what exports use for the foreign buyer; `99` is the
/// Centre Jurisdiction code that OIDAR GSTINs start with.
pub const STATES: &[State] = &[
    State { code: "01", name: "Jammu and Kashmir" },
    State { code: "02", name: "Himachal Pradesh" },
    State { code: "03", name: "Punjab" },
    State { code: "04", name: "Chandigarh" },
    State { code: "05", name: "Uttarakhand" },
    State { code: "06", name: "Haryana" },
    State { code: "07", name: "Delhi" },
    State { code: "08", name: "Rajasthan" },
    State { code: "09", name: "Uttar Pradesh" },
    State { code: "10", name: "Bihar" },
    State { code: "11", name: "Sikkim" },
    State { code: "12", name: "Arunachal Pradesh" },
    State { code: "13", name: "Nagaland" },
    State { code: "14", name: "Manipur" },
    State { code: "15", name: "Mizoram" },
    State { code: "16", name: "Tripura" },
    State { code: "17", name: "Meghalaya" },
    State { code: "18", name: "Assam" },
    State { code: "19", name: "West Bengal" },
    State { code: "20", name: "Jharkhand" },
    State { code: "21", name: "Odisha" },
    State { code: "22", name: "Chhattisgarh" },
    State { code: "23", name: "Madhya Pradesh" },
    State { code: "24", name: "Gujarat" },
    State { code: "25", name: "Daman and Diu (legacy)" },
    State { code: "26", name: "Dadra and Nagar Haveli and Daman and Diu" },
    State { code: "27", name: "Maharashtra" },
    State { code: "29", name: "Karnataka" },
    State { code: "30", name: "Goa" },
    State { code: "31", name: "Lakshadweep" },
    State { code: "32", name: "Kerala" },
    State { code: "33", name: "Tamil Nadu" },
    State { code: "34", name: "Puducherry" },
    State { code: "35", name: "Andaman and Nicobar Islands" },
    State { code: "36", name: "Telangana" },
    State { code: "37", name: "Andhra Pradesh" },
    State { code: "38", name: "Ladakh" },
    State { code: "96", name: "Other Countries" },
    State { code: "97", name: "Other Territory" },
    State { code: "99", name: "Centre Jurisdiction" },
];

/// State code used for the foreign party of an export.
pub const OTHER_COUNTRIES: &str = "96";

/// PIN used for a foreign address on an export.
pub const EXPORT_PIN: u32 = 999_999;

/// Looks up a state by its two-digit code.
pub fn state(code: &str) -> Option<&'static State> {
    STATES.iter().find(|s| s.code == code)
}

/// The state's name, e.g. `state_name("29") == Some("Karnataka")`.
pub fn state_name(code: &str) -> Option<&'static str> {
    state(code).map(|s| s.name)
}

/// True if `code` is a state code the schema accepts.
pub fn is_valid_state_code(code: &str) -> bool {
    state(code).is_some()
}

/// Inclusive ranges of the first three PIN digits for each state, as NIC
/// checks them. States absent here (Telangana, Ladakh, 25, 96, 97, 99) have no
/// mapping, so any well-formed PIN is accepted for them; NIC does the same.
/// Ranges overlap on purpose (Chandigarh 160 is also in Punjab's range;
/// Jharkhand sits inside Bihar's old range): each state only asks "is this
/// PIN plausible for me", not "which state owns it".
const PIN_RANGES: &[(&str, &[(u16, u16)])] = &[
    ("01", &[(180, 194)]),
    ("02", &[(171, 177)]),
    ("03", &[(140, 160)]),
    ("04", &[(160, 160)]),
    ("05", &[(244, 263)]),
    ("06", &[(121, 136)]),
    ("07", &[(110, 110)]),
    ("08", &[(301, 345)]),
    ("09", &[(201, 285)]),
    ("10", &[(800, 855)]),
    ("11", &[(737, 737)]),
    ("12", &[(790, 792)]),
    ("13", &[(797, 798)]),
    ("14", &[(795, 795)]),
    ("15", &[(796, 796)]),
    ("16", &[(799, 799)]),
    ("17", &[(793, 794)]),
    ("18", &[(781, 788)]),
    ("19", &[(700, 743)]),
    ("20", &[(813, 835)]),
    ("21", &[(751, 770)]),
    ("22", &[(490, 497)]),
    ("23", &[(450, 488)]),
    ("24", &[(360, 396)]),
    ("26", &[(362, 362), (396, 396)]),
    ("27", &[(400, 445)]),
    ("29", &[(560, 591)]),
    ("30", &[(403, 403)]),
    ("31", &[(682, 682)]),
    ("32", &[(670, 695)]),
    ("33", &[(600, 643)]),
    ("34", &[(533, 533), (605, 605), (607, 607), (609, 609), (673, 673)]),
    ("35", &[(744, 744)]),
    ("37", &[(500, 535)]),
];

/// The PIN-prefix ranges for a state, or `None` if the state has no mapping.
pub fn pin_ranges(state_code: &str) -> Option<&'static [(u16, u16)]> {
    PIN_RANGES.iter().find(|(c, _)| *c == state_code).map(|(_, r)| *r)
}

/// True if a six-digit PIN's first three digits are in the state's range, or
/// the state has no mapping.
pub fn pin_matches_state(pin: u32, state_code: &str) -> bool {
    match pin_ranges(state_code) {
        None => true,
        Some(ranges) => {
            let prefix = (pin / 1000) as u16;
            ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&prefix))
        }
    }
}

/// True for a PIN of six digits whose first is 1–9.
pub fn is_valid_pin(pin: u32) -> bool {
    (100_000..=999_999).contains(&pin)
}

/// ISO 3166-1 alpha-2 country codes (249, from Debian's iso-codes 3166-1 list), which NIC's
/// country master for `ExpDtls.CntCode` and `ItemList[].OrgCntry` follows.
pub const COUNTRIES: &[&str] = &[
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ", "BA", "BB", "BD",
    "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS", "BT", "BV", "BW", "BY", "BZ", "CA",
    "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN", "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE",
    "DJ", "DK", "DM", "DO", "DZ", "EC", "EE", "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA",
    "GB", "GD", "GE", "GF", "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK",
    "HM", "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM", "JO", "JP",
    "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC", "LI", "LK", "LR", "LS", "LT",
    "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK", "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS",
    "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA", "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ",
    "OM", "PA", "PE", "PF", "PG", "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS",
    "RU", "RW", "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS", "ST",
    "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO", "TR", "TT", "TV", "TW",
    "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI", "VN", "VU", "WF", "WS", "YE", "YT", "ZA",
    "ZM", "ZW",
];

/// True if `code` is an ISO 3166-1 alpha-2 country code (upper case).
pub fn is_valid_country(code: &str) -> bool {
    COUNTRIES.binary_search(&code).is_ok()
}

/// NIC's Unit Quantity Codes (UQC) accepted in `ItemList[].Unit`.
pub const UNITS: &[&str] = &[
    "BAG", "BAL", "BDL", "BKL", "BOU", "BOX", "BTL", "BUN", "CAN", "CBM", "CCM", "CMS", "CTN", "DOZ", "DRM", "GGK",
    "GMS", "GRS", "GYD", "KGS", "KLR", "KME", "LTR", "MLT", "MTR", "MTS", "NOS", "OTH", "PAC", "PCS", "PRS", "QTL",
    "ROL", "SET", "SQF", "SQM", "SQY", "TBS", "TGM", "THD", "TON", "TUB", "UGS", "UNT", "YDS",
];

/// True if `unit` (already upper-cased) is a NIC UQC.
pub fn is_valid_unit(unit: &str) -> bool {
    UNITS.contains(&unit)
}

/// Default GST rate master (percent). 40 was added by the 2025 "GST 2.0"
/// rationalisation; the older 12 and 28 slabs stay because credit and debit
/// notes against old invoices still use them.
pub const DEFAULT_GST_RATES: &[Decimal] = &[
    rate(0, 0),
    rate(1, 1),
    rate(25, 2),
    rate(1, 0),
    rate(15, 1),
    rate(3, 0),
    rate(5, 0),
    rate(6, 0),
    rate(75, 1),
    rate(12, 0),
    rate(18, 0),
    rate(28, 0),
    rate(40, 0),
];

/// `digits` × 10^−`scale` percent, for the constant rate master.
const fn rate(digits: u32, scale: u32) -> Decimal {
    Decimal::from_parts(digits, 0, 0, false, scale)
}

/// True if `rate` is one of `allowed`, compared exactly: 18, 18.0 and 18.00 are the same rate.
pub fn is_allowed_rate(rate: Decimal, allowed: &[Decimal]) -> bool {
    allowed.contains(&rate)
}

/// `TranDtls.SupTyp`: who the supply goes to, which decides the tax type.
///
/// B2C is deliberately absent: B2C invoices are not e-invoiced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SupplyType {
    /// Registered business to registered business.
    B2b,
    /// To an SEZ unit/developer, with IGST paid.
    SezWithPayment,
    /// To an SEZ, under bond/LUT without IGST.
    SezWithoutPayment,
    /// Export with IGST paid.
    ExportWithPayment,
    /// Export under bond/LUT without IGST.
    ExportWithoutPayment,
    /// Deemed export (e.g. to an EOU); taxed like a domestic supply.
    DeemedExport,
}

/// The `SupTyp` strings, in schema order.
pub const SUPPLY_TYPES: &[&str] = &["B2B", "SEZWP", "SEZWOP", "EXPWP", "EXPWOP", "DEXP"];

impl SupplyType {
    /// Parses an upper-case `SupTyp` value.
    pub fn parse(s: &str) -> Option<SupplyType> {
        Some(match s {
            "B2B" => SupplyType::B2b,
            "SEZWP" => SupplyType::SezWithPayment,
            "SEZWOP" => SupplyType::SezWithoutPayment,
            "EXPWP" => SupplyType::ExportWithPayment,
            "EXPWOP" => SupplyType::ExportWithoutPayment,
            "DEXP" => SupplyType::DeemedExport,
            _ => return None,
        })
    }

    /// The schema string.
    pub fn as_str(self) -> &'static str {
        match self {
            SupplyType::B2b => "B2B",
            SupplyType::SezWithPayment => "SEZWP",
            SupplyType::SezWithoutPayment => "SEZWOP",
            SupplyType::ExportWithPayment => "EXPWP",
            SupplyType::ExportWithoutPayment => "EXPWOP",
            SupplyType::DeemedExport => "DEXP",
        }
    }

    /// A real export (EXPWP/EXPWOP): the buyer may be `URP` in state `96`.
    pub fn is_export(self) -> bool {
        matches!(self, SupplyType::ExportWithPayment | SupplyType::ExportWithoutPayment)
    }

    /// Supply to an SEZ.
    pub fn is_sez(self) -> bool {
        matches!(self, SupplyType::SezWithPayment | SupplyType::SezWithoutPayment)
    }

    /// SEZ supplies and exports are inter-state by law, so they take IGST
    /// even when buyer and seller are in the same state.
    pub fn is_igst_only(self) -> bool {
        self.is_export() || self.is_sez()
    }

    /// Under bond/LUT (EXPWOP/SEZWOP): an IGST of 0 is expected and not
    /// checked against the rate.
    pub fn is_without_payment(self) -> bool {
        matches!(self, SupplyType::SezWithoutPayment | SupplyType::ExportWithoutPayment)
    }
}

/// IRN cancel reasons (`CnlRsn`) and their meaning.
pub const CANCEL_REASONS: &[(&str, &str)] =
    &[("1", "Duplicate"), ("2", "Data entry mistake"), ("3", "Order cancelled"), ("4", "Others")];

/// The name of a cancel reason code, e.g. `"2"` → `"Data entry mistake"`.
pub fn cancel_reason_name(code: &str) -> Option<&'static str> {
    CANCEL_REASONS.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_lookup() {
        assert_eq!(state_name("29"), Some("Karnataka"));
        assert!(is_valid_state_code("96"));
        assert!(!is_valid_state_code("28"));
        assert!(!is_valid_state_code("00"));
    }

    #[test]
    fn pin_ranges_accept_and_reject() {
        assert!(pin_matches_state(560_058, "29"));
        assert!(!pin_matches_state(400_001, "29"));
        // Overlap: 160xxx is fine for both Chandigarh and Punjab.
        assert!(pin_matches_state(160_017, "04"));
        assert!(pin_matches_state(160_017, "03"));
        // Puducherry's scattered enclaves.
        assert!(pin_matches_state(673_310, "34"));
        // No mapping: anything goes.
        assert!(pin_matches_state(500_032, "36"));
        assert!(pin_matches_state(EXPORT_PIN, OTHER_COUNTRIES));
        assert!(is_valid_pin(110_001));
        assert!(!is_valid_pin(99_999));
    }

    #[test]
    fn units_rates_supply_types_reasons() {
        assert!(is_valid_unit("NOS"));
        assert!(!is_valid_unit("nos"));
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert!(is_allowed_rate(d("40"), DEFAULT_GST_RATES));
        assert!(is_allowed_rate(d("0.25"), DEFAULT_GST_RATES));
        assert!(is_allowed_rate(d("18.00"), DEFAULT_GST_RATES), "scale does not matter");
        assert!(is_allowed_rate(d("0.000"), DEFAULT_GST_RATES));
        assert!(!is_allowed_rate(d("2"), DEFAULT_GST_RATES));
        assert!(!is_allowed_rate(d("18.001"), DEFAULT_GST_RATES));
        let shown: Vec<String> = DEFAULT_GST_RATES.iter().map(|r| r.to_string()).collect();
        assert_eq!(shown.join(", "), "0, 0.1, 0.25, 1, 1.5, 3, 5, 6, 7.5, 12, 18, 28, 40");
        for s in SUPPLY_TYPES {
            assert_eq!(SupplyType::parse(s).unwrap().as_str(), *s);
        }
        assert!(SupplyType::parse("B2C").is_none());
        assert!(SupplyType::SezWithoutPayment.is_igst_only());
        assert!(!SupplyType::DeemedExport.is_igst_only());
        assert_eq!(cancel_reason_name("2"), Some("Data entry mistake"));
        assert_eq!(cancel_reason_name("5"), None);
    }
}
