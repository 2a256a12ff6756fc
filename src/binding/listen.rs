//! Accepting connections for the bindings' own listeners (HTTP, and MQTT over TLS): TCP_NODELAY
//! on every accepted socket, and for TLS the handshake in a task of its own, so that a slow or
//! silent client holds up nobody. What a connection proves about its peer (its address, the
//! CN of a verified client certificate) goes with it.

use crate::throttle::Throttle;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

/// How long a TLS handshake may take.
const HANDSHAKE_WITHIN: Duration = Duration::from_secs(10);

/// What a plain HTTP client gets when every slot is taken.
const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\nretry-after: 1\r\n\r\n";

/// A byte stream, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// What is known of a client before it says anything.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The subject CN of the client certificate the handshake verified.
    pub cn: Option<String>,
}

/// An accepted connection, ready for the protocol.
pub struct Accepted {
    pub io: Box<dyn Io>,
    pub peer: Peer,
    /// Its place among the listener's connections, given back when dropped.
    pub slot: Option<OwnedSemaphorePermit>,
}

/// Connections refused because the listener was full.
static FULL: Throttle = Throttle::new();

/// Accepts on `listener` until the returned receiver is dropped (or the task aborted). With
/// `slots`, a connection needs a free slot from the moment it is accepted (before any TLS
/// handshake); without one it is closed at once (plain HTTP gets a 503 first), so that the
/// listener never holds more descriptors than it has slots.
pub fn accept(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    name: &'static str,
    slots: Option<Arc<Semaphore>>,
) -> (mpsc::Receiver<Accepted>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = tls.map(TlsAcceptor::from);
    let task = tokio::spawn(async move {
        loop {
            let (tcp, addr) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, typically: wait rather than spin.
                    tracing::warn!(listener = name, error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let slot = match &slots {
                None => None,
                Some(slots) => match slots.clone().try_acquire_owned() {
                    Ok(slot) => Some(slot),
                    Err(_) => {
                        if let Some(quiet) = FULL.hit() {
                            tracing::warn!(listener = name, client = %addr, refused_since_last_line = quiet, "connection refused: the listener is at its max_connections");
                        }
                        if acceptor.is_none() {
                            // Best effort, never waiting: a full socket buffer skips it.
                            let _ = tcp.try_write(BUSY);
                        }
                        continue;
                    }
                },
            };
            match &acceptor {
                None => {
                    let peer = Peer { addr, cn: None };
                    if tx
                        .send(Accepted {
                            io: Box::new(tcp),
                            peer,
                            slot,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Some(acceptor) => {
                    let (acceptor, tx) = (acceptor.clone(), tx.clone());
                    tokio::spawn(async move {
                        match tokio::time::timeout(HANDSHAKE_WITHIN, acceptor.accept(tcp)).await {
                            Ok(Ok(tls)) => {
                                let cn = crate::tls::peer_cn(tls.get_ref().1.peer_certificates());
                                let peer = Peer { addr, cn };
                                let _ = tx
                                    .send(Accepted {
                                        io: Box::new(tls),
                                        peer,
                                        slot,
                                    })
                                    .await;
                            }
                            Ok(Err(e)) => {
                                tracing::warn!(listener = name, client = %addr, error = %e, "TLS handshake failed")
                            }
                            Err(_) => {
                                tracing::warn!(listener = name, client = %addr, "TLS handshake timed out")
                            }
                        }
                    });
                }
            }
        }
    });
    (rx, task)
}
