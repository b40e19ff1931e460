//! Functions that import functions.
//!
//! When a component imports an interface no capability provides, deploy looks
//! for a deployed function that exports it among those its `functions` grant
//! names, and links each imported function to a host bridge. A call through
//! the bridge resolves the callee's *active* version at call time and runs it
//! in a store of its own, with its own grants and limits: the caller cannot
//! reach the callee's capabilities, and redeploying the callee changes the
//! answer at once, without redeploying the caller.
//!
//! `wasmtime::component::Linker` cannot wire one component's exports into
//! another's imports at run time, and static composition would put both in
//! one store with the caller's grants; hence the bridge. It carries plain
//! values only (no resources, streams or futures), checked at deploy.

use super::invoke::classify;
use super::state::InvocationState;
use super::{Failure, InvalidComponent, Limits, Monitor, Prepared, Runtime};
use crate::db::Caller;
use crate::grants::Grants;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::Engine;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Linker, Type, Val};

/// A deployed function version as the runtime needs it to call into it.
pub struct Loaded {
    /// Version number.
    pub version: i64,
    /// SHA-256 of its component (hex).
    pub hash: String,
    /// Its limits.
    pub limits: Limits,
    /// The compiled, pre-linked component.
    pub prepared: Prepared,
}

/// One finished cross-function call, for the callee's invocation log.
pub struct CallRecord<'a> {
    /// The callee.
    pub function: &'a str,
    /// The callee's version that ran.
    pub version: i64,
    /// `interface#function` that was called.
    pub target: String,
    /// The failure that ended it, if any.
    pub failure: Option<Failure>,
    /// How long it took.
    pub duration: Duration,
    /// What the callee printed.
    pub monitor: &'a Monitor,
}

/// Where the runtime finds deployed functions: the functions service's
/// table of active versions.
pub trait Callees: Send + Sync + 'static {
    /// The active version of `function`, if deployed.
    fn active(&self, function: &str) -> Option<Arc<Loaded>>;
    /// Functions whose active version exports `interface`, by name.
    fn exporting(&self, interface: &str) -> Vec<String>;
    /// Records a finished cross-function call.
    fn record_call(&self, call: CallRecord<'_>);
}

/// An import satisfied by another function's export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The interface, as the importer names it (`example:pricing/quote@0.1.0`).
    pub interface: String,
    /// The function that exports it.
    pub function: String,
}

/// An import no capability provides, with its type.
pub(super) struct ForeignImport {
    pub name: String,
    pub ty: ComponentItem,
}

/// Finds, for each foreign import, the granted function exporting it.
pub(super) fn resolve(
    engine: &Engine,
    importer: &str,
    imports: &[ForeignImport],
    grants: &Grants,
    callees: &dyn Callees,
) -> Result<Vec<Link>, InvalidComponent> {
    let mut links = Vec::new();
    let mut unprovided = Vec::new();
    let mut ungranted = Vec::new();
    for import in imports {
        check_plain(engine, import)?;
        let exporters = callees.exporting(&import.name);
        match exporters.iter().find(|f| grants.functions.contains(f)) {
            Some(function) => links.push(Link {
                interface: import.name.clone(),
                function: function.clone(),
            }),
            None => match exporters.into_iter().next() {
                Some(function) => ungranted.push((import.name.clone(), function)),
                None => unprovided.push(import.name.clone()),
            },
        }
    }
    if !unprovided.is_empty() {
        return Err(InvalidComponent {
            message: format!(
                "the component imports interfaces that neither Aura nor any deployed function provides: {}",
                unprovided.join(", ")
            ),
            unknown_imports: unprovided,
            ..InvalidComponent::new("")
        });
    }
    if !ungranted.is_empty() {
        let list: Vec<String> = ungranted
            .iter()
            .map(|(interface, function)| {
                format!(
                    "{interface} is exported by `{function}`: add \"{function}\" to `functions`"
                )
            })
            .collect();
        return Err(InvalidComponent {
            code: "missing_grant",
            message: format!(
                "the component imports interfaces its grants do not allow: {} under [grants] in aura.toml",
                list.join("; ")
            ),
            missing_grants: ungranted
                .into_iter()
                .map(|(interface, _)| super::MissingGrant {
                    grant: "functions",
                    interface,
                })
                .collect(),
            ..InvalidComponent::new("")
        });
    }
    for link in &links {
        if let Some(path) = cycle(importer, &link.function, callees) {
            return Err(InvalidComponent {
                code: "import_cycle",
                message: format!(
                    "importing {} from `{}` would create a cycle: {}",
                    link.interface,
                    link.function,
                    path.join(" → ")
                ),
                ..InvalidComponent::new("")
            });
        }
    }
    Ok(links)
}

