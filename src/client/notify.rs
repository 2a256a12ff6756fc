//! Incoming NOTIFY requests, whichever binding they came on, and the answer to each.

use crate::onem2m::{RequestPrimitive, Rsc};
use tokio::sync::{mpsc, oneshot};

/// One NOTIFY request. Answer it with [`Incoming::respond`]; one dropped unanswered is
/// answered 2000 OK.
pub struct Incoming {
    pub request: RequestPrimitive,
    reply: Option<oneshot::Sender<Rsc>>,
}

impl Incoming {
    pub(crate) fn new(request: RequestPrimitive) -> (Incoming, oneshot::Receiver<Rsc>) {
        let (tx, rx) = oneshot::channel();
        (
            Incoming {
                request,
                reply: Some(tx),
            },
            rx,
        )
    }

    pub fn respond(mut self, rsc: Rsc) {
        if let Some(tx) = self.reply.take() {
            let _ = tx.send(rsc);
        }
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if let Some(tx) = self.reply.take() {
            let _ = tx.send(Rsc::OK);
        }
    }
}

/// A stream of incoming NOTIFY requests.
pub struct Notifications {
    pub(crate) rx: mpsc::Receiver<Incoming>,
    /// The HTTP receiver's server task, stopped with the stream.
    pub(crate) server: Option<tokio::task::AbortHandle>,
}

impl Drop for Notifications {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.abort();
        }
    }
}

impl Notifications {
    /// The next notification; `None` once the transport is gone.
    pub async fn next(&mut self) -> Option<Incoming> {
        self.rx.recv().await
    }

    /// Calls `f` for every notification and answers with what it returns, until the
    /// transport is gone.
    pub async fn for_each(mut self, mut f: impl FnMut(&RequestPrimitive) -> Rsc) {
        while let Some(n) = self.rx.recv().await {
            let rsc = f(&n.request);
            n.respond(rsc);
        }
    }
}
