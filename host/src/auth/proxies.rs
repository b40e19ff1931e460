//! Which address a request comes from when it passes through reverse
//! proxies. Only proxies the operator names (`--trusted-proxy`) are
//! believed: from one of them, the client is the right-most address of
//! `X-Forwarded-For` that is not itself a trusted proxy. From anyone else
//! the header is ignored (a client could write anything in it).

use std::net::IpAddr;

/// The trusted proxies: addresses and networks (`10.0.0.0/8`, `::1`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Parses `ADDRESS` or `ADDRESS/PREFIX` entries.
    pub fn parse(entries: &[String]) -> anyhow::Result<Self> {
        entries
            .iter()
            .map(|entry| {
                let bad = || {
                    anyhow::anyhow!(
                        "trusted proxy `{entry}`: expected an address or ADDRESS/PREFIX"
                    )
                };
                let (address, prefix) = match entry.trim().split_once('/') {
                    Some((address, prefix)) => (address, Some(prefix)),
                    None => (entry.trim(), None),
                };
                let address: IpAddr = address.parse().map_err(|_| bad())?;
                let width = if address.is_ipv4() { 32 } else { 128 };
                let prefix = match prefix {
                    Some(prefix) => prefix
                        .parse::<u8>()
                        .ok()
                        .filter(|p| *p <= width)
                        .ok_or_else(bad)?,
                    None => width,
                };
                Ok((address, prefix))
            })
            .collect::<anyhow::Result<_>>()
            .map(Self)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|(network, prefix)| match (network, ip) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*prefix)).unwrap_or(0);
                u32::from(*network) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*prefix)).unwrap_or(0);
                u128::from(*network) & mask == u128::from(ip) & mask
            }
            _ => false,
        })
    }

    /// The client's address: `peer`, unless `peer` is a trusted proxy and
    /// `X-Forwarded-For` names the client.
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let Some(chain) = forwarded_for else {
            return peer;
        };
        let mut client = peer;
        for hop in chain.rsplit(',') {
            let Ok(address) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = address;
            if !self.trusts(address) {
                break;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_trusted_proxies_are_believed() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into(), "::1".into()]).unwrap();
        // From a trusted proxy: the right-most untrusted hop.
        assert_eq!(
            proxies.client_ip(ip("10.1.2.3"), Some("203.0.113.9")),
            ip("203.0.113.9")
        );
        assert_eq!(
            proxies.client_ip(ip("10.1.2.3"), Some("1.1.1.1, 203.0.113.9, 10.9.9.9")),
            ip("203.0.113.9"),
            "a forged left-most entry is not believed"
        );
        assert_eq!(
            proxies.client_ip(ip("::1"), Some("2001:db8::7")),
            ip("2001:db8::7")
        );
        // From anyone else: the header is ignored.
        assert_eq!(
            proxies.client_ip(ip("198.51.100.4"), Some("1.2.3.4")),
            ip("198.51.100.4")
        );
        // Garbage stops the walk.
        assert_eq!(
            proxies.client_ip(ip("10.1.2.3"), Some("nonsense")),
            ip("10.1.2.3")
        );
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["proxy.local".into()]).is_err());
    }
}
