//! Validation problems: what went wrong, where, in words a person can act on.
//!
//! Every validator in [`crate::domain`] reports through a [`Problems`] collector
//! instead of returning at the first error. A finance clerk fixing an invoice in
//! the ERP wants the whole list at once, not one round-trip per mistake.
//!
//! A [`Problem`] has three parts:
//! * `path`: where, JSON-path-ish without a leading `$`, e.g. `ItemList[3].HsnCd`
//!   (array indexes are 0-based positions in the list, not `SlNo`). The empty
//!   string means the message as a whole.
//! * `code`: a stable SCREAMING_SNAKE machine code from [`code`]. Callers may
//!   match on it, dashboards may count it, so never rename one.
//! * `message`: a sentence naming the value found and what was expected.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One thing wrong with an input, located by `path`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// JSON-path-ish location without `$` (`SellerDtls.Gstin`, `ItemList[0].AssAmt`), or `""` for the whole message.
    pub path: String,
    /// Stable machine code, one of the constants in [`code`].
    pub code: String,
    /// Human sentence: the value found and what was expected.
    pub message: String,
}

impl Problem {
    /// Builds a problem; `code` should be one of the [`code`] constants.
    pub fn new(path: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        Problem { path: path.into(), code: code.to_string(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "[{}] {}", self.code, self.message)
        } else {
            write!(f, "{}: [{}] {}", self.path, self.code, self.message)
        }
    }
}

/// Collects every problem found, in the order found.
///
/// Validators take `&mut Problems` and keep going after a failure, so one pass
/// reports everything that is independently checkable. (Checks that depend on
/// a broken value are skipped, so one mistake doesn't cascade into noise.)
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Problems(Vec<Problem>);

impl Problems {
    /// An empty collector.
    pub fn new() -> Self {
        Problems(Vec::new())
    }

    /// Records a problem at `path` with `code` and `message`.
    pub fn push(&mut self, path: impl Into<String>, code: &str, message: impl Into<String>) {
        self.0.push(Problem::new(path, code, message));
    }

    /// Records an already built problem.
    pub fn add(&mut self, problem: Problem) {
        self.0.push(problem);
    }

    /// True when nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many problems were recorded.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The recorded problems so far.
    pub fn as_slice(&self) -> &[Problem] {
        &self.0
    }

    /// Hands over the problems, in the order they were found.
    pub fn into_vec(self) -> Vec<Problem> {
        self.0
    }
}

impl Extend<Problem> for Problems {
    fn extend<T: IntoIterator<Item = Problem>>(&mut self, iter: T) {
        self.0.extend(iter);
    }
}

impl IntoIterator for Problems {
    type Item = Problem;
    type IntoIter = std::vec::IntoIter<Problem>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// The stable problem codes. Grouped by what they are about; each one's doc
/// says when it is raised.
pub mod code {
    // ---- shape ----
    /// A mandatory field or section is missing, null or blank.
    pub const REQUIRED: &str = "REQUIRED";
    /// A value has the wrong JSON type (text where a number belongs, a list where an object belongs, …).
    pub const INVALID_TYPE: &str = "INVALID_TYPE";
    /// `Version` is not the schema version we send (`1.1`).
    pub const UNSUPPORTED_VERSION: &str = "UNSUPPORTED_VERSION";
    /// A text field is shorter or longer than the schema allows.
    pub const TEXT_LENGTH: &str = "TEXT_LENGTH";
    /// An amount, rate or quantity is negative where only zero or more is allowed.
    pub const NEGATIVE_VALUE: &str = "NEGATIVE_VALUE";

    // ---- schema formats (from the field table, `domain::invoice::fields`) ----
    /// Free text contains a double quote, which the schema forbids (`^([^\"])*$`).
    pub const TEXT_CHARS: &str = "TEXT_CHARS";
    /// A number outside the schema's range (other than below zero, which is `NEGATIVE_VALUE`).
    pub const VALUE_RANGE: &str = "VALUE_RANGE";
    /// A number with more digits after the decimal point than the schema allows
    /// (amounts 2, quantities, unit prices and rates 3, PINs, days and distances 0).
    pub const DECIMAL_PLACES: &str = "DECIMAL_PLACES";
    /// `Ph` is not 6 to 12 digits.
    pub const PHONE_FORMAT: &str = "PHONE_FORMAT";
    /// `Em` is not an e-mail address (`name@domain`).
    pub const EMAIL_FORMAT: &str = "EMAIL_FORMAT";
    /// A referenced document number (`RefDtls.PrecDocDtls[].InvNo`) breaks the schema's pattern.
    pub const DOC_NUMBER_FORMAT: &str = "DOC_NUMBER_FORMAT";
    /// `ExpDtls.Port` is not a port code of 2 to 10 letters and digits.
    pub const PORT_FORMAT: &str = "PORT_FORMAT";

