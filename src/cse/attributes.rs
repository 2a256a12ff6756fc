//! Attribute policies: which attributes a request may carry for each resource type and
//! operation, and of what JSON type (digest §3.2–3.3, after ACME's attributePolicies).

use crate::onem2m::primitive::unset;
use crate::onem2m::{address, time, Error, ResourceType};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Bool,
    Uint,
    /// A duration in seconds: a non-negative integer up to [`time::MAX_SECONDS`].
    Seconds,
    StrList,
    Time,
    /// Any JSON value (`con`).
    Any,
    /// Only `null` (`cr` on CREATE asks the CSE to fill in the creator).
    Null,
    Object,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnCreate {
    Mandatory,
    Optional,
}

struct Policy {
    name: &'static str,
    kind: Kind,
    create: OnCreate,
    updatable: bool,
}

const fn p(name: &'static str, kind: Kind, create: OnCreate, updatable: bool) -> Policy {
    Policy {
        name,
        kind,
        create,
        updatable,
    }
}

use Kind::*;
use OnCreate::*;

const COMMON: &[Policy] = &[
    p("rn", Str, Optional, false),
    p("et", Time, Optional, true),
    p("lbl", StrList, Optional, true),
];

const AE: &[Policy] = &[
    p("acpi", StrList, Optional, true),
    p("api", Str, Mandatory, false),
    p("apn", Str, Optional, true),
    p("rr", Bool, Mandatory, true),
    p("poa", StrList, Optional, true),
    p("or", Str, Optional, true),
    p("srv", StrList, Optional, true),
    p("csz", StrList, Optional, true),
    p("nl", Str, Optional, true),
];

const CONTAINER: &[Policy] = &[
    p("acpi", StrList, Optional, true),
    p("cr", Null, Optional, false),
    p("mni", Uint, Optional, true),
    p("mbs", Uint, Optional, true),
    p("mia", Seconds, Optional, true),
    p("li", Str, Optional, true),
    p("or", Str, Optional, true),
];

const CONTENT_INSTANCE: &[Policy] = &[
    p("cr", Null, Optional, false),
    p("cnf", Str, Optional, false),
    p("con", Any, Mandatory, false),
    p("or", Str, Optional, false),
];

/// Attributes the CSE sets itself; a request that carries one is refused with a message that
/// says so, rather than "unknown attribute".
const SUBSCRIPTION: &[Policy] = &[
    p("acpi", StrList, Optional, true),
    p("cr", Null, Optional, false),
    p("nu", StrList, Mandatory, true),
    p("enc", Object, Optional, true),
    p("nct", Uint, Optional, true),
    p("exc", Uint, Optional, true),
    p("su", Str, Optional, true),
    p("ln", Bool, Optional, true),
    p("bn", Object, Optional, true),
    p("pn", Uint, Optional, true),
    p("nsp", Uint, Optional, true),
    p("rl", Object, Optional, true),
    p("nfu", Str, Optional, true),
    p("gpi", Str, Optional, true),
];

const REMOTE_CSE: &[Policy] = &[
    p("acpi", StrList, Optional, true),
    p("csi", Str, Optional, false),
    p("cb", Str, Mandatory, true),
    p("rr", Bool, Mandatory, true),
    p("poa", StrList, Optional, true),
    p("cst", Uint, Optional, true),
    p("srv", StrList, Optional, true),
    p("csz", StrList, Optional, true),
    p("dcse", StrList, Optional, true),
    p("nl", Str, Optional, true),
];

/// `pv` and `pvs` are read by [`crate::onem2m::acp`]; an ACP has no `acpi` (its `pvs`
/// governs it).
const ACCESS_CONTROL_POLICY: &[Policy] = &[
    p("pv", Object, Mandatory, true),
    p("pvs", Object, Mandatory, true),
];

/// Only these can be updated; the rest of the CSEBase follows the configuration.
const CSE_BASE: &[Policy] = &[p("acpi", StrList, Optional, true)];

/// `ch` (child resources), `la` and `ol` are in OpenMTC's model of a resource; the CSE gives
/// them, never a client.
const READ_ONLY: &[&str] = &[
    "ty", "ri", "pi", "ct", "lt", "st", "cni", "cbs", "cs", "aei", "csi", "cst", "srt", "cb", "ch",
    "la", "ol",
];

