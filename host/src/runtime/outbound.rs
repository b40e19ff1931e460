//! Outbound HTTP from functions (`wasi:http/outgoing-handler`).
//!
//! A request leaves only if its `host:port` matches one of the version's
//! network grants. The host is then resolved here (static overrides first,
//! then DNS), addresses in private, loopback, link-local or reserved ranges
//! are dropped unless a grant names that exact address, and the connection is
//! made to a vetted address: the name is never resolved a second time, so
//! DNS rebinding cannot redirect it. Each invocation has a request budget, a
//! timeout and a response-size cap. Every refusal is an error code to the
//! guest and a line in the invocation's stderr saying how to allow it.

use super::Limits;
use super::output::CapturedOutput;
use crate::grants::{Grants, HostPattern, is_blocked_address};
use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// How functions reach the outside world, set by the operator: static name
/// overrides consulted before DNS (`--resolve`) and the TLS roots trusted
/// (the Mozilla set, plus `--outbound-ca`).
pub struct Egress {
    overrides: HashMap<String, Vec<IpAddr>>,
    tls: Arc<rustls::ClientConfig>,
}

impl Egress {
    /// Egress with `NAME=IP` overrides and, optionally, extra PEM roots.
    pub fn new(
        overrides: &[String],
        extra_roots: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let mut map: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for entry in overrides {
            let (name, ip) = entry
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--resolve `{entry}`: expected NAME=IP"))?;
            let ip: IpAddr = ip
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("--resolve `{entry}`: `{ip}` is not an IP address"))?;
            map.entry(name.trim().to_ascii_lowercase())
                .or_default()
                .push(ip);
        }
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        if let Some(path) = extra_roots {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject;
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|err| anyhow::anyhow!("--outbound-ca {}: {err}", path.display()))?;
            let mut added = 0;
            for cert in certs {
                let cert =
                    cert.map_err(|err| anyhow::anyhow!("--outbound-ca {}: {err}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|err| anyhow::anyhow!("--outbound-ca {}: {err}", path.display()))?;
                added += 1;
            }
            anyhow::ensure!(
                added > 0,
                "--outbound-ca {}: no PEM certificates found",
                path.display()
            );
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Self {
            overrides: map,
            tls: Arc::new(tls),
        })
    }

    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        if let Some(ips) = self.overrides.get(host) {
            return Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect());
        }
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }
}

/// A version's network access, compiled from its grants at deploy.
#[derive(Debug, Clone)]
pub struct NetworkAccess {
    patterns: Arc<[HostPattern]>,
    sockets: bool,
}

impl NetworkAccess {
    /// Compiles `grants`, explaining the first bad pattern.
    pub fn from_grants(grants: &Grants) -> Result<Self, String> {
        Ok(Self {
            patterns: grants.network_patterns()?.into(),
            sockets: grants.sockets,
        })
    }

    /// Whether raw sockets are granted.
    pub(super) fn sockets(&self) -> bool {
        self.sockets
    }

    /// Whether a raw socket may use `addr` for `usage`. Functions are
    /// clients: the implicit bind to an ephemeral wildcard port before a
    /// connect is fine, listening and accepting never are. Destinations must
    /// match a pattern as an address (`10.0.0.5:5432`, or `*:5432` for public
    /// addresses), since the guest resolves names itself and a name pattern
    /// cannot vouch for the result.
    pub(super) fn socket_allowed(&self, addr: SocketAddr, usage: SocketAddrUse) -> bool {
        if !self.sockets {
            return false;
        }
        match usage {
            SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => {
                addr.ip().is_unspecified() && addr.port() == 0
            }
            SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => {
                let host = addr.ip().to_string();
                self.patterns.iter().any(|p| {
                    p.allows(&host, addr.port())
                        && (!is_blocked_address(addr.ip()) || p.names_address(addr.ip()))
                })
            }
            _ => false,
        }
    }

