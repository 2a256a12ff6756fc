//! External broker mode: the CSE is a client of a broker the site already runs (Mosquitto,
//! EMQX, VerneMQ…), with the same topics and behaviour as on the embedded broker. Its client ID
//! is `C::<cse-id>`, with a persistent session; the client session renews the subscriptions
//! whenever the broker lost them.

use super::link::{filters, receivers, Dispatcher, LocalLink, Outlet};
use crate::client::{Inbox, Publisher, Session, SessionOptions};
use crate::cse::Cse;
use crate::onem2m::MqttUrl;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// Requests (answers and the CSE's own) queued for the broker connection at most.
const QUEUE: usize = 1024;

impl Inbox for Dispatcher {
    async fn publish(&mut self, _out: &Publisher, topic: String, payload: Bytes) -> bool {
        self.incoming(Bytes::from(topic.into_bytes()), payload);
        true
    }
}

/// Connects to the broker at `url` and serves this CSE's request topics there, for the rest
/// of the process. Returns once the broker holds the subscriptions.
pub async fn serve_external(
    url: &str,
    cse: Cse,
    relay_for: Vec<String>,
) -> anyhow::Result<Arc<LocalLink>> {
    let parsed = MqttUrl::parse(url).map_err(|e| anyhow::anyhow!("mqtt.broker: {e}"))?;
    let id = cse.identity().id().to_string();
    let opts = SessionOptions {
        clean_session: false,
        capacity: QUEUE,
        connect_within: Duration::from_secs(10),
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
    .map_err(|e| anyhow::anyhow!("cannot connect to the MQTT broker {url}: {e}"))?;
    session.detach();
    Ok(link)
}
