//! Host bindings of the `aura:platform` interfaces (`wit/`). Interfaces
//! whose calls wait on I/O (`db`) are generated as async.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "aura:platform/platform",
    imports: {
        "aura:platform/db": async,
        "aura:platform/auth": async,
        "aura:platform/storage": async,
        "aura:platform/secrets": async,
    },
    with: {
        "aura:platform/storage.reader": super::storage::Reader,
        "aura:platform/storage.writer": super::storage::Writer,
    },
});
