//! Environments: two environments with the same collection, function,
//! secret, schedule, bucket, object and user names stay apart; requests
//! choose one by `/env/{name}` or `x-aura-env`; they survive a restart;
//! the CLI creates, lists and switches them.

use crate::support::{Aura, assert_error};
use reqwest::Method;
use serde_json::{Value, json};

/// A request to `path` in environment `env` (by header), with the admin
/// token.
fn admin(aura: &Aura, env: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
    aura.http
        .request(method, aura.at(path))
        .bearer_auth(&aura.token)
        .header("x-aura-env", env)
}

async fn json_of(request: reqwest::RequestBuilder, status: u16) -> Value {
    let response = request.send().await.unwrap();
    let got = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    body
}

/// Sets up the same names in `env`, with `tag` in every value.
async fn populate(aura: &Aura, env: &str, tag: &str) {
    json_of(
        admin(aura, env, Method::PUT, "/api/collections/notes").json(&json!({
            "name": "notes",
            "fields": [{"name": "text", "type": "text"}]
        })),
        201,
    )
    .await;
    json_of(
        admin(aura, env, Method::POST, "/api/collections/notes/records")
            .json(&json!({ "text": tag })),
        201,
    )
    .await;
    json_of(
        admin(aura, env, Method::PUT, "/api/admin/secrets/TOKEN").json(&json!({ "value": tag })),
        200,
    )
    .await;
    let form = reqwest::multipart::Form::new()
        .part(
            "component",
            reqwest::multipart::Part::bytes(crate::support::wasm("vault")).file_name("vault.wasm"),
        )
        .text(
            "config",
            json!({"grants": {"secrets": ["TOKEN"]}}).to_string(),
        );
    json_of(
        admin(
            aura,
            env,
            Method::POST,
            "/api/admin/functions/vault/versions",
        )
        .multipart(form),
        201,
    )
    .await;
    json_of(
        admin(aura, env, Method::POST, "/api/admin/storage/buckets")
            .json(&json!({"name": "files"})),
        201,
    )
    .await;
    json_of(
        admin(aura, env, Method::PUT, "/api/storage/files/readme.txt").body(tag.to_owned()),
        201,
    )
    .await;
}

#[tokio::test]
async fn environments_with_the_same_names_stay_isolated() {
    let aura = Aura::start();
    stay_isolated(&aura).await;

    // Both come back after a restart, apart.
    let dir = aura.stop();
    let aura = Aura::start_in(dir);
    let names = json_of(
        admin(&aura, "default", Method::GET, "/api/admin/environments"),
        200,
    )
    .await;
    assert_eq!(
        names["environments"],
        json!([{"name": "default", "default": true}, {"name": "staging", "default": false}])
    );
    let secret = json_of(
        aura.http.get(aura.at("/env/staging/fn/vault?name=TOKEN")),
        200,
    )
    .await;
    assert_eq!(secret["value"], "from-staging");
    let secret = json_of(aura.http.get(aura.at("/fn/vault?name=TOKEN")), 200).await;
    assert_eq!(secret["value"], "from-default");
}

/// On PostgreSQL, an environment is a schema of the same database.
#[tokio::test]
async fn environments_on_postgres_stay_isolated() {
    if let Some(db) = crate::database::Db::postgres().await {
        stay_isolated(&db.aura).await;
        db.finish().await;
    }
}

