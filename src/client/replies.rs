//! Matching answers to requests by `rqi`: the one reply matcher of every MQTT session that
//! sends requests (the client library's, the CSE's in-process link and its external-broker
//! session).

use crate::onem2m::ResponsePrimitive;
use crate::sync::lock;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::oneshot;

/// Requests waiting for their answers.
#[derive(Default)]
pub struct Replies {
    pending: Mutex<HashMap<String, Waiter>>,
}

/// Who waits for an answer, and from whom it must come (if that is known).
struct Waiter {
    tx: oneshot::Sender<ResponsePrimitive>,
    from: Option<String>,
}

/// Why no answer came.
#[derive(Debug, PartialEq, Eq)]
pub enum NoAnswer {
    /// Nothing within the time allowed.
    Timeout,
    /// The session went away (dropped) before an answer came.
    Closed,
}

impl Replies {
    /// Starts waiting for the answer to `rqi`; call before the request goes out. A second
    /// request with the same `rqi` replaces the first's wait.
    pub fn expect(&self, rqi: &str) -> Expected<'_> {
        self.expect_from(rqi, None)
    }

    /// As [`expect`](Self::expect), taking the answer only [from](Self::answer_from) `from`.
    pub fn expect_from(&self, rqi: &str, from: Option<&str>) -> Expected<'_> {
        let (tx, rx) = oneshot::channel();
        let waiter = Waiter {
            tx,
            from: from.map(str::to_string),
        };
        lock(&self.pending).insert(rqi.to_string(), waiter);
        Expected {
            replies: self,
            rqi: rqi.to_string(),
            rx: Some(rx),
        }
    }

    /// Hands `rsp` to whoever waits for its `rqi`; `false` if nobody does (late, or not ours).
    pub fn answer(&self, rsp: ResponsePrimitive) -> bool {
        self.answer_from(None, rsp)
    }

    /// Hands `rsp`, which came from `from` (if known), to whoever waits for its `rqi` from
    /// that entity; an answer from anyone else is not taken (and the wait goes on).
    pub fn answer_from(&self, from: Option<&str>, rsp: ResponsePrimitive) -> bool {
        let mut pending = lock(&self.pending);
        let Some(waiter) = pending.get(&rsp.rqi) else {
            return false;
        };
        if waiter.from.is_some() && waiter.from.as_deref() != from {
            tracing::warn!(rqi = %rsp.rqi, expected = ?waiter.from, from = ?from,
                "ignoring an answer from an entity that was not asked");
            return false;
        }
        match pending.remove(&rsp.rqi) {
            Some(waiter) => waiter.tx.send(rsp).is_ok(),
            None => false,
        }
    }

    /// Reads a JSON response primitive and [answers](Self::answer) with it; anything
    /// unreadable is ignored (logged at debug).
    pub fn answer_json(&self, payload: &[u8]) -> bool {
        self.answer_json_from(None, payload)
    }

    /// [`answer_json`](Self::answer_json) for an answer that came from `from`.
    pub fn answer_json_from(&self, from: Option<&str>, payload: &[u8]) -> bool {
        let rsp = serde_json::from_slice(payload)
            .map_err(|e| e.to_string())
            .and_then(|v| ResponsePrimitive::from_value(v).map_err(|e| e.dbg));
        match rsp {
            Ok(rsp) => self.answer_from(from, rsp),
            Err(why) => {
                tracing::debug!(%why, "ignoring an unreadable response");
                false
            }
        }
    }

    /// Requests waiting now.
    pub fn len(&self) -> usize {
        lock(&self.pending).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A wait for one answer; dropping it stops waiting.
pub struct Expected<'a> {
    replies: &'a Replies,
    rqi: String,
    rx: Option<oneshot::Receiver<ResponsePrimitive>>,
}

impl Expected<'_> {
    /// The answer, if it comes within `within`.
    pub async fn wait(mut self, within: Duration) -> Result<ResponsePrimitive, NoAnswer> {
        let Some(rx) = self.rx.take() else {
            return Err(NoAnswer::Closed);
        };
        match tokio::time::timeout(within, rx).await {
            Ok(Ok(rsp)) => Ok(rsp),
            Ok(Err(_)) => Err(NoAnswer::Closed),
            Err(_) => Err(NoAnswer::Timeout),
        }
    }
}

impl Drop for Expected<'_> {
    fn drop(&mut self) {
        drop(self.rx.take());
        let mut pending = lock(&self.replies.pending);
        // Only our own entry: a later request may have reused the rqi.
        if pending.get(&self.rqi).is_some_and(|w| w.tx.is_closed()) {
            pending.remove(&self.rqi);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onem2m::Rsc;

    fn rsp(rqi: &str) -> ResponsePrimitive {
        ResponsePrimitive::new(Rsc::OK, rqi, None, None)
    }

    #[tokio::test]
    async fn an_answer_reaches_its_request_only() {
        let r = Replies::default();
        let a = r.expect("a");
        let b = r.expect("b");
        assert!(r.answer(rsp("b")));
        assert!(!r.answer(rsp("c")), "nobody waits for c");
        assert_eq!(b.wait(Duration::from_secs(1)).await.unwrap().rqi, "b");
        assert_eq!(
            a.wait(Duration::from_millis(10)).await.unwrap_err(),
            NoAnswer::Timeout
        );
        assert!(r.is_empty(), "finished waits leave nothing behind");
        assert!(!r.answer(rsp("a")), "a late answer finds nobody");
        drop(r.expect("never waited"));
        assert!(r.is_empty(), "a wait dropped unused leaves nothing behind");
    }

    #[tokio::test]
    async fn an_answer_from_another_entity_is_not_taken() {
        let r = Replies::default();
        let w = r.expect_from("v1", Some("Ca"));
        assert!(!r.answer_from(Some("Cb"), rsp("v1")), "Cb was not asked");
        assert!(!r.answer_from(None, rsp("v1")), "nor an unknown sender");
        assert!(r.answer_from(Some("Ca"), rsp("v1")));
        assert_eq!(w.wait(Duration::from_secs(1)).await.unwrap().rqi, "v1");
    }

    #[tokio::test]
    async fn junk_is_ignored_and_json_answers() {
        let r = Replies::default();
        let w = r.expect("j1");
        assert!(!r.answer_json(b"{not json"));
        assert!(
            !r.answer_json(b"{\"rqi\":\"j1\"}"),
            "no rsc: not a response"
        );
        assert!(r.answer_json(br#"{"rsc":2000,"rqi":"j1"}"#));
        assert_eq!(w.wait(Duration::from_secs(1)).await.unwrap().rsc, Rsc::OK);
    }
}
