//! MQTT URLs: a point of access (`poa`, a notification target `nu`), a broker to use, or a
//! client endpoint, all in one form: `mqtt[s]://host[:port][/receiver][#cse-id]`.
//!
//! The path names a receiver (Mobius' form of an MQTT notification target); the fragment names
//! the receiving CSE of an endpoint (OpenMTC's form: `mqtt://gateway:1883#id-in`). Each user
//! takes what it needs and ignores the rest.

/// A parsed `mqtt://`, `mqtts://` or `secure-mqtt://` URL. Its `Debug` and
/// [`broker`](MqttUrl::broker) leave the password out.
#[derive(Clone, PartialEq, Eq)]
pub struct MqttUrl {
    /// Host name or address, without the brackets of an IPv6 literal.
    pub host: String,
    /// The port; 1883 (or 8883 with TLS) when the URL gives none.
    pub port: u16,
    /// `mqtts://` or `secure-mqtt://`.
    pub tls: bool,
    /// The path without its slashes, if not empty.
    pub path: Option<String>,
    /// The fragment without a leading slash, if not empty.
    pub fragment: Option<String>,
    /// `user:password@` before the host, percent-decoded.
    pub login: Option<(String, String)>,
}

impl std::fmt::Debug for MqttUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("path", &self.path)
            .field("fragment", &self.fragment)
            .field("user", &self.login.as_ref().map(|(u, _)| u))
            .finish()
    }
}

impl MqttUrl {
    /// Whether `s` is meant as an MQTT URL (by its scheme), well-formed or not.
    pub fn is_mqtt(s: &str) -> bool {
        ["mqtt://", "mqtts://", "secure-mqtt://"]
            .iter()
            .any(|scheme| {
                // Bytes, not chars: the length may fall inside a multi-byte character.
                s.as_bytes()
                    .get(..scheme.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(scheme.as_bytes()))
            })
    }

    /// Reads an MQTT URL; the error says what is wrong with it.
    pub fn parse(s: &str) -> Result<MqttUrl, String> {
        // Error texts name the URL without its password.
        let url =
            url::Url::parse(s).map_err(|e| format!("'{}' is not a URL: {e}", hide_password(s)))?;
        let shown = hide_password(s);
        let tls = match url.scheme() {
            "mqtt" => false,
            "mqtts" | "secure-mqtt" => true,
            other => return Err(format!("'{shown}': scheme '{other}' is not mqtt or mqtts")),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("'{shown}' has no host"))?;
        let path = url.path().trim_matches('/');
        let fragment = url.fragment().map(|f| f.trim_start_matches('/'));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .to_string()
        };
        let login = (!url.username().is_empty()).then(|| {
            (
                decode(url.username()),
                url.password().map(decode).unwrap_or_default(),
            )
        });
        Ok(MqttUrl {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port: url.port().unwrap_or(if tls { 8883 } else { 1883 }),
            tls,
            path: (!path.is_empty()).then(|| path.to_string()),
            fragment: fragment.filter(|f| !f.is_empty()).map(str::to_string),
            login,
        })
    }

    /// `host:port`, with an IPv6 literal in brackets.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The broker alone, `mqtt://host:port` (or `mqtts://`).
    pub fn broker(&self) -> String {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        format!("{scheme}://{}", self.authority())
    }
}

/// `scheme://user:password@host...` with the password replaced by `****`.
pub fn hide_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '#', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:****@{host}{tail}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_is_read() {
        let u = MqttUrl::parse("mqtt://gw.local:1884/Cae#id-mn").unwrap();
        assert_eq!(
            u,
            MqttUrl {
                host: "gw.local".into(),
                port: 1884,
                tls: false,
                path: Some("Cae".into()),
                fragment: Some("id-mn".into()),
                login: None,
            }
        );
        let u = MqttUrl::parse("mqtts://broker#/id-in").unwrap();
        assert_eq!((u.port, u.tls), (8883, true));
        assert_eq!(u.fragment.as_deref(), Some("id-in"));
        assert_eq!(u.path, None);
        let u = MqttUrl::parse("mqtt://127.0.0.1/").unwrap();
        assert_eq!((u.port, u.path), (1883, None));
    }

    #[test]
    fn ipv6_hosts_lose_and_regain_their_brackets() {
        let u = MqttUrl::parse("mqtt://[::1]:1883#id-in").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.authority(), "[::1]:1883");
        assert_eq!(u.broker(), "mqtt://[::1]:1883");
        assert_eq!(
            MqttUrl::parse("secure-mqtt://h").unwrap().broker(),
            "mqtts://h:8883"
        );
    }

    #[test]
    fn credentials_are_read_and_never_shown() {
        let u = MqttUrl::parse("mqtts://gw%40site:p%3Ass@broker:8884#id-in").unwrap();
        assert_eq!(u.login, Some(("gw@site".to_string(), "p:ss".to_string())));
        assert_eq!(u.broker(), "mqtts://broker:8884");
        assert!(!format!("{u:?}").contains("p:ss") && !format!("{u:?}").contains("p%3Ass"));
        assert_eq!(
            hide_password("mqtt://u:secret@h:1/x"),
            "mqtt://u:****@h:1/x"
        );
        let e = MqttUrl::parse("http://u:secret@h").unwrap_err();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn what_is_not_an_mqtt_url_says_why() {
        for (s, why) in [
            ("http://h", "scheme"),
            ("mqtt://", "host"),
            ("nonsense", "not a URL"),
        ] {
            let e = MqttUrl::parse(s).unwrap_err();
            assert!(e.contains(why), "{s}: {e}");
        }
        assert!(MqttUrl::is_mqtt("MQTT://h") && MqttUrl::is_mqtt("mqtts://h"));
        assert!(!MqttUrl::is_mqtt("http://h") && !MqttUrl::is_mqtt("mqt"));
        assert!(!MqttUrl::is_mqtt("mqtt:/é") && !MqttUrl::is_mqtt("mqtts:/é"));
    }
}
