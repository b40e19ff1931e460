//! Grants: the capabilities a function version may use, as data.
//!
//! Grants are part of each deployed version (a new version may change them;
//! rollback restores the old ones). This module only parses, validates and
//! matches them; the runtime enforces them (deploy-time import checks in
//! `runtime::capabilities`, outbound policy in `runtime::outbound`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// What a function version is allowed to use beyond the sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Grants {
    /// Outbound network allow-list: `host[:port]` patterns (see [`HostPattern`]).
    pub network: Vec<String>,
    /// Raw TCP/UDP sockets (`wasi:sockets`); connections are still limited
    /// to addresses the `network` patterns name.
    pub sockets: bool,
    /// Functions whose exported interfaces this function may import.
    pub functions: Vec<String>,
    /// Realtime channels the function may publish on (patterns: `chat.*`).
    pub events: Vec<String>,
    /// Collections the function may use through `aura:platform/db`, and how:
    /// `"read"`, `"read-write"` (both under the invoking user's rules) or
    /// `"service"` (read-write, bypassing rules).
    pub collections: BTreeMap<String, String>,
    /// `aura:platform/auth`: `"caller"` (who invoked the function) or
    /// `"service"` (also user lookup).
    pub auth: Option<String>,
    /// Buckets the function may use through `aura:platform/storage`:
    /// `"read"` or `"read-write"`.
    pub buckets: BTreeMap<String, String>,
    /// Secrets the function may read through `aura:platform/secrets`, by
    /// exact name.
    pub secrets: Vec<String>,
}

/// How a function may use a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketAccess {
    /// Head, get, list, presign GET.
    Read,
    /// Also put, delete, presign PUT.
    ReadWrite,
}

/// How a function may use a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectionAccess {
    /// Read, under the invoking user's rules.
    Read,
    /// Read and write, under the invoking user's rules.
    ReadWrite,
    /// Read and write, bypassing rules.
    Service,
}

impl Grants {
    /// Checks every grant, explaining the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        self.network_patterns()?;
        self.event_patterns()?;
        self.collection_access()?;
        self.auth_service()?;
        self.bucket_access()?;
        self.secret_names()?;
        Ok(())
    }

    /// Checks every pattern, returning the compiled allow-list.
    pub fn network_patterns(&self) -> Result<Vec<HostPattern>, String> {
        self.network.iter().map(|p| HostPattern::parse(p)).collect()
    }

    /// Checks the auth grant: whether it allows user lookup.
    pub fn auth_service(&self) -> Result<bool, String> {
        match self.auth.as_deref() {
            None | Some("caller") => Ok(false),
            Some("service") => Ok(true),
            Some(other) => Err(format!(
                "auth grant `{other}`: use \"caller\" or \"service\""
            )),
        }
    }

    /// Checks every collections grant, returning the access per collection.
    pub fn collection_access(&self) -> Result<BTreeMap<String, CollectionAccess>, String> {
        self.collections
            .iter()
            .map(|(name, access)| {
                let access = match access.as_str() {
                    "read" => CollectionAccess::Read,
                    "read-write" => CollectionAccess::ReadWrite,
                    "service" => CollectionAccess::Service,
                    other => {
                        return Err(format!(
                            "collections grant `{name} = \"{other}\"`: use \"read\", \"read-write\" or \"service\""
                        ));
                    }
                };
                if !crate::db::schema::valid_name(name) {
                    return Err(format!("collections grant: `{name}` is not a collection name"));
                }
                Ok((name.clone(), access))
            })
            .collect()
    }

    /// Checks every buckets grant, returning the access per bucket.
    pub fn bucket_access(&self) -> Result<BTreeMap<String, BucketAccess>, String> {
        self.buckets
            .iter()
            .map(|(name, access)| {
                let access = match access.as_str() {
                    "read" => BucketAccess::Read,
                    "read-write" => BucketAccess::ReadWrite,
                    other => {
                        return Err(format!(
                            "buckets grant `{name} = \"{other}\"`: use \"read\" or \"read-write\""
                        ));
                    }
                };
                if let Some(problem) = crate::storage::names::bucket_problem(name) {
                    return Err(format!("buckets grant: {problem}"));
                }
                Ok((name.clone(), access))
            })
            .collect()
    }

    /// Checks every secret name, returning the list.
    pub fn secret_names(&self) -> Result<Vec<String>, String> {
        for name in &self.secrets {
            crate::secrets::check_name(name).map_err(|err| format!("secrets grant: {err}"))?;
        }
        Ok(self.secrets.clone())
    }

    /// Checks every events pattern, returning the compiled list.
    pub fn event_patterns(&self) -> Result<Vec<crate::realtime::Pattern>, String> {
        self.events
            .iter()
            .map(|p| {
                crate::realtime::Pattern::parse(p).map_err(|err| format!("events grant: {err}"))
            })
            .collect()
    }
}

