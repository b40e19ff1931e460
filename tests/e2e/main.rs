//! End-to-end tests: the real `aura` binary on loopback, real components
//! built from `examples/` and `tests/components/`, real HTTP clients.

mod audit;
mod auth;
mod auth_flows;
mod awscli;
mod backup;
mod bodies;
mod cli;
mod cluster;
mod compiled_cache;
mod database;
mod deploy;
mod environments;

mod grants;
mod imports;
mod invoke;
mod js_functions;
mod js_redeploy;
mod lifecycle;
mod limits;
mod list_changes;
mod lockouts;
mod oauth;
mod project;
mod query_limits;
mod races;

mod presence;
mod py_functions;
mod queue;
mod realtime;
mod record_forms;
mod rule_leaks;
mod s3_compat;
mod schedules;
mod secrets;
mod smtp;
mod storage;
mod support;
