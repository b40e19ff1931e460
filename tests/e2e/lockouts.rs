//! Guessing cannot keep an account's owner out (issue 18, item 8): failed
//! sign-ins lock out the address they come from, a ceiling across
//! addresses spares the addresses the account signed in from, mailed links
//! still sign in, and one address asking for mail does not use up the
//! owner's.

use crate::smtp::SmtpSink;
use crate::support::{Aura, assert_error};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";
const VICTIM: &str = "ada@example.com";

/// A POST from client `address` (Aura trusts the loopback proxy's
/// `X-Forwarded-For` here).
async fn post_from(aura: &Aura, address: &str, path: &str, body: Value) -> reqwest::Response {
    aura.http
        .post(aura.at(path))
        .header("x-forwarded-for", address)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn login_from(aura: &Aura, address: &str, password: &str) -> u16 {
    let body = json!({"email": VICTIM, "password": password});
    post_from(aura, address, "/api/auth/login", body)
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn guesses_from_elsewhere_never_keep_the_owner_out() {
    let sink = SmtpSink::start().await;
    let aura = Aura::start_with(
        tempfile::tempdir().unwrap(),
        &["--trusted-proxy", "127.0.0.0/8", "--smtp-url", &sink.url],
    );
    // Ada registers (and so signs in) from her usual address.
    let home = "198.51.100.7";
    let body = json!({"email": VICTIM, "password": PASSWORD});
    let registered = post_from(&aura, home, "/api/auth/register", body).await;
    assert_eq!(registered.status(), 201);

    // Five wrong passwords lock out the address they came from...
    let attacker = "203.0.113.66";
    for _ in 0..5 {
        assert_eq!(login_from(&aura, attacker, "wrong password").await, 401);
    }
    assert_eq!(login_from(&aura, attacker, PASSWORD).await, 429);
    // ...not Ada, even from an address she never used.
    assert_eq!(login_from(&aura, "198.51.100.8", PASSWORD).await, 200);

    // Guesses spread over many addresses reach the account's ceiling:
    // strangers are shut out, Ada's known addresses are not.
    for n in 0..9 {
        for _ in 0..5 {
            let status = login_from(&aura, &format!("192.0.2.{n}"), "wrong password").await;
            assert_eq!(status, 401);
        }
    }
    assert_eq!(login_from(&aura, "192.0.2.100", PASSWORD).await, 429);
    assert_eq!(login_from(&aura, home, PASSWORD).await, 200);
    assert_eq!(login_from(&aura, "198.51.100.8", PASSWORD).await, 200);
    let (_, locked) = aura.admin_get("/api/admin/auth/lockouts").await;
    let locked = &locked["lockouts"][0];
    assert_eq!(
        (
            &locked["account"],
            &locked["failures"],
            &locked["everywhere"]
        ),
        (&json!(VICTIM), &json!(50), &json!(true)),
        "{locked}"
    );
    assert_eq!(locked["addresses"].as_array().unwrap().len(), 10);

    // A mailed link still signs in from a new address meanwhile.
    let travel = "192.0.2.200";
    let asked = post_from(
        &aura,
        travel,
        "/api/auth/magic-link",
        json!({"email": VICTIM}),
    )
    .await;
    assert_eq!(asked.status(), 202);
    let token = sink.take(VICTIM).await.after("token=");
    let signed_in = aura
        .http
        .get(aura.at(&format!("/api/auth/magic-link/verify?token={token}")))
        .header("x-forwarded-for", travel)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 200);
    // And from then on that address is known: the password works there.
    assert_eq!(login_from(&aura, travel, PASSWORD).await, 200);

    // One address asking for mail uses up only its own allowance.
    let forgot = json!({"email": VICTIM});
    for _ in 0..5 {
        let asked = post_from(&aura, attacker, "/api/auth/password/forgot", forgot.clone()).await;
        assert_eq!(asked.status(), 202);
        sink.take(VICTIM).await;
    }
    let refused = post_from(&aura, attacker, "/api/auth/password/forgot", forgot.clone()).await;
    assert_error(refused, 429, "rate_limited").await;
    let asked = post_from(&aura, home, "/api/auth/password/forgot", forgot).await;
    assert_eq!(asked.status(), 202);
    assert!(sink.take(VICTIM).await.after("reset code: ").len() > 10);
}

#[tokio::test]
async fn wrong_codes_from_one_address_do_not_void_the_owners_code() {
    let sink = SmtpSink::start().await;
    let aura = Aura::start_with(
        tempfile::tempdir().unwrap(),
        &["--trusted-proxy", "127.0.0.0/8", "--smtp-url", &sink.url],
    );
    let owner = "198.51.100.7";
    let asked = post_from(
        &aura,
        owner,
        "/api/auth/otp/request",
        json!({"email": VICTIM}),
    )
    .await;
    assert_eq!(asked.status(), 202);
    let code = sink.take(VICTIM).await.after("code is ");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let attacker = "203.0.113.66";
    for _ in 0..6 {
        let guess = json!({"email": VICTIM, "code": wrong});
        let status = post_from(&aura, attacker, "/api/auth/otp/verify", guess)
            .await
            .status();
        assert!(matches!(status.as_u16(), 401 | 429), "{status}");
    }
    let answer = json!({"email": VICTIM, "code": code});
    let signed_in = post_from(&aura, owner, "/api/auth/otp/verify", answer).await;
    assert_eq!(signed_in.status(), 200);
}
