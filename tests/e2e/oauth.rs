//! Signing in with OAuth providers: a fake OpenID Connect issuer and a fake
//! GitHub, both run by the test on loopback, with real redirects, PKCE,
//! state, nonce and ES256-signed ID tokens checked against a JWKS.

use crate::support::{Aura, assert_error};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const CLIENT_ID: &str = "aura-test-client";
const CLIENT_SECRET: &str = "s3cret-of-the-client";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Who is signed in at the provider.
#[derive(Clone)]
struct Person {
    sub: String,
    email: String,
    verified: bool,
    name: String,
}

struct Grant {
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    person: Person,
}

struct Provider {
    url: String,
    person: Option<Person>,
    grants: HashMap<String, Grant>,
    tokens: HashMap<String, Person>,
    key: jsonwebtoken::EncodingKey,
    /// Signs ID tokens with this key instead (same kid): a forgery.
    forger: Option<jsonwebtoken::EncodingKey>,
    jwk: Value,
}

type Shared = Arc<Mutex<Provider>>;

/// A fake identity provider: OpenID Connect at `/`, GitHub's OAuth at
/// `/login/oauth/*` and its API at `/api`.
struct FakeProvider {
    url: String,
    state: Shared,
}

fn es256_key() -> (jsonwebtoken::EncodingKey, Value) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let point = pair.public_key_raw();
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": "test-key",
        "x": b64(&point[1..33]), "y": b64(&point[33..65]),
    });
    (
        jsonwebtoken::EncodingKey::from_ec_der(&pair.serialize_der()),
        jwk,
    )
}

impl FakeProvider {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (key, jwk) = es256_key();
        let state = Arc::new(Mutex::new(Provider {
            url: url.clone(),
            person: None,
            grants: HashMap::new(),
            tokens: HashMap::new(),
            key,
            forger: None,
            jwk,
        }));
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/token", post(oidc_token))
            .route("/jwks", get(jwks))
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(github_token))
            .route("/api/user", get(github_user))
            .route("/api/user/emails", get(github_emails))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    fn sign_in_as(&self, sub: &str, email: &str, verified: bool) {
        self.state.lock().unwrap().person = Some(Person {
            sub: sub.into(),
            email: email.into(),
            verified,
            name: format!("Person {sub}"),
        });
    }

    fn forge(&self) {
        self.state.lock().unwrap().forger = Some(es256_key().0);
    }

    /// A providers file naming this fake as `corp` (OpenID Connect) and
    /// `github`.
    fn config(&self, dir: &std::path::Path) -> String {
        let path = dir.join("oauth.toml");
        std::fs::write(
            &path,
            format!(
                r#"[corp]
issuer = "{url}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"

[github]
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
authorize_url = "{url}/login/oauth/authorize"
token_url = "{url}/login/oauth/access_token"
api_url = "{url}/api"
"#,
                url = self.url
            ),
        )
        .unwrap();
        path.to_str().unwrap().to_owned()
    }
}

async fn discovery(State(state): State<Shared>) -> impl IntoResponse {
    let url = state.lock().unwrap().url.clone();
    axum::Json(json!({
        "issuer": url,
        "authorization_endpoint": format!("{url}/authorize"),
        "token_endpoint": format!("{url}/token"),
        "jwks_uri": format!("{url}/jwks"),
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
    }))
}

async fn jwks(State(state): State<Shared>) -> impl IntoResponse {
    axum::Json(json!({ "keys": [state.lock().unwrap().jwk.clone()] }))
}

/// Consent at once for whoever is signed in; answers the redirect.
async fn authorize(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut provider = state.lock().unwrap();
    assert_eq!(query["client_id"], CLIENT_ID);
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["code_challenge_method"], "S256");
    let redirect = &query["redirect_uri"];
    let mut location = url::Url::parse(redirect).unwrap();
    if let Some(error) = query.get("login_hint").filter(|h| *h == "deny") {
        location
            .query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("state", &query["state"])
            .append_pair("error_description", error);
    } else {
        let code = b64(&rand::random::<[u8; 16]>());
        let grant = Grant {
            redirect_uri: redirect.clone(),
            challenge: query["code_challenge"].clone(),
            nonce: query.get("nonce").cloned(),
            person: provider.person.clone().expect("someone signed in"),
        };
        provider.grants.insert(code.clone(), grant);
        location
            .query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", &query["state"]);
    }
    (
        StatusCode::FOUND,
        [(header::LOCATION, location.to_string())],
    )
        .into_response()
}

