//! Aura: a self-hostable backend-as-a-service whose user code runs as
//! sandboxed WebAssembly components.
//!
//! The crate is both the `aura` server and its CLI. Modules follow the
//! product's nouns: [`functions`] (the service), [`runtime`] (wasmtime),
//! [`api`] (HTTP doors onto the services), [`store`] (databases), [`cli`].

#![deny(missing_docs)]

pub mod admin_tokens;
pub mod api;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod cluster;
pub mod db;
pub mod definition;

pub mod environments;

pub mod functions;
pub mod grants;
pub mod metrics;
pub mod queue;
pub mod realtime;
pub mod runtime;
pub mod scheduler;
pub mod secrets;
pub mod server;
pub mod storage;
pub mod store;
