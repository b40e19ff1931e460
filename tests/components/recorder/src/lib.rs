//! Test component `recorder`: prints the request it received to stdout —
//! method, path, the `x-aura-*` headers and the body — and answers 200.
//! Used to check what the scheduler sends.

use aura_sdk::{Request, Response};

fn handle(req: Request) -> Response {
    println!("{} {}", req.method(), req.path());
    for (name, value) in req.headers() {
        if name.starts_with("x-aura-") || name == "content-type" {
            println!("{name}: {value}");
        }
    }
    let body = req.body_bytes().unwrap_or_default();
    println!("{}", String::from_utf8_lossy(&body));
    Response::text(200, "recorded\n")
}

aura_sdk::http_function!(handle);
