//! The capabilities the host offers to functions, and deploy-time checks of
//! a component against them.
//!
//! The linker is assembled from [`CAPABILITIES`]: each entry names the WIT
//! interfaces it provides and adds their host implementation. Deploy refuses a
//! component that imports anything no capability provides, listing every such
//! import by name, so an author sees the whole problem at once.
//!
//! The standard WASI imports that language runtimes pull in whether or not
//! the code uses them (`wasi:sockets/*`, `wasi:http/outgoing-handler`) are
//! always linked; without a `network` or `sockets` grant their calls are
//! refused at run time, with a note in the function's log saying which
//! grant would allow them. `aura:platform` interfaces need their grants at
//! deploy.

use super::InvalidComponent;
use super::links::ForeignImport;
use super::state::InvocationState;
use crate::grants::Grants;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// The grant a capability's interfaces need before a component may import them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Requirement {
    /// Always available (network and sockets are checked per call).
    Nothing,
    /// `[grants] events` must list at least one channel pattern.
    Events,
    /// `[grants] collections` must name at least one collection.
    Collections,
    /// `[grants] auth` must be set.
    Auth,
    /// `[grants] buckets` must name at least one bucket.
    Buckets,
    /// `[grants] secrets` must name at least one secret.
    Secrets,
}

/// One capability: the interfaces it provides, the grant they need, and how
/// they are linked.
struct Capability {
    /// Interface names without version (`wasi:io/streams`).
    interfaces: &'static [&'static str],
    requires: Requirement,
    /// Adds the host implementation; `None` where another entry's function
    /// links these interfaces too (wasmtime-wasi adds its interfaces as one set).
    add_to_linker: Option<AddToLinker>,
}

type AddToLinker = fn(&mut Linker<InvocationState>) -> wasmtime::Result<()>;

/// Everything a function can import. Deploy refuses `aura:platform` imports
/// whose grant is missing, so an ungranted platform interface is never
/// linked into a function.
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
        ],
        requires: Requirement::Nothing,
        add_to_linker: Some(wasmtime_wasi::p2::add_to_linker_async::<InvocationState>),
    },
    Capability {
        interfaces: &[
            "wasi:sockets/network",
            "wasi:sockets/instance-network",
            "wasi:sockets/tcp",
            "wasi:sockets/tcp-create-socket",
            "wasi:sockets/udp",
            "wasi:sockets/udp-create-socket",
            "wasi:sockets/ip-name-lookup",
        ],
        requires: Requirement::Nothing,
        add_to_linker: None,
    },
    Capability {
        interfaces: &["wasi:http/types"],
        requires: Requirement::Nothing,
        add_to_linker: Some(
            wasmtime_wasi_http::p2::add_only_http_to_linker_async::<InvocationState>,
        ),
    },
    Capability {
        interfaces: &["wasi:http/outgoing-handler"],
        requires: Requirement::Nothing,
        add_to_linker: None,
    },
    Capability {
        interfaces: &["aura:platform/events"],
        requires: Requirement::Events,
        add_to_linker: Some(super::events::add_to_linker),
    },
    Capability {
        interfaces: &["aura:platform/db"],
        requires: Requirement::Collections,
        add_to_linker: Some(super::db::add_to_linker),
    },
    Capability {
        interfaces: &["aura:platform/auth"],
        requires: Requirement::Auth,
        add_to_linker: Some(super::auth::add_to_linker),
    },
    Capability {
        interfaces: &["aura:platform/storage"],
        requires: Requirement::Buckets,
        add_to_linker: Some(super::storage::add_to_linker),
    },
    Capability {
        interfaces: &["aura:platform/secrets"],
        requires: Requirement::Secrets,
        add_to_linker: Some(super::secrets::add_to_linker),
    },
];

/// The export every HTTP function must provide (any 0.2.x version).
const HTTP_HANDLER_EXPORT: &str = "wasi:http/incoming-handler@0.2";

