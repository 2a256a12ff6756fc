//! TS-0010 MQTT topics: `/oneM2M/<kind>/<originator>/<receiver>[/<serialization>]`.
//!
//! Topics begin with `/`, so their first level is empty. IDs are written into a topic level by
//! dropping leading slashes and turning the remaining ones into `:` (`/id-in/Cabc` →
//! `id-in:Cabc`), as ACME, OpenMTC and Mobius do.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    Req,
    RegReq,
    Resp,
    RegResp,
}

impl TopicKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TopicKind::Req => "req",
            TopicKind::RegReq => "reg_req",
            TopicKind::Resp => "resp",
            TopicKind::RegResp => "reg_resp",
        }
    }

    /// The kind of topic on which the answer to a request of this kind goes.
    pub fn response(self) -> TopicKind {
        match self {
            TopicKind::Req | TopicKind::Resp => TopicKind::Resp,
            TopicKind::RegReq | TopicKind::RegResp => TopicKind::RegResp,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic<'a> {
    pub kind: TopicKind,
    /// The originator level as written in the topic (an ID in topic form, or on `reg_req` a
    /// Credential-ID).
    pub originator: &'a str,
    pub receiver: &'a str,
    /// `json`, `cbor`, `xml`; `None` for Release-1 topics that end after the receiver.
    pub serialization: Option<&'a str>,
}

impl<'a> Topic<'a> {
    pub fn parse(topic: &'a str) -> Option<Topic<'a>> {
        let mut levels = topic.split('/');
        if levels.next() != Some("") || levels.next() != Some("oneM2M") {
            return None;
        }
        let kind = match levels.next()? {
            "req" => TopicKind::Req,
            "reg_req" => TopicKind::RegReq,
            "resp" => TopicKind::Resp,
            "reg_resp" => TopicKind::RegResp,
            _ => return None,
        };
        let originator = levels.next().filter(|s| !s.is_empty())?;
        let receiver = levels.next().filter(|s| !s.is_empty())?;
        let serialization = match levels.next() {
            None => None,
            Some(s) if !s.is_empty() => Some(s),
            Some(_) => return None,
        };
        if levels.next().is_some() {
            return None;
        }
        Some(Topic {
            kind,
            originator,
            receiver,
            serialization,
        })
    }

    /// The topic on which the answer to this request goes: same originator and receiver, in the
    /// same order (TS-0010; ACME and Mobius do not swap them), always with a serialization.
    pub fn response_topic(&self, serialization: &str) -> String {
        format!(
            "/oneM2M/{}/{}/{}/{}",
            self.kind.response().as_str(),
            self.originator,
            self.receiver,
            serialization
        )
    }
}

/// Writes an ID into a topic level: `/id-in/Cabc` → `id-in:Cabc`, `Cabc` → `Cabc`.
pub fn id_to_topic(id: &str) -> String {
    id.trim_start_matches('/').replace('/', ":")
}

/// Reads an ID back from a topic level: `id-in:Cabc` → `/id-in/Cabc`, `Cabc` → `Cabc`.
pub fn id_from_topic(level: &str) -> String {
    if level.contains(':') {
        format!("/{}", level.replace(':', "/"))
    } else {
        level.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_request_topics() {
        let t = Topic::parse("/oneM2M/req/Cabc/id-in/json").unwrap();
        assert_eq!(t.kind, TopicKind::Req);
        assert_eq!(t.originator, "Cabc");
        assert_eq!(t.receiver, "id-in");
        assert_eq!(t.serialization, Some("json"));
        assert_eq!(t.response_topic("json"), "/oneM2M/resp/Cabc/id-in/json");

        let t = Topic::parse("/oneM2M/reg_req/cred1/id-in/json").unwrap();
        assert_eq!(
            t.response_topic("json"),
            "/oneM2M/reg_resp/cred1/id-in/json"
        );
    }

    #[test]
    fn release_one_topics_have_no_serialization() {
        let t = Topic::parse("/oneM2M/resp/id-in/Cabc").unwrap();
        assert_eq!(t.kind, TopicKind::Resp);
        assert_eq!(t.serialization, None);
    }

    #[test]
    fn rejects_other_topics() {
        for bad in [
            "oneM2M/req/a/b/json",
            "/oneM2M/req/a/b/json/x",
            "/oneM2M/req//b/json",
            "/oneM2M/req/a//json",
            "/oneM2M/req/a/b/",
            "/oneM2M/foo/a/b/json",
            "/oneM2M/req/a",
            "/other/req/a/b/json",
            "",
        ] {
            assert_eq!(Topic::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ids_in_topics() {
        assert_eq!(id_to_topic("/id-in/Cabc"), "id-in:Cabc");
        assert_eq!(id_to_topic("/id-in"), "id-in");
        assert_eq!(id_to_topic("Cabc"), "Cabc");
        assert_eq!(id_from_topic("id-in:Cabc"), "/id-in/Cabc");
        assert_eq!(id_from_topic("Cabc"), "Cabc");
        for id in ["/id-in/Cabc", "Cxyz", "/id-mn"] {
            let back = id_from_topic(&id_to_topic(id));
            assert!(back == id || format!("/{back}") == id, "{id} -> {back}");
        }
    }
}
