//! The embedded rumqttd broker: its router, its listeners, and links into it.
//!
//! We assemble rumqttd from its parts (router, servers, local links) instead of calling
//! `Broker::start`, so that the listeners run on our runtime, a failed bind is reported to the
//! caller, and new in-process links can be made at any time.
//!
//! Upstream rumqttd never sets TCP_NODELAY on the sockets it accepts: a QoS 1 request/response
//! then waits on Nagle's algorithm and the peer's delayed ACK (23 round trips/s instead of
//! 4,700/s measured on a bare echo). The vendored copy sets it on every accepted socket, and
//! serves on a listener we bind here (see `vendor/rumqttd/PATCHED.md`).

use crate::config::MqttConfig;
use anyhow::{anyhow, bail, Context};
use rumqttd::local::{LinkBuilder, LinkRx, LinkTx};
use rumqttd::{ConnectionSettings, LinkType, Router, RouterConfig, Server, ServerSettings};
use std::net::SocketAddr;
use std::sync::Arc;

/// In-memory backlog the router keeps per topic filter: segments of this size...
const SEGMENT_SIZE: usize = 64 * 1024;
/// ...and this many of them. Bounds what a slow or offline persistent-session subscriber can
/// miss and what each filter can cost in memory.
const SEGMENT_COUNT: usize = 2;
/// Router connections kept for in-process links beyond `max_connections`.
const LOCAL_LINKS: usize = 16;

type Linker = dyn Fn(&str) -> anyhow::Result<(LinkTx, LinkRx)> + Send + Sync;

pub struct EmbeddedBroker {
    linker: Arc<Linker>,
    /// The listener tasks: aborting one closes its listening socket.
    listeners: Vec<tokio::task::AbortHandle>,
    /// MQTT 3.1.1 listener, as bound (the real port when the configured one was 0).
    pub v4_addr: SocketAddr,
    /// MQTT 5 listener, if configured.
    pub v5_addr: Option<SocketAddr>,
    /// MQTT 3.1.1 over TLS, if configured.
    pub tls_addr: Option<SocketAddr>,
}

impl EmbeddedBroker {
    /// Starts the router and the listeners; returns once every listener is bound. `gate`
    /// authenticates clients and authorizes their topics (without one, everyone may do
    /// anything); `tls` serves `cfg.tls_listen`. `max_payload` is the largest PUBLISH payload
    /// accepted (`cse.max_request_size`).
    pub async fn start(
        cfg: &MqttConfig,
        max_payload: usize,
        gate: Option<Arc<dyn rumqttd::Gate>>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> anyhow::Result<EmbeddedBroker> {
        let router_config = RouterConfig {
            max_connections: cfg.max_connections + LOCAL_LINKS,
            max_outgoing_packet_count: 200,
            max_segment_size: SEGMENT_SIZE.max(max_payload),
            max_segment_count: SEGMENT_COUNT,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
            max_filters: Some(cfg.max_filters),
            max_subscriptions_per_connection: Some(cfg.max_subscriptions_per_client),
            max_retained: Some(cfg.max_retained),
        };
        let router_tx = Router::new(0, router_config).spawn();
        let connections = ConnectionSettings {
            connection_timeout_ms: cfg.connect_timeout_ms,
            max_payload_size: max_payload,
            max_inflight_count: cfg.max_inflight,
            auth: None,
            external_auth: None,
            // A publish to a topic nobody subscribes to is kept, not punished with a disconnect.
            dynamic_filters: true,
            gate,
        };
        let settings = |name: &str, listen: SocketAddr| ServerSettings {
            name: name.into(),
            listen,
            tls: None,
            next_connection_delay_ms: 0,
            connections: connections.clone(),
        };

        let v4 = Server::new(
            settings("mqtt-v4", cfg.listen),
            router_tx.clone(),
            rumqttd::protocol::v4::V4,
        );
        let mut listeners = Vec::new();
        let (v4_addr, task) = bind(cfg.listen, v4).await?;
        listeners.push(task);
        let v5_addr = match cfg.listen_v5 {
            Some(listen) => {
                let v5 = Server::new(
                    settings("mqtt-v5", listen),
                    router_tx.clone(),
                    rumqttd::protocol::v5::V5,
                );
                let (addr, task) = bind(listen, v5).await?;
                listeners.push(task);
                Some(addr)
            }
            None => None,
        };

        let tls_addr = match (cfg.tls_listen, tls) {
            (Some(listen), Some(tls)) => {
                let server = Server::new(
                    settings("mqtt-tls", listen),
                    router_tx.clone(),
                    rumqttd::protocol::v4::V4,
                );
                let (addr, task) = bind_tls(listen, server, tls).await?;
                listeners.push(task);
                Some(addr)
            }
            (Some(_), None) => bail!("mqtt.tls_listen needs the [tls] certificates"),
            (None, _) => None,
        };

        let linker: Arc<Linker> = Arc::new(move |client_id: &str| {
            LinkBuilder::new(client_id, router_tx.clone())
                // In-process links publish responses to topics that may have no subscriber yet.
                .dynamic_filters(true)
                .build()
                .map(|(tx, rx, _ack)| (tx, rx))
                .map_err(|e| anyhow!("cannot link to the broker: {e}"))
        });
        Ok(EmbeddedBroker {
            linker,
            listeners,
            v4_addr,
            v5_addr,
            tls_addr,
        })
    }

    /// Stops accepting connections (graceful shutdown); connected clients stay connected.
    pub fn stop_accepting(&self) {
        for l in &self.listeners {
            l.abort();
        }
    }

    /// A new in-process connection to the router.
    pub fn link(&self, client_id: &str) -> anyhow::Result<(LinkTx, LinkRx)> {
        (self.linker)(client_id)
    }
}

/// Binds `want` for MQTT over TLS and serves it: each handshake runs in a task of its own,
/// and a verified client certificate's CN goes to the gate with the connection.
async fn bind_tls(
    want: SocketAddr,
    server: Server<rumqttd::protocol::v4::V4>,
    tls: Arc<rustls::ServerConfig>,
) -> anyhow::Result<(SocketAddr, tokio::task::AbortHandle)> {
    let listener = tokio::net::TcpListener::bind(want)
        .await
        .with_context(|| format!("cannot listen for MQTT over TLS on {want}"))?;
    let addr = listener.local_addr()?;
    let (mut accepted, acceptor) =
        crate::binding::listen::accept(listener, Some(tls), "mqtts", None);
    let task = tokio::spawn(async move {
        while let Some(conn) = accepted.recv().await {
            let peer = rumqttd::PeerInfo {
                addr: Some(conn.peer.addr),
                tls_identity: conn.peer.cn,
            };
            server.serve_stream(Box::new(conn.io), peer);
        }
        acceptor.abort();
    });
    Ok((addr, task.abort_handle()))
}

/// Binds `want` and starts `server` on it, on our runtime. Returns the bound address, which
/// tells the real port when `want` asked for port 0.
async fn bind<P>(
    want: SocketAddr,
    mut server: Server<P>,
) -> anyhow::Result<(SocketAddr, tokio::task::AbortHandle)>
where
    P: rumqttd::protocol::Protocol + Clone + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind(want)
        .await
        .with_context(|| format!("cannot listen for MQTT on {want}"))?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = server.start_on(listener, LinkType::Remote).await {
            tracing::error!(listen = %addr, error = %e, "MQTT listener stopped");
        }
    });
    Ok((addr, task.abort_handle()))
}
