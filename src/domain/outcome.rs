//! One table that says what every IRP answer means for a job.
//!
//! The worker never decides "retry or not" anywhere else: adapters turn an HTTP exchange into
//! an [`IrpFailure`](crate::irp::IrpError) carrying IRP codes, and [`classify`] maps
//! (operation, code) to a [`Class`]. The README reproduces this table.

/// Which IRP operation an answer belongs to; some codes mean different things per operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Auth,
    Generate,
    Cancel,
    GetByIrn,
    GetByDoc,
    GstinDetails,
    EwaybillByIrn,
    RejectedIrns,
    B2cQr,
    /// Generate an e-way bill from an IRN (`/eiewb/v1.03/ewaybill`).
    EwaybillGenerate,
    /// The e-way bill API's `CANEWB`.
    EwaybillCancel,
    /// The e-way bill API's `VEHEWB` (Part B).
    EwaybillUpdateVehicle,
    /// The e-way bill API's `EXTENDVALIDITY`.
    EwaybillExtend,
    /// The e-way bill API's `UPDATETRANSPORTER`.
    EwaybillUpdateTransporter,
    /// The e-way bill API's `GENEWAYBILL`: an e-way bill without an IRN.
    EwaybillGenerateDoc,
    /// The e-way bill API's `GetEwayBillGeneratedByConsigner`: the e-way bill of a document.
    EwaybillByDoc,
}

impl Operation {
    pub const ALL: [Operation; 16] = [
        Operation::Auth,
        Operation::Generate,
        Operation::Cancel,
        Operation::GetByIrn,
        Operation::GetByDoc,
        Operation::GstinDetails,
        Operation::EwaybillByIrn,
        Operation::RejectedIrns,
        Operation::B2cQr,
        Operation::EwaybillGenerate,
        Operation::EwaybillCancel,
        Operation::EwaybillUpdateVehicle,
        Operation::EwaybillExtend,
        Operation::EwaybillUpdateTransporter,
        Operation::EwaybillGenerateDoc,
        Operation::EwaybillByDoc,
    ];

    /// A stable snake_case name (metric labels, log fields).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Auth => "auth",
            Operation::Generate => "generate",
            Operation::Cancel => "cancel",
            Operation::GetByIrn => "get_by_irn",
            Operation::GetByDoc => "get_by_doc",
            Operation::GstinDetails => "gstin_details",
            Operation::EwaybillByIrn => "ewaybill_by_irn",
            Operation::RejectedIrns => "rejected_irns",
            Operation::B2cQr => "b2c_qr",
            Operation::EwaybillGenerate => "ewaybill_generate",
            Operation::EwaybillCancel => "ewaybill_cancel",
            Operation::EwaybillUpdateVehicle => "ewaybill_update_vehicle",
            Operation::EwaybillExtend => "ewaybill_extend",
            Operation::EwaybillUpdateTransporter => "ewaybill_update_transporter",
            Operation::EwaybillGenerateDoc => "ewaybill_generate_doc",
            Operation::EwaybillByDoc => "ewaybill_by_doc",
        }
    }
}

/// What the worker does with an IRP error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 2150 on generate: fetch the existing IRN, compare, report `duplicate: true`.
    DuplicateIrn,
    /// 2295 on generate: another IRP registered the document with GSTN's de-duplication
    /// registry; the IRN is the same everywhere (deterministic): report it, `duplicate: true`.
    RegisteredElsewhere,
    /// 9999 on cancel (312 on an e-way bill cancel): already cancelled; report cancelled.
    AlreadyCancelled,
    /// 4002 (604 on generate): the e-way bill already exists; fetch it by IRN.
    EwaybillExists,
    /// 1005: the token is invalid or expired: re-authenticate once, then retry once.
    Reauth,
    /// 3028/3029: a GSTIN in the invoice looks invalid/inactive: sync it from the common portal,
    /// retry once if it is active.
    SyncGstinThenRetry,
    /// Retry with backoff: the IRP or the GSP said "try again later".
    Transient,
    /// Credentials, public key or enablement are wrong: pause the GSTIN, do not burn retries.
    Configuration,
    /// 2154 on a lookup: the IRP confirms it has no such document.
    NotFound,
    /// The document is permanently wrong; the user must fix data or take another action.
    Rejection,
}

impl Class {
    pub const ALL: [Class; 10] = [
        Class::DuplicateIrn,
        Class::RegisteredElsewhere,
        Class::AlreadyCancelled,
        Class::EwaybillExists,
        Class::Reauth,
        Class::SyncGstinThenRetry,
        Class::Transient,
        Class::Configuration,
        Class::NotFound,
        Class::Rejection,
    ];

