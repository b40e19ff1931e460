//! Uploaded components, from any bytes, through the rewriting that lets a
//! new build reuse its language engine's code (`host/src/runtime/split.rs`):
//! it never panics, and whatever it makes of a valid component is valid.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The host's rewriting itself, compiled without the server.
#[allow(dead_code)]
#[path = "../../host/src/runtime/split.rs"]
mod split;

fuzz_target!(|data: &[u8]| {
    let Some(split) = split::split(data) else {
        return;
    };
    let valid = |bytes: &[u8]| {
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(bytes)
            .is_ok()
    };
    if valid(data) {
        assert!(
            valid(&split.engine),
            "the engine of a valid component is valid"
        );
        assert!(
            valid(&split.component),
            "the rest of a valid component is valid"
        );
        if let Some(snapshot) = &split.snapshot {
            assert!(
                valid(snapshot),
                "the snapshot of a valid component is valid"
            );
        }
    }
});
