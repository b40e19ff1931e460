//! A small client of the admin API, shared by the CLI commands.

use crate::functions::VersionConfig;
use anyhow::Context as _;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

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

/// The server `aura login` saved: its URL and admin token, kept in the
/// CLI's settings directory (the token file readable by its owner only),
/// never in a project.
pub fn login(url: &str, token: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = config_dir()?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let token_path = dir.join("token");
    write_private(&token_path, token)?;
    let url_path = dir.join("server");
    std::fs::write(&url_path, format!("{}\n", url.trim_end_matches('/')))
        .with_context(|| format!("writing {}", url_path.display()))?;
    Ok(dir)
}

/// Forgets the server `aura login` saved.
pub fn logout() -> anyhow::Result<bool> {
    let dir = config_dir()?;
    let mut removed = false;
    for name in ["server", "token"] {
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) => removed = true,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).with_context(|| format!("removing {name}")),
        }
    }
    Ok(removed)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// The URL and token `aura login` saved, if any.
fn saved_login() -> Option<(String, String)> {
    let dir = config_dir().ok()?;
    let url = std::fs::read_to_string(dir.join("server")).ok()?;
    let token = std::fs::read_to_string(dir.join("token")).ok()?;
    Some((url.trim().to_owned(), token.trim().to_owned()))
}

/// Where a client's URL and admin token came from.
struct Sources {
    url: String,
    token: String,
}

/// An authenticated admin API client of one environment.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    /// Where the URL and the token came from, for error messages.
    sources: Arc<Sources>,
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
        // A saved login serves when no URL is given, or the same URL is.
        let saved = saved_login()
            .filter(|(saved, _)| url.is_none_or(|url| url.trim_end_matches('/') == saved.as_str()));
        let (url_from, url) = match (url, &saved) {
            (Some(url), _) => ("--url or AURA_URL".to_owned(), url.to_owned()),
            (None, Some((saved, _))) => (
                format!("`aura login` ({})", config_dir()?.join("server").display()),
                saved.clone(),
            ),
            (None, None) => (
                "the default; pass --url, set AURA_URL or run aura login".to_owned(),
                DEFAULT_URL.to_owned(),
            ),
        };
        let (token_from, token) = match (token, saved) {
            (Some(token), _) => ("--token or AURA_TOKEN".to_owned(), token),
            (None, Some((_, token))) => (
                format!("`aura login` ({})", config_dir()?.join("token").display()),
                token,
            ),
            (None, None) => {
                let path = data_dir.join("admin.token");
                let token = std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "no admin token: set AURA_TOKEN or --token, run aura login URL, or run where {} exists",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_owned();
                (path.display().to_string(), token)
            }
        };
        Ok(Self {
            http: reqwest::Client::new(),
            base: url.trim_end_matches('/').to_owned(),
            token,
            sources: Arc::new(Sources {
                url: url_from,
                token: token_from,
            }),
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
            .with_context(|| self.unreachable())?;
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
            sources: self.sources.clone(),
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

    fn unreachable(&self) -> String {
        format!(
            "cannot reach Aura at {} (the URL is {})",
            self.base, self.sources.url
        )
    }

    /// What to say after a refused admin token.
    fn token_hint(&self, code: Option<&str>) -> String {
        match code {
            Some("unauthorized" | "invalid_token") => format!(
                "\nthe admin token came from {}; the server at {} keeps its own in its data directory's admin.token",
                self.sources.token, self.base
            ),
            _ => String::new(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = self
            .authorized(request)
            .send()
            .await
            .with_context(|| self.unreachable())?;
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
            (Some(message), Some(code)) => {
                let hint = self.token_hint(Some(code));
                match value["error"].get("details") {
                    Some(details) => anyhow::bail!(
                        "{message} ({code})\n{}{hint}",
                        serde_json::to_string_pretty(details).unwrap_or_default()
                    ),
                    None => anyhow::bail!("{message} ({code}){hint}"),
                }
            }
            _ => anyhow::bail!("the server answered {status}"),
        }
    }
}