/// Attributes TS-0001 defines for every resource that this CSE does not implement
/// (announcement, dynamic authorization, custodian). Given a value, they get 5001 (TS-0004
/// §7.3.3.3: a supported resource with an optional attribute the Hosting CSE does not
/// support), not "unknown attribute".
const UNIVERSAL_NOT_SUPPORTED: &[&str] = &["at", "aa", "ast", "daci", "cstn"];

/// The same, per type (TS-0001 §9.6: the attribute tables of each resource type).
fn not_supported(ty: ResourceType) -> &'static [&'static str] {
    match ty {
        ResourceType::Ae => &["esi", "regs", "trps", "ph", "scp", "tren", "ape"],
        ResourceType::Container => &["disr"],
        ResourceType::ContentInstance => &["conr", "dcnt", "dgt"],
        ResourceType::Subscription => &["psn", "nec", "nse", "nsi", "acrs"],
        ResourceType::RemoteCse => &["mei", "tri", "trn", "esi", "mtcc"],
        ResourceType::AccessControlPolicy => &["adri", "apri", "airi"],
        _ => &[],
    }
}

/// Takes out of a CREATE or UPDATE what says "not set", before [`validate`]:
/// * OpenMTC serialises its whole model of a resource, unset attributes as `null` or `[]`,
///   the ones the CSE assigns included (`"ri": null, "ct": null, "ch": []`). A body that
///   carries an attribute the CSE assigns, unset, is such a model: there every `null` and
///   `[]` means "not set", and is left out.
/// * Otherwise `null` on CREATE is left out (`cr: null` aside: it asks for the creator), and
///   on UPDATE kept: it deletes the attribute (TS-0004). An empty list of an attribute the
///   CSE assigns or does not support is left out; of any other, kept (a list set empty).
///
/// And a boolean or a number sent as a string (`"rr": "true"`, `"mni": "5"`, as Mobius
/// devices send them) is read as its value: it cannot mean anything else.
pub fn tidy(ty: ResourceType, op: Op, attrs: &mut Map<String, Value>) {
    if ty == ResourceType::Subscription {
        if let Some(Value::Object(enc)) = attrs.get_mut("enc") {
            short_names(enc);
        }
    }
    for (name, v) in attrs.iter_mut() {
        let Some(policy) = find(ty, name) else {
            continue;
        };
        let typed = match (policy.kind, v.as_str()) {
            (Bool, Some("true")) => Some(Value::Bool(true)),
            (Bool, Some("false")) => Some(Value::Bool(false)),
            (Uint | Seconds, Some(_)) => crate::onem2m::primitive::number(v).map(Value::from),
            _ => None,
        };
        if let Some(typed) = typed {
            *v = typed;
        }
    }
    let whole_model = attrs
        .iter()
        .any(|(k, v)| READ_ONLY.contains(&k.as_str()) && unset(v));
    attrs.retain(|name, v| {
        if !unset(v) {
            return true;
        }
        if whole_model {
            return false;
        }
        // A name no release defines stays, to be refused as unknown.
        let defined = find(ty, name).is_some()
            || READ_ONLY.contains(&name.as_str())
            || UNIVERSAL_NOT_SUPPORTED.contains(&name.as_str())
            || not_supported(ty).contains(&name.as_str());
        if !defined {
            return true;
        }
        if v.is_null() {
            return op == Op::Update || name == "cr";
        }
        find(ty, name).is_some()
    });
}

fn policies(ty: ResourceType) -> &'static [Policy] {
    match ty {
        ResourceType::Ae => AE,
        ResourceType::Container => CONTAINER,
        ResourceType::ContentInstance => CONTENT_INSTANCE,
        ResourceType::Subscription => SUBSCRIPTION,
        ResourceType::RemoteCse => REMOTE_CSE,
        ResourceType::AccessControlPolicy => ACCESS_CONTROL_POLICY,
        ResourceType::CseBase => CSE_BASE,
        _ => &[],
    }
}

fn find(ty: ResourceType, name: &str) -> Option<&'static Policy> {
    COMMON.iter().chain(policies(ty)).find(|p| p.name == name)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
}

