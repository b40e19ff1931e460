//! Object keys and bucket names, from any text: the validators never
//! panic, and what they accept has none of the properties they exist to
//! refuse.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The host's validators themselves, compiled without the server around them.
#[allow(dead_code)]
#[path = "../../host/src/storage/names.rs"]
mod names;

fuzz_target!(|data: &[u8]| {
    let Ok(key) = std::str::from_utf8(data) else {
        return;
    };
    if names::key_problem(key).is_none() {
        assert!(!key.is_empty() && key.len() <= names::MAX_KEY_BYTES);
        assert!(!key.chars().any(char::is_control), "{key:?}");
        assert!(!key.starts_with('/') && !key.contains('\\') && !key.contains("//"));
        assert!(key.split('/').all(|s| s != "." && s != ".."), "{key:?}");
    }
    if names::bucket_problem(key).is_none() {
        assert!((3..=63).contains(&key.len()), "{key:?}");
        assert!(
            key.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        );
    }
});
