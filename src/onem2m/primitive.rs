//! Request and response primitives as data (TS-0004 §7, short names of TS-0004 §8.2), read
//! from and written to a `serde_json::Value` so that every serialization (JSON now, CBOR later)
//! shares one parser.

use super::address::too_long;
use super::rsc::{Error, Rsc};
use super::types::Operation;
use serde_json::{Map, Value};

/// Request parameters this CSE understands. Anything else in a request is refused with 4000,
/// so that a typo (`"pcc"`) is reported instead of silently ignored.
const REQUEST_PARAMETERS: &[&str] = &[
    "op", "to", "fr", "rqi", "rvi", "ty", "pc", "ot", "rqet", "rset", "oet", "rt", "rp", "rcn",
    "ec", "da", "gid", "fc", "drt", "rids", "tids", "ltids", "tqi", "vsi", "sqi",
];

/// Release versions this CSE accepts in `rvi`. A request without `rvi` is taken as Release 1,
/// as OpenMTC does (ACME refuses it with 4001); the response then carries no `rvi` either.
pub const SUPPORTED_RELEASES: &[&str] = &["1", "2", "2a", "3", "4", "5"];

/// The `rvi` a response repeats: the request's, when it is one this CSE speaks (an unknown
/// one, of any length, is not echoed).
pub fn echoed_rvi(rvi: Option<String>) -> Option<String> {
    rvi.filter(|v| SUPPORTED_RELEASES.contains(&v.as_str()))
}

/// The releases this CSE says it supports (`srv` of its CSEBase and of the `<remoteCSE>` it
/// creates on its registrar): those whose behaviour it implements. It also accepts requests
/// that name the others in [`SUPPORTED_RELEASES`], as ACME and OpenMTC do.
pub const ADVERTISED_RELEASES: &[&str] = &["2a", "3", "4"];

/// `rt.rtv` values (TS-0004 §6.3.4.2.x responseType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseType {
    NonBlockingSync = 1,
    NonBlockingAsync = 2,
    Blocking = 3,
    FlexBlocking = 4,
    NoResponse = 5,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RequestPrimitive {
    pub op: Operation,
    pub to: String,
    /// `None` when the request had no `fr`; only an AE registration may omit it.
    pub fr: Option<String>,
    pub rqi: String,
    pub rvi: Option<String>,
    /// `ty` as sent; the CSE decides whether it knows the type.
    pub ty: Option<u64>,
    pub pc: Option<Value>,
    pub rcn: Option<u64>,
    pub rt: ResponseType,
    pub drt: Option<u64>,
    pub fc: Option<Map<String, Value>>,
    pub ot: Option<String>,
    /// `rqet`: when the request expires, absolute or relative (milliseconds), as sent.
    pub rqet: Option<String>,
}

/// Whether a value says "not set": `null`, or an empty list (as OpenMTC writes every member
/// of its model it has no value for).
pub fn unset(v: &Value) -> bool {
    v.is_null() || v.as_array().is_some_and(Vec::is_empty)
}

/// A non-negative integer, or one written as a string (`"op": "1"`, `"ty": "2"`, as Mobius
/// devices send them: the value cannot mean anything else).
pub fn number(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_str()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
    })
}

impl RequestPrimitive {
    /// A request with only the mandatory parameters; used by clients and tests.
    pub fn new(
        op: Operation,
        to: impl Into<String>,
        fr: impl Into<String>,
        rqi: impl Into<String>,
    ) -> Self {
        RequestPrimitive {
            op,
            to: to.into(),
            fr: Some(fr.into()),
            rqi: rqi.into(),
            rvi: Some("3".into()),
            ty: None,
            pc: None,
            rcn: None,
            rt: ResponseType::Blocking,
            drt: None,
            fc: None,
            ot: None,
            rqet: None,
        }
    }

