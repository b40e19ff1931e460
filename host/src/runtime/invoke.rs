//! Running one invocation: a fresh store with the version's limits, the
//! `wasi:http` request handed to the guest, and the guest's response returned
//! as soon as it sets one, while its body keeps streaming.

use super::state::{InvocationState, LimitHit, Monitor, Platform};
use super::{EPOCH_TICK, Limits, Prepared, Runtime};
use crate::db::Caller;
use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// Why an invocation did not complete normally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The guest trapped (panic, unreachable, out-of-bounds access…).
    Trapped(String),
    /// The CPU-time or wall-clock limit ran out.
    Timeout,
    /// The guest tried to grow its memory past the limit (in MiB).
    MemoryLimit(u64),
    /// The request body exceeded the limit (in bytes).
    RequestTooLarge(u64),
    /// The response body exceeded the limit (in bytes) and was cut.
    ResponseTooLarge(u64),
    /// The guest returned without sending a response.
    NoResponse,
    /// The guest answered with a `wasi:http` error code instead of a response.
    GuestError(String),
    /// No instance slot was free.
    Capacity,
    /// The function already ran its share of the instance pool (this many
    /// invocations) and none finished while the request waited.
    Busy(u32),
    /// The process-wide memory budget of functions is spent.
    MemoryBudget,
}

impl Failure {
    /// A short stable label, used in invocation logs.
    pub fn label(&self) -> &'static str {
        match self {
            Failure::Trapped(_) => "trapped",
            Failure::Timeout => "timeout",
            Failure::MemoryLimit(_) => "memory_limit",
            Failure::RequestTooLarge(_) => "request_too_large",
            Failure::ResponseTooLarge(_) => "response_too_large",
            Failure::NoResponse => "no_response",
            Failure::GuestError(_) => "guest_error",
            Failure::Capacity => "capacity",
            Failure::Busy(_) => "busy",
            Failure::MemoryBudget => "memory_budget",
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Trapped(reason) => write!(f, "the function trapped: {reason}"),
            Failure::Timeout => write!(f, "the function exceeded its time limit"),
            Failure::MemoryLimit(mb) => {
                write!(f, "the function exceeded its memory limit of {mb} MiB")
            }
            Failure::RequestTooLarge(limit) => {
                write!(
                    f,
                    "the request body exceeds the function's limit of {limit} bytes"
                )
            }
            Failure::ResponseTooLarge(limit) => {
                write!(
                    f,
                    "the response body exceeded the function's limit of {limit} bytes and was cut"
                )
            }
            Failure::NoResponse => write!(f, "the function returned without sending a response"),
            Failure::GuestError(code) => write!(f, "the function reported an error: {code}"),
            Failure::Capacity => write!(f, "no instance slot is free; try again shortly"),
            Failure::MemoryBudget => write!(
                f,
                "the server's memory budget for functions is spent; try again shortly"
            ),
            Failure::Busy(share) => write!(
                f,
                "the function runs its share of the instance pool ({share} invocations), or \
                 its environment runs its own, and none finished in time; try again shortly"
            ),
        }
    }
}

/// The response body handed to the HTTP server.
pub type ResponseBody = CappedBody<HyperOutgoingBody>;

/// A started invocation.
pub struct Invocation {
    /// The guest's response (its body may still be streaming), or why there is none.
    pub response: Result<http::Response<ResponseBody>, Failure>,
    /// Resolves when the guest has finished, with the failure that ended it, if any.
    pub finished: BoxFuture<'static, Option<Failure>>,
}

impl Runtime {
    /// Runs `request` through the prepared component under `limits`.
    pub async fn invoke<B>(
        &self,
        prepared: &Prepared,
        limits: &Limits,
        request: http::Request<B>,
        monitor: Arc<Monitor>,
    ) -> Invocation
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        // While the memory budget is spent, nothing new starts.
        if self.sandbox.budget.spent() {
            return Invocation {
                response: Err(Failure::MemoryBudget),
                finished: futures::future::ready(Some(Failure::MemoryBudget)).boxed(),
            };
        }
        let caller = request
            .extensions()
            .get::<Caller>()
            .cloned()
            .unwrap_or(Caller::ANONYMOUS);
        // The guest reads the body through a cap; going over it marks the
        // monitor and fails the guest's read.
        let request = request.map(|body| {
            CappedBody::new(
                body,
                limits.max_request_bytes,
                monitor.clone(),
                LimitHit::RequestBody,
            )
            .map_err(request_body_error)
        });
        let mut store = self.new_store(prepared, limits, monitor.clone(), caller);

