//! Integration tests: the real worker against real RabbitMQ and PostgreSQL, with the built-in
//! IRP simulator. Each test gets its own database and its own exchange/queue namespace.
#[macro_use]
mod helpers;

mod bulk;
mod circuits;
mod cli_publish;
mod console;
mod console_outside;
mod contract;
mod contract_events;
mod crash;
mod ewaybill;
mod ewaybill_doc;
mod ewaybill_lifecycle;
mod examples;
mod fair_share;
mod faults;
mod generate;
mod gstins;
mod guard;
mod hostile;
mod irps;
mod jobs;
mod memory;
mod operate;
mod ops;
mod portals;
mod qr;
mod reconcile;
mod robustness;
mod status;
mod tokens;
mod usage;
mod verify;
