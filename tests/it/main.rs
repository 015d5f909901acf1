//! Integration tests: the real worker against real RabbitMQ and PostgreSQL, with the built-in
//! IRP simulator. Each test gets its own database and its own exchange/queue namespace.
#[macro_use]
mod helpers;

mod crash;
mod ewaybill;
mod generate;
mod jobs;
mod reconcile;
mod robustness;