        let (response_tx, response_rx) = oneshot::channel();
        let handles = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)
            .and_then(|request| {
                Ok((
                    request,
                    store.data_mut().http().new_response_outparam(response_tx)?,
                ))
            });
        let (guest_request, outparam) = match handles {
            Ok(handles) => handles,
            Err(err) => {
                let failure = Failure::Trapped(format!("invalid request: {err}"));
                return Invocation {
                    response: Err(failure.clone()),
                    finished: futures::future::ready(Some(failure)).boxed(),
                };
            }
        };

        let pre = prepared.pre.clone();
        let wall = Duration::from_millis(limits.timeout_ms);
        let limits = *limits;
        let task_monitor = monitor.clone();
        let (done_tx, done_rx) = oneshot::channel();
        tokio::spawn(async move {
            let run = async {
                let instantiating = Instant::now();
                let proxy = pre
                    .instantiate_async(&mut store)
                    .await
                    .map_err(|err| classify(&err, &limits, &task_monitor, true))?;
                task_monitor.instantiated_in(instantiating.elapsed());
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, guest_request, outparam)
                    .await
                    .map_err(|err| classify(&err, &limits, &task_monitor, false))
            };
            let result = match tokio::time::timeout(wall, run).await {
                Ok(result) => result,
                Err(_elapsed) => Err(Failure::Timeout),
            };
            // The store (and with it the response sender) is dropped before
            // the outcome is reported, so a waiting caller sees both.
            drop(store);
            let _ = done_tx.send(result.err());
        });

        let done = async move { done_rx.await.unwrap_or(Some(Failure::NoResponse)) };
        match response_rx.await {
            // A body over the limit makes the request invalid, whatever the
            // guest made of its failed read.
            Ok(Ok(_)) if monitor.limit_hit() == Some(LimitHit::RequestBody) => {
                let failure = Failure::RequestTooLarge(limits.max_request_bytes);
                Invocation {
                    response: Err(failure.clone()),
                    finished: async move { done.await.or(Some(failure)) }.boxed(),
                }
            }
            Ok(Ok(response)) => {
                let limit = limits.max_response_bytes;
                let response = response.map(|body| {
                    CappedBody::new(body, limit, monitor.clone(), LimitHit::ResponseBody)
                });
                let finished = async move {
                    let failure = done.await;
                    // A cut response body is the reason, whatever the guest did next.
                    match monitor.limit_hit() {
                        Some(LimitHit::ResponseBody) => Some(Failure::ResponseTooLarge(limit)),
                        _ => failure,
                    }
                };
                Invocation {
                    response: Ok(response),
                    finished: finished.boxed(),
                }
            }
            Ok(Err(code)) => {
                let failure = Failure::GuestError(format!("{code:?}"));
                Invocation {
                    response: Err(failure.clone()),
                    finished: async move { done.await.or(Some(failure)) }.boxed(),
                }
            }
            Err(_no_response) => {
                let failure = done.await.unwrap_or(Failure::NoResponse);
                Invocation {
                    response: Err(failure.clone()),
                    finished: futures::future::ready(Some(failure)).boxed(),
                }
            }
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn request_body_error(err: BoxError) -> wasmtime_wasi_http::Error {
    if err.is::<BodyTooLarge>() {
        wasmtime_wasi_http::Error::HttpRequestBodySize(None)
    } else {
        wasmtime_wasi_http::Error::ConnectionTerminated
    }
}

impl Runtime {
    /// A fresh store for one run of `prepared` under `limits`: memory
    /// limiter, CPU budget in epoch ticks, outbound policy, captured output.
    pub(super) fn new_store(
        &self,
        prepared: &Prepared,
        limits: &Limits,
        monitor: Arc<Monitor>,
        caller: Caller,
    ) -> Store<InvocationState> {
        let cpu_ticks = limits.cpu_ms.div_ceil(EPOCH_TICK.as_millis() as u64);
        let hooks =
            prepared
                .network
                .policy(self.sandbox.egress.clone(), *limits, monitor.stderr.clone());
        let state = InvocationState::new(
            limits.memory_bytes(),
            cpu_ticks,
            &prepared.network,
            Platform {
                events: prepared.events.clone(),
                db: prepared.db.clone(),
                auth: prepared.auth.clone(),
                storage: prepared.storage.clone(),
                secrets: prepared.secrets.clone(),
                caller,
            },
            hooks,
            monitor,
            self.sandbox.budget.clone(),
        );
        let mut store = Store::new(prepared.pre.instance_pre().engine(), state);
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let state = ctx.data_mut();
            state.cpu_ticks += 1;
            if state.cpu_ticks > state.cpu_limit_ticks {
                state.monitor.hit(LimitHit::Cpu);
                wasmtime::bail!("CPU time limit exceeded");
            }
            // Yielding at every tick keeps a busy guest from starving the
            // other tasks of this worker thread.
            Ok(UpdateDeadline::Yield(1))
        });
        store
    }
}

/// Turns a wasmtime error into the reason the user sees, preferring the
/// limits the monitor saw being hit over the raw trap.
pub(super) fn classify(
    err: &wasmtime::Error,
    limits: &Limits,
    monitor: &Monitor,
    instantiating: bool,
) -> Failure {
    match monitor.limit_hit() {
        Some(LimitHit::Budget) => return Failure::MemoryBudget,
        Some(LimitHit::Memory) => return Failure::MemoryLimit(limits.memory_mb),
        Some(LimitHit::Cpu) => return Failure::Timeout,
        Some(LimitHit::RequestBody) => return Failure::RequestTooLarge(limits.max_request_bytes),
        Some(LimitHit::ResponseBody) => {
            return Failure::ResponseTooLarge(limits.max_response_bytes);
        }
        None => {}
    }
    let pool_exhausted = err
        .chain()
        .any(|cause| cause.is::<wasmtime::PoolConcurrencyLimitError>());
    if instantiating && pool_exhausted {
        return Failure::Capacity;
    }
    let reason = match err.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => err.root_cause().to_string(),
    };
    Failure::Trapped(reason)
}

/// A body that fails once more than `limit` data bytes have passed, noting
/// the hit in the monitor. Used for request and response bodies alike.
pub struct CappedBody<B> {
    inner: B,
    remaining: u64,
    monitor: Arc<Monitor>,
    hit: LimitHit,
}

impl<B> CappedBody<B> {
    /// Wraps `inner`, allowing at most `limit` bytes through.
    pub fn new(inner: B, limit: u64, monitor: Arc<Monitor>, hit: LimitHit) -> Self {
        Self {
            inner,
            remaining: limit,
            monitor,
            hit,
        }
    }
}

/// The error a [`CappedBody`] yields past its limit.
#[derive(Debug, thiserror::Error)]
#[error("body exceeds its size limit")]
pub struct BodyTooLarge;

impl<B> Body for CappedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > this.remaining {
                        this.remaining = 0;
                        this.monitor.hit(this.hit);
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
                    }
                    this.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
