//! OAuth 2.0 and OpenID Connect providers: their configuration, the
//! authorization URL, the code exchange, and the profile a provider vouches
//! for.
//!
//! Two flavours:
//! - OpenID Connect (any issuer, and the `google` preset): endpoints from
//!   the issuer's discovery document; the ID token's signature is checked
//!   against the issuer's JWKS (asymmetric algorithms only), with its
//!   issuer, audience, expiry and nonce.
//! - GitHub (the `github` preset, GitHub Enterprise by its URLs): OAuth 2.0
//!   plus the REST API for the account and its verified primary address.

use super::super::AuthError;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use std::time::{Duration, Instant};

/// How long a refetch of a JWKS waits after the last one when a token
/// names an unknown key.
const JWKS_REFRESH: Duration = Duration::from_secs(30);

/// A provider's table in the `--oauth-providers` file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// `oidc`, `github` or `google`; by default the provider's name when
    /// it is `github` or `google`, else `oidc`.
    #[serde(default)]
    kind: Option<Kind>,
    client_id: String,
    client_secret: String,
    /// The OpenID Connect issuer (`oidc`).
    #[serde(default)]
    issuer: Option<String>,
    /// Scopes to ask for instead of the kind's.
    #[serde(default)]
    scopes: Option<Vec<String>>,
    /// GitHub Enterprise (or a test double): where to send the user.
    #[serde(default)]
    authorize_url: Option<String>,
    /// GitHub Enterprise: the token endpoint.
    #[serde(default)]
    token_url: Option<String>,
    /// GitHub Enterprise: the REST API root.
    #[serde(default)]
    api_url: Option<String>,
}

/// The flavour of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Any OpenID Connect issuer.
    Oidc,
    /// GitHub's OAuth apps.
    Github,
    /// Google, an OpenID Connect issuer.
    Google,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Oidc => "oidc",
            Kind::Github => "github",
            Kind::Google => "google",
        }
    }
}

/// What a provider vouches for about the user who signed in.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The provider's stable id of the account.
    pub subject: String,
    /// The account's address, if shared.
    pub email: Option<String>,
    /// Whether the provider verified that address.
    pub email_verified: bool,
    /// A display name, if shared.
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Vec<String>,
}

enum Flavor {
    Oidc {
        issuer: String,
        discovery: tokio::sync::OnceCell<Discovery>,
        jwks: tokio::sync::Mutex<Option<(JwkSet, Instant)>>,
    },
    Github {
        authorize_url: String,
        token_url: String,
        api_url: String,
    },
}

/// A configured provider.
pub struct Provider {
    /// Its name in URLs (`/api/auth/oauth/{name}`).
    pub name: String,
    kind: Kind,
    client_id: String,
    client_secret: String,
    scopes: Vec<String>,
    flavor: Flavor,
}

/// The token endpoint's answer (errors included: GitHub answers them with
/// 200).
#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct IdClaims {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    /// A bool, or (some issuers) the string "true".
    #[serde(default)]
    email_verified: Option<Value>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

fn failed(provider: &str, why: impl std::fmt::Display) -> AuthError {
    AuthError::OAuthFailed(format!("signing in with {provider} failed: {why}"))
}

fn unavailable(provider: &str, err: impl std::fmt::Display) -> AuthError {
    AuthError::ProviderUnavailable(format!("{provider} could not be reached: {err}"))
}

/// `application/x-www-form-urlencoded` of one value.
fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

impl Provider {
    /// A provider from its table; `name` is the table's name.
    pub fn new(name: &str, config: ProviderConfig) -> anyhow::Result<Self> {
        let valid_name = !name.is_empty()
            && name.len() <= 40
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let valid_name = valid_name && name != "exchange";
        anyhow::ensure!(
            valid_name,
            "`{name}`: provider names are 1-40 of a-z, 0-9 and - (and not `exchange`)"
        );
        let kind = config.kind.unwrap_or(match name {
            "github" => Kind::Github,
            "google" => Kind::Google,
            _ => Kind::Oidc,
        });
        let github_only = [&config.authorize_url, &config.token_url, &config.api_url];
        anyhow::ensure!(
            kind == Kind::Github || github_only.iter().all(|u| u.is_none()),
            "`{name}`: authorize_url, token_url and api_url are for GitHub; OpenID Connect providers are found from `issuer`"
        );
        let oidc = |issuer: String| Flavor::Oidc {
            issuer: issuer.trim_end_matches('/').to_owned(),
            discovery: tokio::sync::OnceCell::new(),
            jwks: tokio::sync::Mutex::new(None),
        };
        let flavor = match kind {
            Kind::Google => oidc(
                config
                    .issuer
                    .unwrap_or_else(|| "https://accounts.google.com".into()),
            ),
            Kind::Oidc => oidc(config.issuer.ok_or_else(|| {
                anyhow::anyhow!("`{name}`: an OpenID Connect provider needs `issuer`")
            })?),
            Kind::Github => Flavor::Github {
                authorize_url: config
                    .authorize_url
                    .unwrap_or_else(|| "https://github.com/login/oauth/authorize".into()),
                token_url: config
                    .token_url
                    .unwrap_or_else(|| "https://github.com/login/oauth/access_token".into()),
                api_url: config
                    .api_url
                    .unwrap_or_else(|| "https://api.github.com".into())
                    .trim_end_matches('/')
                    .to_owned(),
            },
        };
        let scopes = config.scopes.unwrap_or_else(|| match kind {
            Kind::Github => vec!["read:user".into(), "user:email".into()],
            Kind::Oidc | Kind::Google => {
                vec!["openid".into(), "email".into(), "profile".into()]
            }
        });
        Ok(Self {
            name: name.to_owned(),
            kind,
            client_id: config.client_id,
            client_secret: config.client_secret,
            scopes,
            flavor,
        })
    }

