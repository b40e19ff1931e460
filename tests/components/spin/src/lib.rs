//! Test component `spin`: loops forever without calling the host, so only the
//! host's epoch-based CPU timeout can stop it. Used by the end-to-end tests.

fn handle(_req: aura_sdk::Request) -> aura_sdk::Response {
    let mut x: u64 = 0;
    loop {
        // `black_box` keeps the otherwise side-effect-free loop from being
        // optimized away.
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

aura_sdk::http_function!(handle);