/// Checks the attributes of a CREATE or UPDATE against the policies of `ty`. On UPDATE a
/// `null` value deletes an optional attribute.
pub fn validate(ty: ResourceType, op: Op, attrs: &Map<String, Value>) -> Result<(), Error> {
    let root = ty.root_name();
    for (name, value) in attrs {
        let Some(policy) = find(ty, name) else {
            if READ_ONLY.contains(&name.as_str()) {
                return Err(Error::bad_request(format!(
                    "attribute '{name}' of {root} is set by the CSE and cannot be given"
                )));
            }
            if UNIVERSAL_NOT_SUPPORTED.contains(&name.as_str())
                || not_supported(ty).contains(&name.as_str())
            {
                return Err(Error::new(
                    crate::onem2m::Rsc::NOT_IMPLEMENTED,
                    format!("attribute '{name}' of {root} is not supported by this CSE"),
                ));
            }
            return Err(Error::bad_request(format!(
                "unknown attribute '{name}' for {root}"
            )));
        };
        if op == Op::Update && !policy.updatable {
            return Err(Error::bad_request(format!(
                "attribute '{name}' of {root} cannot be updated"
            )));
        }
        if op == Op::Update && value.is_null() {
            if policy.create == Mandatory {
                return Err(Error::bad_request(format!(
                    "attribute '{name}' of {root} is mandatory and cannot be deleted"
                )));
            }
            continue;
        }
        check_kind(root, name, policy.kind, value)?;
        match name.as_str() {
            "lbl" => check_labels(root, value)?,
            "csz" => check_serializations(root, value)?,
            "cnf" => check_content_info(root, value)?,
            _ => {}
        }
    }
    if op == Op::Create {
        let all = COMMON.iter().chain(policies(ty));
        if let Some(missing) = all
            .filter(|p| p.create == Mandatory)
            .find(|p| !attrs.contains_key(p.name))
        {
            return Err(Error::bad_request(format!(
                "mandatory attribute '{}' is missing for {root}",
                missing.name
            )));
        }
    }
    if let Some(rn) = attrs.get("rn").and_then(Value::as_str) {
        check_resource_name(rn)?;
    }
    Ok(())
}

fn check_kind(root: &str, name: &str, kind: Kind, v: &Value) -> Result<(), Error> {
    let ok = match kind {
        Str => v.is_string(),
        Bool => v.is_boolean(),
        Uint => v.is_u64(),
        Seconds => v.as_u64().is_some_and(|s| s <= time::MAX_SECONDS),
        StrList => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        Time => v.as_str().is_some_and(|s| time::parse(s).is_some()),
        Any => true,
        Null => v.is_null(),
        Object => v.is_object(),
    };
    if ok {
        return Ok(());
    }
    let expected: std::borrow::Cow<str> = match kind {
        Str => "a string".into(),
        Bool => "true or false".into(),
        Uint => "a non-negative integer".into(),
        Seconds => format!(
            "a number of seconds from 0 to {} (100 years)",
            time::MAX_SECONDS
        )
        .into(),
        StrList => "a list of strings".into(),
        Time => "a timestamp like 20250101T120000".into(),
        Any => "any value".into(),
        Null => "null".into(),
        Object => "an object".into(),
    };
    Err(Error::bad_request(format!(
        "attribute '{name}' of {root} must be {expected}, not {}",
        address::shorten(&v.to_string())
    )))
}

/// The members of `eventNotificationCriteria` by their long names (TS-0004 Table 8.2.3-x),
/// which OpenMTC's client writes (`"notificationEventType": [3]`, every other member
/// `null`): each is the member its short name is, so reading it so cannot change what the
/// request means. Unset members (`null`, `[]`) are left out.
const ENC_LONG_NAMES: &[(&str, &str)] = &[
    ("createdBefore", "crb"),
    ("createdAfter", "cra"),
    ("modifiedSince", "ms"),
    ("unmodifiedSince", "us"),
    ("stateTagSmaller", "sts"),
    ("stateTagBigger", "stb"),
    ("expireBefore", "exb"),
    ("expireAfter", "exa"),
    ("sizeAbove", "sza"),
    ("sizeBelow", "szb"),
    ("operationMonitor", "om"),
    ("attribute", "atr"),
    ("notificationEventType", "net"),
    ("childResourceType", "chty"),
    ("missingData", "md"),
    ("filterOperation", "fo"),
];

