//! Test component `whoami`: answers the caller `aura:platform/auth` names
//! (`null` for nobody), and with `?lookup=ID` the user with that id, or 403
//! / 404 when the lookup is refused.

use aura_sdk::auth::{AuthError, caller, lookup};
use aura_sdk::serde_json::json;
use aura_sdk::{Request, Response};

fn handle(req: Request) -> Response {
    let user = |u: aura_sdk::auth::User| json!({"id": u.id, "email": u.email, "roles": u.roles, "verified": u.verified});
    match req.query_param("lookup").ok().flatten() {
        None => Response::json(200, &json!({ "caller": caller().map(user) })),
        Some(id) => match lookup(&id) {
            Ok(found) => Response::json(200, &user(found)),
            Err(err @ AuthError::Denied(_)) => {
                Response::json(403, &json!({ "error": err.to_string() }))
            }
            Err(err @ AuthError::NotFound(_)) => {
                Response::json(404, &json!({ "error": err.to_string() }))
            }
            Err(err) => Response::json(500, &json!({ "error": err.to_string() })),
        },
    }
}

aura_sdk::http_function!(handle);
