//! A small client of the admin API, shared by the CLI commands.

use crate::functions::VersionConfig;
use anyhow::Context as _;
use serde_json::Value;
use std::path::Path;

const DEFAULT_URL: &str = "http://127.0.0.1:8090";
const ENV_HEADER: &str = crate::api::environments::HEADER;

/// The directory of the CLI's own settings: `AURA_CONFIG_DIR`, else
/// `$XDG_CONFIG_HOME/aura`, else `~/.config/aura`.
fn config_dir() -> anyhow::Result<std::path::PathBuf> {
    if let Some(dir) = std::env::var_os("AURA_CONFIG_DIR") {
        return Ok(dir.into());
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME") {
        return Ok(std::path::PathBuf::from(dir).join("aura"));
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| anyhow::anyhow!("set AURA_CONFIG_DIR or HOME for the CLI's settings"))?;
    Ok(std::path::PathBuf::from(home).join(".config/aura"))
}

/// The environment `aura env use` chose, or the default one.
pub fn current_environment() -> anyhow::Result<String> {
    let path = config_dir()?.join("environment");
    match std::fs::read_to_string(&path) {
        Ok(name) if !name.trim().is_empty() => Ok(name.trim().to_owned()),
        Ok(_) => Ok(crate::environments::DEFAULT.to_owned()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            Ok(crate::environments::DEFAULT.to_owned())
        }
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

/// Makes `name` the environment of later commands.
pub fn use_environment(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = config_dir()?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("environment");
    std::fs::write(&path, format!("{name}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// An authenticated admin API client of one environment.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    environment: String,
    yes: bool,
}

impl Client {
    /// Resolves the URL (flag, `AURA_URL`, default), the token (flag,
    /// `AURA_TOKEN`, or `DATA_DIR/admin.token`) and the environment (flag,
    /// `AURA_ENV`, the one `aura env use` chose, or the default); `yes`
    /// answers the questions of destructive commands.
    pub fn new(
        url: Option<&str>,
        token: Option<String>,
        data_dir: &Path,
        environment: Option<String>,
        yes: bool,
    ) -> anyhow::Result<Self> {
        let token = match token {
            Some(token) => token,
            None => {
                let path = data_dir.join("admin.token");
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "no admin token: set AURA_TOKEN or --token, or run where {} exists",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_owned()
            }
        };
        Ok(Self {
            http: reqwest::Client::new(),
            base: url.unwrap_or(DEFAULT_URL).trim_end_matches('/').to_owned(),
            token,
            environment: match environment {
                Some(environment) => environment,
                None => current_environment()?,
            },
            yes,
        })
    }

    /// The environment the commands act on.
    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// Asks before a destructive change, naming the environment: `--yes`
    /// answers for scripts; without a terminal to ask on, it is refused.
    pub fn confirm(&self, change: &str) -> anyhow::Result<()> {
        use std::io::{BufRead as _, IsTerminal as _, Write as _};
        if self.yes {
            return Ok(());
        }
        let question = format!("{change} in environment `{}`", self.environment);
        anyhow::ensure!(
            std::io::stdin().is_terminal(),
            "{question} needs confirmation: pass --yes"
        );
        eprint!("{question}? [y/N] ");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        anyhow::ensure!(
            matches!(answer.trim(), "y" | "Y" | "yes"),
            "cancelled: nothing changed"
        );
        Ok(())
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(self.url(path))).await
    }

    /// `POST path` with a JSON body (`null` sends none).
    pub async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let request = self.http.post(self.url(path));
        let request = if body.is_null() {
            request
        } else {
            request.json(body)
        };
        self.send(request).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.put(self.url(path)).json(body)).await
    }

    /// `GET path`, answering the body's bytes.
    pub async fn get_bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let response = self
            .authorized(self.http.get(self.url(path)))
            .send()
            .await
            .with_context(|| format!("cannot reach Aura at {}", self.base))?;
        if !response.status().is_success() {
            let status = response.status();
            let value: Value = response.json().await.unwrap_or(Value::Null);
            anyhow::bail!(
                "{} ({})",
                value["error"]["message"]
                    .as_str()
                    .unwrap_or("the request failed"),
                value["error"]["code"].as_str().unwrap_or(status.as_str())
            );
        }
        Ok(response
            .bytes()
            .await
            .context("reading the server's answer")?
            .to_vec())
    }

    /// `POST path` with a form.
    pub async fn post_form(
        &self,
        path: &str,
        form: reqwest::multipart::Form,
    ) -> anyhow::Result<Value> {
        self.send(self.http.post(self.url(path)).multipart(form))
            .await
    }

    /// The same client, acting on environment `name`.
    pub fn for_environment(&self, name: &str) -> Self {
        Self {
            http: self.http.clone(),
            base: self.base.clone(),
            token: self.token.clone(),
            environment: name.to_owned(),
            yes: self.yes,
        }
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request
            .bearer_auth(&self.token)
            .header(ENV_HEADER, &self.environment)
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.delete(self.url(path))).await
    }

    /// Uploads a component as a new version of `name`.
    pub async fn deploy(
        &self,
        name: &str,
        wasm: Vec<u8>,
        config: &VersionConfig,
    ) -> anyhow::Result<Value> {
        let config = serde_json::to_string(config)?;
        let form = reqwest::multipart::Form::new()
            .part(
                "component",
                reqwest::multipart::Part::bytes(wasm)
                    .file_name(format!("{name}.wasm"))
                    .mime_str("application/wasm")?,
            )
            .text("config", config);
        self.send(
            self.http
                .post(self.url(&format!("/api/admin/functions/{name}/versions")))
                .multipart(form),
        )
        .await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = self
            .authorized(request)
            .send()
            .await
            .with_context(|| format!("cannot reach Aura at {}", self.base))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .context("reading the server's answer")?;
        let value: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or(Value::Null)
        };
        if status.is_success() {
            return Ok(value);
        }
        match (
            value["error"]["message"].as_str(),
            value["error"]["code"].as_str(),
        ) {
            (Some(message), Some(code)) => match value["error"].get("details") {
                Some(details) => anyhow::bail!(
                    "{message} ({code})\n{}",
                    serde_json::to_string_pretty(details).unwrap_or_default()
                ),
                None => anyhow::bail!("{message} ({code})"),
            },
            _ => anyhow::bail!("the server answered {status}"),
        }
    }
}
