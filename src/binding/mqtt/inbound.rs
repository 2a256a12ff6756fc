//! Reading one incoming publish on a request topic: the topic, the serialization, the
//! primitive, and the TS-0010 consistency between topic and primitive. What is wrong is
//! answered at once; what is right goes to the CSE, which takes it as far as it can without
//! waiting ([`Cse::begin`]).

use crate::binding::Serialization;
use crate::cse::{Begun, Blocked, Cse, Origin, Write};
use crate::onem2m::address::local_originator;
use crate::onem2m::topic::{id_from_topic, id_to_topic, Topic, TopicKind};
use crate::onem2m::{Error, Operation, RequestPrimitive, ResourceType, ResponsePrimitive, Rsc};
use crate::throttle::Throttle;
use std::net::IpAddr;

/// The topic and body of an answer to publish, if one is due.
pub type Outgoing = Option<(String, Vec<u8>)>;

/// How one incoming publish proceeds.
#[allow(clippy::large_enum_variant)] // as `Begun`: the large variant is the hot one
pub enum Step {
    /// Answered already (or nothing to answer).
    Now(Outgoing),
    /// A write for the store.
    Write(Write, Reply),
    /// A request for a blocking thread.
    Blocking(Box<Blocked>, Reply),
}

/// Where and how the answer to a request goes.
pub struct Reply {
    topic: String,
    ser: Serialization,
}

impl Reply {
    pub fn encode(&self, rsp: Option<ResponsePrimitive>) -> Outgoing {
        rsp.map(|rsp| (self.topic.clone(), self.ser.encode(&rsp.to_value())))
    }
}

/// Reads one incoming publish and takes it as far as it goes without waiting.
pub fn start(cse: &Cse, topic: &[u8], payload: &[u8], source: Option<IpAddr>) -> Step {
    let Ok(topic) = std::str::from_utf8(topic) else {
        tracing::warn!("ignoring a publish whose topic is not UTF-8");
        return Step::Now(None);
    };
    let Some(parsed) = Topic::parse(topic) else {
        tracing::warn!(%topic, "ignoring a publish on a malformed oneM2M topic");
        return Step::Now(None);
    };
    let Some(ser) = Serialization::from_topic_level(parsed.serialization) else {
        let level = parsed.serialization.unwrap_or_default();
        tracing::warn!(%topic, "request in an unsupported serialization");
        let err = Error::new(
            Rsc::UNSUPPORTED_MEDIA_TYPE,
            format!("serialization '{level}' is not supported; publish to .../json"),
        );
        let reply = Reply {
            topic: parsed.response_topic("json"),
            ser: Serialization::Json,
        };
        return Step::Now(reply.encode(Some(ResponsePrimitive::error(&err, "", None))));
    };
    let reply = Reply {
        topic: parsed.response_topic(ser.name()),
        ser,
    };
    let reject = |err: Error, rqi: Option<String>, rvi: Option<String>| {
        tracing::warn!(originator = parsed.originator, rsc = err.rsc.code(), dbg = %err.dbg, "request rejected");
        Step::Now(reply.encode(Some(ResponsePrimitive::error(
            &err,
            rqi.unwrap_or_default(),
            rvi,
        ))))
    };
    let body = match ser.decode(payload) {
        Ok(v) => v,
        Err(msg) => return reject(Error::bad_request(msg), None, None),
    };
    let mut req = match RequestPrimitive::from_value(body) {
        Ok(r) => r,
        Err(e) => return reject(e.error, e.rqi, None),
    };
    if let Err(err) = check_topic(cse, &parsed, &mut req) {
        return reject(err, Some(req.rqi), req.rvi);
    }
    // The broker let the publisher use this originator level (see `gate`).
    match cse.begin(req, Origin::Topic(parsed.originator.to_string()), source) {
        Begun::Answered(rsp) => Step::Now(reply.encode(rsp)),
        Begun::Write(write) => Step::Write(write, reply),
        Begun::Blocking(blocked) => Step::Blocking(blocked, reply),
    }
}

/// Busy answers a client can cause by the thousand: logged at most once a minute.
static BUSY: Throttle = Throttle::new();

/// The busy answer (5000, `why` in `dbg`) to a request that could not be taken, on the topic
/// of the originator named in `topic`, or `None` when the topic names none.
pub fn busy(topic: &[u8], payload: &[u8], why: &str) -> Outgoing {
    let parsed = std::str::from_utf8(topic).ok().and_then(Topic::parse)?;
    if let Some(quiet) = BUSY.hit() {
        tracing::warn!(
            originator = parsed.originator,
            busy_since_last_line = quiet,
            "answered busy: {why}"
        );
    }
    let rqi = Serialization::Json
        .decode(payload)
        .ok()
        .and_then(|v| RequestPrimitive::from_value(v).ok())
        .map(|r| r.rqi)
        .unwrap_or_default();
    let err = Error::internal(format!("the CSE is busy: {why}; try again"));
    let rsp = ResponsePrimitive::error(&err, rqi, None);
    Some((
        parsed.response_topic("json"),
        Serialization::Json.encode(&rsp.to_value()),
    ))
}