fn short_names(enc: &mut Map<String, Value>) {
    let names: Vec<String> = enc.keys().cloned().collect();
    for name in names {
        let Some(value) = enc.remove(&name) else {
            continue;
        };
        if unset(&value) {
            continue;
        }
        let short = ENC_LONG_NAMES
            .iter()
            .find(|(long, _)| *long == name)
            .map_or(name, |(_, short)| short.to_string());
        enc.insert(short, value);
    }
}

/// Labels are `xs:token`s (TS-0004 §6.3.5): not empty, no tab, carriage return or line
/// feed, no space at either end, no two spaces in a row.
fn check_labels(root: &str, value: &Value) -> Result<(), Error> {
    for l in value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let token = !l.is_empty()
            && !l.contains(['\t', '\r', '\n'])
            && !l.starts_with(' ')
            && !l.ends_with(' ')
            && !l.contains("  ");
        if !token {
            return Err(Error::bad_request(format!(
                "label {} of {root} is not a token: labels are not empty, and have no tab, \
                 line break, space at either end or two spaces in a row",
                address::shorten(&Value::from(l).to_string())
            )));
        }
    }
    Ok(())
}

/// `csz`: the serializations an entity accepts (TS-0004 §6.7), from those oneM2M defines.
fn check_serializations(root: &str, value: &Value) -> Result<(), Error> {
    const DEFINED: &[&str] = &["application/json", "application/xml", "application/cbor"];
    for s in value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !DEFINED.contains(&s) {
            return Err(Error::bad_request(format!(
                "csz of {root} lists {}: the serializations are {DEFINED:?}",
                address::shorten(&Value::from(s).to_string())
            )));
        }
    }
    Ok(())
}

/// `cnf`: `<type>/<subtype>`, then optionally `:<encoding>` (0 none, 1 base64 of a string,
/// 2 base64 of binary) and `:<content security>` (TS-0004 §6.3.5: m2m:contentInfo).
fn check_content_info(root: &str, value: &Value) -> Result<(), Error> {
    let s = value.as_str().unwrap_or_default();
    let mut parts = s.split(':');
    let mime = parts.next().unwrap_or_default();
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let mime_ok = mime
        .split_once('/')
        .is_some_and(|(t, sub)| token(t) && token(sub));
    let encoding_ok = parts.next().is_none_or(|e| matches!(e, "0" | "1" | "2"));
    let security_ok = parts
        .next()
        .is_none_or(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()));
    if mime_ok && encoding_ok && security_ok && parts.next().is_none() {
        return Ok(());
    }
    Err(Error::bad_request(format!(
        "cnf of {root} is {}: it is <type>/<subtype>, then optionally :<encoding> (0, 1 or 2), \
         e.g. \"text/plain:0\"",
        address::shorten(&value.to_string())
    )))
}

