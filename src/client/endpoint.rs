//! Endpoint strings: `mqtt://host[:port][#cse-id]`, `mqtts://…`, `http://host[:port]`,
//! `https://…`.
//!
//! MQTT topics need the receiver's CSE-ID, which a broker URL does not say. As in OpenMTC, the
//! URL fragment names it: `mqtt://gateway:1883#id-in`. Without a fragment, the receiver is
//! taken from each request's `to` when that is SP-relative or absolute (`/id-in/...`); a
//! CSE-relative `to` then fails with an error that asks for the fragment.

use super::ClientError;
use crate::onem2m::poa::hide_password;
use crate::onem2m::MqttUrl;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Mqtt {
        host: String,
        port: u16,
        tls: bool,
        /// The receiving CSE's ID without a slash, from the fragment.
        cse_id: Option<String>,
    },
    Http {
        /// `http://host:port` with no trailing slash.
        base: String,
        tls: bool,
    },
}

impl Endpoint {
    pub fn parse(s: &str) -> Result<Endpoint, ClientError> {
        let bad = |why: &str| ClientError::Endpoint(hide_password(s), why.to_string());
        if MqttUrl::is_mqtt(s) {
            let url = MqttUrl::parse(s).map_err(|e| bad(&e))?;
            if url
                .fragment
                .as_deref()
                .is_some_and(|f| f.contains(['/', '+', '#']))
            {
                return Err(bad("the fragment must be a CSE-ID such as id-in"));
            }
            return Ok(Endpoint::Mqtt {
                host: url.host,
                port: url.port,
                tls: url.tls,
                cse_id: url.fragment,
            });
        }
        let url = url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(bad(&format!(
                "scheme '{scheme}' is not one of mqtt, mqtts, http, https"
            )));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?;
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let path = url.path().trim_end_matches('/');
        Ok(Endpoint::Http {
            base: format!("{scheme}://{host}{port}{path}"),
            tls: scheme == "https",
        })
    }

    pub fn is_tls(&self) -> bool {
        match self {
            Endpoint::Mqtt { tls, .. } | Endpoint::Http { tls, .. } => *tls,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_endpoints() {
        assert_eq!(
            Endpoint::parse("mqtt://gw.local:1884#id-mn").unwrap(),
            Endpoint::Mqtt {
                host: "gw.local".into(),
                port: 1884,
                tls: false,
                cse_id: Some("id-mn".into())
            }
        );
        assert_eq!(
            Endpoint::parse("mqtt://127.0.0.1").unwrap(),
            Endpoint::Mqtt {
                host: "127.0.0.1".into(),
                port: 1883,
                tls: false,
                cse_id: None
            }
        );
        let e = Endpoint::parse("mqtts://broker#/id-in").unwrap();
        assert_eq!(
            e,
            Endpoint::Mqtt {
                host: "broker".into(),
                port: 8883,
                tls: true,
                cse_id: Some("id-in".into())
            }
        );
        assert!(Endpoint::parse("mqtt://[::1]:1883#id-in")
            .is_ok_and(|e| matches!(e, Endpoint::Mqtt { ref host, .. } if host == "::1")));
    }

    #[test]
    fn http_endpoints() {
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:8080/").unwrap(),
            Endpoint::Http {
                base: "http://127.0.0.1:8080".into(),
                tls: false
            }
        );
        assert_eq!(
            Endpoint::parse("https://cse.example").unwrap(),
            Endpoint::Http {
                base: "https://cse.example".into(),
                tls: true
            }
        );
        assert_eq!(
            Endpoint::parse("http://h:80/onem2m").unwrap(),
            Endpoint::Http {
                base: "http://h/onem2m".into(),
                tls: false
            }
        );
    }

    #[test]
    fn bad_endpoints_say_why() {
        for (s, why) in [
            ("coap://x", "scheme"),
            ("localhost:1883", "scheme"),
            ("mqtt://", "host"),
            ("mqtt://h#a/b", "CSE-ID"),
            ("nonsense", ""),
        ] {
            let e = Endpoint::parse(s).unwrap_err().to_string();
            assert!(e.contains(s) && e.contains(why), "{s}: {e}");
        }
    }
}
