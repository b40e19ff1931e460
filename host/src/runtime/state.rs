//! Per-invocation store state: the WASI contexts, the resource limiter and
//! the [`Monitor`] through which the host learns why an invocation stopped.
//!
//! A fresh [`InvocationState`] is built for every request; nothing in it is
//! shared with another invocation except the monitor the caller holds.

use super::auth::AuthAccess;
use super::budget::MemoryBudget;
use super::db::DbAccess;
use super::events::EventAccess;
use super::outbound::{NetworkAccess, OutboundPolicy};
use super::output::CapturedOutput;
use super::secrets::SecretAccess;
use super::storage::StorageAccess;
use crate::db::Caller;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Bytes of stdout (and, separately, stderr) kept per invocation.
pub const OUTPUT_CAPTURE_BYTES: usize = 64 * 1024;

/// What the host observed about one invocation, readable after the guest
/// task has finished, trapped or been cancelled.
#[derive(Debug)]
pub struct Monitor {
    memory_exceeded: AtomicBool,
    cpu_exceeded: AtomicBool,
    request_too_large: AtomicBool,
    response_too_large: AtomicBool,
    budget_spent: AtomicBool,
    instantiate_ns: AtomicU64,
    /// The guest's captured stdout.
    pub stdout: CapturedOutput,
    /// The guest's captured stderr (host notes about the invocation go here too).
    pub stderr: CapturedOutput,
}

/// The limit an invocation ran into, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    /// Linear memory growth was refused.
    Memory,
    /// The CPU-time budget ran out.
    Cpu,
    /// The request body was larger than allowed.
    RequestBody,
    /// The response body was larger than allowed.
    ResponseBody,
    /// The process-wide memory budget had no room for more memory.
    Budget,
}

impl Default for Monitor {
    fn default() -> Self {
        Self {
            memory_exceeded: AtomicBool::new(false),
            cpu_exceeded: AtomicBool::new(false),
            request_too_large: AtomicBool::new(false),
            response_too_large: AtomicBool::new(false),
            budget_spent: AtomicBool::new(false),
            instantiate_ns: AtomicU64::new(0),
            stdout: CapturedOutput::new(OUTPUT_CAPTURE_BYTES),
            stderr: CapturedOutput::new(OUTPUT_CAPTURE_BYTES),
        }
    }
}

impl Monitor {
    /// Records that `limit` was hit.
    pub fn hit(&self, limit: LimitHit) {
        let flag = match limit {
            LimitHit::Memory => &self.memory_exceeded,
            LimitHit::Cpu => &self.cpu_exceeded,
            LimitHit::RequestBody => &self.request_too_large,
            LimitHit::ResponseBody => &self.response_too_large,
            LimitHit::Budget => &self.budget_spent,
        };
        flag.store(true, Ordering::Relaxed);
    }

    /// Records how long instantiation took.
    pub fn instantiated_in(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.instantiate_ns.store(nanos, Ordering::Relaxed);
    }

    /// How long instantiation took, if the guest was instantiated.
    pub fn instantiate_time(&self) -> Option<Duration> {
        match self.instantiate_ns.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    /// The first limit hit, in order of precedence.
    pub fn limit_hit(&self) -> Option<LimitHit> {
        [
            (LimitHit::Budget, &self.budget_spent),
            (LimitHit::Memory, &self.memory_exceeded),
            (LimitHit::Cpu, &self.cpu_exceeded),
            (LimitHit::RequestBody, &self.request_too_large),
            (LimitHit::ResponseBody, &self.response_too_large),
        ]
        .into_iter()
        .find(|(_, flag)| flag.load(Ordering::Relaxed))
        .map(|(limit, _)| limit)
    }
}

/// Refuses linear memory growth past the function's limit, and past the
/// process-wide budget, which it charges as memory grows and gives back
/// when the store is dropped.
pub struct MemoryLimiter {
    max_bytes: usize,
    monitor: Arc<Monitor>,
    budget: Arc<MemoryBudget>,
    charged: u64,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.monitor.hit(LimitHit::Memory);
            wasmtime::bail!(
                "memory limit of {} MiB exceeded",
                self.max_bytes / (1024 * 1024)
            );
        }
        let growth = desired.saturating_sub(current) as u64;
        if !self.budget.take(growth) {
            self.monitor.hit(LimitHit::Budget);
            wasmtime::bail!("the server's memory budget for functions is spent");
        }
        self.charged += growth;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

const MAX_TABLE_ELEMENTS: usize = 100_000;

impl Drop for MemoryLimiter {
    fn drop(&mut self) {
        self.budget.give(self.charged);
    }
}

/// The `T` of every invocation's `Store<T>`.
pub struct InvocationState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: OutboundPolicy,
    pub(super) limiter: MemoryLimiter,
    pub(super) cpu_ticks: u64,
    pub(super) cpu_limit_ticks: u64,
    pub(super) monitor: Arc<Monitor>,
    events: EventAccess,
    db: DbAccess,
    auth: AuthAccess,
    storage: StorageAccess,
    secrets: SecretAccess,
    caller: Caller,
}

