//! Pure domain layer of the e-invoice worker: parsing and validating the
//! IRP (schema v1.1) invoice JSON before it leaves the building.
//!
//! Nothing here does I/O, reads a clock (except `ValidationOptions::default`)
//! or depends on the rest of the service, so every rule is unit-testable and
//! the same rules can run in the API (reject early) and in the worker (never
//! send the IRP a payload it would reject; NIC blocks top error generators).
//!
//! * [`problem`]: the `Problem` record and the `Problems` collector.
//! * [`gstin`]: `Gstin`, which only exists if valid, and the check digit.
//! * [`codes`]: master data (states, PIN ranges, units, rates, supply types).
//! * [`document`]: document type/number/date, financial year, `DocumentKey` and IRN.
//! * [`invoice`]: `validate_invoice` (all of reference §5, the schema's field table in
//!   `invoice::fields`, business rules by family in its submodules) and `validate_cancel`.
//! * [`job`]: `JobStatus`, where a job stands.
//! * [`command`]: commands parsed from AMQP messages (every problem collected, with its path).
//! * [`event`]: the result events the worker publishes.
//! * [`outcome`]: the one table that classifies every IRP answer.
//! * [`schema`]: the commands' JSON Schemas from `docs/asyncapi.yaml`, checked before parsing.
//! * [`text`]: NUL characters, which no stored text may hold, and control characters no answer echoes.
//! * [`portal`]: which NIC portal an e-way bill number (or AckNo) names.
//! * [`transport`]: the e-way bill's transport rules, shared by the invoice's `EwbDtls` and the
//!   e-way bill commands (one problem code per rule).

pub mod codes;
pub mod command;
pub mod document;
pub mod event;
pub mod gstin;
pub mod invoice;
pub mod job;
pub mod outcome;
pub mod portal;
pub mod problem;
pub mod schema;
pub mod text;
pub mod transport;

pub use codes::SupplyType;
pub use document::{DocDate, DocNumber, DocType, DocumentError, DocumentKey, FinancialYear};
pub use gstin::{check_digit, Gstin, GstinError, GstinKind};
pub use invoice::{validate_cancel, validate_invoice, ShipToRules, ValidInvoice, ValidationOptions};
pub use job::JobStatus;
pub use problem::{Problem, Problems};
