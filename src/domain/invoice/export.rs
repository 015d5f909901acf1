//! `ExpDtls`: export details. The country is mandatory for exports and must be an ISO 3166
//! code; the other fields' formats come from the field table.

use super::*;

impl Ctx<'_> {
    pub(super) fn exp_dtls(&mut self, m: &mut Map<String, Value>, is_export: Option<bool>) {
        const B: &str = "ExpDtls";
        self.date_field(m, B, "ShipBDt", false);
        self.text(m, B, "Port", false, Norm::Upper);
        let _ = self.flag(m, B, "RefClm", false);
        if let Some(c) = self.text(m, B, "ForCur", false, Norm::Upper) {
            if !CURRENCY.is_match(&c) {
                self.p.push(
                    join(B, "ForCur"),
                    code::INVALID_CURRENCY,
                    format!("Foreign currency '{c}' must be a three-letter currency code such as USD or EUR."),
                );
            }
        }
        self.country(m, B, "CntCode", is_export == Some(true));
        self.number(m, B, "ExpDuty", false);
    }

    /// An export without `ExpDtls` lacks its mandatory country code.
    pub(super) fn export_needs_details(&mut self, root: &Map<String, Value>, is_export: Option<bool>) {
        // A present but broken ExpDtls is already reported as INVALID_TYPE.
        if is_export == Some(true) && root.get("ExpDtls").is_none_or(Value::is_null) {
            self.p.push(
                "ExpDtls.CntCode",
                code::REQUIRED,
                "ExpDtls.CntCode is required for an export (EXPWP/EXPWOP): give ExpDtls with the destination country, such as US.",
            );
        }
    }

    /// An ISO 3166-1 alpha-2 country code (upper-cased in the payload).
    pub(super) fn country(&mut self, m: &mut Map<String, Value>, base: &str, key: &str, required: bool) {
        if let Some(c) = self.text(m, base, key, required, Norm::Upper) {
            if !COUNTRY.is_match(&c) || !codes::is_valid_country(&c) {
                self.p.push(
                    join(base, key),
                    code::INVALID_COUNTRY_CODE,
                    format!("Country code '{}' in {base}.{key} is not an ISO 3166 country code; use two letters such as US, DE or AE.", shorten(&c)),
                );
            }
        }
    }
}