/// Checks the code, its redirect URI and the PKCE verifier; hands out the
/// grant's person.
fn redeem(provider: &mut Provider, form: &HashMap<String, String>) -> Result<Grant, &'static str> {
    assert_eq!(form["grant_type"], "authorization_code");
    let grant = provider
        .grants
        .remove(&form["code"])
        .ok_or("unknown code")?;
    if grant.redirect_uri != form["redirect_uri"] {
        return Err("redirect_uri differs");
    }
    let challenge = b64(&sha2::Sha256::digest(form["code_verifier"].as_bytes()));
    if challenge != grant.challenge {
        return Err("PKCE verification failed");
    }
    Ok(grant)
}

async fn oidc_token(
    State(state): State<Shared>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let basic = format!("Basic {}", {
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    });
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(&basic)
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let mut provider = state.lock().unwrap();
    let grant = match redeem(&mut provider, &form) {
        Ok(grant) => grant,
        Err(why) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "invalid_grant", "error_description": why})),
            )
                .into_response();
        }
    };
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": provider.url, "aud": CLIENT_ID, "sub": grant.person.sub,
        "iat": now, "exp": now + 300,
        "email": grant.person.email, "email_verified": grant.person.verified,
        "name": grant.person.name, "nonce": grant.nonce,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("test-key".into());
    let key = provider.forger.as_ref().unwrap_or(&provider.key);
    let id_token = jsonwebtoken::encode(&header, &claims, key).unwrap();
    axum::Json(json!({"access_token": "opaque", "token_type": "Bearer", "id_token": id_token}))
        .into_response()
}

/// GitHub takes the client secret in the form and answers errors with 200.
async fn github_token(
    State(state): State<Shared>,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    assert_eq!(form["client_id"], CLIENT_ID);
    assert_eq!(form["client_secret"], CLIENT_SECRET);
    let mut provider = state.lock().unwrap();
    match redeem(&mut provider, &form) {
        Ok(grant) => {
            let token = b64(&rand::random::<[u8; 16]>());
            provider.tokens.insert(token.clone(), grant.person);
            axum::Json(json!({"access_token": token, "token_type": "bearer", "scope": "read:user,user:email"}))
                .into_response()
        }
        Err(_) => axum::Json(json!({"error": "bad_verification_code"})).into_response(),
    }
}

fn github_person(state: &Shared, headers: &HeaderMap) -> Option<Person> {
    let token = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    state.lock().unwrap().tokens.get(token).cloned()
}

