//! Putting the appliance together: store, CSE, expiry, and the bindings the configuration
//! enables.

use crate::auth::Authenticator;
use crate::binding::delivery::{Deliverer, OwnBroker};
use crate::binding::http;
use crate::binding::mqtt::gate::Gate;
use crate::binding::mqtt::link::LocalLink;
use crate::binding::mqtt::{self, EmbeddedBroker};
use crate::config::Config;
use crate::config::MqttMode;
use crate::cse::{expiry, Cse};
use crate::onem2m::poa::hide_password;
use crate::onem2m::MqttUrl;
use crate::store::Store;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;

/// A started appliance.
pub struct Appliance {
    pub cse: Cse,
    pub broker: Option<Arc<EmbeddedBroker>>,
    /// The CSE's MQTT session (on the embedded or an external broker).
    link: Option<Arc<LocalLink>>,
    /// The HTTP listener as bound.
    pub http: Option<SocketAddr>,
    /// The HTTPS listener as bound.
    pub https: Option<SocketAddr>,
    http_server: Option<http::HttpServer>,
    auth: Arc<Authenticator>,
    delivery: Arc<Deliverer>,
}

impl Appliance {
    pub async fn start(config: &Config) -> anyhow::Result<Appliance> {
        let path = config.storage.path.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&path))
            .await?
            .with_context(|| {
                format!("cannot open the database {}", config.storage.path.display())
            })?;
        let cse = {
            let (config, store) = (config.clone(), store.clone());
            tokio::task::spawn_blocking(move || Cse::open(&config, store)).await??
        };
        expiry::spawn(cse.clone()).context("cannot start the expiry thread")?;
        let auth = Arc::new(Authenticator::new(&config.security).map_err(anyhow::Error::msg)?);
        {
            let auth = auth.clone();
            cse.bindings()
                .set_reserved(Arc::new(move |name| auth.is_user(name)));
        }
        let tls = match (config.mqtt.tls_listen, config.http.tls_listen) {
            (None, None) => None,
            _ => Some(crate::tls::server_config(&config.tls).context("[tls]")?),
        };
        warn_about_plain_passwords(config);
        check_fd_budget(config);

        let relay_for: Vec<String> = config.remote_cse.iter().map(|r| r.cse_id.clone()).collect();
        let (broker, local) = match (config.mqtt.enabled, config.mqtt.mode) {
            (false, _) => (None, None),
            (true, MqttMode::Embedded) => {
                let gate: Arc<dyn rumqttd::Gate> = Arc::new(Gate::new(
                    auth.clone(),
                    cse.bindings().clone(),
                    config.mqtt.max_connections,
                ));
                let broker = Arc::new(
                    EmbeddedBroker::start(
                        &config.mqtt,
                        config.max_request_size(),
                        Some(gate),
                        tls.clone(),
                    )
                    .await?,
                );
                let link = mqtt::serve(broker.clone(), cse.clone(), relay_for).await?;
                let addrs = std::iter::once(broker.v4_addr)
                    .chain(broker.v5_addr)
                    .chain(broker.tls_addr)
                    .collect();
                (Some(broker), Some((link, OwnBroker::Listening(addrs))))
            }
            (true, MqttMode::External) => {
                let link = mqtt::external::serve_external(
                    &config.mqtt.broker,
                    &config.mqtt.broker_auth(),
                    cse.clone(),
                    relay_for,
                )
                .await?;
                let url = MqttUrl::parse(&config.mqtt.broker).map_err(anyhow::Error::msg)?;
                (None, Some((link, OwnBroker::At(url.host, url.port))))
            }
        };
        let link = local.as_ref().map(|(link, _)| link.clone());
        let delivery = Arc::new(Deliverer::new(
            tokio::runtime::Handle::current(),
            cse.identity().id(),
            local,
            config.tls.ca_certs.as_deref(),
            config
                .remote_cse
                .iter()
                .flat_map(|r| r.poa.iter().map(|p| (p.clone(), r.auth())))
                .collect(),
            config.outbound_policy().map_err(anyhow::Error::msg)?,
        )?);
        cse.set_delivery(delivery.clone());
        for remote in &config.remote_cse {
            crate::remote::spawn(cse.clone(), remote.clone());
        }
        let http = if config.http.enabled {
            let tls_listen = config.http.tls_listen.zip(tls.clone());
            let plain = Some(config.http.listen);
            let limits = http::Limits {
                max_connections: config.http.max_connections,
                header_timeout: std::time::Duration::from_secs(config.http.header_timeout_s),
                body_timeout: std::time::Duration::from_secs(config.http.body_timeout_s),
                max_body: config.max_request_size(),
            };
            Some(http::serve(plain, tls_listen, cse.clone(), auth.clone(), limits).await?)
        } else {
            None
        };
        let app = Appliance {
            cse,
            broker,
            link,
            http: http.as_ref().and_then(|h| h.addr),
            https: http.as_ref().and_then(|h| h.tls_addr),
            http_server: http,
            auth,
            delivery,
        };
        tracing::info!(
            cse = %app.cse.identity().csi,
            name = %app.cse.identity().rn,
            kind = ?config.cse.kind,
            mqtt = %match (config.mqtt.enabled, config.mqtt.mode, app.mqtt_addr()) {
                (true, MqttMode::External, _) => format!("external:{}", hide_password(&config.mqtt.broker)),
                (_, _, Some(a)) => a.to_string(),
                _ => "off".into(),
            },
            mqtt_v5 = %app.broker.as_ref().and_then(|b| b.v5_addr).map_or("off".into(), |a| a.to_string()),
            mqtts = %app.broker.as_ref().and_then(|b| b.tls_addr).map_or("off".into(), |a| a.to_string()),
            http = %app.http.map_or("off".into(), |a| a.to_string()),
            https = %app.https.map_or("off".into(), |a| a.to_string()),
            anonymous = ?config.security.anonymous,
            database = %store.path().display(),
            "m2mhub ready"
        );
        Ok(app)
    }

    /// Reads the password and ACL files again (SIGHUP); connections stay up.
    pub fn reload_credentials(&self) -> Result<(), String> {
        self.auth.reload()
    }

    /// Graceful shutdown: stop accepting connections, answer every request taken before
    /// (for at most `bound`: over MQTT, every request the broker acknowledged), then close the
    /// store. Returns whether everything finished in time; an acknowledged write is on disk
    /// either way.
    pub async fn shutdown(mut self, bound: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + bound;
        if let Some(b) = &self.broker {
            b.stop_accepting();
        }
        // A request waiting for a slow peer (a verification, a forwarded request) is
        // answered now rather than holding the stop up.
        self.delivery.stop();
        let mut http_server = self.http_server.take();
        let http = async {
            match &mut http_server {
                Some(h) => tokio::time::timeout_at(deadline, h.stop_accepting())
                    .await
                    .is_ok(),
                None => true,
            }
        };
        let mqtt = async {
            match &self.link {
                Some(link) => link.drain(&self.cse, deadline).await,
                None => true,
            }
        };
        let (http, mqtt) = tokio::join!(http, mqtt);
        let mut drained = http && mqtt;
        while self.cse.in_flight() > 0 {
            if tokio::time::Instant::now() >= deadline {
                drained = false;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // The last HTTP answers out of the door.
        if let Some(h) = http_server {
            h.finish().await;
        }
        self.cse.stop();
        let store = self.cse.store().clone();
        let closed = tokio::task::spawn_blocking(move || store.close());
        if drained {
            let _ = closed.await;
        } else {
            // A commit that is still stuck (a disk that hangs) does not keep the process: it
            // was not acknowledged, and SQLite's journal keeps the file whole either way.
            let _ = tokio::time::timeout(CLOSE_GRACE, closed).await;
        }
        drained
    }

    pub fn mqtt_addr(&self) -> Option<SocketAddr> {
        self.broker.as_ref().map(|b| b.v4_addr)
    }
}

/// Warns at start where a password would cross a network link without TLS.
fn warn_about_plain_passwords(config: &Config) {
    for (what, url) in plain_password_links(config) {
        tracing::warn!(%what, url = %hide_password(&url),
            "a password goes over the network without TLS here; use mqtts:// or https://");
    }
}

/// The links that carry a password in the clear to another machine: (what, URL).
fn plain_password_links(config: &Config) -> Vec<(String, String)> {
    let plain = |url: &str| {
        let Ok(parsed) = url::Url::parse(url) else {
            return false;
        };
        let host = parsed
            .host_str()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        matches!(parsed.scheme(), "mqtt" | "http") && !loopback
    };
    let mut out = Vec::new();
    if config.mqtt.mode == MqttMode::External {
        let in_url = MqttUrl::parse(&config.mqtt.broker).is_ok_and(|u| u.login.is_some());
        if (config.mqtt.broker_password.is_some() || in_url) && plain(&config.mqtt.broker) {
            out.push(("mqtt.broker".to_string(), config.mqtt.broker.clone()));
        }
    }
    for r in &config.remote_cse {
        if r.password.is_some() {
            for poa in r.poa.iter().filter(|p| plain(p)) {
                out.push((format!("remote_cse {}", r.cse_id), poa.clone()));
            }
        }
    }
    out
}

/// How long a shutdown that ran out of time still waits for the store to close.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Descriptors the appliance uses besides client connections: the database, its WAL and
/// readers, outgoing links, listeners, certificate files.
const FD_RESERVE: usize = 128;

/// Each binding has its own share of descriptors (its `max_connections`), so that idle HTTP
/// clients cannot take what MQTT devices need. Raises the soft limit to cover them all, and
/// says so when the hard limit is too low.
fn check_fd_budget(config: &Config) {
    let mqtt = match (config.mqtt.enabled, config.mqtt.mode) {
        (true, MqttMode::Embedded) => config.mqtt.max_connections,
        _ => 0,
    };
    let http = if config.http.enabled {
        config.http.max_connections
    } else {
        0
    };
    let want = mqtt + http + FD_RESERVE;
    let have = raise_fd_limit(want);
    if have < want {
        tracing::warn!(
            open_files = have,
            needed = want,
            mqtt.max_connections = mqtt,
            http.max_connections = http,
            "the open-file limit is below what the connection limits need: clients may be \
             refused before max_connections; raise LimitNOFILE or lower max_connections"
        );
    }
}

/// Raises the soft open-file limit towards `want` (up to the hard limit); returns the limit
/// in force.
pub fn raise_fd_limit(want: usize) -> usize {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 1024;
        }
        if (r.rlim_cur as usize) < want {
            let raised = libc::rlimit {
                rlim_cur: (want as libc::rlim_t).min(r.rlim_max),
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                r = raised;
            }
        }
    }
    r.rlim_cur as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_the_clear_are_found() {
        let mut c = Config::default();
        assert!(plain_password_links(&c).is_empty());
        c.mqtt.mode = MqttMode::External;
        c.mqtt.broker = "mqtt://broker.example:1883".into();
        assert!(
            plain_password_links(&c).is_empty(),
            "no password, nothing to leak"
        );
        c.mqtt.broker_username = Some("cse".into());
        c.mqtt.broker_password = Some(crate::config::Secret::new("x"));
        assert_eq!(plain_password_links(&c).len(), 1);
        c.mqtt.broker = "mqtts://broker.example:8883".into();
        assert!(plain_password_links(&c).is_empty(), "TLS");
        c.mqtt.broker = "mqtt://127.0.0.1:1883".into();
        assert!(plain_password_links(&c).is_empty(), "loopback");
        c.mqtt.broker = "mqtt://u:p@broker.example".into();
        c.mqtt.broker_password = None;
        assert_eq!(plain_password_links(&c).len(), 1, "a password in the URL");
    }
}
