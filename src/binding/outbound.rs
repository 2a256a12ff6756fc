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
    // Cloud metadata services outside link-local: Alibaba's, and AWS's over IPv6.
    "100.100.100.200/32",
    "fd00:ec2::254/128",
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
    /// Hosts (names or addresses, lower-cased) and ports named in the configuration.
    configured: HashSet<(String, u16)>,
}

impl Policy {
    /// From the configured ranges (checked by the configuration) and the hosts and ports the
    /// configuration names.
    pub fn new(
        allow: &[String],
        deny: &[String],
        configured: impl IntoIterator<Item = (String, u16)>,
    ) -> Result<Policy, String> {
        let ranges = |l: &[String]| l.iter().map(|s| parse_range(s)).collect::<Result<_, _>>();
        Ok(Policy {
            allow: ranges(allow)?,
            deny: ranges(deny)?,
            configured: configured
                .into_iter()
                .map(|(h, p)| (bare_host(&h).to_ascii_lowercase(), p))
                .collect(),
        })
    }

    pub fn permits_ip(&self, ip: IpAddr) -> bool {
        // `::ffff:169.254.169.254` is 169.254.169.254, and so is NAT64's
        // `64:ff9b::a9fe:a9fe`.
        let ip = match ip.to_canonical() {
            IpAddr::V6(v6) if v6.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] => {
                let o = v6.octets();
                IpAddr::from([o[12], o[13], o[14], o[15]])
            }
            other => other,
        };
        self.allow.iter().any(|n| n.contains(&ip)) && !self.deny.iter().any(|n| n.contains(&ip))
    }

    /// A host and port the configuration names.
    fn is_configured(&self, host: &str, port: u16) -> bool {
        self.configured
            .contains(&(bare_host(host).to_ascii_lowercase(), port))
    }

    /// A host the configuration names, on any of its ports (the resolver sees no port; the
    /// check before the connection did).
    fn names_configured_host(&self, host: &str) -> bool {
        let host = bare_host(host).to_ascii_lowercase();
        self.configured.iter().any(|(h, _)| *h == host)
    }

    /// The verdict on `host` once its addresses are known (`None`: it is an address).
    fn judge(&self, host: &str, addrs: Option<&[SocketAddr]>) -> Result<(), String> {
        let allowed = match addrs {
            None => bare_host(host)
                .parse::<IpAddr>()
                .is_ok_and(|ip| self.permits_ip(ip)),
            Some(addrs) => !addrs.is_empty() && addrs.iter().all(|a| self.permits_ip(a.ip())),
        };
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "{host} is not an allowed target (security.outbound_allow/deny)"
            ))
        }
    }

    /// The verdict when no name needs resolving: a configured host and port, or an address.
    fn decided(&self, host: &str, port: u16) -> Option<Result<(), String>> {
        if self.is_configured(host, port) {
            return Some(Ok(()));
        }
        bare_host(host)
            .parse::<IpAddr>()
            .is_ok()
            .then(|| self.judge(host, None))
    }

    /// Whether the CSE may connect to `host` on `port`: a configured host and port, or an
    /// address (or a name whose every address) the ranges allow. The error says which rule
    /// refused, never what the address does. Resolving takes at most [`RESOLVE_WITHIN`].
    pub async fn check(&self, host: &str, port: u16) -> Result<(), String> {
        if let Some(verdict) = self.decided(host, port) {
            return verdict;
        }
        let lookup = tokio::net::lookup_host((host, port));
        let addrs: Vec<SocketAddr> = match tokio::time::timeout(RESOLVE_WITHIN, lookup).await {
            Ok(Ok(addrs)) => addrs.collect(),
            _ => return Err(format!("{host} cannot be resolved")),
        };
        self.judge(host, Some(&addrs))
    }

    /// [`check`](Self::check) from a blocking thread: the name is resolved on this thread
    /// (the system resolver's own timeouts apply), never on the runtime's blocking pool, which
    /// the calling thread may be part of.
    pub fn check_blocking(&self, host: &str, port: u16) -> Result<(), String> {
        use std::net::ToSocketAddrs;
        if let Some(verdict) = self.decided(host, port) {
            return verdict;
        }
        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|_| format!("{host} cannot be resolved"))?
            .collect();
        self.judge(host, Some(&addrs))
    }

    /// [`check`](Self::check) for the host of a URL.
    pub async fn check_url(&self, url: &str) -> Result<(), String> {
        let (host, port) = host_port(url)?;
        self.check(&host, port).await
    }

    /// [`check_blocking`](Self::check_blocking) for the host of a URL.
    pub fn check_url_blocking(&self, url: &str) -> Result<(), String> {
        let (host, port) = host_port(url)?;
        self.check_blocking(&host, port)
    }
}

/// How long resolving a target's name may take on the async path.
pub const RESOLVE_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

fn host_port(url: &str) -> Result<(String, u16), String> {
    let parsed = url::Url::parse(url).map_err(|_| format!("'{url}' is not a valid URL"))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("'{url}' names no host"))?;
    Ok((
        host.to_string(),
        parsed.port_or_known_default().unwrap_or(0),
    ))
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
            let lookup = tokio::net::lookup_host((host.as_str(), 0));
            let addrs: Vec<SocketAddr> = tokio::time::timeout(RESOLVE_WITHIN, lookup)
                .await
                .map_err(|_| format!("{host} cannot be resolved"))??
                .collect();
            if policy.names_configured_host(&host) {
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
            [("Registrar.example".to_string(), 1883)],
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
            "64:ff9b::a9fe:a9fe",
            "100.100.100.200",
            "fd00:ec2::254",
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
        // Its other ports are no exception (it does not resolve here).
        assert!(p.check("registrar.example", 8080).await.is_err());
        assert!(p.check("[::1]", 80).await.is_ok());
        let e = p.check("169.254.169.254", 80).await.unwrap_err();
        assert!(e.contains("not an allowed target"), "{e}");
        assert!(p
            .check_url("http://169.254.169.254/latest/meta-data")
            .await
            .is_err());
        assert!(p.check_url("http://127.0.0.1:9/x").await.is_ok());
        assert!(p.check_url_blocking("http://169.254.169.254/").is_err());
        assert!(p.check_blocking("127.0.0.1", 80).is_ok());
        assert!(p.check_blocking("[fe80::1]", 80).is_err());
    }
}
