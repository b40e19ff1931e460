//! What a schedule runs and when: the cron expression (seconds optional),
//! time zone, target function, payload and policies, with validation.

use super::ScheduleError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::str::FromStr;

/// Largest JSON payload a schedule may carry.
const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Most retries after a failed attempt.
const MAX_RETRIES: u32 = 10;

/// A schedule's definition, as given to `PUT /api/admin/schedules/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// The function to invoke.
    pub function: String,
    /// Cron expression: 5 fields (`min hour day month weekday`) or 6–7 with
    /// seconds first (and a year last).
    pub cron: String,
    /// IANA time zone the expression is read in.
    #[serde(default = "utc")]
    pub tz: String,
    /// JSON body of the request.
    #[serde(default = "empty_object")]
    pub payload: Value,
    /// Path of the request.
    #[serde(default = "root")]
    pub path: String,
    /// Attempts after a failed one, with backoff (1 s, 2 s, 4 s …).
    #[serde(default = "two")]
    pub retries: u32,
    /// What happens when a run is due while the previous one still runs.
    #[serde(default)]
    pub overlap: Overlap,
    /// What happens to runs that fell due while the server was down.
    #[serde(default)]
    pub missed: Missed,
}

fn utc() -> String {
    "UTC".to_owned()
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

fn root() -> String {
    "/".to_owned()
}

fn two() -> u32 {
    2
}

/// The overlap policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overlap {
    /// Record the due run as `skipped`.
    #[default]
    Skip,
    /// Run it when the current one ends (at most one waits).
    Queue,
}

/// The missed-run policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Missed {
    /// Record the missed tick as `missed` and wait for the next one.
    #[default]
    Skip,
    /// Run once at start-up, however many ticks were missed.
    RunOnce,
}

impl Overlap {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Queue => "queue",
        }
    }

    pub(super) fn parse(text: &str) -> Self {
        if text == "queue" {
            Overlap::Queue
        } else {
            Overlap::Skip
        }
    }
}

impl Missed {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Missed::Skip => "skip",
            Missed::RunOnce => "run-once",
        }
    }

    pub(super) fn parse(text: &str) -> Self {
        if text == "run-once" {
            Missed::RunOnce
        } else {
            Missed::Skip
        }
    }
}

impl ScheduleSpec {
    /// Checks every field, explaining the first problem.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        let invalid = |message: String| Err(ScheduleError::Invalid(message));
        self.schedule()?;
        self.zone()?;
        if !self.path.starts_with('/') || self.path.contains(char::is_whitespace) {
            return invalid(format!(
                "`path` must start with `/` and contain no spaces, got `{}`",
                self.path
            ));
        }
        if self.retries > MAX_RETRIES {
            return invalid(format!(
                "`retries` must be at most {MAX_RETRIES}, got {}",
                self.retries
            ));
        }
        if self.payload.to_string().len() > MAX_PAYLOAD_BYTES {
            return invalid(format!(
                "`payload` must be at most {MAX_PAYLOAD_BYTES} bytes of JSON"
            ));
        }
        Ok(())
    }

    /// The first tick strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Result<DateTime<Utc>, ScheduleError> {
        let zone = self.zone()?;
        self.schedule()?
            .after(&after.with_timezone(&zone))
            .next()
            .map(|next| next.with_timezone(&Utc))
            .ok_or_else(|| ScheduleError::Invalid(format!("`{}` never fires again", self.cron)))
    }

    fn schedule(&self) -> Result<cron::Schedule, ScheduleError> {
        let fields = self.cron.split_whitespace().count();
        // Classic crontab lines have no seconds field: fire at second 0.
        let expression = if fields == 5 {
            format!("0 {}", self.cron)
        } else {
            self.cron.clone()
        };
        if !(5..=7).contains(&fields) {
            return Err(ScheduleError::Invalid(format!(
                "cron `{}` must have 5 fields (min hour day month weekday) or 6-7 with seconds first",
                self.cron
            )));
        }
        cron::Schedule::from_str(&expression).map_err(|err| {
            ScheduleError::Invalid(format!("cron `{}` is not valid: {err}", self.cron))
        })
    }

    fn zone(&self) -> Result<chrono_tz::Tz, ScheduleError> {
        self.tz.parse().map_err(|_| {
            ScheduleError::Invalid(format!(
                "`{}` is not an IANA time zone (e.g. Europe/Paris)",
                self.tz
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn spec(cron: &str, tz: &str) -> ScheduleSpec {
        serde_json::from_value(serde_json::json!({"function": "f", "cron": cron, "tz": tz}))
            .unwrap()
    }

    #[test]
    fn five_fields_fire_at_second_zero() {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 10, 2, 30).unwrap();
        let next = spec("*/5 * * * *", "UTC").next_after(at).unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 1, 1, 10, 5, 0).unwrap());
    }

    #[test]
    fn seconds_and_time_zones_are_honoured() {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).unwrap();
        assert_eq!(
            spec("*/10 * * * * *", "UTC").next_after(at).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 10).unwrap()
        );
        // 09:00 in Paris is 08:00 UTC in winter.
        assert_eq!(
            spec("0 9 * * *", "Europe/Paris").next_after(at).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 2, 8, 0, 0).unwrap()
        );
    }

    #[test]
    fn bad_specs_are_explained() {
        assert!(
            spec("* * *", "UTC")
                .validate()
                .unwrap_err()
                .to_string()
                .contains("must have 5 fields")
        );
        assert!(
            spec("61 * * * *", "UTC")
                .validate()
                .unwrap_err()
                .to_string()
                .contains("is not valid")
        );
        assert!(
            spec("* * * * *", "Mars/Olympus")
                .validate()
                .unwrap_err()
                .to_string()
                .contains("IANA")
        );
        let mut bad_path = spec("* * * * *", "UTC");
        bad_path.path = "nope".into();
        assert!(
            bad_path
                .validate()
                .unwrap_err()
                .to_string()
                .contains("path")
        );
    }

    #[test]
    fn defaults_fill_in() {
        let s = spec("* * * * *", "UTC");
        assert_eq!(
            (s.path.as_str(), s.retries, s.overlap, s.missed),
            ("/", 2, Overlap::Skip, Missed::Skip)
        );
        assert_eq!(s.payload, serde_json::json!({}));
    }
}
