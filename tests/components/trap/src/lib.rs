//! Test component `trap`: logs `about to trap` to stderr, then panics, which
//! traps the component. Used by the end-to-end tests.

fn handle(_req: aura_sdk::Request) -> aura_sdk::Response {
    eprintln!("about to trap");
    panic!("trap: deliberate panic");
}

aura_sdk::http_function!(handle);