/// Requests are ordered per topic originator level (and receiver): the topic up to the
/// serialization, `/oneM2M/<kind>/<originator>/<receiver>`.
pub fn originator_key(topic: &[u8]) -> &[u8] {
    let end = topic
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'/')
        .nth(4)
        .map_or(topic.len(), |(i, _)| i);
    &topic[..end]
}

/// TS-0010 consistency between the topic and the primitive.
/// * On `req` topics the originator level names the sender: `fr` must be the same entity
///   (compared after bringing both to CSE-relative form); a request without `fr` takes it from
///   the topic, as Mobius does; an empty `fr` (an AE asking for an ID) is left to the CSE,
///   which accepts it only for a registration. A mismatch is 4103 ORIGINATOR_HAS_NO_PRIVILEGE: the primitive
///   claims an identity its topic does not carry.
/// * On `reg_req` topics the originator level is a Credential-ID, not an AE-ID, so it is not
///   compared; only registrations (CREATE of an AE or remoteCSE) are allowed there (4000 else).
fn check_topic(cse: &Cse, topic: &Topic, req: &mut RequestPrimitive) -> Result<(), Error> {
    let me = cse.identity();
    match topic.kind {
        TopicKind::Req => {
            // Addressed to another CSE we relay for: a CSE-relative target is relative to it.
            if topic.receiver != me.id() && !req.to.starts_with('/') {
                req.to = format!("/{}/{}", topic.receiver.replace(':', "/"), req.to);
            }
            let in_topic = local_originator(&id_from_topic(topic.originator), me);
            // `fr` in any form: CSE-relative, SP-relative, or absolute with our SP-ID (as
            // OpenMTC's gateway sends its CSE-ID, //openmtc.org/mn-cse-1).
            let local = req.fr.as_deref().map(|fr| local_originator(fr, me));
            match (&req.fr, local) {
                (None, _) => req.fr = Some(in_topic),
                // No identity yet: only a registration can succeed, the CSE decides.
                (Some(fr), _) if fr.is_empty() => {}
                (_, Some(fr)) if fr == in_topic => {}
                // A CSE writes its own ID into the topic without the slash: /id-mn → id-mn.
                (_, Some(fr)) if fr.starts_with('/') && id_to_topic(&fr) == topic.originator => {}
                // A CSE forwarding for one of its entities publishes under its own ID with the
                // entity's SP-relative ID in fr (/id-mn/Cae on topic level id-mn).
                (_, Some(fr)) if fr.starts_with(&format!("/{}/", topic.originator)) => {}
                (Some(fr), _) => {
                    return Err(Error::no_privilege(format!(
                        "originator '{fr}' does not match the topic's originator '{}'",
                        topic.originator
                    )))
                }
            }
            Ok(())
        }
        TopicKind::RegReq => {
            let registration = req.op == Operation::Create
                && [ResourceType::Ae, ResourceType::RemoteCse]
                    .iter()
                    .any(|t| req.ty == Some(t.code() as u64));
            if registration {
                Ok(())
            } else {
                Err(Error::bad_request(
                    "only registrations (CREATE of an AE or remoteCSE) may be sent on reg_req",
                ))
            }
        }
        // Not subscribed to; a response addressed to the CSE is not a request.
        TopicKind::Resp | TopicKind::RegResp => Err(Error::bad_request("not a request topic")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_the_topic_up_to_the_serialization() {
        assert_eq!(
            originator_key(b"/oneM2M/req/Cabc/id-in/json"),
            b"/oneM2M/req/Cabc/id-in"
        );
        assert_eq!(
            originator_key(b"/oneM2M/reg_req/cred/id-in"),
            b"/oneM2M/reg_req/cred/id-in"
        );
        assert_eq!(originator_key(b"/oneM2M/req"), b"/oneM2M/req");
    }

    #[test]
    fn a_busy_answer_goes_to_the_originator_with_its_rqi() {
        let (topic, body) = busy(
            b"/oneM2M/req/Cabc/id-in/json",
            br#"{"op":2,"to":"cse-in","fr":"Cabc","rqi":"r9"}"#,
            "too many requests",
        )
        .unwrap();
        assert_eq!(topic, "/oneM2M/resp/Cabc/id-in/json");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["rsc"], 5000);
        assert_eq!(v["rqi"], "r9");
        assert!(v["pc"]["m2m:dbg"]
            .as_str()
            .unwrap()
            .contains("too many requests"));
        assert!(busy(b"not/a/onem2m/topic", b"", "x").is_none());
    }
}