    // ---- transport (`domain::transport`: the invoice's `EwbDtls` and the e-way bill commands) ----
    /// The transport mode is not 1 (road), 2 (rail), 3 (air) or 4 (ship).
    pub const TRANS_MODE_INVALID: &str = "TRANS_MODE_INVALID";
    /// The transport document number is not 1 to 15 letters, digits, `/` or `-`.
    pub const TRANS_DOC_NO_FORMAT: &str = "TRANS_DOC_NO_FORMAT";
    /// The vehicle number is not in one of NIC's vehicle number formats.
    pub const VEHICLE_NO_INVALID: &str = "VEHICLE_NO_INVALID";
    /// The vehicle type is not R (regular) or O (over-dimensional cargo).
    pub const VEHICLE_TYPE: &str = "VEHICLE_TYPE";
    /// The distance is not a whole number of km from 0 to 4000.
    pub const DISTANCE_OUT_OF_RANGE: &str = "DISTANCE_OUT_OF_RANGE";
    /// A command's transporter ID is not a GSTIN or TRANSIN (the invoice's `EwbDtls.TransId`
    /// gets the GSTIN codes, as every GSTIN inside the invoice does).
    pub const TRANS_ID_INVALID: &str = "TRANS_ID_INVALID";

    // ---- e-way bill commands ----
    /// An e-way bill is asked for a document more than 180 days old (e-way bill error 820).
    pub const DOCUMENT_TOO_OLD: &str = "DOCUMENT_TOO_OLD";
    /// An e-way bill number is not 12 digits.
    pub const EWB_NO_INVALID: &str = "EWB_NO_INVALID";
    /// An e-way bill cancel or vehicle-update reason is not 1 to 4.
    pub const REASON_INVALID: &str = "REASON_INVALID";
    /// A command's text field (`from_place`) is shorter or longer than allowed.
    pub const LENGTH_INVALID: &str = "LENGTH_INVALID";
    /// A command's state code (`from_state`) is not an Indian state code.
    pub const STATE_CODE_INVALID: &str = "STATE_CODE_INVALID";
    /// `ewaybill.extend`: `consignment_status` is not M or T, or a field of the other status is given.
    pub const CONSIGNMENT_STATUS_INVALID: &str = "CONSIGNMENT_STATUS_INVALID";
    /// `ewaybill.extend`: `transit_type` is not R (road), W (warehouse) or O (others).
    pub const TRANSIT_TYPE_INVALID: &str = "TRANSIT_TYPE_INVALID";
    /// `ewaybill.extend` outside 8 hours before to 8 hours after the e-way bill's expiry (382).
    pub const EXTEND_OUTSIDE_WINDOW: &str = "EXTEND_OUTSIDE_WINDOW";
    /// `ewaybill.extend`: the remaining distance is more than the e-way bill's distance (390).
    pub const REMAINING_DISTANCE_TOO_LONG: &str = "REMAINING_DISTANCE_TOO_LONG";
    /// `ewaybill.extend` would take the e-way bill past 360 days from its generation (821).
    pub const EXTEND_PAST_MAX_LIFE: &str = "EXTEND_PAST_MAX_LIFE";
    /// `ewaybill.extend` by a GSTIN that is not the e-way bill's current transporter (384).
    pub const NOT_CURRENT_TRANSPORTER: &str = "NOT_CURRENT_TRANSPORTER";
    /// By rail, the transport document is not a railway receipt (9 digits) or a parcel way bill
    /// (10 digits) while the rail document rule is on (e-way bill error 4042).
    pub const RAIL_DOC_NO_FORMAT: &str = "RAIL_DOC_NO_FORMAT";

    // ---- business rules added with the field table ----
    /// `TranDtls.RegRev=Y` on a supply type where NIC does not allow reverse charge (only B2B and SEZ).
    pub const REVERSE_CHARGE_NOT_ALLOWED: &str = "REVERSE_CHARGE_NOT_ALLOWED";
    /// `StateCesAmt` differs from `AssAmt × StateCesRt / 100` beyond the tolerance.
    pub const STATE_CESS_MISMATCH: &str = "STATE_CESS_MISMATCH";
    /// Ship-to GSTIN equals the buyer's (IRP error 2323; ship-to rules switch).
    pub const SHIP_TO_SAME_AS_BUYER: &str = "SHIP_TO_SAME_AS_BUYER";
    /// Ship-to GSTIN's state differs from `ShipDtls.Stcd` (IRP error 2325; ship-to rules switch).
    pub const SHIP_TO_STATE_MISMATCH: &str = "SHIP_TO_STATE_MISMATCH";
    /// An invoice with `EwbDtls` has a ship-to address without a GSTIN (or `URP`) (ship-to rules switch).
    pub const SHIP_TO_GSTIN_REQUIRED: &str = "SHIP_TO_GSTIN_REQUIRED";

