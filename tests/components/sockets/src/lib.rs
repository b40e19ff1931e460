//! Test component `sockets`: opens a TCP connection with
//! `std::net::TcpStream::connect` to the address in `?addr=` (default
//! `127.0.0.1:9`), which makes the component import `wasi:sockets`. Answers
//! 200 `connected` or 502 with the error. Used by the end-to-end tests of
//! the `sockets` grant.

use std::net::TcpStream;

use aura_sdk::{Request, Response};

fn handle(req: Request) -> Response {
    let addr = req
        .query_param("addr")
        .ok()
        .flatten()
        .unwrap_or_else(|| "127.0.0.1:9".to_owned());
    match TcpStream::connect(addr.as_str()) {
        Ok(_stream) => Response::text(200, "connected"),
        Err(e) => Response::text(502, e.to_string()),
    }
}

aura_sdk::http_function!(handle);