/// The host part of a [`HostPattern`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    /// Exactly this DNS name.
    Name(String),
    /// Any subdomain of this name (`*.example.org` matches `a.example.org`
    /// and `a.b.example.org`, not `example.org`).
    Subdomains(String),
    /// Exactly this address; the only way to reach a private address.
    Address(IpAddr),
    /// Any host (`*`); private addresses stay unreachable.
    Any,
}

/// One outbound allow-list entry: `host[:port]`.
///
/// `host` is a DNS name, `*.name` (subdomains), an IP address (`10.0.0.5`,
/// `[::1]`) or `*`. `port` is a number or `*`; without it, 80 and 443.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: HostMatch,
    port: Option<u16>,
    any_port: bool,
    text: String,
}

impl HostPattern {
    /// Parses a pattern, explaining what is wrong with a bad one.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| Err(format!("network grant `{text}`: {why}"));
        let lower = text.trim().to_ascii_lowercase();
        if lower.contains("://") || lower.contains('/') {
            return bad("give `host[:port]` without a scheme or path");
        }
        let (host, port) =
            split_host_port(&lower).ok_or_else(|| format!("network grant `{text}`: bad port"))?;
        let (port, any_port) = match port {
            None => (None, false),
            Some("*") => (None, true),
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port > 0 => (Some(port), false),
                _ => return bad("the port must be 1-65535 or `*`"),
            },
        };
        let host = if host == "*" {
            HostMatch::Any
        } else if let Some(parent) = host.strip_prefix("*.") {
            if !is_dns_name(parent) {
                return bad("`*.` must be followed by a DNS name");
            }
            HostMatch::Subdomains(parent.to_owned())
        } else if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            HostMatch::Address(ip)
        } else if is_dns_name(host) {
            HostMatch::Name(host.trim_end_matches('.').to_owned())
        } else {
            return bad("the host must be a DNS name, `*.name`, an IP address or `*`");
        };
        Ok(Self {
            host,
            port,
            any_port,
            text: text.trim().to_owned(),
        })
    }

    /// Whether a request to `host:port` is allowed by this pattern (before
    /// address checks).
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let port_ok = self.any_port || self.port.map_or(port == 80 || port == 443, |p| p == port);
        if !port_ok {
            return false;
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        match &self.host {
            HostMatch::Any => true,
            HostMatch::Name(name) => *name == host,
            HostMatch::Subdomains(parent) => host
                .strip_suffix(parent.as_str())
                .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.')),
            HostMatch::Address(ip) => host.parse::<IpAddr>().is_ok_and(|h| h == *ip),
        }
    }

    /// Whether this pattern names `addr` explicitly (an address pattern),
    /// which is what allows a private or loopback address.
    pub fn names_address(&self, addr: IpAddr) -> bool {
        matches!(self.host, HostMatch::Address(ip) if ip == addr)
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Splits `host[:port]`, handling bracketed IPv6 (`[::1]:80`).
fn split_host_port(text: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match text.matches(':').count() {
        0 => Some((text, None)),
        1 => text.split_once(':').map(|(h, p)| (h, Some(p))),
        // A bare IPv6 address without brackets has no port.
        _ => Some((text, None)),
    }
}

fn is_dns_name(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Whether `addr` is in a range a function must not reach unless a grant
/// names the address: loopback, private, link-local (incl. cloud metadata
/// 169.254.169.254), shared, unspecified, multicast, documentation and
/// reserved ranges, their IPv4-mapped/NAT64 IPv6 forms, and the IPv6
/// ranges that translate to IPv4 (6to4, Teredo).
pub fn is_blocked_address(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space
                || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240 // reserved
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_blocked_address(IpAddr::V4(v4));
            }
            let segments = v6.segments();
            // NAT64 (64:ff9b::/96) embeds an IPv4 address.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = segments[6].to_be_bytes();
                let [c, d] = segments[7].to_be_bytes();
                return is_blocked_address(IpAddr::V4([a, b, c, d].into()));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00 // unique local
                || (segments[0] & 0xffc0) == 0xfe80 // link local
                || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
                || segments[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated)
                // Ranges that translate to IPv4 (6to4, Teredo, local-use
                // NAT64) or are not routed (discard-only): a relay could
                // carry them to any address.
                || segments[0] == 0x2002
                || (segments[0] == 0x2001 && segments[1] == 0)
                || segments[..3] == [0x64, 0xff9b, 1]
                || segments[..4] == [0x100, 0, 0, 0]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> HostPattern {
        HostPattern::parse(text).unwrap()
    }

    #[test]
    fn exact_names_match_only_themselves_on_default_ports() {
        let p = pattern("api.stripe.com");
        assert!(p.allows("api.stripe.com", 443));
        assert!(p.allows("API.Stripe.com", 80));
        assert!(!p.allows("api.stripe.com", 8443));
        assert!(!p.allows("evil.api.stripe.com", 443));
        assert!(!p.allows("stripe.com", 443));
    }

    #[test]
    fn ports_are_exact_or_wildcard() {
        assert!(pattern("api.stripe.com:443").allows("api.stripe.com", 443));
        assert!(!pattern("api.stripe.com:443").allows("api.stripe.com", 80));
        assert!(pattern("db.internal:*").allows("db.internal", 5432));
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let p = pattern("*.example.org");
        assert!(p.allows("a.example.org", 443));
        assert!(p.allows("a.b.example.org", 80));
        assert!(!p.allows("example.org", 443));
        assert!(!p.allows("badexample.org", 443));
        assert!(!p.allows("example.org.evil.com", 443));
    }

    #[test]
    fn addresses_match_literally_and_are_named() {
        let p = pattern("127.0.0.1:8080");
        assert!(p.allows("127.0.0.1", 8080));
        assert!(p.names_address("127.0.0.1".parse().unwrap()));
        assert!(!pattern("*.example.org").names_address("127.0.0.1".parse().unwrap()));
        let v6 = pattern("[::1]:9000");
        assert!(v6.allows("[::1]", 9000));
        assert!(v6.names_address("::1".parse().unwrap()));
    }

    #[test]
    fn bad_patterns_are_explained() {
        for bad in [
            "https://x.com",
            "x.com/path",
            "x.com:0",
            "x.com:http",
            "*.",
            "bad host",
            "a..b",
        ] {
            let err = HostPattern::parse(bad).unwrap_err();
            assert!(err.starts_with(&format!("network grant `{bad}`")), "{err}");
        }
    }

    #[test]
    fn private_and_special_addresses_are_blocked() {
        for blocked in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "64:ff9b:1::a00:1",
            "100::1",
        ] {
            assert!(is_blocked_address(blocked.parse().unwrap()), "{blocked}");
        }
        for public in ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(!is_blocked_address(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn grants_deserialize_with_defaults_and_refuse_unknown_fields() {
        let grants: Grants = serde_json::from_str(r#"{"network": ["a.com"]}"#).unwrap();
        assert_eq!(grants.network, ["a.com"]);
        assert!(!grants.sockets);
        assert!(serde_json::from_str::<Grants>(r#"{"netwrok": []}"#).is_err());
    }
}