/// Builds the linker from the capability list.
pub(super) fn linker(engine: &Engine) -> wasmtime::Result<Linker<InvocationState>> {
    let mut linker = Linker::new(engine);
    for add in CAPABILITIES.iter().filter_map(|c| c.add_to_linker) {
        add(&mut linker)?;
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

/// An import the component's grants do not allow.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MissingGrant {
    /// The grant that would allow it (`collections`, `secrets`…).
    pub grant: &'static str,
    /// The imported interface.
    pub interface: String,
}

/// Checks the component's imports against what Aura provides and what
/// `grants` allow, checks its export, and pre-links it.
pub(super) fn pre_link(
    engine: &Engine,
    linker: &Linker<InvocationState>,
    component: &Component,
    grants: &Grants,
) -> Result<ProxyPre<InvocationState>, InvalidComponent> {
    let ty = component.component_type();
    let mut missing = Vec::new();
    for (name, _) in ty.imports(engine) {
        // Imports no capability provides were linked to other functions.
        if let Some(grant) = requirement(name).and_then(|r| unmet(r, grants)) {
            missing.push(MissingGrant {
                grant,
                interface: name.to_owned(),
            });
        }
    }
    if !missing.is_empty() {
        let list: Vec<String> = missing
            .iter()
            .map(|m| format!("{} needs the `{}` grant", m.interface, m.grant))
            .collect();
        return Err(InvalidComponent {
            code: "missing_grant",
            message: format!(
                "the component imports interfaces its grants do not allow: {} (add them under [grants] in aura.toml, \
                 e.g. events = [\"chat.*\"], secrets = [\"API_KEY\"] or collections = {{ todos = \"read-write\" }})",
                list.join("; ")
            ),
            unknown_imports: Vec::new(),
            missing_grants: missing,
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

/// The component's imports that no capability provides: candidates for
/// other functions' exports.
pub(super) fn foreign_imports(engine: &Engine, component: &Component) -> Vec<ForeignImport> {
    component
        .component_type()
        .imports(engine)
        .filter(|(name, _)| {
            requirement(name).is_none()
                && !name.starts_with(super::split::IMPORT_PREFIX)
                && *name != super::split::SNAPSHOT_IMPORT
        })
        .map(|(name, import)| ForeignImport {
            name: name.to_owned(),
            ty: import.ty,
        })
        .collect()
}

/// The grant an import needs, or `None` if no capability provides it.
fn requirement(import: &str) -> Option<Requirement> {
    let unversioned = import.split_once('@').map_or(import, |(name, _)| name);
    CAPABILITIES
        .iter()
        .find(|capability| capability.interfaces.contains(&unversioned))
        .map(|capability| capability.requires)
}

/// The name of the grant `requirement` needs that `grants` lacks.
fn unmet(requirement: Requirement, grants: &Grants) -> Option<&'static str> {
    match requirement {
        Requirement::Nothing => None,
        Requirement::Events if grants.events.is_empty() => Some("events"),
        Requirement::Collections if grants.collections.is_empty() => Some("collections"),
        Requirement::Auth if grants.auth.is_none() => Some("auth"),
        Requirement::Buckets if grants.buckets.is_empty() => Some("buckets"),
        Requirement::Secrets if grants.secrets.is_empty() => Some("secrets"),
        Requirement::Events
        | Requirement::Collections
        | Requirement::Auth
        | Requirement::Buckets
        | Requirement::Secrets => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_wasi_imports_are_provided() {
        assert_eq!(
            requirement("wasi:io/streams@0.2.6"),
            Some(Requirement::Nothing)
        );
        assert_eq!(
            requirement("wasi:http/types@0.2.0"),
            Some(Requirement::Nothing)
        );
        assert_eq!(requirement("aura-test:nonexistent/widgets"), None);
        assert_eq!(requirement("wasi:http/incoming-handler@0.2.6"), None);
    }

    #[test]
    fn network_and_sockets_are_linked_and_platform_interfaces_need_grants() {
        let none = Grants::default();
        for import in [
            "wasi:http/outgoing-handler@0.2.12",
            "wasi:sockets/tcp@0.2.12",
        ] {
            assert_eq!(requirement(import), Some(Requirement::Nothing), "{import}");
        }
        let db = requirement("aura:platform/db@0.1.0").unwrap();
        assert_eq!(unmet(db, &none), Some("collections"));
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
