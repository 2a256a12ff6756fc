//! External broker mode: the CSE is a client of a broker the site already runs (Mosquitto,
//! EMQX, VerneMQ…), with the same topics and behaviour as on the embedded broker. Its client ID
//! is `C::<cse-id>`, with a persistent session; the client session renews the subscriptions
//! whenever the broker lost them.

use super::link::{filters, receivers, Dispatcher, LocalLink, Outlet};
use crate::client::{Inbox, Publisher, Session, SessionOptions};
use crate::config::{PeerAuth, Secret};
use crate::cse::Cse;
use crate::onem2m::MqttUrl;
use anyhow::Context;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// Requests (answers and the CSE's own) queued for the broker connection at most.
const QUEUE: usize = 1024;

impl Inbox for Dispatcher {
    async fn publish(&mut self, _out: &Publisher, topic: String, payload: Bytes) -> bool {
        // The outside broker does not say who published.
        self.incoming(Bytes::from(topic.into_bytes()), payload, None);
        true
    }
}

/// Connects to the broker at `url` and serves this CSE's request topics there, for the rest
/// of the process. Returns once the broker holds the subscriptions.
///
/// `auth` has the user name and password (else those of the URL, `mqtt://user:pass@host`) and,
/// for `mqtts://`, the CA to verify the broker against and a client certificate.
pub async fn serve_external(
    url: &str,
    auth: &PeerAuth,
    cse: Cse,
    relay_for: Vec<String>,
) -> anyhow::Result<Arc<LocalLink>> {
    let parsed = MqttUrl::parse(url).map_err(|e| anyhow::anyhow!("mqtt.broker: {e}"))?;
    let broker = parsed.broker();
    let id = cse.identity().id().to_string();
    let credentials = match (&auth.username, &parsed.login) {
        (Some(user), _) => Some((
            user.clone(),
            auth.password.clone().unwrap_or_else(|| Secret::new("")),
        )),
        (None, Some((user, password))) => Some((user.clone(), Secret::new(password.clone()))),
        (None, None) => None,
    };
    let tls = if parsed.tls {
        Some(crate::tls::client_config(auth, None).context("mqtt.broker_ca_certs")?)
    } else {
        None
    };
    let opts = SessionOptions {
        clean_session: false,
        capacity: QUEUE,
        connect_within: Duration::from_secs(10),
        credentials,
        tls,
        ..SessionOptions::new(parsed.host, parsed.port, format!("C::{id}"))
    };
    let (session, link) = Session::connect_with(opts, filters(&cse, &relay_for), |publisher| {
        let link = Arc::new(LocalLink::new(
            Outlet::Session(publisher),
            &id,
            &receivers(&cse, &relay_for),
        ));
        (Dispatcher::new(cse.clone(), link.clone()), link)
    })
    .await
    .map_err(|e| anyhow::anyhow!("cannot connect to the MQTT broker {broker}: {e}"))?;
    session.detach();
    Ok(link)
}
