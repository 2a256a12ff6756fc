//! Where the CSE may be made to call: the outbound policy (`[security] outbound_allow`,
//! `outbound_deny`) over the addresses of every target it connects to on a client's behalf:
//! notification targets (`nu`, `su`), points of access (an AE's or a remote CSE's `poa`).
//!
//! An address is allowed when it lies in some `outbound_allow` range and in no
//! `outbound_deny` range. Host names are resolved and every address they resolve to must be
//! allowed; for HTTP the check also runs on the addresses the connection is made to (the
//! [`Resolver`]), so a name that changes its answer after the check gains nothing. Hosts that
//! the configuration names itself (a `[[remote_cse]]` poa, the outside broker) are the
//! operator's choice and always allowed.

use ipnet::IpNet;
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The built-in `outbound_allow`: every address; `outbound_deny` takes out what an AE should
/// never make the CSE call.
pub const DEFAULT_ALLOW: &[&str] = &["0.0.0.0/0", "::/0"];

/// The built-in `outbound_deny`: link-local (cloud metadata services at 169.254.169.254),
/// multicast, broadcast and "this network". Loopback and private ranges stay allowed: the apps
/// of an edge box live there.
pub const DEFAULT_DENY: &[&str] = &[
    "0.0.0.0/8",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "fe80::/10",
    "ff00::/8",
];

/// Parses a CIDR range; a bare address is a range of one.
pub fn parse_range(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("'{s}' is not an address range like 10.0.0.0/8 or fd00::/8"))
}

#[derive(Debug, Clone)]
pub struct Policy {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    /// Host names and addresses named in the configuration, lower-cased.
    configured: HashSet<String>,
}

impl Policy {
    /// From the configured ranges (checked by the configuration) and the hosts the
    /// configuration names.
    pub fn new(
        allow: &[String],
        deny: &[String],
        configured: impl IntoIterator<Item = String>,
    ) -> Result<Policy, String> {
        let ranges = |l: &[String]| l.iter().map(|s| parse_range(s)).collect::<Result<_, _>>();
        Ok(Policy {
            allow: ranges(allow)?,
            deny: ranges(deny)?,
            configured: configured
                .into_iter()
                .map(|h| bare_host(&h).to_ascii_lowercase())
                .collect(),
        })
    }

    pub fn permits_ip(&self, ip: IpAddr) -> bool {
        // `::ffff:169.254.169.254` is 169.254.169.254.
        let ip = ip.to_canonical();
        self.allow.iter().any(|n| n.contains(&ip)) && !self.deny.iter().any(|n| n.contains(&ip))
    }

    fn is_configured(&self, host: &str) -> bool {
        self.configured
            .contains(&bare_host(host).to_ascii_lowercase())
    }

    /// Whether the CSE may connect to `host`: a configured host, or an address (or a name
    /// whose every address) the ranges allow. The error says which rule refused, never what
    /// the address does.
    pub async fn check(&self, host: &str, port: u16) -> Result<(), String> {
        if self.is_configured(host) {
            return Ok(());
        }
        let refused = || format!("{host} is not an allowed target (security.outbound_allow/deny)");
        if let Ok(ip) = bare_host(host).parse::<IpAddr>() {
            return if self.permits_ip(ip) {
                Ok(())
            } else {
                Err(refused())
            };
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| format!("{host} cannot be resolved"))?
            .collect();
        if addrs.is_empty() || !addrs.iter().all(|a| self.permits_ip(a.ip())) {
            return Err(refused());
        }
        Ok(())
    }

    /// [`check`](Self::check) for the host of a URL.
    pub async fn check_url(&self, url: &str) -> Result<(), String> {
        let parsed = url::Url::parse(url).map_err(|_| format!("'{url}' is not a valid URL"))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| format!("'{url}' names no host"))?;
        self.check(host, parsed.port_or_known_default().unwrap_or(0))
            .await
    }
}

/// `[::1]` → `::1`.
fn bare_host(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// A DNS resolver for the CSE's HTTP client that keeps only the addresses the policy allows,
/// at the moment of connecting.
pub struct Resolver(pub Arc<Policy>);

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if policy.is_configured(&host) {
                return Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs);
            }
            if addrs.is_empty() || !addrs.iter().all(|a| policy.permits_ip(a.ip())) {
                return Err(format!("{host} is not an allowed target").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_policy() -> Policy {
        let s = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Policy::new(
            &s(DEFAULT_ALLOW),
            &s(DEFAULT_DENY),
            ["Registrar.example".into()],
        )
        .unwrap()
    }

    #[test]
    fn the_default_keeps_the_local_networks_and_refuses_metadata_and_multicast() {
        let p = default_policy();
        for ok in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.10",
            "172.16.0.1",
            "::1",
            "fd00::1",
            "8.8.8.8",
        ] {
            assert!(p.permits_ip(ok.parse().unwrap()), "{ok}");
        }
        for bad in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "fe80::1",
            "224.0.0.1",
            "255.255.255.255",
            "0.0.0.0",
            "::",
            "ff02::1",
        ] {
            assert!(!p.permits_ip(bad.parse().unwrap()), "{bad}");
        }
    }

    #[test]
    fn deny_wins_and_allow_narrows() {
        let p = Policy::new(
            &["10.0.0.0/8".into(), "127.0.0.1".into()],
            &["10.9.0.0/16".into()],
            [],
        )
        .unwrap();
        assert!(p.permits_ip("10.1.0.1".parse().unwrap()));
        assert!(p.permits_ip("127.0.0.1".parse().unwrap()));
        assert!(!p.permits_ip("10.9.0.1".parse().unwrap()));
        assert!(!p.permits_ip("192.168.0.1".parse().unwrap()));
        assert!(parse_range("10.0.0.0/33").is_err());
        assert!(parse_range("example.com").is_err());
    }

    #[tokio::test]
    async fn configured_hosts_pass_and_literals_are_checked_without_dns() {
        let p = default_policy();
        assert!(p.check("registrar.example", 1883).await.is_ok());
        assert!(p.check("[::1]", 80).await.is_ok());
        let e = p.check("169.254.169.254", 80).await.unwrap_err();
        assert!(e.contains("not an allowed target"), "{e}");
        assert!(p
            .check_url("http://169.254.169.254/latest/meta-data")
            .await
            .is_err());
        assert!(p.check_url("http://127.0.0.1:9/x").await.is_ok());
    }
}