    /// Reads a request from a decoded body, bare or wrapped in `{"m2m:rqp": {...}}`.
    pub fn from_value(body: Value) -> Result<Self, PrimitiveError> {
        let mut obj = match body {
            Value::Object(o) => o,
            _ => {
                return Err(PrimitiveError::new(
                    None,
                    "a request primitive must be a JSON object",
                ))
            }
        };
        if obj.len() == 1 {
            if let Some(inner) = obj.remove("m2m:rqp") {
                obj = match inner {
                    Value::Object(o) => o,
                    _ => return Err(PrimitiveError::new(None, "m2m:rqp must be an object")),
                };
            }
        }
        // rqi first, so that every later error can still be answered with it.
        let rqi = match obj.get("rqi") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::String(_)) => {
                return Err(PrimitiveError::new(None, "rqi must not be empty"))
            }
            Some(_) => return Err(PrimitiveError::new(None, "rqi must be a string")),
            None => return Err(PrimitiveError::new(None, "missing mandatory parameter rqi")),
        };
        let fail = |msg: String| PrimitiveError::new(Some(rqi.clone()), msg);

        if let Some(k) = obj
            .keys()
            .find(|k| !REQUEST_PARAMETERS.contains(&k.as_str()))
        {
            return Err(fail(format!("unknown request parameter '{k}'")));
        }
        let op = match obj.get("op") {
            None => return Err(fail("missing mandatory parameter op".into())),
            Some(v) => Operation::from_value(v)
                .ok_or_else(|| fail(format!("op must be 1 to 5, not {v}")))?,
        };
        let to = match obj.get("to") {
            None => return Err(fail("missing mandatory parameter to".into())),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => return Err(fail("to must be a non-empty string".into())),
        };
        let fr = match obj.get("fr") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(fail("fr must be a string".into())),
        };
        for (name, value) in [("to", Some(&to)), ("fr", fr.as_ref())] {
            if let Some(e) = value.and_then(|v| too_long(name, v)) {
                return Err(fail(e.dbg));
            }
        }
        let rvi = match obj.get("rvi") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            // Some clients send the release as a number; accept 2, 3, 4, 5.
            Some(Value::Number(n)) if n.is_u64() => Some(n.to_string()),
            Some(v) => return Err(fail(format!("rvi must be a string, not {v}"))),
        };
        let uint = |name: &str| -> Result<Option<u64>, PrimitiveError> {
            match obj.get(name) {
                None => Ok(None),
                Some(v) => number(v)
                    .map(Some)
                    .ok_or_else(|| fail(format!("{name} must be a non-negative integer, not {v}"))),
            }
        };
        let ty = uint("ty")?;
        let rcn = uint("rcn")?;
        let drt = uint("drt")?;
        let rt = match obj.get("rt") {
            None => ResponseType::Blocking,
            // {"rtv": n} is the standard form; a bare number is accepted too.
            Some(v) => {
                let rtv = v.get("rtv").unwrap_or(v);
                match number(rtv) {
                    Some(1) => ResponseType::NonBlockingSync,
                    Some(2) => ResponseType::NonBlockingAsync,
                    Some(3) => ResponseType::Blocking,
                    Some(4) => ResponseType::FlexBlocking,
                    Some(5) => ResponseType::NoResponse,
                    _ => return Err(fail(format!("rt must be {{\"rtv\": 1..5}}, not {v}"))),
                }
            }
        };
        let fc = match obj.get("fc") {
            None => None,
            Some(Value::Object(m)) => Some(m.clone()),
            Some(_) => return Err(fail("fc must be an object".into())),
        };
        let ot = match obj.get("ot") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(fail("ot must be a timestamp string".into())),
        };
        let rqet = match obj.get("rqet") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => {
                return Err(fail(
                    "rqet must be a timestamp or a number of milliseconds".into(),
                ))
            }
        };
        let pc = obj.remove("pc");
        Ok(RequestPrimitive {
            op,
            to,
            fr,
            rqi,
            rvi,
            ty,
            pc,
            rcn,
            rt,
            drt,
            fc,
            ot,
            rqet,
        })
    }

    /// The request as a bare JSON primitive, as it goes on the wire.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("op".into(), Value::from(self.op.code()));
        m.insert("to".into(), Value::from(self.to.clone()));
        if let Some(fr) = &self.fr {
            m.insert("fr".into(), Value::from(fr.clone()));
        }
        m.insert("rqi".into(), Value::from(self.rqi.clone()));
        if let Some(rvi) = &self.rvi {
            m.insert("rvi".into(), Value::from(rvi.clone()));
        }
        if let Some(ty) = self.ty {
            m.insert("ty".into(), Value::from(ty));
        }
        if let Some(rcn) = self.rcn {
            m.insert("rcn".into(), Value::from(rcn));
        }
        if let Some(drt) = self.drt {
            m.insert("drt".into(), Value::from(drt));
        }
        if self.rt != ResponseType::Blocking {
            m.insert("rt".into(), serde_json::json!({ "rtv": self.rt as u8 }));
        }
        if let Some(fc) = &self.fc {
            m.insert("fc".into(), Value::Object(fc.clone()));
        }
        if let Some(rqet) = &self.rqet {
            m.insert("rqet".into(), Value::from(rqet.clone()));
        }
        if let Some(ot) = &self.ot {
            m.insert("ot".into(), Value::from(ot.clone()));
        }
        if let Some(pc) = &self.pc {
            m.insert("pc".into(), pc.clone());
        }
        Value::Object(m)
    }
}

