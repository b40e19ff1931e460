//! Test component `vault`: answers the secret named by `?name=` through
//! `aura:platform/secrets` as `{"value": ...}`, 403 when the grant does not
//! name it, 404 when no secret has that name, 400 without `name`, 500 for a
//! server fault.

use aura_sdk::secrets::{Error, get};
use aura_sdk::serde_json::json;
use aura_sdk::{Request, Response};

fn handle(req: Request) -> Response {
    let Some(name) = req.query_param("name").ok().flatten() else {
        return Response::json(
            400,
            &json!({ "error": "bad_request", "message": "missing query parameter `name`" }),
        );
    };
    match get(&name) {
        Ok(value) => Response::json(200, &json!({ "value": value })),
        Err(err @ Error::Denied(_)) => Response::json(
            403,
            &json!({ "error": "denied", "message": err.to_string() }),
        ),
        Err(err @ Error::NotFound(_)) => Response::json(
            404,
            &json!({ "error": "not_found", "message": err.to_string() }),
        ),
        Err(err @ Error::Internal(_)) => Response::json(
            500,
            &json!({ "error": "internal", "message": err.to_string() }),
        ),
    }
}

aura_sdk::http_function!(handle);