    // ---- transaction ----
    /// `TranDtls.TaxSch` is not `GST`.
    pub const INVALID_TAX_SCHEME: &str = "INVALID_TAX_SCHEME";
    /// `TranDtls.SupTyp` is not one of B2B, SEZWP, SEZWOP, EXPWP, EXPWOP, DEXP.
    pub const INVALID_SUPPLY_TYPE: &str = "INVALID_SUPPLY_TYPE";
    /// A Y/N flag (RegRev, IgstOnIntra, IsServc, RefClm) holds something else.
    pub const INVALID_FLAG: &str = "INVALID_FLAG";

    // ---- document ----
    /// `DocDtls.Typ` is not INV, CRN or DBN.
    pub const INVALID_DOC_TYPE: &str = "INVALID_DOC_TYPE";
    /// Document number longer than 16 characters.
    pub const DOC_NUMBER_LENGTH: &str = "DOC_NUMBER_LENGTH";
    /// Document number starts with 0, `/` or `-` (or another non-alphanumeric).
    pub const DOC_NUMBER_START: &str = "DOC_NUMBER_START";
    /// Document number holds characters other than letters, digits, `/` and `-`.
    pub const DOC_NUMBER_CHARS: &str = "DOC_NUMBER_CHARS";
    /// A date is not written as dd/MM/yyyy.
    pub const DATE_FORMAT: &str = "DATE_FORMAT";
    /// A date is shaped right but is not a calendar date (31/02/2025).
    pub const DATE_INVALID: &str = "DATE_INVALID";
    /// The document date is after today (India time).
    pub const DATE_IN_FUTURE: &str = "DATE_IN_FUTURE";
    /// The document date is before e-invoicing started (01/10/2020 by default).
    pub const DATE_BEFORE_EINVOICE_START: &str = "DATE_BEFORE_EINVOICE_START";
    /// The document date is older than the reporting window (30-day rule, IRP error 2305).
    pub const DATE_OUTSIDE_REPORTING_WINDOW: &str = "DATE_OUTSIDE_REPORTING_WINDOW";

    // ---- parties ----
    /// A GSTIN has the wrong length or doesn't match any GSTIN pattern.
    pub const GSTIN_FORMAT: &str = "GSTIN_FORMAT";
    /// A GSTIN's last character is not the check digit its first 14 characters give.
    pub const GSTIN_CHECK_DIGIT: &str = "GSTIN_CHECK_DIGIT";
    /// A GSTIN's first two digits are not a known state code.
    pub const GSTIN_STATE_CODE: &str = "GSTIN_STATE_CODE";
    /// The command envelope's GSTIN differs from `SellerDtls.Gstin`.
    pub const SELLER_GSTIN_MISMATCH: &str = "SELLER_GSTIN_MISMATCH";
    /// Buyer GSTIN `URP` (unregistered person) used on a supply that is not an export.
    pub const URP_NOT_ALLOWED: &str = "URP_NOT_ALLOWED";
    /// A party's GSTIN state prefix differs from its `Stcd`.
    pub const GSTIN_STATE_MISMATCH: &str = "GSTIN_STATE_MISMATCH";
    /// Seller and buyer GSTIN are the same.
    pub const SAME_SELLER_BUYER: &str = "SAME_SELLER_BUYER";
    /// A `Stcd`/`Pos` is not a known state code.
    pub const INVALID_STATE_CODE: &str = "INVALID_STATE_CODE";
    /// A PIN is not six digits starting 1–9.
    pub const PIN_FORMAT: &str = "PIN_FORMAT";
    /// A PIN's first three digits fall outside its state's PIN range.
    pub const PIN_STATE_MISMATCH: &str = "PIN_STATE_MISMATCH";

