//! Integration tests: the real worker against real RabbitMQ and PostgreSQL, with the built-in
//! IRP simulator. Each test gets its own database and its own exchange/queue namespace.
mod helpers;

mod generate;
mod jobs;
mod robustness;