    /// A stable snake_case name (metric labels, log fields).
    pub fn as_str(self) -> &'static str {
        match self {
            Class::DuplicateIrn => "duplicate_irn",
            Class::RegisteredElsewhere => "registered_elsewhere",
            Class::AlreadyCancelled => "already_cancelled",
            Class::EwaybillExists => "ewaybill_exists",
            Class::Reauth => "reauth",
            Class::SyncGstinThenRetry => "sync_gstin_then_retry",
            Class::Transient => "transient",
            Class::Configuration => "configuration",
            Class::NotFound => "not_found",
            Class::Rejection => "rejection",
        }
    }
}

/// What an IRP failure means for a job once its call is over: the [`Class`] without `Reauth`,
/// which the call loop always resolves (a new token, or, when 1005 persists, a transient
/// failure). Job code matches on this, so it has no re-auth arm to get wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    DuplicateIrn,
    RegisteredElsewhere,
    AlreadyCancelled,
    EwaybillExists,
    SyncGstinThenRetry,
    Transient,
    Configuration,
    NotFound,
    Rejection,
}

impl Class {
    /// This class as a call's final answer: `Reauth` that reaches a caller means the IRP kept
    /// refusing fresh tokens, which is transient (never a reason to pause the GSTIN).
    pub fn final_class(self) -> Final {
        match self {
            Class::DuplicateIrn => Final::DuplicateIrn,
            Class::RegisteredElsewhere => Final::RegisteredElsewhere,
            Class::AlreadyCancelled => Final::AlreadyCancelled,
            Class::EwaybillExists => Final::EwaybillExists,
            Class::SyncGstinThenRetry => Final::SyncGstinThenRetry,
            Class::Reauth | Class::Transient => Final::Transient,
            Class::Configuration => Final::Configuration,
            Class::NotFound => Final::NotFound,
            Class::Rejection => Final::Rejection,
        }
    }
}

/// GSP/NIC outage codes that come back as application errors rather than HTTP 5xx.
const OUTAGE_CODES: &[&str] = &["GSPERR300", "GSPGSTDOWN", "GSPERR301", "GSPERR302"];

/// Quota codes, on any operation: 658 (the e-way bill system's "request limit exceeded") and
/// GEN5005 (a GSP's "plan limit exceeded"). Transient, and throttling: the call waits and goes
/// again without counting as an attempt (`IrpError::is_throttled`, `runtime::guard`).
pub const QUOTA_CODES: &[&str] = &["658", "GEN5005"];