    // ---- items ----
    /// No items, or more than the allowed number.
    pub const ITEM_COUNT: &str = "ITEM_COUNT";
    /// `SlNo` is not a 1–6 digit number.
    pub const SLNO_FORMAT: &str = "SLNO_FORMAT";
    /// Two items share a `SlNo`.
    pub const DUPLICATE_SLNO: &str = "DUPLICATE_SLNO";
    /// `HsnCd` is not 4, 6 or 8 digits.
    pub const HSN_FORMAT: &str = "HSN_FORMAT";
    /// A service (`IsServc=Y`) without a 99xx HSN/SAC code, or goods with one.
    pub const HSN_SERVICE_MISMATCH: &str = "HSN_SERVICE_MISMATCH";
    /// `Unit` is not in the NIC unit (UQC) list.
    pub const INVALID_UNIT: &str = "INVALID_UNIT";
    /// `GstRt` is not in the GST rate master.
    pub const INVALID_GST_RATE: &str = "INVALID_GST_RATE";
    /// `AssAmt` differs from `TotAmt − Discount`.
    pub const ASSAMT_MISMATCH: &str = "ASSAMT_MISMATCH";
    /// CGST/SGST charged on a supply that takes IGST only.
    pub const CGST_SGST_NOT_ALLOWED: &str = "CGST_SGST_NOT_ALLOWED";
    /// IGST charged on an intra-state supply without `IgstOnIntra=Y` (IRP error 2172).
    pub const IGST_NOT_ALLOWED: &str = "IGST_NOT_ALLOWED";
    /// `IgstAmt` differs from `AssAmt × GstRt / 100`.
    pub const IGST_MISMATCH: &str = "IGST_MISMATCH";
    /// `CgstAmt` differs from `AssAmt × GstRt / 200`.
    pub const CGST_MISMATCH: &str = "CGST_MISMATCH";
    /// `SgstAmt` differs from `AssAmt × GstRt / 200`.
    pub const SGST_MISMATCH: &str = "SGST_MISMATCH";
    /// CGST and SGST differ on an intra-state line.
    pub const CGST_SGST_UNEQUAL: &str = "CGST_SGST_UNEQUAL";
    /// `CesAmt` differs from `AssAmt × CesRt / 100`.
    pub const CESS_MISMATCH: &str = "CESS_MISMATCH";
    /// `TotItemVal` differs from the assessable amount plus taxes, cess and other charges.
    pub const TOTITEMVAL_MISMATCH: &str = "TOTITEMVAL_MISMATCH";

    // ---- totals ----
    /// `ValDtls.AssVal` differs from the sum of item `AssAmt`.
    pub const ASSVAL_MISMATCH: &str = "ASSVAL_MISMATCH";
    /// `ValDtls.CgstVal` differs from the sum of item `CgstAmt`.
    pub const CGSTVAL_MISMATCH: &str = "CGSTVAL_MISMATCH";
    /// `ValDtls.SgstVal` differs from the sum of item `SgstAmt`.
    pub const SGSTVAL_MISMATCH: &str = "SGSTVAL_MISMATCH";
    /// `ValDtls.IgstVal` differs from the sum of item `IgstAmt`.
    pub const IGSTVAL_MISMATCH: &str = "IGSTVAL_MISMATCH";
    /// `ValDtls.CesVal` differs from the sum of item `CesAmt + CesNonAdvlAmt`.
    pub const CESVAL_MISMATCH: &str = "CESVAL_MISMATCH";
    /// `ValDtls.StCesVal` differs from the sum of item state cess amounts.
    pub const STCESVAL_MISMATCH: &str = "STCESVAL_MISMATCH";
    /// `ValDtls.RndOffAmt` outside −99.99 … +99.99.
    pub const RNDOFF_RANGE: &str = "RNDOFF_RANGE";
    /// `ValDtls.TotInvVal` differs from Σ TotItemVal + OthChrg − Discount + RndOffAmt.
    pub const TOTINVVAL_MISMATCH: &str = "TOTINVVAL_MISMATCH";

    // ---- export ----
    /// `ExpDtls.CntCode` is not a two-letter country code.
    pub const INVALID_COUNTRY_CODE: &str = "INVALID_COUNTRY_CODE";
    /// `ExpDtls.ForCur` is not a three-letter currency code.
    pub const INVALID_CURRENCY: &str = "INVALID_CURRENCY";

    // ---- cancel ----
    /// Cancel reason is not 1, 2, 3 or 4.
    pub const INVALID_CANCEL_REASON: &str = "INVALID_CANCEL_REASON";
    /// Cancel remark longer than 100 characters.
    pub const REMARK_TOO_LONG: &str = "REMARK_TOO_LONG";