    /// The log note for a refused socket address.
    pub(super) fn socket_refusal(&self, addr: SocketAddr) -> String {
        if self.sockets {
            format!(
                "[aura: socket refused: `{addr}` is not in the function's network grants; to allow it, add \"{addr}\" to `network` under [grants] in aura.toml]\n"
            )
        } else {
            "[aura: socket refused: raw sockets are not granted; to allow them, set `sockets = true` and list the addresses in `network` under [grants] in aura.toml]\n".to_owned()
        }
    }

    /// The per-invocation HTTP hooks enforcing this access.
    pub(super) fn policy(
        &self,
        egress: Arc<Egress>,
        limits: Limits,
        stderr: CapturedOutput,
    ) -> OutboundPolicy {
        OutboundPolicy {
            patterns: self.patterns.clone(),
            egress,
            limits,
            sent: 0,
            stderr,
        }
    }
}

/// The per-invocation outbound policy: the store's `WasiHttpHooks`.
pub(super) struct OutboundPolicy {
    patterns: Arc<[HostPattern]>,
    egress: Arc<Egress>,
    limits: Limits,
    sent: u32,
    stderr: CapturedOutput,
}

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;
type SendResult = Result<(http::Response<WasiBody>, IoFuture), Error>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        self.sent += 1;
        let over_budget = self.sent > self.limits.max_outbound_requests;
        let patterns = self.patterns.clone();
        let egress = self.egress.clone();
        let limits = self.limits;
        let stderr = self.stderr.clone();
        Box::new(async move {
            let result = if over_budget {
                Err(Refusal::new(
                    Error::ConnectionLimitReached,
                    format!(
                        "the invocation's budget of {} outbound requests is spent",
                        limits.max_outbound_requests
                    ),
                ))
            } else {
                send(request, options, &patterns, &egress, &limits).await
            };
            result.map_err(|refusal| {
                stderr.append(
                    format!("[aura: outbound request refused: {}]\n", refusal.note).as_bytes(),
                );
                tracing::info!(reason = %refusal.note, "outbound request refused");
                refusal.code
            })
        })
    }
}

/// Why a request did not go out: the code the guest sees and a note for the log.
struct Refusal {
    code: Error,
    note: String,
}

impl Refusal {
    fn new(code: Error, note: String) -> Self {
        Self { code, note }
    }
}

