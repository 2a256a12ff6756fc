//! Transport bindings: thin adapters between the wire and the CSE dispatcher.

pub mod delivery;
pub mod http;
mod listen;
pub mod mqtt;
pub mod outbound;
mod queues;

use serde_json::Value;

/// How a primitive is written on the wire. JSON only for now; CBOR slots in here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serialization {
    Json,
}

impl Serialization {
    /// From the serialization level of a TS-0010 topic; Release-1 topics without one are JSON.
    pub fn from_topic_level(level: Option<&str>) -> Option<Serialization> {
        match level {
            None | Some("json") => Some(Serialization::Json),
            Some(_) => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Serialization::Json => "json",
        }
    }

    pub fn decode(self, bytes: &[u8]) -> Result<Value, String> {
        match self {
            Serialization::Json => {
                serde_json::from_slice(bytes).map_err(|e| format!("body is not valid JSON: {e}"))
            }
        }
    }

    pub fn encode(self, value: &Value) -> Vec<u8> {
        match self {
            // Serializing a Value cannot fail: its keys are strings.
            Serialization::Json => serde_json::to_vec(value).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_the_default_and_the_only_one() {
        assert_eq!(
            Serialization::from_topic_level(None),
            Some(Serialization::Json)
        );
        assert_eq!(
            Serialization::from_topic_level(Some("json")),
            Some(Serialization::Json)
        );
        assert_eq!(Serialization::from_topic_level(Some("cbor")), None);
        assert_eq!(Serialization::from_topic_level(Some("xml")), None);
    }

    #[test]
    fn decode_errors_are_readable() {
        let e = Serialization::Json.decode(b"{\"op\":").unwrap_err();
        assert!(e.starts_with("body is not valid JSON"), "{e}");
        let v = Serialization::Json.decode(b"{\"a\":1}").unwrap();
        assert_eq!(Serialization::Json.encode(&v), b"{\"a\":1}");
    }
}