    /// `oidc`, `github` or `google`.
    pub fn kind(&self) -> &'static str {
        self.kind.name()
    }

    /// Sends `request` and reads its JSON answer (`what` names it in
    /// errors): unreachable or failing is `provider_unavailable`, a body
    /// that is not what it should be `oauth_failed`.
    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<T, AuthError> {
        request
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| unavailable(&self.name, e))?
            .json()
            .await
            .map_err(|e| failed(&self.name, format!("{what}: {e}")))
    }

    async fn discovery(&self, http: &reqwest::Client) -> Result<&Discovery, AuthError> {
        let Flavor::Oidc {
            issuer, discovery, ..
        } = &self.flavor
        else {
            unreachable!("discovery is for OpenID Connect providers");
        };
        discovery
            .get_or_try_init(|| async {
                let url = format!("{issuer}/.well-known/openid-configuration");
                let found: Discovery = self.json(http.get(&url), "its discovery document").await?;
                if found.issuer.trim_end_matches('/') != issuer {
                    return Err(failed(
                        &self.name,
                        format!(
                            "its discovery document names issuer `{}`, not `{issuer}`",
                            found.issuer
                        ),
                    ));
                }
                Ok(found)
            })
            .await
    }

    /// Where to send the user: the provider's consent page for this
    /// sign-in.
    pub async fn authorize_url(
        &self,
        http: &reqwest::Client,
        redirect_uri: &str,
        state: &str,
        challenge: &str,
        nonce: &str,
    ) -> Result<String, AuthError> {
        let endpoint = match &self.flavor {
            Flavor::Oidc { .. } => self.discovery(http).await?.authorization_endpoint.clone(),
            Flavor::Github { authorize_url, .. } => authorize_url.clone(),
        };
        let mut url = url::Url::parse(&endpoint)
            .map_err(|e| failed(&self.name, format!("its authorization endpoint: {e}")))?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("scope", &self.scopes.join(" "))
                .append_pair("state", state)
                .append_pair("code_challenge", challenge)
                .append_pair("code_challenge_method", "S256");
            if matches!(self.flavor, Flavor::Oidc { .. }) {
                query.append_pair("nonce", nonce);
            }
        }
        Ok(url.into())
    }

    /// Trades the authorization code for the profile it vouches for.
    pub async fn profile(
        &self,
        http: &reqwest::Client,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<Profile, AuthError> {
        let (endpoint, basic) = match &self.flavor {
            Flavor::Oidc { .. } => {
                let found = self.discovery(http).await?;
                let methods = &found.token_endpoint_auth_methods_supported;
                // client_secret_basic is the default unless only post is offered.
                let basic =
                    methods.is_empty() || methods.iter().any(|m| m == "client_secret_basic");
                (found.token_endpoint.clone(), basic)
            }
            Flavor::Github { token_url, .. } => (token_url.clone(), false),
        };
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ];
        let mut request = http
            .post(&endpoint)
            .header(reqwest::header::ACCEPT, "application/json");
        if basic {
            request = request.basic_auth(
                form_encode(&self.client_id),
                Some(form_encode(&self.client_secret)),
            );
        } else {
            form.push(("client_id", &self.client_id));
            form.push(("client_secret", &self.client_secret));
        }
        let response = request
            .form(&form)
            .send()
            .await
            .map_err(|e| unavailable(&self.name, e))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(unavailable(
                &self.name,
                format!("its token endpoint answered {status}"),
            ));
        }
        let answer: TokenAnswer = response.json().await.map_err(|e| {
            failed(
                &self.name,
                format!("its token endpoint answered {status}: {e}"),
            )
        })?;
        if let Some(error) = answer.error {
            let description = answer.error_description.unwrap_or_default();
            return Err(failed(
                &self.name,
                format!("the code was refused ({error}) {description}").trim(),
            ));
        }
        match &self.flavor {
            Flavor::Oidc { .. } => {
                let token = answer
                    .id_token
                    .ok_or_else(|| failed(&self.name, "its token endpoint sent no ID token"))?;
                self.verify_id_token(http, &token, nonce).await
            }
            Flavor::Github { api_url, .. } => {
                let token = answer
                    .access_token
                    .ok_or_else(|| failed(&self.name, "its token endpoint sent no access token"))?;
                self.github_profile(http, api_url, &token).await
            }
        }
    }

    /// The issuer's signing keys; fetched again when `kid` is not among
    /// them (keys rotate), at most every [`JWKS_REFRESH`].
    async fn key(
        &self,
        http: &reqwest::Client,
        kid: Option<&str>,
    ) -> Result<DecodingKey, AuthError> {
        let Flavor::Oidc { jwks, .. } = &self.flavor else {
            unreachable!("keys are for OpenID Connect providers");
        };
        let uri = self.discovery(http).await?.jwks_uri.clone();
        let mut cached = jwks.lock().await;
        let find = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None => (set.keys.len() == 1).then(|| set.keys[0].clone()),
        };
        let known = cached.as_ref().and_then(|(set, _)| find(set));
        let key = match known {
            Some(key) => key,
            None => {
                if let Some((_, at)) = cached.as_ref()
                    && at.elapsed() < JWKS_REFRESH
                {
                    return Err(failed(
                        &self.name,
                        "the ID token is signed by an unknown key",
                    ));
                }
                let set: JwkSet = self.json(http.get(&uri), "its JWKS").await?;
                let key = find(&set);
                *cached = Some((set, Instant::now()));
                key.ok_or_else(|| failed(&self.name, "the ID token is signed by an unknown key"))?
            }
        };
        DecodingKey::from_jwk(&key).map_err(|e| failed(&self.name, format!("its JWKS: {e}")))
    }

    async fn verify_id_token(
        &self,
        http: &reqwest::Client,
        token: &str,
        nonce: &str,
    ) -> Result<Profile, AuthError> {
        let Flavor::Oidc { issuer, .. } = &self.flavor else {
            unreachable!("ID tokens are for OpenID Connect providers");
        };
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| failed(&self.name, format!("the ID token: {e}")))?;
        // Never a shared-secret algorithm: the key comes from the JWKS.
        let asymmetric = matches!(
            header.alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
                | Algorithm::ES256
                | Algorithm::ES384
                | Algorithm::EdDSA
        );
        if !asymmetric {
            return Err(failed(
                &self.name,
                format!(
                    "the ID token is signed with {:?}, which is not accepted",
                    header.alg
                ),
            ));
        }
        let key = self.key(http, header.kid.as_deref()).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[&self.client_id]);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<IdClaims>(token, &key, &validation)
            .map_err(|e| failed(&self.name, format!("the ID token is not valid: {e}")))?
            .claims;
        if claims.nonce.as_deref() != Some(nonce) {
            return Err(failed(
                &self.name,
                "the ID token's nonce is not this sign-in's",
            ));
        }
        let verified = matches!(claims.email_verified, Some(Value::Bool(true)))
            || claims.email_verified.as_ref().and_then(Value::as_str) == Some("true");
        Ok(Profile {
            subject: claims.sub,
            email: claims.email,
            email_verified: verified,
            name: claims.name,
        })
    }

    async fn github_profile(
        &self,
        http: &reqwest::Client,
        api: &str,
        token: &str,
    ) -> Result<Profile, AuthError> {
        let get = |path: &str| {
            http.get(format!("{api}{path}"))
                .bearer_auth(token)
                .header(reqwest::header::ACCEPT, "application/vnd.github+json")
                .header(reqwest::header::USER_AGENT, "aura")
        };
        #[derive(Deserialize)]
        struct Account {
            id: u64,
            #[serde(default)]
            login: Option<String>,
            #[serde(default)]
            name: Option<String>,
        }
        #[derive(Deserialize)]
        struct Email {
            email: String,
            #[serde(default)]
            primary: bool,
            #[serde(default)]
            verified: bool,
        }
        let account: Account = self.json(get("/user"), "its /user").await?;
        let emails: Vec<Email> = self.json(get("/user/emails"), "its /user/emails").await?;
        let chosen = emails
            .iter()
            .find(|e| e.primary && e.verified)
            .or_else(|| emails.iter().find(|e| e.verified))
            .or_else(|| emails.iter().find(|e| e.primary));
        Ok(Profile {
            subject: account.id.to_string(),
            email: chosen.map(|e| e.email.clone()),
            email_verified: chosen.is_some_and(|e| e.verified),
            name: account.name.or(account.login),
        })
    }
}
