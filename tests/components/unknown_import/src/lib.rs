//! Test component `unknown_import`: imports `aura-test:nonexistent/widgets`,
//! which the host does not provide, and calls it from its handler so the
//! import survives into the final component. The host must refuse it
//! cleanly. Used by the end-to-end tests.

mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "aura-test:nonexistent/needs-widgets",
    });
}

use aura_sdk::{Request, Response};

fn handle(_req: Request) -> Response {
    let x = bindings::aura_test::nonexistent::widgets::frob(41);
    Response::text(200, format!("frob(41) = {x}\n"))
}

aura_sdk::http_function!(handle);
