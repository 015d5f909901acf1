//! einvoice-worker: registers Indian GST e-invoices with the IRP off the ERP's critical path.
//!
//! The pipeline, module by module:
//! - [`domain`]: pure types and validation (a `Gstin` that exists is valid), commands, events
//!   and the one table that classifies every IRP answer;
//! - adapters: [`amqp`] (RabbitMQ topology, consumer, outbox relay), [`store`] (Postgres jobs,
//!   tokens, outbox), [`irp`] (the Whitebooks and NIC protocols behind one trait);
//! - [`runtime`]: the job handlers and the worker that wires the adapters together;
//! - [`sim`]: the built-in IRP simulator used by the demo and the tests;
//! - [`cli`]: the binary's `validate`, `publish` and operator glue (the top layer: nothing
//!   else uses it).
pub mod amqp;
pub mod bench;
pub mod cli;
pub mod config;
pub mod console;
pub mod demo;
pub mod domain;
pub mod irp;
pub mod operator;
pub mod runtime;
pub mod samples;
pub mod sim;
pub mod store;
pub mod telemetry;
