//! Test support: start the real `aura` binary on a free loopback port with a
//! fresh data directory, find the built components, and talk to the server.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `aura serve`.
pub struct Aura {
    child: Child,
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The admin token the server created.
    pub token: String,
    /// Base URL of the S3 API.
    pub s3_url: String,
    dir: Option<tempfile::TempDir>,
    /// A client with no default auth.
    pub http: reqwest::Client,
}

impl Aura {
    /// Starts a server on a fresh data directory.
    pub fn start() -> Self {
        Self::start_in(tempfile::tempdir().expect("temp dir"))
    }

    /// Starts a server on an existing data directory.
    pub fn start_in(dir: tempfile::TempDir) -> Self {
        Self::start_with(dir, &[])
    }

    /// Starts a server on `dir` with extra `serve` arguments.
    pub fn start_with(dir: tempfile::TempDir, extra: &[&str]) -> Self {
        Self::start_with_env(dir, extra, &[])
    }

    /// The same, with environment variables.
    pub fn start_with_env(dir: tempfile::TempDir, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let log = std::fs::File::create(dir.path().join("server.log")).expect("server log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_aura"))
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--s3-addr",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(dir.path())
            .args(extra)
            .env_remove("AURA_URL")
            .env_remove("AURA_TOKEN")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("starting aura");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut s3 = String::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("aura: s3 listening on ") {
                    s3 = url.to_owned();
                }
                if let Some(url) = line.strip_prefix("aura: listening on ") {
                    let _ = tx.send((url.to_owned(), std::mem::take(&mut s3)));
                }
            }
        });
        let (url, s3_url) = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                let log =
                    std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
                panic!("aura did not start; its log:\n{log}")
            });
        let token = std::fs::read_to_string(dir.path().join("admin.token"))
            .expect("admin token")
            .trim()
            .to_owned();
        Self {
            child,
            url,
            token,
            s3_url,
            dir: Some(dir),
            http: reqwest::Client::new(),
        }
    }

    /// Kills the server (`SIGKILL`) where it stands.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server, keeping its data directory for a restart.
    pub fn stop(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.dir.take().expect("data dir")
    }

    /// The server's peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("process status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmHWM")
            * 1024
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.as_ref().expect("data dir").path().to_owned()
    }

    /// The server's log so far.
    #[allow(dead_code)]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("server.log")).unwrap_or_default()
    }

    /// An absolute URL on this server.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// `GET` an admin path with the token; returns status and JSON.
    pub async fn admin_get(&self, path: &str) -> (u16, Value) {
        self.admin_send(self.http.get(self.at(path))).await
    }

    /// Sends `request` with the admin token; returns status and JSON.
    async fn admin_send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `POST` an admin path with a JSON body and the token.
    pub async fn admin_post(&self, path: &str, body: Value) -> (u16, Value) {
        self.admin_send(self.http.post(self.at(path)).json(&body))
            .await
    }

    /// `DELETE` an admin path with the token; returns status and JSON.
    pub async fn admin_delete(&self, path: &str) -> (u16, Value) {
        self.admin_send(self.http.delete(self.at(path))).await
    }

    /// Deploys raw bytes as `name` with a deploy `config`; returns status and JSON.
    pub async fn deploy_bytes(&self, name: &str, wasm: Vec<u8>, config: Value) -> (u16, Value) {
        let form = reqwest::multipart::Form::new()
            .part(
                "component",
                reqwest::multipart::Part::bytes(wasm).file_name("c.wasm"),
            )
            .text("config", config.to_string());
        let response = self
            .http
            .post(self.at(&format!("/api/admin/functions/{name}/versions")))
            .bearer_auth(&self.token)
            .multipart(form)
            .send()
            .await
            .expect("deploy request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Deploys the built component `component` as `name`; panics unless it succeeds.
    pub async fn deploy(&self, name: &str, component: &str, config: Value) -> Value {
        let (status, body) = self.deploy_bytes(name, wasm(component), config).await;
        assert_eq!(status, 201, "deploying {component} as {name}: {body}");
        body
    }

    /// Runs the `aura` CLI against this server.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        self.cli_in(std::path::Path::new("."), args)
    }

    /// Runs the `aura` CLI against this server from directory `dir`.
    pub fn cli_in(&self, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_aura"))
            .current_dir(dir)
            .args(args)
            .env("AURA_URL", &self.url)
            .env("AURA_TOKEN", &self.token)
            // `aura env use` saves its choice here, apart from other tests.
            .env("AURA_CONFIG_DIR", self.data_dir().join(".aura-cli"))
            .env_remove("AURA_ENV")
            .output()
            .expect("running the aura CLI")
    }

    /// A counter from `/metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        let text = self
            .http
            .get(self.at("/metrics"))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body");
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
    }

    /// Waits until the log records of `function` satisfy `done`; returns them.
    pub async fn invocations_until(
        &self,
        function: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let mut records = Vec::new();
        for _ in 0..100 {
            let (_, body) = self
                .admin_get(&format!("/api/admin/functions/{function}/logs?limit=1000"))
                .await;
            records = body["invocations"].as_array().cloned().unwrap_or_default();
            if done(&records) {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the log of {function} never got there: {records:?}");
    }

    /// Waits until the log of `function` has an invocation with `id`.
    pub async fn invocation_log(&self, function: &str, id: &str) -> Value {
        for _ in 0..100 {
            let (_, body) = self
                .admin_get(&format!("/api/admin/functions/{function}/logs?limit=1000"))
                .await;
            if let Some(record) = body["invocations"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["id"] == id)
            {
                return record.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no log record for invocation {id} of {function}");
    }
}

impl Drop for Aura {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of a built guest component (`examples/*`, `tests/components/*`).
pub fn wasm_path(name: &str) -> String {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target
        .join("wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    std::fs::canonicalize(&path)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The bytes of a built guest component (`examples/*`, `tests/components/*`).
pub fn wasm(name: &str) -> Vec<u8> {
    let path = wasm_path(name);
    std::fs::read(&path).unwrap_or_else(|err| {
        panic!(
            "{path}: {err}. Build the guest components first: `scripts/test.sh` does, or \
             `cargo build --release --target wasm32-wasip2 --workspace --exclude aura`"
        )
    })
}

/// The standard error-body assertion: status and machine code.
pub async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let body: Value = response.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], code, "error body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "message in {body}"
    );
    body
}

/// A plain HTTP server on loopback standing in for the outside world:
/// `/hello` answers `upstream says hi`, `/big` answers 2 MiB. It counts the
/// requests it receives.
pub struct Upstream {
    /// Its port on 127.0.0.1.
    pub port: u16,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Upstream {
    /// Starts the server on a free port.
    pub async fn start() -> Self {
        use axum::routing::get;
        use std::sync::atomic::Ordering;
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        let app = axum::Router::new()
            .route("/hello", get(|| async { "upstream says hi" }))
            .route("/big", get(|| async { vec![b'x'; 2 * 1024 * 1024] }))
            .layer(axum::middleware::from_fn(
                move |request, next: axum::middleware::Next| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async move { next.run(request).await }
                },
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let port = listener.local_addr().expect("upstream addr").port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { port, hits }
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Percent-encodes a URL for use as a query value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An HTTPS server on loopback whose certificate, for one DNS name, is
/// signed by a test CA; `ca_pem` is that CA for `aura serve --outbound-ca`.
pub struct TlsUpstream {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Path of the CA certificate (PEM).
    pub ca_pem: PathBuf,
    _dir: tempfile::TempDir,
}

impl TlsUpstream {
    /// Starts a server presenting a certificate for `name`; every request
    /// is answered `secure hi`.
    pub async fn start(name: &str) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Aura test CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf = CertificateParams::new(vec![name.to_owned()])
            .expect("leaf params")
            .signed_by(&leaf_key, &ca, &ca_key)
            .expect("leaf certificate");
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_pem = dir.path().join("ca.pem");
        std::fs::write(&ca_pem, ca.pem()).expect("writing CA");

        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(|_request| async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from_static(b"secure hi")),
                        ))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            port,
            ca_pem,
            _dir: dir,
        }
    }
}

/// Runs `statements` on the SQLite file `file` (a stopped server's), as an
/// earlier version or an old day would have left it.
pub async fn sqlite_exec(file: &std::path::Path, statements: &[&str]) {
    use sqlx::Connection as _;
    let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
        .await
        .expect("opening the SQLite file");
    for statement in statements {
        sqlx::query(statement)
            .execute(&mut db)
            .await
            .unwrap_or_else(|err| panic!("{statement}: {err}"));
    }
    db.close().await.expect("closing the SQLite file");
}
