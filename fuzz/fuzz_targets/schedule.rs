//! Schedules, from any JSON: validation never panics, and the next tick of
//! a valid schedule is found (or refused) promptly, after it is asked for.
#![no_main]

use chrono::{TimeZone as _, Utc};
use libfuzzer_sys::fuzz_target;

/// The host's error, reduced to the variant specs use (`spec.rs` takes it
/// from its parent module, here the crate root).
#[allow(dead_code)]
#[derive(Debug)]
pub enum ScheduleError {
    Invalid(String),
}

// The host's schedule specs themselves, compiled without the server.
#[allow(dead_code)]
#[path = "../../host/src/scheduler/spec.rs"]
mod spec;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = serde_json::from_slice::<spec::ScheduleSpec>(data) else {
        return;
    };
    if spec.validate().is_err() {
        return;
    }
    let after = Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap();
    if let Ok(next) = spec.next_after(after) {
        assert!(next > after, "{next} is not after {after}");
    }
});