/// A body that could not be read as a request. `rqi` is kept when it could be read, so that the
/// error response can still be correlated by the originator.
#[derive(Debug, Clone, PartialEq)]
pub struct PrimitiveError {
    pub rqi: Option<String>,
    pub error: Error,
}

impl PrimitiveError {
    pub fn new(rqi: Option<String>, msg: impl Into<String>) -> Self {
        PrimitiveError {
            rqi,
            error: Error::bad_request(msg),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResponsePrimitive {
    pub rsc: Rsc,
    pub rqi: String,
    pub rvi: Option<String>,
    pub ot: String,
    pub pc: Option<Value>,
    /// `cnot` (contentOffset) of a partial result (`cnst` 2, PARTIAL_CONTENT): where the
    /// results left out begin, for the next request's `ofst`. `None`: the content is whole.
    pub partial: Option<u64>,
}

/// `cnst` (contentStatus) of a partial result.
pub const PARTIAL_CONTENT: u64 = 2;

impl ResponsePrimitive {
    pub fn new(rsc: Rsc, rqi: impl Into<String>, rvi: Option<String>, pc: Option<Value>) -> Self {
        ResponsePrimitive {
            rsc,
            rqi: rqi.into(),
            rvi,
            ot: super::time::now(),
            pc,
            partial: None,
        }
    }

    /// An error response: `pc` is `{"m2m:dbg": "<text>"}`, as ACME answers.
    pub fn error(err: &Error, rqi: impl Into<String>, rvi: Option<String>) -> Self {
        Self::new(
            err.rsc,
            rqi,
            rvi,
            Some(serde_json::json!({ "m2m:dbg": err.dbg })),
        )
    }

    /// Reads a response, bare or wrapped in `{"m2m:rsp": {...}}`, as a client receives it from
    /// any CSE: unknown parameters are ignored, `rsc` may be any code.
    pub fn from_value(body: Value) -> Result<Self, Error> {
        let body = match body {
            Value::Object(mut o) if o.len() == 1 && o.contains_key("m2m:rsp") => {
                o.remove("m2m:rsp").unwrap_or_default()
            }
            other => other,
        };
        let Value::Object(mut o) = body else {
            return Err(Error::bad_request(
                "a response primitive must be a JSON object",
            ));
        };
        let rsc = o
            .get("rsc")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .ok_or_else(|| Error::bad_request("response without a numeric rsc"))?;
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Ok(ResponsePrimitive {
            rsc: Rsc(rsc),
            rqi: text(o.get("rqi")).unwrap_or_default(),
            rvi: text(o.get("rvi")),
            ot: text(o.get("ot")).unwrap_or_default(),
            partial: o
                .get("cnot")
                .and_then(Value::as_u64)
                .filter(|_| o.get("cnst").and_then(Value::as_u64) == Some(PARTIAL_CONTENT)),
            pc: o.remove("pc"),
        })
    }

    /// The `m2m:dbg` text of an error response.
    pub fn dbg(&self) -> Option<&str> {
        self.pc.as_ref()?.get("m2m:dbg")?.as_str()
    }

    /// The response as a bare JSON primitive (no `m2m:rsp` wrapper).
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("rsc".into(), Value::from(self.rsc.code()));
        m.insert("rqi".into(), Value::from(self.rqi.clone()));
        if let Some(rvi) = &self.rvi {
            m.insert("rvi".into(), Value::from(rvi.clone()));
        }
        m.insert("ot".into(), Value::from(self.ot.clone()));
        if let Some(offset) = self.partial {
            m.insert("cnst".into(), Value::from(PARTIAL_CONTENT));
            m.insert("cnot".into(), Value::from(offset));
        }
        if let Some(pc) = &self.pc {
            m.insert("pc".into(), pc.clone());
        }
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<RequestPrimitive, PrimitiveError> {
        RequestPrimitive::from_value(v)
    }

    #[test]
    fn reads_a_bare_create() {
        let r = parse(
            json!({"op":1,"to":"cse-in","fr":"Cabc","rqi":"r1","rvi":"3","ty":3,
                             "pc":{"m2m:cnt":{"rn":"c"}}}),
        )
        .unwrap();
        assert_eq!(r.op, Operation::Create);
        assert_eq!(r.to, "cse-in");
        assert_eq!(r.fr.as_deref(), Some("Cabc"));
        assert_eq!(r.ty, Some(3));
        assert_eq!(r.rt, ResponseType::Blocking);
        assert_eq!(r.pc, Some(json!({"m2m:cnt":{"rn":"c"}})));
    }

    #[test]
    fn reads_a_wrapped_request() {
        let r = parse(json!({"m2m:rqp":{"op":2,"to":"cse-in","fr":"C1","rqi":"r2","rvi":"2a"}}))
            .unwrap();
        assert_eq!(r.op, Operation::Retrieve);
        assert_eq!(r.rvi.as_deref(), Some("2a"));
    }

    #[test]
    fn missing_mandatory_parameters_are_named() {
        let e = parse(json!({"to":"x","rqi":"r"})).unwrap_err();
        assert_eq!(e.error.rsc, Rsc::BAD_REQUEST);
        assert!(e.error.dbg.contains("op"), "{}", e.error.dbg);
        assert_eq!(e.rqi.as_deref(), Some("r"));

        let e = parse(json!({"op":2,"rqi":"r"})).unwrap_err();
        assert!(e.error.dbg.contains("to"));

        let e = parse(json!({"op":2,"to":"x"})).unwrap_err();
        assert!(e.error.dbg.contains("rqi"));
        assert_eq!(e.rqi, None);
    }

    #[test]
    fn wrong_types_and_unknown_parameters_are_bad_requests() {
        for (body, needle) in [
            (json!([1, 2]), "object"),
            (json!({"op":9,"to":"x","rqi":"r"}), "op"),
            (json!({"op":"one","to":"x","rqi":"r"}), "op"),
            (json!({"op":1,"to":"","rqi":"r"}), "to"),
            (json!({"op":1,"to":"x","rqi":7}), "rqi"),
            (json!({"op":1,"to":"x","rqi":"r","fr":5}), "fr"),
            (json!({"op":1,"to":"x","rqi":"r","ty":-3}), "ty"),
            (json!({"op":1,"to":"x","rqi":"r","rcn":"-1"}), "rcn"),
            (json!({"op":1,"to":"x","rqi":"r","ty":"2.0"}), "ty"),
            (json!({"op":1,"to":"x","rqi":"r","rt":{"rtv":9}}), "rt"),
            (json!({"op":1,"to":"x","rqi":"r","fc":[1]}), "fc"),
            (json!({"op":1,"to":"x","rqi":"r","pcc":{}}), "pcc"),
            (json!({"m2m:rqp":"x"}), "m2m:rqp"),
        ] {
            let e = parse(body.clone()).unwrap_err();
            assert_eq!(e.error.rsc, Rsc::BAD_REQUEST, "{body}");
            assert!(e.error.dbg.contains(needle), "{body}: {}", e.error.dbg);
        }
    }

    #[test]
    fn numbers_in_strings_are_read_as_numbers() {
        let r = parse(json!({"op":"1","to":"x","rqi":"r","ty":"2","rcn":"1","rt":{"rtv":"3"}}))
            .unwrap();
        assert_eq!((r.op, r.ty, r.rcn), (Operation::Create, Some(2), Some(1)));
        assert_eq!(r.rt, ResponseType::Blocking);
        assert_eq!(number(&json!("")), None);
        assert_eq!(number(&json!("+1")), None);
    }

    #[test]
    fn response_type_and_numeric_rvi_are_accepted() {
        let r = parse(json!({"op":2,"to":"x","rqi":"r","rvi":3,"rt":{"rtv":5}})).unwrap();
        assert_eq!(r.rvi.as_deref(), Some("3"));
        assert_eq!(r.rt, ResponseType::NoResponse);
        let r = parse(json!({"op":2,"to":"x","rqi":"r","rt":1})).unwrap();
        assert_eq!(r.rt, ResponseType::NonBlockingSync);
    }

    #[test]
    fn request_round_trips_through_json() {
        let mut r = RequestPrimitive::new(Operation::Create, "cse-in/ae", "Cme", "q1");
        r.ty = Some(4);
        r.rcn = Some(1);
        r.rt = ResponseType::NoResponse;
        r.pc = Some(json!({"m2m:cin":{"con":"1"}}));
        assert_eq!(parse(r.to_value()).unwrap(), r);
    }

    #[test]
    fn responses_read_back_bare_or_wrapped_with_any_code() {
        let rsp = ResponsePrimitive::new(
            Rsc::CREATED,
            "q",
            Some("3".into()),
            Some(json!({"m2m:cnt":{}})),
        );
        assert_eq!(ResponsePrimitive::from_value(rsp.to_value()).unwrap(), rsp);
        let r = ResponsePrimitive::from_value(
            json!({"m2m:rsp":{"rsc":6010,"rqi":"x","to":"y","pc":{"m2m:dbg":"d"}}}),
        )
        .unwrap();
        assert_eq!(r.rsc, Rsc(6010));
        assert_eq!(r.dbg(), Some("d"));
        assert!(ResponsePrimitive::from_value(json!({"rqi":"x"})).is_err());
        assert!(ResponsePrimitive::from_value(json!("x")).is_err());
    }

    #[test]
    fn responses_are_bare_with_dbg_on_error() {
        let rsp =
            ResponsePrimitive::error(&Error::not_found("nothing at x"), "q", Some("3".into()));
        let v = rsp.to_value();
        assert_eq!(v["rsc"], 4004);
        assert_eq!(v["rqi"], "q");
        assert_eq!(v["rvi"], "3");
        assert_eq!(v["pc"]["m2m:dbg"], "nothing at x");
        assert!(v["ot"]
            .as_str()
            .is_some_and(|t| crate::onem2m::time::parse(t).is_some()));
        assert!(v.get("m2m:rsp").is_none());
        let v = ResponsePrimitive::new(Rsc::OK, "q", None, None).to_value();
        assert!(v.get("rvi").is_none() && v.get("pc").is_none());
    }
}
