//! Incoming NOTIFY requests, whichever binding they came on, and the answer to each.

use crate::onem2m::{Error, RequestPrimitive, ResponsePrimitive, Rsc};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long a receiver waits for the application's answer to a notification before it
/// answers 2000 itself.
pub const APP_ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// Hands a NOTIFY request to the application behind `receiver` and returns the answer it
/// gave (2000 when it gave none in time, 5103 when nobody receives).
pub(crate) async fn hand_over(
    receiver: &mpsc::Sender<Incoming>,
    req: RequestPrimitive,
) -> ResponsePrimitive {
    let (rqi, rvi) = (req.rqi.clone(), req.rvi.clone());
    let (incoming, answer) = Incoming::new(req);
    if receiver.send(incoming).await.is_err() {
        let err = Error::new(
            Rsc::TARGET_NOT_REACHABLE,
            "nobody is receiving notifications here",
        );
        return ResponsePrimitive::error(&err, rqi, rvi);
    }
    let rsc = tokio::time::timeout(APP_ANSWER_WITHIN, answer)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(Rsc::OK);
    ResponsePrimitive::new(rsc, rqi, rvi, None)
}

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