/// The call path from `importer` back to itself through `callee`, if any.
fn cycle(importer: &str, callee: &str, callees: &dyn Callees) -> Option<Vec<String>> {
    let mut path = vec![importer.to_owned(), callee.to_owned()];
    let mut seen = HashSet::new();
    fn walk(
        current: &str,
        importer: &str,
        callees: &dyn Callees,
        path: &mut Vec<String>,
        seen: &mut HashSet<String>,
    ) -> bool {
        if current == importer {
            return true;
        }
        if !seen.insert(current.to_owned()) {
            return false;
        }
        let Some(loaded) = callees.active(current) else {
            return false;
        };
        for link in &loaded.prepared.links {
            path.push(link.function.clone());
            if walk(&link.function, importer, callees, path, seen) {
                return true;
            }
            path.pop();
        }
        false
    }
    walk(callee, importer, callees, &mut path, &mut seen).then_some(path)
}

/// Refuses interfaces whose functions carry resources, streams or futures.
fn check_plain(engine: &Engine, import: &ForeignImport) -> Result<(), InvalidComponent> {
    let ComponentItem::ComponentInstance(instance) = &import.ty else {
        return Err(InvalidComponent::new(format!(
            "the component imports `{}`, which is not an interface",
            import.name
        )));
    };
    for (name, export) in instance.exports(engine) {
        let plain = match &export.ty {
            ComponentItem::ComponentFunc(func) => {
                func.params().all(|(_, ty)| is_plain(&ty)) && func.results().all(|ty| is_plain(&ty))
            }
            ComponentItem::Type(ty) => is_plain(ty),
            _ => false,
        };
        if !plain {
            return Err(InvalidComponent::new(format!(
                "cross-function calls carry plain values only: `{}#{name}` uses a resource, stream or future",
                import.name
            )));
        }
    }
    Ok(())
}

fn is_plain(ty: &Type) -> bool {
    match ty {
        Type::Bool
        | Type::S8
        | Type::U8
        | Type::S16
        | Type::U16
        | Type::S32
        | Type::U32
        | Type::S64
        | Type::U64
        | Type::Float32
        | Type::Float64
        | Type::Char
        | Type::String
        | Type::Enum(_)
        | Type::Flags(_) => true,
        Type::List(list) => is_plain(&list.ty()),
        Type::Record(record) => record.fields().all(|field| is_plain(&field.ty)),
        Type::Tuple(tuple) => tuple.types().all(|ty| is_plain(&ty)),
        Type::Variant(variant) => variant
            .cases()
            .all(|case| case.ty.as_ref().is_none_or(is_plain)),
        Type::Option(option) => is_plain(&option.ty()),
        Type::Result(result) => {
            result.ok().as_ref().is_none_or(is_plain) && result.err().as_ref().is_none_or(is_plain)
        }
        _ => false,
    }
}

