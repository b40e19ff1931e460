//! Auth flows through the mailbox (password reset, email verification and
//! change, magic links, email codes) against a local SMTP sink, the dev
//! outbox, and two-factor sign-in with an authenticator and recovery codes.

use crate::smtp::SmtpSink;
use crate::support::{Aura, assert_error};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

async fn start() -> (Aura, SmtpSink) {
    let sink = SmtpSink::start().await;
    let aura = Aura::start_with(
        tempfile::tempdir().unwrap(),
        &[
            "--smtp-url",
            &sink.url,
            "--mail-from",
            "Aura <auth@example.test>",
        ],
    );
    (aura, sink)
}

async fn post(aura: &Aura, path: &str, body: Value) -> reqwest::Response {
    aura.http
        .post(aura.at(path))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn post_as(aura: &Aura, path: &str, token: &str, body: Value) -> reqwest::Response {
    aura.http
        .post(aura.at(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let code = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(code, status, "body: {body}");
    body
}

async fn register(aura: &Aura, email: &str) -> Value {
    json_of(
        post(
            aura,
            "/api/auth/register",
            json!({"email": email, "password": PASSWORD}),
        )
        .await,
        201,
    )
    .await
}

async fn login(aura: &Aura, email: &str, password: &str) -> reqwest::Response {
    post(
        aura,
        "/api/auth/login",
        json!({"email": email, "password": password}),
    )
    .await
}

fn access(tokens: &Value) -> String {
    tokens["accessToken"]
        .as_str()
        .expect("access token")
        .to_owned()
}

/// Moves every stored one-time token's expiry into the past.
async fn expire_tokens(aura: &Aura) {
    let path = aura.data_dir().join("collections.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE _aura_auth_tokens SET expires = '2000-01-01T00:00:00.000Z'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

#[tokio::test]
async fn password_reset_is_single_use_expiring_and_ends_sessions() {
    let (aura, sink) = start().await;
    let tokens = register(&aura, "ada@example.com").await;

    // Known and unknown addresses get the same answer; only one gets mail.
    let known = post(
        &aura,
        "/api/auth/password/forgot",
        json!({"email": "Ada@Example.com"}),
    )
    .await;
    let unknown = post(
        &aura,
        "/api/auth/password/forgot",
        json!({"email": "nobody@example.com"}),
    )
    .await;
    assert_eq!(known.status(), 202);
    assert_eq!(unknown.status(), 202);
    assert_eq!(known.text().await.unwrap(), unknown.text().await.unwrap());
    let mail = sink.take("ada@example.com").await;
    assert_eq!(mail.subject, "Reset your password");
    let token = mail.after("reset code: ");
    assert!(token.len() >= 40, "a long random token: {token}");
    assert_eq!(sink.count("nobody@example.com"), 0);

    // Policy still applies; a bad token changes nothing.
    assert_error(
        post(
            &aura,
            "/api/auth/password/reset",
            json!({"token": token, "password": "short"}),
        )
        .await,
        400,
        "invalid_input",
    )
    .await;
    assert_error(
        post(
            &aura,
            "/api/auth/password/reset",
            json!({"token": "forged", "password": "a new long password"}),
        )
        .await,
        401,
        "invalid_token",
    )
    .await;

    let reset = post(
        &aura,
        "/api/auth/password/reset",
        json!({"token": token, "password": "a new long password"}),
    )
    .await;
    assert_eq!(reset.status(), 204);
    assert_error(
        login(&aura, "ada@example.com", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    let fresh = json_of(
        login(&aura, "ada@example.com", "a new long password").await,
        200,
    )
    .await;
    assert_eq!(
        fresh["user"]["verified"], true,
        "the mail reached the address"
    );

    // Single use; the sessions from before the reset are over.
    assert_error(
        post(
            &aura,
            "/api/auth/password/reset",
            json!({"token": token, "password": "yet another password"}),
        )
        .await,
        401,
        "invalid_token",
    )
    .await;
    assert_error(
        post(
            &aura,
            "/api/auth/refresh",
            json!({"refreshToken": tokens["refreshToken"]}),
        )
        .await,
        401,
        "invalid_token",
    )
    .await;

    // A reset token is not a session, and expires.
    let response = aura
        .http
        .get(aura.at("/api/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "invalid_token").await;
    post(
        &aura,
        "/api/auth/password/forgot",
        json!({"email": "ada@example.com"}),
    )
    .await;
    let late = sink.take("ada@example.com").await.after("reset code: ");
    expire_tokens(&aura).await;
    assert_error(
        post(
            &aura,
            "/api/auth/password/reset",
            json!({"token": late, "password": "too late password"}),
        )
        .await,
        401,
        "invalid_token",
    )
    .await;

    let audit = aura
        .admin_get("/api/admin/audit?event=password_reset")
        .await
        .1;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn email_verification_and_email_change() {
    let (aura, sink) = start().await;
    let tokens = register(&aura, "grace@example.com").await;
    assert_eq!(tokens["user"]["verified"], false);
    let token = access(&tokens);

    assert_error(
        post(&aura, "/api/auth/verify-email/request", json!({})).await,
        401,
        "unauthorized",
    )
    .await;
    let requested = post_as(&aura, "/api/auth/verify-email/request", &token, json!({})).await;
    assert_eq!(requested.status(), 202);
    let mail = sink.take("grace@example.com").await;
    // The link in the mail works as it is, opened in a browser.
    let start = mail.body.find("http://").expect("a link");
    let link: String = mail.body[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(
        link.starts_with(&format!(
            "{}/api/auth/verify-email/confirm?token=",
            aura.url
        )),
        "{link}"
    );
    let confirmed = json_of(aura.http.get(&link).send().await.unwrap(), 200).await;
    assert_eq!(confirmed["verified"], true);
    assert_error(
        aura.http.get(&link).send().await.unwrap(),
        401,
        "invalid_token",
    )
    .await;
    assert_error(
        post_as(&aura, "/api/auth/verify-email/request", &token, json!({})).await,
        400,
        "invalid_input",
    )
    .await;

    // Changing the address: nothing changes until the new one confirms.
    register(&aura, "taken@example.com").await;
    let response = aura
        .http
        .put(aura.at("/api/auth/me"))
        .bearer_auth(&token)
        .json(&json!({"email": "taken@example.com"}))
        .send()
        .await
        .unwrap();
    assert_error(response, 409, "email_taken").await;
    let response = aura
        .http
        .put(aura.at("/api/auth/me"))
        .bearer_auth(&token)
        .json(&json!({"email": "Grace.Hopper@example.com", "name": "Grace"}))
        .send()
        .await
        .unwrap();
    let pending = json_of(response, 200).await;
    assert_eq!(pending["email"], "grace@example.com");
    assert_eq!(pending["name"], "Grace");
    assert_eq!(pending["pendingEmail"], "grace.hopper@example.com");
    let notice = sink.take("grace@example.com").await;
    assert!(
        notice.body.contains("grace.hopper@example.com"),
        "{}",
        notice.body
    );
    let confirm = sink.take("grace.hopper@example.com").await.after("token=");
    let changed = json_of(
        post(
            &aura,
            "/api/auth/verify-email/confirm",
            json!({"token": confirm}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(changed["email"], "grace.hopper@example.com");
    assert_eq!(changed["verified"], true);
    json_of(
        login(&aura, "grace.hopper@example.com", PASSWORD).await,
        200,
    )
    .await;
    assert_error(
        login(&aura, "grace@example.com", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
}

#[tokio::test]
async fn magic_links_sign_in_and_create_verified_accounts() {
    let (aura, sink) = start().await;
    register(&aura, "known@example.com").await;

    let known = post(
        &aura,
        "/api/auth/magic-link",
        json!({"email": "known@example.com"}),
    )
    .await;
    let new = post(
        &aura,
        "/api/auth/magic-link",
        json!({"email": "new@example.com"}),
    )
    .await;
    assert_eq!(known.status(), 202);
    assert_eq!(known.text().await.unwrap(), new.text().await.unwrap());
    assert_error(
        post(
            &aura,
            "/api/auth/magic-link",
            json!({"email": "not an address"}),
        )
        .await,
        400,
        "invalid_input",
    )
    .await;

    let link = sink.take("new@example.com").await.after("token=");
    let signed = json_of(
        aura.http
            .get(aura.at(&format!("/api/auth/magic-link/verify?token={link}")))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(signed["user"]["email"], "new@example.com");
    assert_eq!(signed["user"]["verified"], true);
    let me = json_of(
        aura.http
            .get(aura.at("/api/auth/me"))
            .bearer_auth(access(&signed))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(me["email"], "new@example.com");
    assert_error(
        aura.http
            .get(aura.at(&format!("/api/auth/magic-link/verify?token={link}")))
            .send()
            .await
            .unwrap(),
        401,
        "invalid_token",
    )
    .await;
    assert_error(
        aura.http
            .get(aura.at("/api/auth/magic-link/verify"))
            .send()
            .await
            .unwrap(),
        400,
        "invalid_query",
    )
    .await;

    // A newer link voids the older one.
    let first = sink.take("known@example.com").await.after("token=");
    post(
        &aura,
        "/api/auth/magic-link",
        json!({"email": "known@example.com"}),
    )
    .await;
    let second = sink.take("known@example.com").await.after("token=");
    assert_error(
        aura.http
            .get(aura.at(&format!("/api/auth/magic-link/verify?token={first}")))
            .send()
            .await
            .unwrap(),
        401,
        "invalid_token",
    )
    .await;
    let signed = json_of(
        aura.http
            .get(aura.at(&format!("/api/auth/magic-link/verify?token={second}")))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(signed["user"]["email"], "known@example.com");
}

#[tokio::test]
async fn email_codes_sign_in_once_and_lock_out_guessing() {
    let (aura, sink) = start().await;
    assert_eq!(
        post(
            &aura,
            "/api/auth/otp/request",
            json!({"email": "otp@example.com"})
        )
        .await
        .status(),
        202
    );
    let mail = sink.take("otp@example.com").await;
    let code = mail.after("code is ");
    assert_eq!(code.len(), 6);
    assert!(mail.subject.ends_with(&code));

    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_error(
        post(
            &aura,
            "/api/auth/otp/verify",
            json!({"email": "otp@example.com", "code": wrong}),
        )
        .await,
        401,
        "invalid_code",
    )
    .await;
    // A code is bound to the address it was sent to.
    assert_error(
        post(
            &aura,
            "/api/auth/otp/verify",
            json!({"email": "other@example.com", "code": code}),
        )
        .await,
        401,
        "invalid_code",
    )
    .await;
    let signed = json_of(
        post(
            &aura,
            "/api/auth/otp/verify",
            json!({"email": "OTP@example.com", "code": code}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(signed["user"]["email"], "otp@example.com");
    assert_error(
        post(
            &aura,
            "/api/auth/otp/verify",
            json!({"email": "otp@example.com", "code": code}),
        )
        .await,
        401,
        "invalid_code",
    )
    .await;

    // Guessing: after five wrong codes the address waits, and its code is void.
    post(
        &aura,
        "/api/auth/otp/request",
        json!({"email": "otp@example.com"}),
    )
    .await;
    let code = sink.take("otp@example.com").await.after("code is ");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..4 {
        assert_error(
            post(
                &aura,
                "/api/auth/otp/verify",
                json!({"email": "otp@example.com", "code": wrong}),
            )
            .await,
            401,
            "invalid_code",
        )
        .await;
    }
    let locked = post(
        &aura,
        "/api/auth/otp/verify",
        json!({"email": "otp@example.com", "code": code}),
    )
    .await;
    let retry: u64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_error(locked, 429, "rate_limited").await;
}

#[tokio::test]
async fn mail_without_smtp_goes_to_the_outbox() {
    let aura = Aura::start();
    register(&aura, "dev@example.com").await;
    post(
        &aura,
        "/api/auth/password/forgot",
        json!({"email": "dev@example.com"}),
    )
    .await;
    let unauthorised = aura
        .http
        .get(aura.at("/api/admin/outbox"))
        .send()
        .await
        .unwrap();
    assert_error(unauthorised, 401, "unauthorized").await;
    let (status, outbox) = aura.admin_get("/api/admin/outbox").await;
    assert_eq!(status, 200);
    let messages = outbox["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["to"], "dev@example.com");
    assert_eq!(messages[0]["subject"], "Reset your password");
    assert!(
        messages[0]["text"]
            .as_str()
            .unwrap()
            .contains("reset code: ")
    );

    let (sink_aura, _sink) = start().await;
    let (status, body) = sink_aura.admin_get("/api/admin/outbox").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("outbox_not_kept"))
    );
}

/// The authenticator: RFC 6238 codes of a base32 secret.
fn totp(secret: &str, offset_steps: i64) -> String {
    let mut bits = 0u64;
    let mut count = 0;
    let mut key = Vec::new();
    for c in secret.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {secret}"),
        };
        bits = (bits << 5) | value as u64;
        count += 5;
        if count >= 8 {
            count -= 8;
            key.push((bits >> count) as u8);
        }
    }
    let step = (chrono::Utc::now().timestamp() / 30 + offset_steps) as u64;
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&key).unwrap();
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let value = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", value % 1_000_000)
}

#[tokio::test]
async fn totp_two_factor_with_recovery_codes() {
    let (aura, sink) = start().await;
    let tokens = register(&aura, "mfa@example.com").await;
    let token = access(&tokens);

    let enrollment = json_of(
        post_as(&aura, "/api/auth/2fa/totp/enroll", &token, json!({})).await,
        200,
    )
    .await;
    let secret = enrollment["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 32, "160 bits");
    assert!(
        enrollment["uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Aura%3Amfa%40example.com?secret=")
    );
    // Not on until a first code confirms it.
    assert!(
        json_of(login(&aura, "mfa@example.com", PASSWORD).await, 200).await["accessToken"]
            .is_string()
    );
    assert_error(
        post_as(
            &aura,
            "/api/auth/2fa/totp/verify",
            &token,
            json!({"code": "12345"}),
        )
        .await,
        401,
        "invalid_code",
    )
    .await;
    let enabled = json_of(
        post_as(
            &aura,
            "/api/auth/2fa/totp/verify",
            &token,
            json!({"code": totp(&secret, 0)}),
        )
        .await,
        200,
    )
    .await;
    let recovery: Vec<String> = serde_json::from_value(enabled["recoveryCodes"].clone()).unwrap();
    assert_eq!(recovery.len(), 10);

    // Every sign-in now needs the second step; the first step alone gives no tokens.
    let first = json_of(login(&aura, "mfa@example.com", PASSWORD).await, 200).await;
    assert_eq!(first["mfaRequired"], true);
    assert!(first.get("accessToken").is_none(), "{first}");
    let mfa = first["mfaToken"].as_str().unwrap().to_owned();
    assert_error(
        aura.http
            .get(aura.at("/api/auth/me"))
            .bearer_auth(&mfa)
            .send()
            .await
            .unwrap(),
        401,
        "invalid_token",
    )
    .await;
    assert_error(
        post(
            &aura,
            "/api/auth/2fa/totp/verify",
            json!({"mfaToken": mfa, "code": "000000"}),
        )
        .await,
        401,
        "invalid_code",
    )
    .await;
    // The code that turned it on was used: the next step's code works once.
    let next = totp(&secret, 1);
    let signed = json_of(
        post(
            &aura,
            "/api/auth/2fa/totp/verify",
            json!({"mfaToken": mfa, "code": next}),
        )
        .await,
        200,
    )
    .await;
    assert!(signed["accessToken"].is_string());
    assert_error(
        post(
            &aura,
            "/api/auth/2fa/totp/verify",
            json!({"mfaToken": mfa, "code": next}),
        )
        .await,
        401,
        "invalid_token",
    )
    .await;
    let again = json_of(login(&aura, "mfa@example.com", PASSWORD).await, 200).await;
    assert_error(
        post(
            &aura,
            "/api/auth/2fa/totp/verify",
            json!({"mfaToken": again["mfaToken"], "code": next}),
        )
        .await,
        401,
        "invalid_code",
    )
    .await;

    // Recovery codes work once each, for every sign-in method.
    let signed = json_of(
        post(
            &aura,
            "/api/auth/2fa/totp/verify",
            json!({"mfaToken": again["mfaToken"], "recoveryCode": recovery[0].to_uppercase()}),
        )
        .await,
        200,
    )
    .await;
    assert!(signed["accessToken"].is_string());
    post(
        &aura,
        "/api/auth/magic-link",
        json!({"email": "mfa@example.com"}),
    )
    .await;
    let link = sink.take("mfa@example.com").await.after("token=");
    let by_link = json_of(
        aura.http
            .get(aura.at(&format!("/api/auth/magic-link/verify?token={link}")))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(by_link["mfaRequired"], true);
    assert_error(
        post(
            &aura,
            "/api/auth/2fa/totp/verify",
            json!({"mfaToken": by_link["mfaToken"], "recoveryCode": recovery[0]}),
        )
        .await,
        401,
        "invalid_code",
    )
    .await;
    json_of(
        post(
            &aura,
            "/api/auth/2fa/totp/verify",
            json!({"mfaToken": by_link["mfaToken"], "recoveryCode": recovery[1]}),
        )
        .await,
        200,
    )
    .await;

    // Turning it off takes proof; then a password alone signs in again.
    assert_error(
        post_as(
            &aura,
            "/api/auth/2fa/totp/disable",
            &token,
            json!({"code": "000000"}),
        )
        .await,
        401,
        "invalid_code",
    )
    .await;
    let off = post_as(
        &aura,
        "/api/auth/2fa/totp/disable",
        &token,
        json!({"recoveryCode": recovery[2]}),
    )
    .await;
    assert_eq!(off.status(), 204);
    assert!(
        json_of(login(&aura, "mfa@example.com", PASSWORD).await, 200).await["accessToken"]
            .is_string()
    );

    let (_, audit) = aura.admin_get("/api/admin/audit?limit=200").await;
    let events: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    for event in ["2fa_enabled", "2fa_failed", "2fa_disabled"] {
        assert!(events.contains(&event), "{event} in {events:?}");
    }
}

/// The `Set-Cookie` values of a response, by name (value and attributes).
fn set_cookies(
    response: &reqwest::Response,
) -> std::collections::BTreeMap<String, (String, String)> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| {
            let (pair, attributes) = v.split_once(';').unwrap_or((v, ""));
            let (name, value) = pair.split_once('=')?;
            Some((name.to_owned(), (value.to_owned(), attributes.to_owned())))
        })
        .collect()
}

#[tokio::test]
async fn cookie_sessions_need_csrf_proof_to_change_state() {
    let aura = Aura::start_with(
        tempfile::tempdir().unwrap(),
        &["--cors-origin", "https://app.example.com"],
    );
    register(&aura, "cookie@example.com").await;
    // Login CSRF: another site's page may post a form or text/plain to the
    // sign-in without asking; it must not set cookies.
    let credentials = json!({"email": "cookie@example.com", "password": PASSWORD}).to_string();
    for (content_type, origin, status, code) in [
        (
            "text/plain",
            "https://evil.example",
            415,
            "unsupported_media_type",
        ),
        (
            "application/x-www-form-urlencoded",
            "https://evil.example",
            415,
            "unsupported_media_type",
        ),
        (
            "application/json",
            "https://evil.example",
            403,
            "csrf_failed",
        ),
    ] {
        let refused = aura
            .http
            .post(aura.at("/api/auth/login?session=cookie"))
            .header("content-type", content_type)
            .header("origin", origin)
            .body(credentials.clone())
            .send()
            .await
            .unwrap();
        assert!(
            set_cookies(&refused).is_empty(),
            "{content_type} from {origin}"
        );
        assert_error(refused, status, code).await;
    }
    let from_the_app = aura
        .http
        .post(aura.at("/api/auth/login?session=cookie"))
        .header("content-type", "application/json")
        .header("origin", "https://app.example.com")
        .body(credentials.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(from_the_app.status(), 200, "an allowed origin signs in");
    let response = post(
        &aura,
        "/api/auth/login?session=cookie",
        json!({"email": "cookie@example.com", "password": PASSWORD}),
    )
    .await;
    let cookies = set_cookies(&response);
    let body = json_of(response, 200).await;
    assert!(
        body.get("accessToken").is_none() && body.get("refreshToken").is_none(),
        "{body}"
    );
    assert_eq!(body["user"]["email"], "cookie@example.com");
    let csrf = body["csrfToken"].as_str().unwrap().to_owned();
    let (access, attributes) = &cookies["aura_access"];
    assert!(
        attributes.contains("HttpOnly") && attributes.contains("SameSite=Lax"),
        "{attributes}"
    );
    assert!(cookies["aura_refresh"].1.contains("Path=/api/auth"));
    assert_eq!(cookies["aura_csrf"].0, csrf);
    assert!(
        !cookies["aura_csrf"].1.contains("HttpOnly"),
        "the page reads the CSRF cookie"
    );
    let jar = format!(
        "aura_access={access}; aura_refresh={}; aura_csrf={csrf}",
        cookies["aura_refresh"].0
    );

    // Reads need only the cookie.
    let me = aura
        .http
        .get(aura.at("/api/auth/me"))
        .header("cookie", &jar)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(me, 200).await["email"], "cookie@example.com");

    // Changes need the CSRF header, and a trusted Origin when one is sent.
    let change = |csrf: Option<&str>, origin: Option<&str>| {
        let mut request = aura
            .http
            .put(aura.at("/api/auth/me"))
            .header("cookie", &jar)
            .json(&json!({"name": "Cookie"}));
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    assert_error(change(None, None).await.unwrap(), 403, "csrf_failed").await;
    assert_error(
        change(Some("forged"), None).await.unwrap(),
        403,
        "csrf_failed",
    )
    .await;
    assert_error(
        change(Some(&csrf), Some("https://evil.example"))
            .await
            .unwrap(),
        403,
        "csrf_failed",
    )
    .await;
    assert_eq!(
        json_of(
            change(Some(&csrf), Some("https://app.example.com"))
                .await
                .unwrap(),
            200
        )
        .await["name"],
        "Cookie"
    );
    assert_eq!(
        json_of(change(Some(&csrf), None).await.unwrap(), 200).await["name"],
        "Cookie"
    );

    // Refresh from the cookie (with the CSRF proof) sets new cookies.
    let refused = aura
        .http
        .post(aura.at("/api/auth/refresh"))
        .header("cookie", &jar)
        .send()
        .await
        .unwrap();
    assert_error(refused, 403, "csrf_failed").await;
    let refreshed = aura
        .http
        .post(aura.at("/api/auth/refresh"))
        .header("cookie", &jar)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    let renewed = set_cookies(&refreshed);
    assert_eq!(refreshed.status(), 200);
    assert_ne!(
        &renewed["aura_refresh"].0, &cookies["aura_refresh"].0,
        "rotated"
    );

    // CORS: the allowed origin gets credentials, another gets nothing.
    let preflight = |origin: &str| {
        aura.http
            .request(reqwest::Method::OPTIONS, aura.at("/api/auth/me"))
            .header("origin", origin.to_owned())
            .header("access-control-request-method", "PUT")
            .header(
                "access-control-request-headers",
                "x-csrf-token, content-type",
            )
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(
        allowed.headers()["access-control-allow-credentials"],
        "true"
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    // Logout clears the cookies and ends the session.
    let jar = format!("aura_access={}; aura_csrf={csrf}", renewed["aura_access"].0);
    let out = aura
        .http
        .post(aura.at("/api/auth/logout"))
        .header("cookie", &jar)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert_eq!(set_cookies(&out)["aura_access"].0, "");
    let me = aura
        .http
        .get(aura.at("/api/auth/me"))
        .header("cookie", &jar)
        .send()
        .await
        .unwrap();
    assert_error(me, 401, "invalid_token").await;
}

/// The `kid` header of a JWT.
fn kid_of(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn signing_keys_rotate_without_signing_anyone_out() {
    let aura = Aura::start();
    let before = access(&register(&aura, "keys@example.com").await);
    let (_, keys) = aura.admin_get("/api/admin/auth/keys").await;
    let keys = keys["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], kid_of(&before).as_str());
    assert!(keys[0].get("secret").is_none());

    let (status, rotated) = aura.admin_post("/api/admin/auth/keys", json!({})).await;
    assert_eq!(status, 201);
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    // Old tokens still work; new ones use the new key.
    let me = aura
        .http
        .get(aura.at("/api/auth/me"))
        .bearer_auth(&before)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let after = access(&json_of(login(&aura, "keys@example.com", PASSWORD).await, 200).await);
    assert_eq!(kid_of(&after), new_kid);

    // The signing key can't be retired; the old one can, and its tokens end.
    let active = aura
        .http
        .delete(aura.at(&format!("/api/admin/auth/keys/{new_kid}")))
        .bearer_auth(&aura.token)
        .send()
        .await
        .unwrap();
    assert_error(active, 400, "invalid_input").await;
    let old = kid_of(&before);
    let retired = aura
        .http
        .delete(aura.at(&format!("/api/admin/auth/keys/{old}")))
        .bearer_auth(&aura.token)
        .send()
        .await
        .unwrap();
    assert_eq!(retired.status(), 204);
    let again = aura
        .http
        .delete(aura.at(&format!("/api/admin/auth/keys/{old}")))
        .bearer_auth(&aura.token)
        .send()
        .await
        .unwrap();
    assert_error(again, 404, "not_found").await;
    let me = aura
        .http
        .get(aura.at("/api/auth/me"))
        .bearer_auth(&before)
        .send()
        .await
        .unwrap();
    assert_error(me, 401, "invalid_token").await;
    let me = aura
        .http
        .get(aura.at("/api/auth/me"))
        .bearer_auth(&after)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let forgot = |aura: &Aura, forwarded: &str, n: usize| {
        aura.http
            .post(aura.at("/api/auth/password/forgot"))
            .header("x-forwarded-for", forwarded.to_owned())
            .json(&json!({"email": format!("user{n}@example.com")}))
            .send()
    };
    // Behind a trusted proxy, each client has its own limit.
    let aura = Aura::start_with(
        tempfile::tempdir().unwrap(),
        &["--trusted-proxy", "127.0.0.0/8"],
    );
    for n in 0..30 {
        assert_eq!(forgot(&aura, "203.0.113.1", n).await.unwrap().status(), 202);
    }
    assert_error(
        forgot(&aura, "203.0.113.1", 99).await.unwrap(),
        429,
        "rate_limited",
    )
    .await;
    assert_eq!(
        forgot(&aura, "198.51.100.7, 203.0.113.2", 0)
            .await
            .unwrap()
            .status(),
        202
    );
    let tokens = aura
        .http
        .post(aura.at("/api/auth/register"))
        .header("x-forwarded-for", "203.0.113.2")
        .json(&json!({"email": "proxied@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let tokens = json_of(tokens, 201).await;
    let sessions = aura
        .http
        .get(aura.at("/api/auth/sessions"))
        .bearer_auth(access(&tokens))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(sessions, 200).await["sessions"][0]["ip"],
        "203.0.113.2"
    );

    // From an untrusted peer the header is ignored: everyone shares 127.0.0.1.
    let aura = Aura::start();
    for n in 0..30 {
        let forwarded = format!("203.0.113.{n}");
        assert_eq!(forgot(&aura, &forwarded, n).await.unwrap().status(), 202);
    }
    assert_error(
        forgot(&aura, "203.0.113.200", 99).await.unwrap(),
        429,
        "rate_limited",
    )
    .await;
}

#[tokio::test]
async fn verified_email_mode_answers_registration_alike_for_every_address() {
    let sink = SmtpSink::start().await;
    let aura = Aura::start_with(
        tempfile::tempdir().unwrap(),
        &["--smtp-url", &sink.url, "--require-verified-email"],
    );
    let first = post(
        &aura,
        "/api/auth/register",
        json!({"email": "taken@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(first.status(), 202);
    let first = first.text().await.unwrap();
    let confirm = sink.take("taken@example.com").await;
    assert_eq!(confirm.subject, "Confirm your email address");
    // The same answer for a taken address; its owner is told.
    let again = post(
        &aura,
        "/api/auth/register",
        json!({"email": "taken@example.com", "password": "another password"}),
    )
    .await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.text().await.unwrap(), first);
    assert_eq!(
        sink.take("taken@example.com").await.subject,
        "Someone tried to register with your address"
    );

    // No sign-in before the address is confirmed (a wrong password still says only that).
    assert_error(
        login(&aura, "taken@example.com", "wrong password!").await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_error(
        login(&aura, "taken@example.com", PASSWORD).await,
        403,
        "email_not_verified",
    )
    .await;
    let token = confirm.after("token=");
    json_of(
        post(
            &aura,
            "/api/auth/verify-email/confirm",
            json!({"token": token}),
        )
        .await,
        200,
    )
    .await;
    let signed = json_of(login(&aura, "taken@example.com", PASSWORD).await, 200).await;
    assert_eq!(signed["user"]["verified"], true);
}
