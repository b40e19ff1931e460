//! The database service. So far: the filter and rule expression language
//! shared by REST filters, access rules, realtime and functions.

pub mod filter;
