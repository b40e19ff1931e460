//! Test component `relay`: imports `example:pricing/quote` from another
//! function and exports the same interface with every price doubled. Used to
//! build call chains and cycles in the end-to-end tests, and to change what a
//! caller of "pricing" gets without redeploying the caller.

use aura_sdk::{Request, Response};

mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "aura-test:relay/relay",
        generate_all,
    });
}

use bindings::example::pricing::quote as upstream;

struct Relay;

impl bindings::exports::example::pricing::quote::Guest for Relay {
    fn price(item: String, quantity: u32) -> Result<u64, String> {
        upstream::price(&item, quantity).map(|cents| cents * 2)
    }
}

bindings::export!(Relay with_types_in bindings);

fn handle(_req: Request) -> Response {
    Response::text(200, "relay\n")
}

aura_sdk::http_function!(handle);
