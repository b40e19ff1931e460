//! Grants: what a function may reach beyond its sandbox, checked at deploy
//! (imports) and at run time (outbound destinations and budgets).

use crate::support::{Aura, TlsUpstream, Upstream, encode};
use serde_json::{Value, json};

async fn fetch(aura: &Aura, url: &str) -> (u16, String, String) {
    let response = aura
        .http
        .get(aura.at(&format!("/fn/fetch-proxy?url={}", encode(url))))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let id = response.headers()["x-aura-invocation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    (status, response.text().await.unwrap(), id)
}

/// Runtimes import `wasi:http/outgoing-handler` and `wasi:sockets` whether
/// or not the code uses them: such components deploy without grants, and
/// each call is refused, with the grant that would allow it in the log.
#[tokio::test]
async fn ungranted_network_and_sockets_deploy_and_are_refused_at_each_call() {
    let upstream = Upstream::start().await;
    let aura = Aura::start();
    let (status, body) = aura
        .deploy_bytes(
            "fetch-proxy",
            crate::support::wasm("fetch_proxy"),
            json!({}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _, id) = fetch(&aura, &format!("http://127.0.0.1:{}/hello", upstream.port)).await;
    assert_eq!(status, 502);
    let record = aura.invocation_log("fetch-proxy", &id).await;
    let stderr = record["stderr"].as_str().unwrap();
    assert!(
        stderr.contains("is not in the function's network grants"),
        "{stderr}"
    );
    assert_eq!(upstream.hits(), 0, "nothing went out");

    let (status, body) = aura
        .deploy_bytes("sockets", crate::support::wasm("sockets"), json!({}))
        .await;
    assert_eq!(status, 201, "{body}");
    let response = aura
        .http
        .get(aura.at(&format!("/fn/sockets?addr=127.0.0.1:{}", upstream.port)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let id = response.headers()["x-aura-invocation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let record = aura.invocation_log("sockets", &id).await;
    let stderr = record["stderr"].as_str().unwrap();
    assert!(
        stderr.contains("raw sockets are not granted") && stderr.contains("sockets = true"),
        "{stderr}"
    );
    assert_eq!(upstream.hits(), 0, "no connection was made");
}

#[tokio::test]
async fn malformed_grants_are_refused() {
    let aura = Aura::start();
    let config = json!({"grants": {"network": ["https://api.example.com/path"]}});
    let (status, body) = aura
        .deploy_bytes("fetch-proxy", crate::support::wasm("fetch_proxy"), config)
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("invalid_grants")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("without a scheme"),
        "{body}"
    );
}

#[tokio::test]
async fn outbound_to_an_explicitly_granted_address_works() {
    let upstream = Upstream::start().await;
    let aura = Aura::start();
    let grant = format!("127.0.0.1:{}", upstream.port);
    aura.deploy(
        "fetch-proxy",
        "fetch_proxy",
        json!({"grants": {"network": [grant]}}),
    )
    .await;
    let (status, body, _) =
        fetch(&aura, &format!("http://127.0.0.1:{}/hello", upstream.port)).await;
    assert_eq!((status, body.as_str()), (200, "upstream says hi"));
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn outbound_to_a_host_not_granted_is_refused_and_logged() {
    let upstream = Upstream::start().await;
    let aura = Aura::start();
    aura.deploy(
        "fetch-proxy",
        "fetch_proxy",
        json!({"grants": {"network": ["api.example.com:443"]}}),
    )
    .await;
    let target = format!("127.0.0.1:{}", upstream.port);
    let (status, body, id) = fetch(&aura, &format!("http://{target}/hello")).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");
    assert_eq!(upstream.hits(), 0);
    let record = aura.invocation_log("fetch-proxy", &id).await;
    let stderr = record["stderr"].as_str().unwrap();
    assert!(
        stderr.contains("is not in the function's network grants"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("add \"{target}\" to `network`")),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_wildcard_grant_cannot_reach_loopback_through_dns() {
    let upstream = Upstream::start().await;
    let aura = Aura::start_with(
        tempfile::tempdir().unwrap(),
        &["--resolve", "evil.example.org=127.0.0.1"],
    );
    aura.deploy(
        "fetch-proxy",
        "fetch_proxy",
        json!({"grants": {"network": ["*.example.org:*"]}}),
    )
    .await;
    let (status, body, id) = fetch(
        &aura,
        &format!("http://evil.example.org:{}/hello", upstream.port),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("DestinationIpProhibited"), "{body}");
    assert_eq!(upstream.hits(), 0, "nothing reached the loopback server");
    let record = aura.invocation_log("fetch-proxy", &id).await;
    assert!(
        record["stderr"]
            .as_str()
            .unwrap()
            .contains("private or reserved addresses (127.0.0.1)"),
        "{record}"
    );
}

#[tokio::test]
async fn outbound_budgets_are_enforced() {
    let upstream = Upstream::start().await;
    let aura = Aura::start();
    let grant = format!("127.0.0.1:{}", upstream.port);
    let config = json!({"grants": {"network": [grant]}, "limits": {"max_outbound_requests": 0}});
    aura.deploy("fetch-proxy", "fetch_proxy", config).await;
    let (status, body, _) =
        fetch(&aura, &format!("http://127.0.0.1:{}/hello", upstream.port)).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("ConnectionLimitReached"), "{body}");
    assert_eq!(upstream.hits(), 0);

    let config =
        json!({"grants": {"network": [grant]}, "limits": {"max_outbound_response_bytes": 1048576}});
    aura.deploy("fetch-proxy", "fetch_proxy", config).await;
    let (status, body, _) = fetch(&aura, &format!("http://127.0.0.1:{}/big", upstream.port)).await;
    assert_eq!(status, 502, "a 2 MiB answer over a 1 MiB cap fails: {body}");
    let (status, _, _) = fetch(&aura, &format!("http://127.0.0.1:{}/hello", upstream.port)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn rollback_restores_the_previous_grants() {
    let upstream = Upstream::start().await;
    let aura = Aura::start();
    let url = format!("http://127.0.0.1:{}/hello", upstream.port);
    let grant = format!("127.0.0.1:{}", upstream.port);
    aura.deploy(
        "fetch-proxy",
        "fetch_proxy",
        json!({"grants": {"network": [grant.clone()]}}),
    )
    .await;
    aura.deploy(
        "fetch-proxy",
        "fetch_proxy",
        json!({"grants": {"network": ["api.example.com:443"]}}),
    )
    .await;
    assert_eq!(fetch(&aura, &url).await.0, 502);

    let (status, version) = aura
        .admin_post("/api/admin/functions/fetch-proxy/rollback", Value::Null)
        .await;
    assert_eq!(status, 200);
    assert_eq!(version["grants"]["network"], json!([grant]));
    assert_eq!(fetch(&aura, &url).await.0, 200);

    let (_, versions) = aura
        .admin_get("/api/admin/functions/fetch-proxy/versions")
        .await;
    assert_eq!(
        versions["versions"][0]["grants"]["network"],
        json!(["api.example.com:443"])
    );
    assert_eq!(versions["versions"][1]["grants"]["network"], json!([grant]));
}

#[tokio::test]
async fn sockets_reach_only_granted_addresses() {
    let upstream = Upstream::start().await;
    let aura = Aura::start();
    let grant = format!("127.0.0.1:{}", upstream.port);
    aura.deploy(
        "sockets",
        "sockets",
        json!({"grants": {"sockets": true, "network": [grant.clone()]}}),
    )
    .await;
    let response = aura
        .http
        .get(aura.at(&format!("/fn/sockets?addr={grant}")))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert_eq!(
        (status, response.text().await.unwrap().as_str()),
        (200, "connected")
    );

    let other = Upstream::start().await;
    let response = aura
        .http
        .get(aura.at(&format!("/fn/sockets?addr=127.0.0.1:{}", other.port)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        502,
        "an address no grant names is refused"
    );
}

#[tokio::test]
async fn cli_deploys_with_a_manifest_and_shows_grants() {
    let aura = Aura::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("aura.toml"),
        "[function]\nname = \"proxy\"\n[limits]\ncpu_ms = 750\n[grants]\nnetwork = [\"api.example.com:443\", \"*.example.org\"]\n",
    )
    .unwrap();
    let component = crate::support::wasm_path("fetch_proxy");
    let output = aura.cli_in(dir.path(), &["deploy", &component]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("deployed proxy version 1"));
    assert!(String::from_utf8_lossy(&output.stderr).contains("using manifest aura.toml"));

    let output = aura.cli(&["functions", "grants", "proxy"]);
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        out.contains("network: api.example.com:443, *.example.org"),
        "{out}"
    );
    assert!(out.contains("sockets: false"), "{out}");
    let (_, versions) = aura.admin_get("/api/admin/functions/proxy/versions").await;
    assert_eq!(versions["versions"][0]["limits"]["cpu_ms"], 750);
}

#[tokio::test]
async fn functions_see_no_host_filesystem_or_environment() {
    let aura = Aura::start();
    aura.deploy("sandbox", "sandbox", json!({})).await;
    let response = aura.http.get(aura.at("/fn/sandbox")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["env"], json!([]), "{seen}");
    assert!(seen["args"].as_array().unwrap().len() <= 1, "{seen}");
    for probe in ["root", "cwd", "passwd"] {
        assert!(
            seen[probe]["error"].is_string(),
            "{probe} must fail: {seen}"
        );
    }
}

#[tokio::test]
async fn outbound_https_is_verified_against_the_name() {
    let upstream = TlsUpstream::start("secure.example.org").await;
    let port = upstream.port;
    let aura = Aura::start_with(
        tempfile::tempdir().unwrap(),
        &[
            "--resolve",
            "secure.example.org=127.0.0.1,wrong.example.org=127.0.0.1",
            "--outbound-ca",
            upstream.ca_pem.to_str().unwrap(),
        ],
    );
    let network = json!([
        format!("secure.example.org:{port}"),
        format!("wrong.example.org:{port}"),
        format!("127.0.0.1:{port}")
    ]);
    aura.deploy(
        "fetch-proxy",
        "fetch_proxy",
        json!({"grants": {"network": network}}),
    )
    .await;

    let (status, body, _) = fetch(&aura, &format!("https://secure.example.org:{port}/hello")).await;
    assert_eq!((status, body.as_str()), (200, "secure hi"));

    // Same server, same address, but the certificate does not name the host.
    let (status, body, id) = fetch(&aura, &format!("https://wrong.example.org:{port}/hello")).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("Tls"), "{body}");
    let record = aura.invocation_log("fetch-proxy", &id).await;
    assert!(
        record["stderr"]
            .as_str()
            .unwrap()
            .contains("TLS with `wrong.example.org"),
        "{record}"
    );
}

#[tokio::test]
async fn a_name_reaches_a_private_address_only_when_that_address_is_granted_too() {
    let upstream = Upstream::start().await;
    let port = upstream.port;
    let aura = Aura::start_with(
        tempfile::tempdir().unwrap(),
        &["--resolve", "db.internal=127.0.0.1"],
    );
    let url = format!("http://db.internal:{port}/hello");

    aura.deploy(
        "fetch-proxy",
        "fetch_proxy",
        json!({"grants": {"network": [format!("db.internal:{port}")]}}),
    )
    .await;
    let (status, body, id) = fetch(&aura, &url).await;
    assert_eq!(status, 502, "{body}");
    let record = aura.invocation_log("fetch-proxy", &id).await;
    assert!(
        record["stderr"].as_str().unwrap().contains(&format!(
            "also grant it by address (e.g. \"127.0.0.1:{port}\")"
        )),
        "{record}"
    );

    let network = json!([format!("db.internal:{port}"), format!("127.0.0.1:{port}")]);
    aura.deploy(
        "fetch-proxy",
        "fetch_proxy",
        json!({"grants": {"network": network}}),
    )
    .await;
    let (status, body, _) = fetch(&aura, &url).await;
    assert_eq!((status, body.as_str()), (200, "upstream says hi"));
}
