//! Accepting connections for the bindings' own listeners (HTTP, and MQTT over TLS): TCP_NODELAY
//! on every accepted socket, and for TLS the handshake in a task of its own, so that a slow or
//! silent client holds up nobody. What a connection proves about its peer (its address, the
//! CN of a verified client certificate) goes with it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

/// How long a TLS handshake may take.
const HANDSHAKE_WITHIN: Duration = Duration::from_secs(10);

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
}

/// Accepts on `listener` until the returned receiver is dropped (or the task aborted).
pub fn accept(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    name: &'static str,
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
            match &acceptor {
                None => {
                    let peer = Peer { addr, cn: None };
                    if tx
                        .send(Accepted {
                            io: Box::new(tcp),
                            peer,
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
