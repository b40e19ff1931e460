//! The table of active function versions: what requests and cross-function
//! calls run. It is the runtime's view of deployed functions ([`Callees`])
//! and knows who imports whom, so a change that would break an importer is
//! refused before it happens.

use super::logs::{InvocationLog, InvocationRecord};
use crate::metrics::Metrics;
use crate::runtime::{CallRecord, Callees, Failure, Loaded, Monitor, Prepared};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Active versions by function name, plus what finished runs are logged to.
pub struct Registry {
    active: RwLock<HashMap<String, Arc<Loaded>>>,
    /// Each function's share of the instance pool, by name (it outlives
    /// versions, so a redeploy does not reset a flood's count).
    slots: std::sync::Mutex<HashMap<String, Arc<Semaphore>>>,
    /// The size of each share.
    pub share: u32,
    logs: InvocationLog,
    metrics: Arc<Metrics>,
}

/// One finished run of a function, HTTP invocation or cross-function call.
pub struct Finished<'a> {
    /// The invocation id.
    pub id: String,
    /// Function name.
    pub function: &'a str,
    /// Version that ran.
    pub version: i64,
    /// HTTP method, or `CALL` for a cross-function call.
    pub method: String,
    /// Path after `/fn/{name}`, or `interface#function` for a call.
    pub path: String,
    /// HTTP status sent, if any.
    pub status: Option<i64>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// How long it took.
    pub duration: Duration,
    /// The failure that ended it, if any.
    pub failure: Option<Failure>,
    /// Captured output and measurements.
    pub monitor: &'a Monitor,
}

impl Registry {
    /// An empty table; each function may run `share` invocations at once.
    pub fn new(logs: InvocationLog, metrics: Arc<Metrics>, share: u32) -> Self {
        Self {
            active: RwLock::default(),
            slots: std::sync::Mutex::default(),
            share,
            logs,
            metrics,
        }
    }

    /// The share of the instance pool of `name`.
    pub fn slots(&self, name: &str) -> Arc<Semaphore> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.share as usize)))
            .clone()
    }

    /// Makes `loaded` the active version of `name`.
    pub fn activate(&self, name: &str, loaded: Loaded) {
        self.write().insert(name.to_owned(), Arc::new(loaded));
    }

    /// Replaces the baseline code of `name`'s active `version` by
    /// `prepared` (its optimized code); false if another version became
    /// active meanwhile.
    pub fn upgrade(&self, name: &str, version: i64, prepared: Prepared) -> bool {
        let mut active = self.write();
        let Some(current) = active.get_mut(name) else {
            return false;
        };
        if current.version != version || !current.prepared.is_baseline() {
            return false;
        }
        *current = Arc::new(Loaded {
            version,
            hash: current.hash.clone(),
            limits: current.limits,
            prepared,
        });
        true
    }

    /// The names of the active functions.
    pub fn names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// Forgets `name`.
    pub fn remove(&self, name: &str) {
        self.write().remove(name);
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// The functions whose active version imports an interface from
    /// `function`, with that interface.
    pub fn importers_of(&self, function: &str) -> Vec<(String, String)> {
        let active = self.read();
        let mut importers: Vec<(String, String)> = active
            .iter()
            .flat_map(|(name, loaded)| {
                loaded
                    .prepared
                    .links()
                    .iter()
                    .filter(|link| link.function == function)
                    .map(|link| (name.clone(), link.interface.clone()))
            })
            .collect();
        importers.sort();
        importers
    }

    /// Logs a finished run and counts it.
    pub fn finished(&self, run: Finished<'_>) {
        let failure = run.failure.as_ref();
        Metrics::inc(if failure.is_some() {
            &self.metrics.invocations_failed
        } else {
            &self.metrics.invocations_ok
        });
        if let Some(elapsed) = run.monitor.instantiate_time() {
            self.metrics.instantiated(elapsed);
        }
        self.logs.record(InvocationRecord {
            seq: 0,
            id: run.id,
            function: run.function.to_owned(),
            version: run.version,
            method: run.method,
            path: run.path,
            status: run.status,
            outcome: failure.map_or("ok", Failure::label).to_owned(),
            error: failure.map(Failure::to_string),
            duration_ms: run.duration.as_secs_f64() * 1000.0,
            started_at: run.started_at,
            stdout: run.monitor.stdout.text(),
            stderr: run.monitor.stderr.text(),
        });
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Loaded>>> {
        self.active.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Loaded>>> {
        self.active.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Callees for Registry {
    fn active(&self, function: &str) -> Option<Arc<Loaded>> {
        self.read().get(function).cloned()
    }

    fn exporting(&self, interface: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .read()
            .iter()
            .filter(|(_, loaded)| loaded.prepared.exports().iter().any(|e| e == interface))
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }

    fn record_call(&self, call: CallRecord<'_>) {
        self.finished(Finished {
            id: uuid::Uuid::now_v7().to_string(),
            function: call.function,
            version: call.version,
            method: "CALL".to_owned(),
            path: call.target,
            status: None,
            started_at: super::timestamp(
                chrono::Utc::now() - chrono::Duration::from_std(call.duration).unwrap_or_default(),
            ),
            duration: call.duration,
            failure: call.failure,
            monitor: call.monitor,
        });
    }
}