async fn stay_isolated(aura: &Aura) {
    let out = aura.cli(&["env", "create", "staging"]);
    assert!(out.status.success(), "{out:?}");
    // The API refuses bad, taken and unknown names clearly.
    let (status, body) = aura
        .admin_post("/api/admin/environments", json!({"name": "Bad_Name"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_name"))
    );
    let (status, body) = aura
        .admin_post("/api/admin/environments", json!({"name": "staging"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("environment_exists"))
    );
    let response = aura
        .http
        .get(aura.at("/env/nope/api/health"))
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "environment_not_found").await;
    let anonymous = aura
        .http
        .get(aura.at("/api/admin/environments"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    populate(aura, "default", "from-default").await;
    populate(aura, "staging", "from-staging").await;
    // A schedule in staging only.
    json_of(
        admin(aura, "staging", Method::PUT, "/api/admin/schedules/nightly")
            .json(&json!({"cron": "0 3 * * *", "function": "vault"})),
        200,
    )
    .await;

    let check = |env: &'static str, tag: &'static str| {
        async move {
            // The prefix and the header reach the same environment.
            let prefix = if env == "default" {
                String::new()
            } else {
                format!("/env/{env}")
            };
            let records = json_of(
                aura.http
                    .get(aura.at(&format!("{prefix}/api/collections/notes/records")))
                    .bearer_auth(&aura.token),
                200,
            )
            .await;
            let texts: Vec<&Value> = records["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| &r["text"])
                .collect();
            assert_eq!(texts, [&json!(tag)], "{env}");
            let secret = json_of(
                aura.http
                    .get(aura.at(&format!("{prefix}/fn/vault?name=TOKEN"))),
                200,
            )
            .await;
            assert_eq!(secret["value"], tag, "{env}");
            let object = admin(aura, env, Method::GET, "/api/storage/files/readme.txt")
                .send()
                .await
                .unwrap();
            assert_eq!(object.text().await.unwrap(), tag, "{env}");
            let schedules =
                json_of(admin(aura, env, Method::GET, "/api/admin/schedules"), 200).await;
            schedules["schedules"].as_array().unwrap().len()
        }
    };
    // URLs handed out keep the environment's prefix.
    let accepted = aura
        .http
        .get(aura.at("/env/staging/fn/vault?name=TOKEN"))
        .header("prefer", "respond-async")
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    let location = accepted.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("/env/staging/api/invocations/"),
        "{location}"
    );
    let status = aura.http.get(aura.at(&location)).send().await.unwrap();
    assert_eq!(status.status(), 200);
    assert_eq!(check("default", "from-default").await, 0);
    assert_eq!(check("staging", "from-staging").await, 1);

    // Users are per environment: one address registers in both.
    for prefix in ["", "/env/staging"] {
        let response = aura
            .http
            .post(aura.at(&format!("{prefix}/api/auth/register")))
            .json(&json!({"email": "same@example.com", "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{prefix}");
        // Cookie sessions are scoped to the environment's prefix.
        let response = aura
            .http
            .post(aura.at(&format!("{prefix}/api/auth/login?session=cookie")))
            .json(&json!({"email": "same@example.com", "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{prefix}");
        // Name and path are the environment's own.
        let cookies: Vec<(String, String)> = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| {
                let v = v.to_str().ok()?;
                let name = v.split('=').next()?.to_owned();
                let path = v.split("; ").find(|a| a.starts_with("Path="))?.to_owned();
                Some((name, path))
            })
            .collect();
        let (root, suffix) = if prefix.is_empty() {
            ("/", "")
        } else {
            (prefix, ".staging")
        };
        assert_eq!(
            cookies,
            [
                (format!("aura_access{suffix}"), format!("Path={root}")),
                (
                    format!("aura_refresh{suffix}"),
                    format!("Path={prefix}/api/auth")
                ),
                (format!("aura_csrf{suffix}"), format!("Path={root}"))
            ],
            "{prefix}"
        );
        // The default environment's session cookie, sent along to another
        // environment (its Path is /), is not that environment's business.
        if prefix.is_empty() {
            let access = response
                .headers()
                .get_all("set-cookie")
                .iter()
                .find_map(|v| {
                    v.to_str()
                        .ok()?
                        .strip_prefix("aura_access=")?
                        .split(';')
                        .next()
                        .map(str::to_owned)
                })
                .unwrap();
            let anonymous = aura
                .http
                .get(aura.at("/env/staging/fn/vault?name=TOKEN"))
                .header("cookie", format!("aura_access={access}"))
                .send()
                .await
                .unwrap();
            assert_eq!(anonymous.status(), 200);
        }
    }

    // The CLI lists them, switches, and acts on the chosen one.
    let out = aura.cli(&["env", "use", "staging"]);
    assert!(out.status.success(), "{out:?}");
    let list = String::from_utf8(aura.cli(&["env", "list"]).stdout).unwrap();
    assert!(
        list.contains("* staging") && list.contains("  default"),
        "{list}"
    );
    let schedules = String::from_utf8(aura.cli(&["schedules", "list"]).stdout).unwrap();
    assert!(schedules.contains("nightly"), "{schedules}");
    let schedules =
        String::from_utf8(aura.cli(&["--env", "default", "schedules", "list"]).stdout).unwrap();
    assert!(!schedules.contains("nightly"), "{schedules}");
    let out = aura.cli(&["env", "use", "nope"]);
    assert!(!out.status.success());
    // Destructive commands name the environment and want --yes without a terminal.
    let out = aura.cli(&["secrets", "unset", "TOKEN"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("environment `staging`")
            && stderr.contains("--yes"),
        "{stderr}"
    );
}
