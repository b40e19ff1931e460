//! A small client of the admin API, shared by the CLI commands.

use crate::functions::VersionConfig;
use anyhow::Context as _;
use serde_json::Value;
use std::path::Path;

const DEFAULT_URL: &str = "http://127.0.0.1:8090";

/// An authenticated admin API client.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// Resolves the URL (flag, `AURA_URL`, default) and the token (flag,
    /// `AURA_TOKEN`, or `DATA_DIR/admin.token`).
    pub fn new(url: Option<&str>, token: Option<String>, data_dir: &Path) -> anyhow::Result<Self> {
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
        })
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
        let response = request
            .bearer_auth(&self.token)
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
