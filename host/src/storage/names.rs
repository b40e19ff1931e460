//! Which bucket names and object keys are accepted.
//!
//! Keys never become file paths (objects are stored under random blob ids),
//! so traversal can't reach the filesystem; these checks stop *confusion*:
//! two keys that look the same, or a key that means something else to a
//! proxy, a browser or another S3 tool.

/// The longest key, in bytes (S3's limit).
pub const MAX_KEY_BYTES: usize = 1024;

/// Why a key is refused, or `None` when it is accepted.
pub fn key_problem(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some("the key is empty".into());
    }
    if key.len() > MAX_KEY_BYTES {
        return Some(format!("the key is longer than {MAX_KEY_BYTES} bytes"));
    }
    if key.chars().any(|c| c.is_control()) {
        return Some("the key contains a control character (NUL, newline…)".into());
    }
    // Bidirectional controls reorder how a key is shown (`txt.exe` can
    // read as `exe.txt`).
    if key
        .chars()
        .any(|c| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}'))
    {
        return Some("the key contains a bidirectional control character".into());
    }
    if key.starts_with('/') {
        return Some("the key starts with `/` (keys are relative)".into());
    }
    if key.contains('\\') {
        return Some("the key contains `\\`".into());
    }
    if key
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Some("the key has a `.` or `..` segment".into());
    }
    if key.contains("//") {
        return Some("the key has an empty segment (`//`)".into());
    }
    // Any Unicode normal form is a key of its own, stored byte for byte
    // as S3 does (macOS file names are often NFD).
    None
}

/// Why a bucket name is refused, or `None` when it is accepted: S3's rules
/// (3–63 characters of `a-z 0-9 . -`, starting and ending with a letter or
/// digit, no `..`, not an IP address).
pub fn bucket_problem(name: &str) -> Option<String> {
    let valid_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !(3..=63).contains(&name.len())
        || !valid_chars
        || !edge(name.bytes().next())
        || !edge(name.bytes().last())
        || name.contains("..")
        || name.parse::<std::net::Ipv4Addr>().is_ok()
    {
        return Some(format!(
            "`{name}` is not a bucket name: 3 to 63 characters of a-z, 0-9, `.` and `-`, starting and ending with a letter or digit"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_could_confuse_are_refused() {
        for good in [
            "a",
            "photos/2026/cat.jpg",
            "with space.txt",
            "ünïcödé.txt",
            "a..b",
            ".hidden",
            "cafe\u{301}.txt",
        ] {
            assert_eq!(key_problem(good), None, "{good}");
        }
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        for bad in [
            "",
            "/etc/passwd",
            "../secret",
            "a/../../b",
            "a/./b",
            "a//b",
            "nul\0byte",
            "invoice\u{202e}fdp.exe",
            "a\u{2066}b",
            "new\nline",
            "back\\slash",
            long.as_str(),
        ] {
            assert!(key_problem(bad).is_some(), "{bad:?} is refused");
        }
    }

    #[test]
    fn bucket_names_follow_s3() {
        for good in ["abc", "my-bucket", "logs.2026", "a1b"] {
            assert_eq!(bucket_problem(good), None, "{good}");
        }
        for bad in [
            "ab",
            "Caps",
            "-start",
            "end-",
            "a..b",
            "192.168.1.1",
            "under_score",
            &"x".repeat(64),
        ] {
            assert!(bucket_problem(bad).is_some(), "{bad}");
        }
    }
}