/// A linker for an importer: `base` (the capabilities, on the engine that
/// compiled it) plus a bridge for every function of every linked interface.
pub(super) fn linker(
    runtime: &Arc<Runtime>,
    base: &Linker<InvocationState>,
    imports: &[ForeignImport],
    links: &[Link],
    callees: &Arc<dyn Callees>,
) -> Result<Linker<InvocationState>, InvalidComponent> {
    let mut linker = base.clone();
    let link_error = |err: wasmtime::Error| {
        InvalidComponent::new(format!("the component cannot be linked: {err:#}"))
    };
    for link in links {
        let Some(ComponentItem::ComponentInstance(instance)) = imports
            .iter()
            .find(|i| i.name == link.interface)
            .map(|i| &i.ty)
        else {
            continue;
        };
        let mut bridge = linker.instance(&link.interface).map_err(link_error)?;
        for (name, export) in instance.exports(base.engine()) {
            if !matches!(export.ty, ComponentItem::ComponentFunc(_)) {
                continue;
            }
            let target = Target {
                runtime: Arc::downgrade(runtime),
                callees: callees.clone(),
                function: link.function.clone(),
                interface: link.interface.clone(),
                name: name.to_owned(),
            };
            let target = Arc::new(target);
            bridge
                .func_new_async(name, move |store, _ty: ComponentFunc, params, results| {
                    let target = target.clone();
                    // The callee acts for the same user as the caller.
                    let caller = store.data().invoker().clone();
                    Box::new(async move { target.call(caller, params, results).await })
                })
                .map_err(link_error)?;
        }
    }
    Ok(linker)
}

/// What a bridge function calls.
struct Target {
    runtime: std::sync::Weak<Runtime>,
    callees: Arc<dyn Callees>,
    function: String,
    interface: String,
    name: String,
}

impl Target {
    async fn call(
        &self,
        caller: Caller,
        params: &[Val],
        results: &mut [Val],
    ) -> wasmtime::Result<()> {
        let runtime = self
            .runtime
            .upgrade()
            .ok_or_else(|| wasmtime::format_err!("the runtime is shutting down"))?;
        let callee = self
            .callees
            .active(&self.function)
            .ok_or_else(|| wasmtime::format_err!("function `{}` is not deployed", self.function))?;
        let started = Instant::now();
        let monitor = Arc::new(Monitor::default());
        let result = runtime
            .call_export(
                &callee,
                (&self.interface, &self.name),
                params,
                results,
                monitor.clone(),
                caller,
            )
            .await;
        let failure = result.err();
        self.callees.record_call(CallRecord {
            function: &self.function,
            version: callee.version,
            target: format!("{}#{}", self.interface, self.name),
            failure: failure.clone(),
            duration: started.elapsed(),
            monitor: &monitor,
        });
        match failure {
            None => Ok(()),
            Some(failure) => Err(wasmtime::format_err!(
                "call to `{}` ({}#{}) failed: {failure}",
                self.function,
                self.interface,
                self.name
            )),
        }
    }
}

impl Runtime {
    /// Runs `interface#name` of a deployed function in a fresh store under
    /// its own limits.
    async fn call_export(
        &self,
        callee: &Loaded,
        (interface, name): (&str, &str),
        params: &[Val],
        results: &mut [Val],
        monitor: Arc<Monitor>,
        caller: Caller,
    ) -> Result<(), Failure> {
        let limits = callee.limits;
        let mut store = self.new_store(&callee.prepared, &limits, monitor.clone(), caller);
        let run = async {
            let instance = callee
                .prepared
                .pre
                .instance_pre()
                .instantiate_async(&mut store)
                .await
                .map_err(|err| classify(&err, &limits, &monitor, true))?;
            let func = instance
                .get_export_index(&mut store, None, interface)
                .and_then(|index| instance.get_export_index(&mut store, Some(&index), name))
                .and_then(|index| instance.get_func(&mut store, index))
                .ok_or_else(|| {
                    Failure::Trapped(format!(
                        "the active version does not export {interface}#{name}"
                    ))
                })?;
            func.call_async(&mut store, params, results)
                .await
                .map_err(|err| classify(&err, &limits, &monitor, false))
        };
        match tokio::time::timeout(Duration::from_millis(limits.timeout_ms), run).await {
            Ok(result) => result,
            Err(_elapsed) => Err(Failure::Timeout),
        }
    }
}
