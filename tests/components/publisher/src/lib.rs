//! Test component `publisher`: publishes the request body (JSON) on the
//! channel named by `?channel=` through `aura:platform/events`, and answers
//! 200 with the event id, 403 when the grant does not cover the channel,
//! 400 for other refusals.

use aura_sdk::events::{PublishError, publish};
use aura_sdk::serde_json::{Value, from_slice, json};
use aura_sdk::{Request, Response};

fn handle(req: Request) -> Response {
    let channel = req
        .query_param("channel")
        .ok()
        .flatten()
        .unwrap_or_default();
    let data: Value = from_slice(&req.body_bytes().unwrap_or_default()).unwrap_or(Value::Null);
    match publish(&channel, &data) {
        Ok(id) => Response::json(200, &json!({ "id": id })),
        Err(err @ PublishError::Denied(_)) => {
            Response::json(403, &json!({ "error": err.to_string() }))
        }
        Err(err) => Response::json(400, &json!({ "error": err.to_string() })),
    }
}

aura_sdk::http_function!(handle);