async fn send(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    patterns: &[HostPattern],
    egress: &Egress,
    limits: &Limits,
) -> Result<(http::Response<WasiBody>, IoFuture), Refusal> {
    let uri = request.uri().clone();
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") | None => false,
        Some(other) => {
            return Err(Refusal::new(
                Error::HttpProtocolError,
                format!("unsupported scheme `{other}`"),
            ));
        }
    };
    let authority = uri.authority().ok_or_else(|| {
        Refusal::new(
            Error::HttpRequestUriInvalid,
            "the request has no host".into(),
        )
    })?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let target = format!("{}:{port}", authority.host());

    let matching: Vec<&HostPattern> = patterns.iter().filter(|p| p.allows(&host, port)).collect();
    if matching.is_empty() {
        return Err(Refusal::new(
            Error::HttpRequestDenied,
            format!(
                "`{target}` is not in the function's network grants; to allow it, add \"{target}\" to `network` under [grants] in aura.toml"
            ),
        ));
    }

    let addresses = egress.resolve(&host, port).await.map_err(|err| {
        Refusal::new(
            Error::DnsError {
                rcode: Some(err.to_string()),
                info_code: None,
            },
            format!("cannot resolve `{host}`: {err}"),
        )
    })?;
    // A private address is reachable only if a grant names it, with this port.
    let (allowed, blocked): (Vec<SocketAddr>, Vec<SocketAddr>) =
        addresses.into_iter().partition(|addr| {
            !is_blocked_address(addr.ip())
                || patterns
                    .iter()
                    .any(|p| p.names_address(addr.ip()) && p.allows(&addr.ip().to_string(), port))
        });
    if allowed.is_empty() {
        let blocked: Vec<String> = blocked.iter().map(|a| a.ip().to_string()).collect();
        return Err(Refusal::new(
            Error::DestinationIpProhibited,
            format!(
                "`{host}` resolves only to private or reserved addresses ({}); to allow one, also grant it by address (e.g. \"{}:{port}\")",
                blocked.join(", "),
                blocked.first().map_or("", String::as_str)
            ),
        ));
    }

    let budget = Duration::from_millis(limits.outbound_timeout_ms);
    let bounded = |requested: Option<Duration>| requested.map_or(budget, |d| d.min(budget));
    let connect_timeout = bounded(options.and_then(|o| o.connect_timeout));
    let first_byte_timeout = bounded(options.and_then(|o| o.first_byte_timeout));
    let idle_timeout = bounded(options.and_then(|o| o.between_bytes_timeout));

    let stream = connect(&allowed, connect_timeout).await?;
    let io: Box<dyn Io> = if tls {
        let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|_| {
            Refusal::new(
                Error::HttpRequestUriInvalid,
                format!("`{host}` is not a valid TLS name"),
            )
        })?;
        let tls = tokio_rustls::TlsConnector::from(egress.tls.clone())
            .connect(name, stream)
            .await
            .map_err(|err| {
                Refusal::new(
                    Error::TlsProtocolError,
                    format!("TLS with `{target}` failed: {err}"),
                )
            })?;
        Box::new(tls)
    } else {
        Box::new(stream)
    };

    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(io))
            .await
            .map_err(|err| {
                Refusal::new(
                    Error::from(err),
                    format!("HTTP handshake with `{target}` failed"),
                )
            })?;
    let driver = tokio::spawn(connection);

    // On the wire the request line carries only the path; the Host header
    // (set by wasi:http) keeps the name.
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    *request.uri_mut() = http::Uri::try_from(path)
        .map_err(|_| Refusal::new(Error::HttpRequestUriInvalid, "bad request path".into()))?;

    let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
        .await
        .map_err(|_| {
            Refusal::new(
                Error::ConnectionReadTimeout,
                format!("`{target}` did not answer in time"),
            )
        })?
        .map_err(|err| Refusal::new(Error::from(err), format!("request to `{target}` failed")))?;
    let limit = limits.max_outbound_response_bytes;
    let response = response.map(|body| ResponseBody::new(body, limit, idle_timeout).boxed_unsync());
    let io: IoFuture = Box::new(async move {
        match driver.await {
            Ok(result) => result.map_err(Error::from),
            Err(_) => Err(Error::ConnectionTerminated),
        }
    });
    Ok((response, io))
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

async fn connect(addresses: &[SocketAddr], timeout: Duration) -> Result<TcpStream, Refusal> {
    let mut last = None;
    for addr in addresses {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(err)) => {
                last = Some(Refusal::new(
                    Error::ConnectionRefused,
                    format!("connecting to {addr} failed: {err}"),
                ))
            }
            Err(_) => {
                last = Some(Refusal::new(
                    Error::ConnectionTimeout,
                    format!("connecting to {addr} timed out"),
                ))
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        Refusal::new(
            Error::DestinationNotFound,
            "no address to connect to".into(),
        )
    }))
}

/// An outbound response body with a size cap and an idle timeout.
struct ResponseBody {
    inner: hyper::body::Incoming,
    remaining: u64,
    limit: u64,
    idle_timeout: Duration,
    idle: Pin<Box<tokio::time::Sleep>>,
}

impl ResponseBody {
    fn new(inner: hyper::body::Incoming, limit: u64, idle_timeout: Duration) -> Self {
        Self {
            inner,
            remaining: limit,
            limit,
            idle_timeout,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > this.remaining {
                        return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(
                            this.limit,
                        )))));
                    }
                    this.remaining -= len;
                }
                let deadline = tokio::time::Instant::now() + this.idle_timeout;
                this.idle.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(Error::from(err)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}
