//! The capabilities the host offers to functions, and deploy-time checks of
//! a component against them.
//!
//! The linker is assembled from [`CAPABILITIES`]: each entry names the WIT
//! interfaces it provides and adds their host implementation. Deploy refuses a
//! component that imports anything no capability provides, listing every such
//! import by name, so an author sees the whole problem at once.

use super::InvalidComponent;
use super::state::InvocationState;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// One capability: the interfaces it provides and how it links them.
struct Capability {
    /// Interface names without version (`wasi:io/streams`).
    interfaces: &'static [&'static str],
    add_to_linker: fn(&mut Linker<InvocationState>) -> wasmtime::Result<()>,
}

/// Everything a function can import today. Sockets are linked, but the
/// per-invocation WASI context allows no TCP, UDP or name lookup.
const CAPABILITIES: &[Capability] = &[
    Capability {
        interfaces: &[
            "wasi:io/error",
            "wasi:io/poll",
            "wasi:io/streams",
            "wasi:clocks/wall-clock",
            "wasi:clocks/monotonic-clock",
            "wasi:random/random",
            "wasi:random/insecure",
            "wasi:random/insecure-seed",
            "wasi:cli/exit",
            "wasi:cli/environment",
            "wasi:cli/stdin",
            "wasi:cli/stdout",
            "wasi:cli/stderr",
            "wasi:cli/terminal-input",
            "wasi:cli/terminal-output",
            "wasi:cli/terminal-stdin",
            "wasi:cli/terminal-stdout",
            "wasi:cli/terminal-stderr",
            "wasi:filesystem/types",
            "wasi:filesystem/preopens",
            "wasi:sockets/network",
            "wasi:sockets/instance-network",
            "wasi:sockets/tcp",
            "wasi:sockets/tcp-create-socket",
            "wasi:sockets/udp",
            "wasi:sockets/udp-create-socket",
            "wasi:sockets/ip-name-lookup",
        ],
        add_to_linker: wasmtime_wasi::p2::add_to_linker_async::<InvocationState>,
    },
    Capability {
        interfaces: &["wasi:http/types", "wasi:http/outgoing-handler"],
        add_to_linker: wasmtime_wasi_http::p2::add_only_http_to_linker_async::<InvocationState>,
    },
];

/// The export every HTTP function must provide (any 0.2.x version).
const HTTP_HANDLER_EXPORT: &str = "wasi:http/incoming-handler@0.2";

/// Builds the linker from the capability list.
pub(super) fn linker(engine: &Engine) -> wasmtime::Result<Linker<InvocationState>> {
    let mut linker = Linker::new(engine);
    for capability in CAPABILITIES {
        (capability.add_to_linker)(&mut linker)?;
    }
    Ok(linker)
}

/// Refuses anything that is not a WebAssembly component, saying what it is.
pub(super) fn check_format(wasm: &[u8]) -> Result<(), InvalidComponent> {
    if wasmparser::Parser::is_component(wasm) {
        Ok(())
    } else if wasmparser::Parser::is_core_wasm(wasm) {
        Err(InvalidComponent::new(
            "this is a core WebAssembly module, not a component: build it for the \
             `wasm32-wasip2` target (or wrap it with `wasm-tools component new`)",
        ))
    } else {
        Err(InvalidComponent::new(
            "this is not a WebAssembly component: it does not start with the `\\0asm` header",
        ))
    }
}

/// Checks the component's imports and exports against what Aura provides
/// and pre-links it.
pub(super) fn pre_link(
    engine: &Engine,
    linker: &Linker<InvocationState>,
    component: &Component,
) -> Result<ProxyPre<InvocationState>, InvalidComponent> {
    let ty = component.component_type();
    let unknown: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name)
        .filter(|name| !is_provided(name))
        .map(str::to_owned)
        .collect();
    if !unknown.is_empty() {
        return Err(InvalidComponent {
            message: format!(
                "the component imports interfaces Aura does not provide: {}",
                unknown.join(", ")
            ),
            unknown_imports: unknown,
        });
    }
    if !ty
        .exports(engine)
        .any(|(name, _)| name.starts_with(HTTP_HANDLER_EXPORT))
    {
        return Err(InvalidComponent::new(
            "the component does not export `wasi:http/incoming-handler`: HTTP functions \
             must target the `wasi:http/proxy` world",
        ));
    }
    let pre = linker
        .instantiate_pre(component)
        .map_err(|err| InvalidComponent::new(format!("the component cannot be linked: {err:#}")))?;
    ProxyPre::new(pre).map_err(|err| {
        InvalidComponent::new(format!(
            "the component's HTTP handler export is unusable: {err:#}"
        ))
    })
}

fn is_provided(import: &str) -> bool {
    let unversioned = import.split_once('@').map_or(import, |(name, _)| name);
    CAPABILITIES
        .iter()
        .any(|capability| capability.interfaces.contains(&unversioned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_wasi_imports_are_provided() {
        assert!(is_provided("wasi:io/streams@0.2.6"));
        assert!(is_provided("wasi:http/types@0.2.0"));
        assert!(!is_provided("aura-test:nonexistent/widgets"));
        assert!(!is_provided("wasi:http/incoming-handler@0.2.6"));
    }

    #[test]
    fn core_module_is_named_as_such() {
        let core = b"\0asm\x01\0\0\0";
        let err = check_format(core).unwrap_err();
        assert!(
            err.message.contains("core WebAssembly module"),
            "{}",
            err.message
        );
    }

    #[test]
    fn random_bytes_are_not_a_component() {
        let err = check_format(b"definitely not wasm").unwrap_err();
        assert!(
            err.message.contains("not a WebAssembly component"),
            "{}",
            err.message
        );
    }
}
