//! Functions that import functions: linking at deploy through grants, calls
//! in the callee's own instance, call-time resolution, and refusals.

use crate::support::{Aura, assert_error, wasm};
use serde_json::{Value, json};

async fn checkout(aura: &Aura, query: &str) -> (u16, Value) {
    let response = aura
        .http
        .get(aura.at(&format!("/fn/checkout?{query}")))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn grant_functions(names: &[&str]) -> Value {
    json!({"grants": {"functions": names}})
}

#[tokio::test]
async fn checkout_calls_pricing_in_pricings_own_instance() {
    let aura = Aura::start();
    aura.deploy("pricing", "pricing", json!({})).await;
    aura.deploy("checkout", "checkout", grant_functions(&["pricing"]))
        .await;

    let (status, body) = checkout(&aura, "item=pear&qty=2").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total_cents"], 150);
    assert_eq!(body["priced_by"], "pricing");
    let (status, body) = checkout(&aura, "item=durian&qty=1").await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("unknown item: durian"))
    );

    // The calls ran as pricing and are logged under pricing.
    let calls = aura
        .invocations_until("pricing", |records| records.len() >= 2)
        .await;
    assert!(calls.iter().all(|r| r["method"] == "CALL"), "{calls:?}");
    assert_eq!(calls[0]["path"], "example:pricing/quote@0.1.0#price");
    assert_eq!(calls[0]["outcome"], "ok");
    assert_eq!(calls[0]["version"], 1);
}

#[tokio::test]
async fn the_callees_grants_do_not_reach_the_importer() {
    let aura = Aura::start();
    aura.deploy(
        "pricing",
        "pricing",
        json!({"grants": {"network": ["api.example.com:443"]}}),
    )
    .await;
    // Importing from a function with network access gives no network access:
    // the importer's own calls are refused.
    let (status, body) = aura
        .deploy_bytes(
            "fetch-proxy",
            wasm("fetch_proxy"),
            grant_functions(&["pricing"]),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let response = aura
        .http
        .get(aura.at("/fn/fetch-proxy?url=https%3A%2F%2Fapi.example.com%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert!(
        response.text().await.unwrap().contains("HttpRequestDenied"),
        "refused before any lookup"
    );
}

#[tokio::test]
async fn the_callee_is_resolved_at_call_time() {
    let aura = Aura::start();
    aura.deploy("base", "pricing", json!({})).await;
    aura.deploy("pricing", "pricing", json!({})).await;
    aura.deploy("checkout", "checkout", grant_functions(&["pricing"]))
        .await;
    assert_eq!(
        checkout(&aura, "item=apple&qty=1").await.1["total_cents"],
        50
    );

    // Redeploy "pricing" as a relay that doubles base's prices: checkout's
    // answer changes without redeploying checkout.
    aura.deploy("pricing", "relay", grant_functions(&["base"]))
        .await;
    assert_eq!(
        checkout(&aura, "item=apple&qty=1").await.1["total_cents"],
        100
    );

    let (status, _) = aura
        .admin_post("/api/admin/functions/pricing/rollback", Value::Null)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        checkout(&aura, "item=apple&qty=1").await.1["total_cents"],
        50
    );
}

#[tokio::test]
async fn a_missing_exporter_is_refused_with_the_interface_named() {
    let aura = Aura::start();
    let (status, body) = aura
        .deploy_bytes("checkout", wasm("checkout"), grant_functions(&["pricing"]))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("invalid_component")),
        "{body}"
    );
    assert_eq!(
        body["error"]["details"]["unknown_imports"],
        json!(["example:pricing/quote@0.1.0"])
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.ends_with(
            "neither Aura nor any deployed function provides: example:pricing/quote@0.1.0"
        ),
        "{body}"
    );
}

#[tokio::test]
async fn an_exporter_that_is_not_granted_is_named() {
    let aura = Aura::start();
    aura.deploy("pricing", "pricing", json!({})).await;
    let (status, body) = aura
        .deploy_bytes("checkout", wasm("checkout"), json!({}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("missing_grant")),
        "{body}"
    );
    assert_eq!(
        body["error"]["details"]["missing_grants"],
        json!([{"grant": "functions", "interface": "example:pricing/quote@0.1.0"}])
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("add \"pricing\" to `functions`"),
        "{body}"
    );
}

#[tokio::test]
async fn cycles_are_refused() {
    let aura = Aura::start();
    aura.deploy("base", "pricing", json!({})).await;
    aura.deploy("r1", "relay", grant_functions(&["base"])).await;
    aura.deploy("r2", "relay", grant_functions(&["r1"])).await;

    // r1 importing from r2 (which imports from r1) closes a loop.
    let (status, body) = aura
        .deploy_bytes("r1", wasm("relay"), grant_functions(&["r2"]))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("import_cycle")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("r1 → r2 → r1"),
        "{body}"
    );

    // A function importing from itself is a cycle too.
    let (status, body) = aura
        .deploy_bytes("r2", wasm("relay"), grant_functions(&["r2"]))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("import_cycle")),
        "{body}"
    );
}

#[tokio::test]
async fn a_function_others_import_cannot_be_deleted_or_broken() {
    let aura = Aura::start();
    aura.deploy("pricing", "pricing", json!({})).await;
    aura.deploy("checkout", "checkout", grant_functions(&["pricing"]))
        .await;

    let response = aura
        .http
        .delete(aura.at("/api/admin/functions/pricing"))
        .bearer_auth(&aura.token)
        .send()
        .await
        .unwrap();
    let body = assert_error(response, 409, "function_in_use").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`checkout` imports example:pricing/quote@0.1.0"),
        "{body}"
    );

    // A version that no longer exports the interface is refused too.
    let (status, body) = aura.deploy_bytes("pricing", wasm("hello"), json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (409, json!("function_in_use")),
        "{body}"
    );
    assert_eq!(
        checkout(&aura, "item=melon&qty=1").await.1["total_cents"],
        300
    );
}

#[tokio::test]
async fn links_survive_a_restart() {
    let aura = Aura::start();
    aura.deploy("pricing", "pricing", json!({})).await;
    aura.deploy("checkout", "checkout", grant_functions(&["pricing"]))
        .await;
    let aura = Aura::start_in(aura.stop());
    let (status, body) = checkout(&aura, "item=apple&qty=3").await;
    assert_eq!(
        (status, body["total_cents"].clone()),
        (200, json!(150)),
        "{body}"
    );
}