    // ---- commands (the envelope and the command slices) ----
    /// The message is larger than `EINVOICE_MAX_MESSAGE_BYTES`.
    pub const MESSAGE_TOO_LARGE: &str = "MESSAGE_TOO_LARGE";
    /// The message is not JSON.
    pub const INVALID_JSON: &str = "INVALID_JSON";
    /// The routing key names no command.
    pub const UNKNOWN_ROUTING_KEY: &str = "UNKNOWN_ROUTING_KEY";
    /// `schema_version` names a major version of the contract this worker does not speak.
    pub const SCHEMA_VERSION_UNSUPPORTED: &str = "SCHEMA_VERSION_UNSUPPORTED";
    /// `schema_version` is not a version number.
    pub const SCHEMA_VERSION_INVALID: &str = "SCHEMA_VERSION_INVALID";
    /// A command's `request_id` is longer than the worker echoes.
    pub const REQUEST_ID_TOO_LONG: &str = "REQUEST_ID_TOO_LONG";
    /// A command's GSTIN field is not a valid GSTIN.
    pub const GSTIN_INVALID: &str = "GSTIN_INVALID";
    /// An `irn` field is not 64 hexadecimal characters.
    pub const IRN_INVALID: &str = "IRN_INVALID";
    /// A command's `document.doc_type` is not INV, CRN or DBN.
    pub const DOC_TYPE_INVALID: &str = "DOC_TYPE_INVALID";
    /// A command's `document.doc_number` is not a valid document number.
    pub const DOC_NUMBER_INVALID: &str = "DOC_NUMBER_INVALID";
    /// `irn.cancel`'s `reason` is not 1, 2, 3 or 4.
    pub const CANCEL_REASON_INVALID: &str = "CANCEL_REASON_INVALID";
    /// A run's `to` is before its `from`.
    pub const DATE_RANGE_INVALID: &str = "DATE_RANGE_INVALID";
    /// A run covers more days than one run may.
    pub const DATE_RANGE_TOO_LONG: &str = "DATE_RANGE_TOO_LONG";
    /// `b2c.qr`'s `document` and `invoice` name different documents.
    pub const DOCUMENT_MISMATCH: &str = "DOCUMENT_MISMATCH";
    /// A status query names its job in more than one way.
    pub const QUERY_AMBIGUOUS: &str = "QUERY_AMBIGUOUS";
    /// A status query's `job_id` is not a UUID.
    pub const JOB_ID_INVALID: &str = "JOB_ID_INVALID";
    /// `batch_id` is not 1 to 64 letters, digits and `- _ . / :`.
    pub const BATCH_ID_INVALID: &str = "BATCH_ID_INVALID";
    /// A batch holds no invoice.
    pub const BATCH_EMPTY: &str = "BATCH_EMPTY";
    /// A batch holds more invoices than one batch may.
    pub const BATCH_TOO_LARGE: &str = "BATCH_TOO_LARGE";
    /// Two invoices of one batch are the same document.
    pub const DUPLICATE_IN_BATCH: &str = "DUPLICATE_IN_BATCH";
    /// `einvoice.verify` names none, or more than one, of `signed_qr_code`, `signed_invoice`, `qr_image`.
    pub const VERIFY_INPUT: &str = "VERIFY_INPUT";
    /// `qr_image` is not base64 (standard alphabet, optionally a `data:image/…;base64,` URL).
    pub const BASE64_INVALID: &str = "BASE64_INVALID";
    /// An amount is not a decimal number of rupees.
    pub const AMOUNT_INVALID: &str = "AMOUNT_INVALID";

    /// The validator reached a state it believed impossible; a bug, never the data's fault.
    pub const INTERNAL: &str = "INTERNAL";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_keeps_every_problem_in_order() {
        let mut p = Problems::new();
        assert!(p.is_empty());
        p.push("A", code::REQUIRED, "a");
        p.add(Problem::new("B", code::INVALID_TYPE, "b"));
        assert_eq!(p.len(), 2);
        let v = p.into_vec();
        assert_eq!(v[0].path, "A");
        assert_eq!(v[1].code, "INVALID_TYPE");
    }

    #[test]
    fn problem_serializes_with_plain_field_names() {
        let p = Problem::new("ItemList[0].HsnCd", code::HSN_FORMAT, "bad");
        let j = serde_json::to_value(&p).unwrap();
        assert_eq!(j, serde_json::json!({"path": "ItemList[0].HsnCd", "code": "HSN_FORMAT", "message": "bad"}));
        assert_eq!(p.to_string(), "ItemList[0].HsnCd: [HSN_FORMAT] bad");
    }
}