/// Classify one IRP error code. `names_a_field` tells 5002 "try again" apart from 5002 used
/// for schema messages.
pub fn classify(op: Operation, code: &str, names_a_field: bool) -> Class {
    let code = code.trim();
    if OUTAGE_CODES.iter().chain(QUOTA_CODES).any(|c| c.eq_ignore_ascii_case(code)) {
        return Class::Transient;
    }
    match (op, code) {
        (_, "1005") => Class::Reauth,
        (Operation::Generate, "2150") => Class::DuplicateIrn,
        (Operation::Generate, "2295") => Class::RegisteredElsewhere,
        (Operation::Cancel, "9999") => Class::AlreadyCancelled,
        (Operation::EwaybillByIrn, "4002") => Class::EwaybillExists,
        // E-way bills (field reference §2.1): 4002 carries no number, so the job reads it by IRN.
        (Operation::EwaybillGenerate | Operation::EwaybillGenerateDoc, "4002" | "604") => Class::EwaybillExists,
        // GetEwayBillGeneratedByConsigner: 325 "could not retrieve data", the document has none.
        (Operation::EwaybillByDoc, "325") => Class::NotFound,
        // 312 is "not yours or already cancelled"; an e-way bill we name by its IRN is ours.
        (Operation::EwaybillCancel, "312") => Class::AlreadyCancelled,
        // 238: the e-way bill API's "invalid auth token" (its 1005).
        (
            Operation::EwaybillCancel
            | Operation::EwaybillUpdateVehicle
            | Operation::EwaybillExtend
            | Operation::EwaybillUpdateTransporter
            | Operation::EwaybillGenerateDoc
            | Operation::EwaybillByDoc,
            "238",
        ) => Class::Reauth,
        // 4001 "error creating e-way bill", 813 duplicate request at the same time, 118 "try
        // after 5 minutes": the e-way bill system asks to come back later (658, its request
        // quota, is a quota code above).
        (
            Operation::EwaybillGenerate
            | Operation::EwaybillCancel
            | Operation::EwaybillUpdateVehicle
            | Operation::EwaybillExtend
            | Operation::EwaybillUpdateTransporter
            | Operation::EwaybillGenerateDoc,
            "4001" | "813" | "118" | "383",
        ) => Class::Transient,
        // Extension (EXTENDVALIDITY): 379 cancelled, 380 not active, 381 no Part B, 382 outside
        // the 8-hour window, 384 not the current transporter, 385/386 transport document or
        // reason missing, 389/390 remaining distance missing or longer than the original, 821
        // past 360 days; transporter (UPDATETRANSPORTER): 368, 369, 370, 655. The user must act.
        (
            Operation::EwaybillExtend | Operation::EwaybillUpdateTransporter,
            "379" | "380" | "381" | "382" | "384" | "385" | "386" | "389" | "390" | "821" | "312" | "368" | "369"
            | "370" | "393" | "655" | "4006" | "4042",
        ) => Class::Rejection,
        // Named so the table lists every e-way bill code: the user must act (4010: CRN/DBN and
        // services go through the plain e-way bill API; 728: past the cancel window; 820: the
        // document is over 180 days old; 4000: the IRN is cancelled…).
        (
            Operation::EwaybillGenerate
            | Operation::EwaybillGenerateDoc
            | Operation::EwaybillCancel
            | Operation::EwaybillUpdateVehicle,
            "4000" | "4003" | "4004" | "4005" | "4006" | "4007" | "4008" | "4009" | "4010" | "720" | "728" | "820"
            | "821" | "283" | "312" | "4042",
        ) => Class::Rejection,
        (Operation::Generate, "3028" | "3029") => Class::SyncGstinThenRetry,
        (_, "2146" | "2147") => Class::Transient,
        (_, "5002") if !names_a_field => Class::Transient,
        (Operation::GetByDoc | Operation::GetByIrn, "2154") => Class::NotFound,
        // Bad credentials, client id/secret, wrong public key, user inactive, GSTIN not
        // enabled: nothing the document can fix, and retrying risks a NIC block.
        (
            _,
            "1007" | "1008" | "1010" | "1013" | "1014" | "1015" | "1016" | "1017" | "1019" | "3000" | "3026" | "2300",
        ) => Class::Configuration,
        _ => Class::Rejection,
    }
}

/// HTTP statuses that mean "try again later" whatever the body says.
pub fn http_status_is_transient(status: u16) -> bool {
    status == 429 || status == 408 || (500..=599).contains(&status)
}

/// HTTP statuses that mean the GSP rejected our credentials.
pub fn http_status_is_configuration(status: u16) -> bool {
    status == 401 || status == 403
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows() {
        assert_eq!(classify(Operation::Generate, "2150", false), Class::DuplicateIrn);
        assert_eq!(classify(Operation::Cancel, "2150", false), Class::Rejection);
        assert_eq!(classify(Operation::Cancel, "9999", false), Class::AlreadyCancelled);
        assert_eq!(classify(Operation::Generate, "1005", false), Class::Reauth);
        assert_eq!(classify(Operation::Generate, "5002", false), Class::Transient);
        assert_eq!(classify(Operation::Generate, "5002", true), Class::Rejection);
        assert_eq!(classify(Operation::Generate, "GSPGSTDOWN", false), Class::Transient);
        assert_eq!(classify(Operation::Auth, "1013", false), Class::Configuration);
        assert_eq!(classify(Operation::GetByDoc, "2154", false), Class::NotFound);
        assert_eq!(classify(Operation::Generate, "3029", false), Class::SyncGstinThenRetry);
        assert_eq!(classify(Operation::Generate, "2176", false), Class::Rejection);
        assert!(http_status_is_transient(503) && http_status_is_transient(429));
        // E-way bills.
        assert_eq!(classify(Operation::EwaybillGenerate, "4002", false), Class::EwaybillExists);
        assert_eq!(classify(Operation::EwaybillCancel, "312", false), Class::AlreadyCancelled);
        assert_eq!(classify(Operation::EwaybillUpdateVehicle, "312", false), Class::Rejection);
        assert_eq!(classify(Operation::EwaybillCancel, "658", false), Class::Transient);
        assert_eq!(classify(Operation::Generate, "GEN5005", false), Class::Transient);
        assert_eq!(classify(Operation::GetByIrn, "658", false), Class::Transient);
        assert_eq!(classify(Operation::EwaybillGenerate, "813", false), Class::Transient);
        assert_eq!(classify(Operation::EwaybillGenerate, "4010", false), Class::Rejection);
        assert_eq!(classify(Operation::EwaybillCancel, "728", false), Class::Rejection);
        assert!(!http_status_is_transient(400));
    }
}