/// Resource names become path segments and MQTT-safe identifiers.
pub fn check_resource_name(rn: &str) -> Result<(), Error> {
    let bad = rn.is_empty()
        || rn.len() > 255
        || matches!(rn, "-" | "la" | "ol" | "." | "..")
        || rn
            .chars()
            .any(|c| c == '/' || c == '#' || c == '?' || c.is_control() || c.is_whitespace());
    if bad {
        return Err(Error::bad_request(format!(
            "'{rn}' is not a valid resource name: 1 to 255 characters, no '/', '#', '?' or \
             spaces, and not '-', 'la' or 'ol'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onem2m::Rsc;
    use serde_json::json;

    fn attrs(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn err(ty: ResourceType, op: Op, v: Value) -> String {
        let e = validate(ty, op, &attrs(v)).unwrap_err();
        assert_eq!(e.rsc, Rsc::BAD_REQUEST);
        e.dbg
    }

    #[test]
    fn accepts_what_the_policies_allow() {
        validate(
            ResourceType::Ae,
            Op::Create,
            &attrs(json!({"api":"Napp","rr":true,"rn":"a","poa":["mqtt://x"],"srv":["3"]})),
        )
        .unwrap();
        validate(
            ResourceType::Container,
            Op::Create,
            &attrs(
                json!({"mni":10,"mbs":100,"mia":60,"lbl":["a:b"],"et":"20991231T000000","cr":null}),
            ),
        )
        .unwrap();
        validate(
            ResourceType::ContentInstance,
            Op::Create,
            &attrs(json!({"con":{"t":21.5},"cnf":"application/json:0"})),
        )
        .unwrap();
        validate(
            ResourceType::Container,
            Op::Update,
            &attrs(json!({"mni":null,"lbl":["x"]})),
        )
        .unwrap();
    }

    #[test]
    fn names_unknown_read_only_and_mistyped_attributes() {
        assert!(err(ResourceType::Container, Op::Create, json!({"foo":1}))
            .contains("unknown attribute 'foo' for m2m:cnt"));
        assert!(
            err(ResourceType::Container, Op::Create, json!({"cni":1})).contains("set by the CSE")
        );
        assert!(err(ResourceType::Container, Op::Create, json!({"mni":-1}))
            .contains("non-negative integer"));
        assert!(err(ResourceType::Container, Op::Create, json!({"mni":"5"})).contains("'mni'"));
        assert!(
            err(ResourceType::Ae, Op::Create, json!({"api":"N","rr":"yes"}))
                .contains("true or false")
        );
        assert!(err(
            ResourceType::Ae,
            Op::Create,
            json!({"api":"N","rr":true,"poa":"mqtt://x"})
        )
        .contains("list of strings"));
        assert!(err(
            ResourceType::Container,
            Op::Create,
            json!({"et":"tomorrow"})
        )
        .contains("timestamp"));
        assert!(err(ResourceType::Container, Op::Create, json!({"cr":"Cme"})).contains("null"));
    }

    #[test]
    fn mandatory_attributes() {
        assert!(err(ResourceType::Ae, Op::Create, json!({"rr":true})).contains("'api' is missing"));
        assert!(err(
            ResourceType::ContentInstance,
            Op::Create,
            json!({"cnf":"text/plain:0"})
        )
        .contains("'con' is missing"));
        assert!(err(ResourceType::Ae, Op::Update, json!({"rr":null})).contains("cannot be deleted"));
    }

    #[test]
    fn update_rules() {
        assert!(err(ResourceType::Container, Op::Update, json!({"rn":"x"}))
            .contains("cannot be updated"));
        assert!(err(
            ResourceType::ContentInstance,
            Op::Update,
            json!({"con":"x"})
        )
        .contains("cannot be updated"));
        assert!(err(ResourceType::Ae, Op::Update, json!({"api":"Nother"}))
            .contains("cannot be updated"));
    }

    #[test]
    fn unset_attributes_of_whole_models_and_of_creates_are_left_out() {
        let tidied = |ty, op, v: Value| {
            let mut a = attrs(v);
            tidy(ty, op, &mut a);
            Value::Object(a)
        };
        // OpenMTC's whole model: every null and empty list is "not set".
        let openmtc = json!({"aei": null, "api": "Nx", "acpi": [], "at": [], "aa": null,
            "ch": [], "ct": null, "lbl": ["a"], "poa": [], "rr": true, "ri": null, "rn": "x"});
        let want = json!({"api": "Nx", "lbl": ["a"], "rr": true, "rn": "x"});
        assert_eq!(tidied(ResourceType::Ae, Op::Create, openmtc.clone()), want);
        let update = json!({"ri": null, "rr": null, "poa": [], "lbl": ["b"], "api": null});
        assert_eq!(
            tidied(ResourceType::Ae, Op::Update, update),
            json!({"lbl": ["b"]})
        );
        // Otherwise: null is absent on CREATE (but cr asks for the creator), deletes on
        // UPDATE; an empty list is kept where the type has the attribute.
        assert_eq!(
            tidied(
                ResourceType::Container,
                Op::Create,
                json!({"mni": null, "cr": null, "lbl": [], "at": []})
            ),
            json!({"cr": null, "lbl": []})
        );
        assert_eq!(
            tidied(
                ResourceType::Container,
                Op::Update,
                json!({"mni": null, "lbl": [], "daci": []})
            ),
            json!({"mni": null, "lbl": []})
        );
        // What no release defines is kept, to be refused.
        assert_eq!(
            tidied(
                ResourceType::Container,
                Op::Create,
                json!({"zz": null, "yy": []})
            ),
            json!({"zz": null, "yy": []})
        );
        // Strings that can only be a boolean or a number are read as one.
        assert_eq!(
            tidied(
                ResourceType::Ae,
                Op::Create,
                json!({"rr": "true", "api": "N1"})
            ),
            json!({"rr": true, "api": "N1"})
        );
        assert_eq!(
            tidied(
                ResourceType::Container,
                Op::Create,
                json!({"mni": "5", "li": "7", "mbs": "x"})
            ),
            json!({"mni": 5, "li": "7", "mbs": "x"})
        );
    }

    #[test]
    fn long_names_in_enc_are_read_as_short_ones() {
        let mut a = attrs(json!({"nu": ["C"], "enc": {"attribute": null,
            "notificationEventType": [3], "createdAfter": null, "chty": [4]}}));
        tidy(ResourceType::Subscription, Op::Create, &mut a);
        assert_eq!(a["enc"], json!({"net": [3], "chty": [4]}));
    }

    #[test]
    fn serializations_and_content_info_are_checked() {
        validate(
            ResourceType::Ae,
            Op::Create,
            &attrs(json!({"api":"N","rr":true,"csz":["application/json","application/cbor"]})),
        )
        .unwrap();
        let e = err(
            ResourceType::Ae,
            Op::Create,
            json!({"api":"N","rr":true,"csz":["json"]}),
        );
        assert!(e.contains("csz"), "{e}");
        for ok in [
            "text/plain:0",
            "application/json",
            "application/json:1",
            "image/png:2:1",
        ] {
            validate(
                ResourceType::ContentInstance,
                Op::Create,
                &attrs(json!({"con":"x","cnf":ok})),
            )
            .unwrap_or_else(|e| panic!("{ok}: {}", e.dbg));
        }
        for bad in [
            "text",
            "text/plain:7",
            "/plain",
            "text/plain:0:x",
            "a/b:0:1:2",
            "te xt/p",
        ] {
            let e = err(
                ResourceType::ContentInstance,
                Op::Create,
                json!({"con":"x","cnf":bad}),
            );
            assert!(e.contains("cnf"), "{bad}: {e}");
        }
    }

    #[test]
    fn labels_are_tokens() {
        validate(
            ResourceType::Container,
            Op::Create,
            &attrs(json!({"lbl": ["a:b", "room 1", "ünï"]})),
        )
        .unwrap();
        for bad in ["", " a", "a ", "a  b", "a\tb", "a\nb"] {
            let e = err(ResourceType::Container, Op::Create, json!({ "lbl": [bad] }));
            assert!(e.contains("not a token"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn defined_attributes_this_cse_does_not_support_are_5001() {
        for (ty, v) in [
            (
                ResourceType::Ae,
                json!({"api": "N", "rr": true, "aa": ["lbl"]}),
            ),
            (ResourceType::Ae, json!({"api": "N", "rr": true, "regs": 1})),
            (ResourceType::Container, json!({"disr": true})),
            (
                ResourceType::ContentInstance,
                json!({"con": "x", "dgt": "abc"}),
            ),
        ] {
            let e = validate(ty, Op::Create, &attrs(v.clone())).unwrap_err();
            assert_eq!(e.rsc, Rsc::NOT_IMPLEMENTED, "{v}");
            assert!(e.dbg.contains("not supported"), "{}", e.dbg);
        }
        // What no release defines stays 4000.
        assert!(err(ResourceType::Container, Op::Create, json!({"zz": 1})).contains("unknown"));
    }

    #[test]
    fn resource_names() {
        for ok in ["a", "my-container", "x_1.2", "Ünïcode"] {
            check_resource_name(ok).unwrap();
        }
        for bad in [
            "",
            "a/b",
            "la",
            "ol",
            "-",
            "a b",
            "a#",
            "q?",
            "..",
            &"x".repeat(256),
        ] {
            assert!(check_resource_name(bad).is_err(), "{bad:?}");
        }
    }
}
