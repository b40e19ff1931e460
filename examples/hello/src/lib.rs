//! `hello`: the smallest Aura function. Answers every request with a fixed
//! greeting and logs one line to stdout and one to stderr.

use aura_sdk::{Request, Response};

fn handle(req: Request) -> Response {
    println!("hello: {} {}", req.method(), req.path());
    let response = Response::text(200, "Hello from Aura!\n");
    eprintln!("hello: done");
    response
}

aura_sdk::http_function!(handle);