/// What the `aura:platform` interfaces may do in one invocation, and for
/// whom.
pub(super) struct Platform {
    /// Channels it may publish on.
    pub events: EventAccess,
    /// Collections it may use.
    pub db: DbAccess,
    /// What it may ask of auth.
    pub auth: AuthAccess,
    /// Buckets it may use.
    pub storage: StorageAccess,
    /// Secrets it may read.
    pub secrets: SecretAccess,
    /// The user it acts for.
    pub caller: Caller,
}

impl InvocationState {
    /// State for one invocation with the given limits and outbound policy.
    pub(super) fn new(
        memory_bytes: usize,
        cpu_limit_ticks: u64,
        access: &NetworkAccess,
        Platform {
            events,
            db,
            auth,
            storage,
            secrets,
            caller,
        }: Platform,
        hooks: OutboundPolicy,
        monitor: Arc<Monitor>,
        budget: Arc<MemoryBudget>,
    ) -> Self {
        // No environment, arguments or preopened directories: the function
        // sees no host filesystem and only what the platform sets.
        let mut builder = WasiCtx::builder();
        // Every socket address is checked, granted or not, so that a refusal
        // says in the log what would allow it.
        let (check, log) = (access.clone(), monitor.stderr.clone());
        builder
            .stdout(monitor.stdout.clone())
            .stderr(monitor.stderr.clone())
            .allow_tcp(true)
            .allow_udp(true)
            .allow_ip_name_lookup(access.sockets())
            .socket_addr_check(move |addr, usage| {
                let allowed = check.socket_allowed(addr, usage);
                if !allowed {
                    log.append(check.socket_refusal(addr).as_bytes());
                }
                Box::pin(async move { allowed })
            });
        let wasi = builder.build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        Self {
            wasi,
            http: WasiHttpCtx::new(),
            table,
            hooks,
            limiter: MemoryLimiter {
                max_bytes: memory_bytes,
                monitor: monitor.clone(),
                budget,
                charged: 0,
            },
            cpu_ticks: 0,
            cpu_limit_ticks,
            monitor,
            events,
            db,
            auth,
            storage,
            secrets,
            caller,
        }
    }
}

/// Handles (streams, fields, pollables…) one invocation may hold at once.
const MAX_RESOURCES: usize = 10_000;

impl InvocationState {
    /// What this invocation may publish.
    pub(super) fn events(&self) -> &EventAccess {
        &self.events
    }

    /// What this invocation may do with collections.
    pub(super) fn db(&self) -> &DbAccess {
        &self.db
    }

    /// What this invocation may ask of auth.
    pub(super) fn auth(&self) -> &AuthAccess {
        &self.auth
    }

    /// What this invocation may do with buckets.
    pub(super) fn storage(&self) -> &StorageAccess {
        &self.storage
    }

    /// Which secrets this invocation may read.
    pub(super) fn secrets(&self) -> &SecretAccess {
        &self.secrets
    }

    /// The invocation's resource table (platform resources live there
    /// beside the WASI ones).
    pub(super) fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// Whose rules database calls follow unless the grant is `service`.
    pub(super) fn invoker(&self) -> &Caller {
        &self.caller
    }
}

impl WasiView for InvocationState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InvocationState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}