async fn github_user(State(state): State<Shared>, headers: HeaderMap) -> Response {
    match github_person(&state, &headers) {
        Some(person) => axum::Json(json!({
            "id": person.sub.parse::<u64>().unwrap(), "login": person.name.replace(' ', "-"), "name": null,
        }))
        .into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn github_emails(State(state): State<Shared>, headers: HeaderMap) -> Response {
    match github_person(&state, &headers) {
        Some(person) => axum::Json(json!([
            {"email": "old@example.org", "primary": false, "verified": true},
            {"email": person.email, "primary": true, "verified": person.verified},
        ]))
        .into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

/// A browser: follows nothing by itself, keeps the `aura_oauth` cookie.
struct Browser {
    http: reqwest::Client,
    cookie: Option<String>,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    async fn get(&mut self, url: &str) -> reqwest::Response {
        let mut request = self.http.get(url);
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let response = request.send().await.unwrap();
        for value in response.headers().get_all(header::SET_COOKIE) {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            if let Some(binding) = pair.strip_prefix("aura_oauth=") {
                self.cookie = (!binding.is_empty()).then(|| format!("aura_oauth={binding}"));
            }
        }
        response
    }

    /// Starts a sign-in; answers the provider's redirect back to Aura.
    async fn via_provider(&mut self, aura: &Aura, start: &str) -> String {
        let started = self.get(&aura.at(start)).await;
        assert_eq!(
            started.status().as_u16(),
            302,
            "start: {:?}",
            started.text().await
        );
        let consent = location(&started);
        let back = self.get(&consent).await;
        assert_eq!(back.status().as_u16(), 302);
        location(&back)
    }

    /// The exchange code Aura hands the app at the end of a sign-in.
    async fn exchange_code(&mut self, aura: &Aura, start: &str) -> String {
        let back = self.via_provider(aura, start).await;
        let done = url::Url::parse(&location(&self.get(&back).await)).unwrap();
        param(&done, "code").unwrap()
    }

    /// The whole dance; answers where Aura sends the browser at the end.
    async fn sign_in(&mut self, aura: &Aura, provider: &str) -> url::Url {
        let callback = self.via_provider(aura, &app_start(aura, provider)).await;
        let done = self.get(&callback).await;
        assert_eq!(done.status().as_u16(), 302, "{:?}", done.text().await);
        url::Url::parse(&location(&done)).unwrap()
    }
}

fn app_start(aura: &Aura, provider: &str) -> String {
    format!(
        "/api/auth/oauth/{provider}?redirect_to={}",
        crate::support::encode(&aura.at("/app/done"))
    )
}

fn location(response: &reqwest::Response) -> String {
    response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned()
}

fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

async fn exchange(aura: &Aura, code: &str) -> reqwest::Response {
    aura.http
        .post(aura.at("/api/auth/oauth/exchange"))
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap()
}

async fn signed_in(aura: &Aura, done: &url::Url) -> Value {
    assert_eq!(done.path(), "/app/done", "{done}");
    let code = param(done, "code").unwrap_or_else(|| panic!("no code in {done}"));
    let response = exchange(aura, &code).await;
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.unwrap()
}

async fn start(fake: &FakeProvider, extra: &[&str]) -> (Aura, tempfile::TempDir) {
    let config_dir = tempfile::tempdir().unwrap();
    let config = fake.config(config_dir.path());
    let mut args = vec!["--oauth-providers", config.as_str()];
    args.extend_from_slice(extra);
    (
        Aura::start_with(tempfile::tempdir().unwrap(), &args),
        config_dir,
    )
}

#[tokio::test]
async fn openid_connect_sign_in_creates_then_returns_to_the_account() {
    let fake = FakeProvider::start().await;
    let (aura, _config) = start(&fake, &[]).await;
    let listed: Value = aura
        .http
        .get(aura.at("/api/auth/oauth"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listed["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["corp", "github"]);
    assert_eq!(listed["providers"][0]["kind"], "oidc");

    fake.sign_in_as("alice-1", "Alice@Example.com", true);
    let mut browser = Browser::new();
    let done = browser.sign_in(&aura, "corp").await;
    let code = param(&done, "code").unwrap();
    let tokens = signed_in(&aura, &done).await;
    let user = &tokens["user"];
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["verified"], true);
    assert_eq!(user["name"], "Person alice-1");
    let access = tokens["accessToken"].as_str().unwrap();

    // The exchange code is single-use.
    assert_error(exchange(&aura, &code).await, 401, "invalid_token").await;

    // The identity is listed, and signs in the same account again, even
    // after the provider's address changes.
    let identities: Value = aura
        .http
        .get(aura.at("/api/auth/identities"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(identities["identities"][0]["provider"], "corp");
    fake.sign_in_as("alice-1", "alice@elsewhere.example", true);
    let again = signed_in(&aura, &browser.sign_in(&aura, "corp").await).await;
    assert_eq!(again["user"]["id"], user["id"]);

    // Cookie mode works like every other sign-in.
    let done = Browser::new().sign_in(&aura, "corp").await;
    let response = aura
        .http
        .post(aura.at("/api/auth/oauth/exchange?session=cookie"))
        .json(&json!({ "code": param(&done, "code").unwrap() }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let cookies: Vec<_> = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        cookies.iter().any(|c| c.starts_with("aura_access=")),
        "{cookies:?}"
    );

    // Unlinking leaves the account; signing in again links it again (the
    // address is verified on both sides).
    let unlinked = aura
        .http
        .delete(aura.at("/api/auth/identities/corp"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(unlinked.status().as_u16(), 204);
    let missing = aura
        .http
        .delete(aura.at("/api/auth/identities/corp"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_error(missing, 404, "not_found").await;

    // The audit log is written in the background.
    let mut linked = 0;
    for _ in 0..50 {
        let (_, audit) = aura
            .admin_get("/api/admin/audit?event=identity_linked")
            .await;
        linked = audit["entries"].as_array().map_or(0, Vec::len);
        if linked > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(linked, 1);
}

#[tokio::test]
async fn oauth_refuses_bad_state_pkce_tokens_and_redirects() {
    let fake = FakeProvider::start().await;
    let (aura, _config) = start(&fake, &[]).await;
    fake.sign_in_as("mallory-1", "mallory@example.com", true);

    // Unknown provider, foreign redirect target, bad query.
    let mut browser = Browser::new();
    assert_error(
        browser
            .get(&aura.at("/api/auth/oauth/nope?redirect_to=x"))
            .await,
        404,
        "not_found",
    )
    .await;
    let foreign = format!(
        "/api/auth/oauth/corp?redirect_to={}",
        crate::support::encode("https://evil.example/steal")
    );
    assert_error(browser.get(&aura.at(&foreign)).await, 400, "invalid_input").await;
    assert_error(
        browser.get(&aura.at("/api/auth/oauth/corp")).await,
        400,
        "invalid_input",
    )
    .await;

    // A forged state, or none.
    let forged = aura.at("/api/auth/oauth/corp/callback?code=x&state=forged");
    assert_error(browser.get(&forged).await, 400, "invalid_state").await;
    assert_error(
        browser
            .get(&aura.at("/api/auth/oauth/corp/callback?code=x"))
            .await,
        400,
        "invalid_state",
    )
    .await;

    // A callback in another browser than the one that started (login CSRF).
    let callback = browser.via_provider(&aura, &app_start(&aura, "corp")).await;
    assert_error(Browser::new().get(&callback).await, 400, "invalid_state").await;
    // ...and the state is still good in its own browser, once.
    let done = browser.get(&callback).await;
    assert_eq!(done.status().as_u16(), 302);
    assert!(location(&done).contains("code="));
    let replay = browser.get(&callback).await;
    assert_error(replay, 400, "invalid_state").await;

    // PKCE: a code issued to browser A's sign-in, presented with browser
    // B's state, is refused by the provider (B's verifier does not match).
    let mut a = Browser::new();
    let mut b = Browser::new();
    let a_back = url::Url::parse(&a.via_provider(&aura, &app_start(&aura, "corp")).await).unwrap();
    let b_back = url::Url::parse(&b.via_provider(&aura, &app_start(&aura, "corp")).await).unwrap();
    let crossed = format!(
        "{}?code={}&state={}",
        aura.at("/api/auth/oauth/corp/callback"),
        param(&a_back, "code").unwrap(),
        param(&b_back, "state").unwrap()
    );
    let refused = url::Url::parse(&location(&b.get(&crossed).await)).unwrap();
    assert_eq!(param(&refused, "error").as_deref(), Some("oauth_failed"));
    assert!(
        param(&refused, "error_description")
            .unwrap()
            .contains("PKCE"),
        "{refused}"
    );
    assert!(param(&refused, "code").is_none());

    // The user declines at the provider.
    let mut c = Browser::new();
    let started = c.get(&aura.at(&app_start(&aura, "corp"))).await;
    let consent = format!("{}&login_hint=deny", location(&started));
    let back = location(&c.get(&consent).await);
    let refused = url::Url::parse(&location(&c.get(&back).await)).unwrap();
    assert_eq!(param(&refused, "error").as_deref(), Some("oauth_failed"));

    // An ID token signed by another key is refused.
    fake.forge();
    let refused = Browser::new().sign_in(&aura, "corp").await;
    assert_eq!(param(&refused, "error").as_deref(), Some("oauth_failed"));
    assert!(
        param(&refused, "error_description")
            .unwrap()
            .contains("ID token"),
        "{refused}"
    );
    assert!(param(&refused, "code").is_none());
}

#[tokio::test]
async fn the_app_may_bind_the_exchange_code_with_its_own_pkce() {
    let fake = FakeProvider::start().await;
    let (aura, _config) = start(&fake, &[]).await;
    fake.sign_in_as("pat-1", "pat@example.com", true);
    let verifier = "an-app-verifier-of-enough-length-0123456789abcdef";
    let challenge = b64(&sha2::Sha256::digest(verifier.as_bytes()));
    let start = format!("{}&code_challenge={challenge}", app_start(&aura, "corp"));
    let mut browser = Browser::new();
    let code = browser.exchange_code(&aura, &start).await;
    let stolen = exchange(&aura, &code).await;
    assert_error(stolen, 401, "invalid_token").await;

    let code = browser.exchange_code(&aura, &start).await;
    let response = aura
        .http
        .post(aura.at("/api/auth/oauth/exchange"))
        .json(&json!({ "code": code, "codeVerifier": verifier }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email"], "pat@example.com");

    let bad = format!("{}&code_challenge=short", app_start(&aura, "corp"));
    assert_error(
        Browser::new().get(&aura.at(&bad)).await,
        400,
        "invalid_input",
    )
    .await;
}

#[tokio::test]
async fn identities_join_accounts_only_by_addresses_verified_on_both_sides() {
    let fake = FakeProvider::start().await;
    let (aura, _config) = start(&fake, &[]).await;

    // An unconfirmed account (whoever registered it has not proven the
    // address) is not joined.
    let registered = aura
        .http
        .post(aura.at("/api/auth/register"))
        .json(&json!({"email": "bob@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status().as_u16(), 201);
    fake.sign_in_as("bob-1", "bob@example.com", true);
    let refused = Browser::new().sign_in(&aura, "corp").await;
    assert_eq!(param(&refused, "error").as_deref(), Some("account_exists"));

    // A confirmed account (here by a magic link read from the outbox) is.
    let sent = aura
        .http
        .post(aura.at("/api/auth/magic-link"))
        .json(&json!({"email": "carol@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status().as_u16(), 202);
    let (_, outbox) = aura.admin_get("/api/admin/outbox").await;
    let text = outbox["messages"][0]["text"].as_str().unwrap();
    let link = text
        .split_whitespace()
        .find(|w| w.starts_with("http"))
        .unwrap();
    let by_link: Value = aura
        .http
        .get(link)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let carol = by_link["user"]["id"].clone();
    assert!(carol.is_string(), "{by_link}");
    fake.sign_in_as("carol-1", "carol@example.com", true);
    let joined = signed_in(&aura, &Browser::new().sign_in(&aura, "corp").await).await;
    assert_eq!(joined["user"]["id"], carol);

    // An address the provider did not verify joins nothing and makes
    // nothing.
    fake.sign_in_as("carol-2", "carol@example.com", false);
    let refused = Browser::new().sign_in(&aura, "corp").await;
    assert_eq!(param(&refused, "error").as_deref(), Some("oauth_failed"));
    fake.sign_in_as("dave-1", "dave@example.com", false);
    let refused = Browser::new().sign_in(&aura, "corp").await;
    assert_eq!(param(&refused, "error").as_deref(), Some("oauth_failed"));
    assert!(
        param(&refused, "error_description")
            .unwrap()
            .contains("has not verified")
    );
    let (_, users) = aura
        .admin_get("/api/collections/users/records?filter=email%3D'dave%40example.com'")
        .await;
    assert_eq!(users["totalItems"], 0, "{users}");
}

#[tokio::test]
async fn github_preset_signs_in_with_the_verified_primary_address() {
    let fake = FakeProvider::start().await;
    let (aura, _config) = start(&fake, &[]).await;
    fake.sign_in_as("4242", "octo@example.com", true);
    let tokens = signed_in(&aura, &Browser::new().sign_in(&aura, "github").await).await;
    assert_eq!(tokens["user"]["email"], "octo@example.com");
    assert_eq!(tokens["user"]["verified"], true);
    assert_eq!(tokens["user"]["name"], "Person-4242");
    let again = signed_in(&aura, &Browser::new().sign_in(&aura, "github").await).await;
    assert_eq!(again["user"]["id"], tokens["user"]["id"]);
}

#[tokio::test]
async fn a_bad_providers_file_stops_the_start_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oauth.toml");
    std::fs::write(&path, "[corp]\nclient_id = \"x\"\nclient_secret = \"y\"\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_aura"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--s3-addr",
            "off",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .arg("--oauth-providers")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("needs `issuer`"), "{stderr}");
}
