//! Access control policies as data (TS-0001 §9.6.2, TS-0004 §6.3.5): the rules of an
//! `<accessControlPolicy>`'s `pv` and `pvs`, read from JSON and checked, and whether a rule
//! grants an operation to an originator in a context. Pure: the caller says who asks, for
//! what, from which address and when.
//!
//! A rule (`acr`) grants the operations of `acop` to the originators of `acor` when one of
//! its contexts (`acco`) holds, and, for CREATE, when its object details (`acod`) allow the
//! child's type:
//! * `acor`: `all`, or originator IDs in any form the spec allows (`Cae`, `/id-in/Cae`,
//!   `//sp/id-in/Cae`, `/id-mn`), brought to the form the CSE keeps originators in; an entry
//!   ending in `*` matches every ID that starts with what comes before (`Csensor*`,
//!   `/id-mn/*`), as ACME does; this CSE's own ID with `/*` means its AEs, and `//sp/*` the
//!   whole service provider.
//! * `acco`: each context is a set of time windows (`actw`, crontab-like, UTC) and IP ranges
//!   (`acip`: `ipv4` and `ipv6`, addresses or CIDR); a context holds when every part it has
//!   holds. Location regions (`aclr`) are refused (5001).
//! * `acod`: each entry may list child resource types (`chty`) the rule lets be created; a
//!   rule with object details grants CREATE of those types only.

use super::address::{local_originator, shorten, CseIdentity};
use super::rsc::{Error, Rsc};
use chrono::{DateTime, Datelike, Timelike, Utc};
use ipnet::IpNet;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::net::IpAddr;

/// The operation bits of `acop` (TS-0004 Table 6.3.4.2.2).
pub mod op {
    pub const CREATE: u8 = 1;
    pub const RETRIEVE: u8 = 2;
    pub const UPDATE: u8 = 4;
    pub const DELETE: u8 = 8;
    pub const NOTIFY: u8 = 16;
    pub const DISCOVER: u8 = 32;
    pub const ALL: u8 = 63;
}

/// Bounds on one `pv` or `pvs`, so that deciding a request costs little whatever a client
/// stored: rules per list, and entries per part of a rule.
pub const MAX_RULES: usize = 64;
pub const MAX_ORIGINATORS: usize = 1024;
/// Wildcard entries (`C*`) per rule: each is a prefix compared with the originator.
pub const MAX_WILDCARDS: usize = 16;
pub const MAX_CONTEXTS: usize = 16;
pub const MAX_ENTRIES: usize = 64;

/// A `pv` or `pvs`: a list of rules, any of which may grant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Privileges {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    all: bool,
    /// Originator IDs in the form the CSE keeps them.
    ids: HashSet<String>,
    /// Wildcard entries.
    prefixes: Vec<Wildcard>,
    ops: u8,
    /// None: no `acco`, the rule holds in every context.
    contexts: Option<Vec<Context>>,
    /// None: no `acod` (or none that names child types), CREATE of any type.
    child_types: Option<Vec<u16>>,
}

/// An `acor` entry ending in `*`.
#[derive(Debug, Clone, PartialEq)]
enum Wildcard {
    /// Originators (in the kept form) that start with this.
    Prefix(String),
    /// Every entity of this CSE (`/id-in/*`): the CSE-relative originators.
    Local,
    /// Everything of this service provider (`//sp/*`): all but other providers' absolute IDs.
    Provider,
}

impl Wildcard {
    fn read(prefix: &str, me: &CseIdentity) -> Wildcard {
        let absolute_me = format!("//{}{}/", me.sp_id, me.csi);
        if prefix == format!("{}/", me.csi) || prefix == absolute_me {
            return Wildcard::Local;
        }
        if prefix == format!("//{}/", me.sp_id) {
            return Wildcard::Provider;
        }
        // `/id-mn/*` keeps its slash: every entity behind /id-mn, not /id-mnx.
        Wildcard::Prefix(normalize(prefix, me))
    }

    fn matches(&self, originator: &str) -> bool {
        match self {
            Wildcard::Prefix(p) => originator.starts_with(p.as_str()),
            Wildcard::Local => !originator.is_empty() && !originator.starts_with('/'),
            Wildcard::Provider => !originator.is_empty() && !originator.starts_with("//"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Context {
    windows: Vec<Cron>,
    /// None: no `acip`.
    ranges: Option<Vec<IpNet>>,
}

/// What is being decided.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// The originator, [normalized](normalize).
    pub originator: &'a str,
    /// One of the [`op`] bits.
    pub op: u8,
    /// For CREATE: the type of the new child.
    pub child_type: Option<u16>,
    /// Where the request came from, when the binding knows.
    pub addr: Option<IpAddr>,
    /// Address ranges hold whatever `addr` is: for a decision that is not about a request
    /// (a stored subscription's owner, before each notification).
    pub any_address: bool,
    pub now: DateTime<Utc>,
}

/// An originator ID in the form rules are matched in: CSE-relative for this CSE's own
/// entities (`Cae`), SP-relative for other CSEs and their entities (`/id-mn/Cae`), absolute
/// only for other service providers.
fn normalize(id: &str, me: &CseIdentity) -> String {
    local_originator(id, me)
}

impl Privileges {
    /// Reads `{"acr": [...]}`. `what` names the attribute in error messages (`pv`, `pvs`).
    pub fn parse(v: &Value, what: &str, me: &CseIdentity) -> Result<Privileges, Error> {
        let bad = |why: String| Error::bad_request(format!("{what}: {why}"));
        let obj = v
            .as_object()
            .ok_or_else(|| bad("must be an object {\"acr\": [...]}".into()))?;
        if let Some(other) = obj.keys().find(|k| *k != "acr") {
            return Err(bad(format!("unknown member '{}'", shorten(other))));
        }
        let rules = match obj.get("acr") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => {
                if list.len() > MAX_RULES {
                    return Err(bad(format!("at most {MAX_RULES} rules (acr)")));
                }
                list.iter()
                    .enumerate()
                    .map(|(i, r)| {
                        Rule::parse(r, me).map_err(|why| match why {
                            Why::Bad(s) => bad(format!("acr[{i}]: {s}")),
                            Why::Unsupported(s) => {
                                Error::new(Rsc::NOT_IMPLEMENTED, format!("{what}: acr[{i}]: {s}"))
                            }
                        })
                    })
                    .collect::<Result<_, _>>()?
            }
            Some(_) => return Err(bad("acr must be a list of rules".into())),
        };
        Ok(Privileges { rules })
    }

    /// Whether it holds no rule (it grants nothing).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether some rule grants `ask`.
    pub fn grants(&self, ask: &Ask) -> bool {
        self.rules.iter().any(|r| r.grants(ask))
    }
}

/// Why a rule was refused: it is wrong (4000), or it uses a part of the spec this CSE does
/// not evaluate (5001: refusing it beats granting more, or less, than it says).
#[derive(Debug)]
enum Why {
    Bad(String),
    Unsupported(String),
}

impl From<String> for Why {
    fn from(s: String) -> Why {
        Why::Bad(s)
    }
}

impl From<&str> for Why {
    fn from(s: &str) -> Why {
        Why::Bad(s.to_string())
    }
}

fn unsupported(what: &str) -> Why {
    Why::Unsupported(format!("{what} is not supported"))
}

impl Rule {
    fn parse(v: &Value, me: &CseIdentity) -> Result<Rule, Why> {
        let obj = v.as_object().ok_or("must be an object")?;
        let mut rule = Rule {
            all: false,
            ids: HashSet::new(),
            prefixes: Vec::new(),
            ops: 0,
            contexts: None,
            child_types: None,
        };
        for (k, v) in obj {
            match k.as_str() {
                "acor" => rule.originators(v, me)?,
                "acop" => {
                    rule.ops = v
                        .as_u64()
                        .filter(|n| (1..=u64::from(op::ALL)).contains(n))
                        .ok_or_else(|| {
                            format!(
                                "acop must be an operation mask from 1 to 63 \
                                 (1 create, 2 retrieve, 4 update, 8 delete, 16 notify, \
                                 32 discover), not {}",
                                shorten(&v.to_string())
                            )
                        })? as u8
                }
                "acco" => rule.contexts = contexts(v)?,
                "acod" => rule.child_types = object_details(v)?,
                other => return Err(format!("unknown member '{}'", shorten(other)).into()),
            }
        }
        if !obj.contains_key("acor") {
            return Err("acor (the originators) is missing".into());
        }
        if rule.ops == 0 {
            return Err("acop (the operations) is missing".into());
        }
        Ok(rule)
    }

    fn originators(&mut self, v: &Value, me: &CseIdentity) -> Result<(), String> {
        let list = v
            .as_array()
            .ok_or("acor must be a list of originator IDs")?;
        if list.len() > MAX_ORIGINATORS {
            return Err(format!("at most {MAX_ORIGINATORS} originators (acor)"));
        }
        for id in list {
            let id = id
                .as_str()
                .filter(|s| !s.is_empty() && s.len() <= super::address::MAX_ADDRESS_LEN)
                .ok_or_else(|| {
                    format!(
                        "acor entries are originator IDs or \"all\", not {}",
                        shorten(&id.to_string())
                    )
                })?;
            if id == "all" || id == "*" {
                self.all = true;
            } else if let Some(prefix) = id.strip_suffix('*') {
                if self.prefixes.len() == MAX_WILDCARDS {
                    return Err(format!("at most {MAX_WILDCARDS} wildcard entries (acor)"));
                }
                self.prefixes.push(Wildcard::read(prefix, me));
            } else {
                self.ids.insert(normalize(id, me));
            }
        }
        Ok(())
    }

    fn matches(&self, originator: &str) -> bool {
        self.all
            || self.ids.contains(originator)
            || self.prefixes.iter().any(|w| w.matches(originator))
    }

    fn grants(&self, ask: &Ask) -> bool {
        if self.ops & ask.op == 0 || !self.matches(ask.originator) {
            return false;
        }
        if let (Some(types), Some(child)) = (&self.child_types, ask.child_type) {
            if !types.contains(&child) {
                return false;
            }
        }
        match &self.contexts {
            None => true,
            Some(contexts) => contexts.iter().any(|c| c.holds(ask)),
        }
    }
}

fn list<'a>(v: &'a Value, what: &str) -> Result<&'a Vec<Value>, String> {
    let list = v
        .as_array()
        .ok_or_else(|| format!("{what} must be a list"))?;
    if list.len() > MAX_ENTRIES {
        return Err(format!("at most {MAX_ENTRIES} entries in {what}"));
    }
    Ok(list)
}

fn contexts(v: &Value) -> Result<Option<Vec<Context>>, Why> {
    // A single context object is read as a list of one (ACME accepts both).
    let one;
    let items = match v {
        Value::Null => return Ok(None),
        Value::Object(_) => {
            one = vec![v.clone()];
            &one
        }
        _ => list(v, "acco")?,
    };
    if items.is_empty() {
        return Ok(None);
    }
    if items.len() > MAX_CONTEXTS {
        return Err(format!("at most {MAX_CONTEXTS} contexts (acco)").into());
    }
    items
        .iter()
        .map(Context::parse)
        .collect::<Result<_, _>>()
        .map(Some)
}

impl Context {
    fn parse(v: &Value) -> Result<Context, Why> {
        let obj: &Map<String, Value> = v.as_object().ok_or("acco entries must be objects")?;
        let mut c = Context {
            windows: Vec::new(),
            ranges: None,
        };
        for (k, v) in obj {
            match k.as_str() {
                "actw" => {
                    c.windows = list(v, "actw")?
                        .iter()
                        .map(|w| {
                            w.as_str()
                                .ok_or_else(|| "actw entries must be strings".to_string())
                                .and_then(Cron::parse)
                        })
                        .collect::<Result<_, _>>()?
                }
                "acip" => c.ranges = Some(ip_ranges(v)?),
                "aclr" => return Err(unsupported("acco.aclr (location regions)")),
                other => return Err(format!("unknown member of acco '{}'", shorten(other)).into()),
            }
        }
        Ok(c)
    }

    fn holds(&self, ask: &Ask) -> bool {
        if !self.windows.is_empty() && !self.windows.iter().any(|w| w.matches(ask.now)) {
            return false;
        }
        match &self.ranges {
            None => true,
            // A request whose address is unknown is outside every range.
            Some(ranges) => {
                ask.any_address
                    || ask.addr.is_some_and(|a| {
                        let a = match a {
                            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
                            v4 => v4,
                        };
                        ranges.iter().any(|r| r.contains(&a))
                    })
            }
        }
    }
}

fn ip_ranges(v: &Value) -> Result<Vec<IpNet>, String> {
    let obj = v
        .as_object()
        .ok_or("acip must be an object {\"ipv4\": [...], \"ipv6\": [...]}")?;
    let mut out = Vec::new();
    for (k, v) in obj {
        let v6 = match k.as_str() {
            "ipv4" => false,
            "ipv6" => true,
            other => return Err(format!("unknown member of acip '{}'", shorten(other))),
        };
        for entry in list(v, &format!("acip.{k}"))? {
            let s = entry.as_str().unwrap_or_default();
            let net = s
                .parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .ok()
                .filter(|n| matches!(n, IpNet::V6(_)) == v6)
                .ok_or_else(|| {
                    format!(
                        "acip.{k} entries are {} addresses or ranges (a.b.c.d/n), not {}",
                        if v6 { "IPv6" } else { "IPv4" },
                        shorten(&entry.to_string())
                    )
                })?;
            out.push(net.trunc());
        }
    }
    if out.len() > MAX_ENTRIES {
        return Err(format!("at most {MAX_ENTRIES} ranges in acip"));
    }
    Ok(out)
}

fn object_details(v: &Value) -> Result<Option<Vec<u16>>, Why> {
    let items = match v {
        Value::Null => return Ok(None),
        _ => list(v, "acod")?,
    };
    let mut types: Option<Vec<u16>> = None;
    for item in items {
        let obj = item.as_object().ok_or("acod entries must be objects")?;
        for (k, v) in obj {
            match k.as_str() {
                "chty" => {
                    let tys = list(v, "acod.chty")?
                        .iter()
                        .map(|t| {
                            t.as_u64()
                                .and_then(|t| u16::try_from(t).ok())
                                .ok_or_else(|| {
                                    format!(
                                        "acod.chty entries are resource types, not {}",
                                        shorten(&t.to_string())
                                    )
                                })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    types.get_or_insert_with(Vec::new).extend(tys);
                }
                "ty" | "rst" | "spty" | "specializationID" => {
                    return Err(unsupported(&format!("acod.{k}")))
                }
                other => return Err(format!("unknown member of acod '{}'", shorten(other)).into()),
            }
        }
    }
    Ok(types)
}

/// A time window (TS-0004's scheduleEntry): crontab-like fields second minute hour
/// day-of-month month day-of-week (0 or 7 Sunday) and, optionally, year; each `*`, a number,
/// a range `a-b`, a step `*/n` or `a-b/n`, or a comma-separated list of those. Evaluated in
/// UTC, as ACME does.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cron {
    /// Bit n set: value n matches.
    fields: [u64; 6],
    /// The years, as (from, to, step); empty: every year.
    years: Vec<(u32, u32, u32)>,
}

impl Cron {
    const RANGES: [(u32, u32); 6] = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    const NAMES: [&'static str; 6] = [
        "second",
        "minute",
        "hour",
        "day of month",
        "month",
        "day of week",
    ];

    fn parse(s: &str) -> Result<Cron, String> {
        let parts: Vec<&str> = s.split_whitespace().collect();
        let bad = |why: String| {
            format!(
                "actw '{}' is not a time window (six fields: second minute hour \
                 day-of-month month day-of-week, e.g. \"* * 8-17 * * 1-5\"): {why}",
                shorten(s)
            )
        };
        if !(6..=7).contains(&parts.len()) {
            return Err(bad(format!("{} fields", parts.len())));
        }
        let mut fields = [0u64; 6];
        for (i, part) in parts.iter().take(6).enumerate() {
            let (lo, hi) = Self::RANGES[i];
            fields[i] =
                field(part, lo, hi).map_err(|why| bad(format!("{}: {why}", Self::NAMES[i])))?;
        }
        // Sunday is 0 or 7.
        if fields[5] & (1 << 7) != 0 {
            fields[5] |= 1;
        }
        let years = match parts.get(6) {
            None | Some(&"*") => Vec::new(),
            Some(y) => years(y).map_err(|why| bad(format!("year: {why}")))?,
        };
        Ok(Cron { fields, years })
    }

    fn matches(&self, t: DateTime<Utc>) -> bool {
        let values = [
            t.second(),
            t.minute(),
            t.hour(),
            t.day(),
            t.month(),
            t.weekday().num_days_from_sunday(),
        ];
        let year = u32::try_from(t.year()).unwrap_or(0);
        values
            .iter()
            .zip(self.fields)
            .all(|(v, f)| f & (1u64 << v) != 0)
            && (self.years.is_empty()
                || self.years.iter().any(|&(from, to, step)| {
                    (from..=to).contains(&year) && (year - from) % step == 0
                }))
    }
}

/// The year field: like the others, over 1970-9999.
fn years(s: &str) -> Result<Vec<(u32, u32, u32)>, String> {
    let out = items(s, 1970, 9999)?;
    if out.len() > MAX_ENTRIES {
        return Err(format!("at most {MAX_ENTRIES} items"));
    }
    Ok(out)
}

/// A field as bits: bit n set when value n matches.
fn field(s: &str, lo: u32, hi: u32) -> Result<u64, String> {
    let mut bits = 0u64;
    for (from, to, step) in items(s, lo, hi)? {
        let mut v = from;
        while v <= to {
            bits |= 1 << v;
            match v.checked_add(step) {
                Some(next) => v = next,
                None => break,
            }
        }
    }
    Ok(bits)
}

/// The comma-separated items of a field, each as (from, to, step) within lo..=hi.
fn items(s: &str, lo: u32, hi: u32) -> Result<Vec<(u32, u32, u32)>, String> {
    let mut out = Vec::new();
    for item in s.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, st)) => (
                r,
                st.parse::<u32>()
                    .ok()
                    .filter(|n| (1..=hi).contains(n))
                    .ok_or_else(|| format!("'{st}' is not a step from 1 to {hi}"))?,
            ),
            None => (item, 1),
        };
        let num = |x: &str| {
            x.parse::<u32>()
                .ok()
                .filter(|n| (lo..=hi).contains(n))
                .ok_or_else(|| format!("'{x}' is not within {lo}-{hi}"))
        };
        let (from, to) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (num(a)?, num(b)?)
        } else {
            let n = num(range)?;
            (n, if step > 1 { hi } else { n })
        };
        if from > to {
            return Err(format!("'{range}' runs backwards"));
        }
        out.push((from, to, step));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn me() -> CseIdentity {
        CseIdentity {
            csi: "/id-in".into(),
            rn: "cse-in".into(),
            sp_id: "sp.example".into(),
        }
    }

    fn pv(v: Value) -> Privileges {
        Privileges::parse(&v, "pv", &me()).unwrap()
    }

    fn err(v: Value) -> Error {
        Privileges::parse(&v, "pv", &me()).unwrap_err()
    }

    fn ask(originator: &str, op: u8) -> Ask<'_> {
        Ask {
            originator,
            op,
            child_type: None,
            addr: None,
            any_address: false,
            // A Wednesday, 10:30:15 UTC.
            now: Utc.with_ymd_and_hms(2026, 11, 25, 10, 30, 15).unwrap(),
        }
    }

    #[test]
    fn each_operation_bit_grants_only_itself() {
        for bit in [1u8, 2, 4, 8, 16, 32] {
            let p = pv(json!({"acr": [{"acor": ["Cgui"], "acop": bit}]}));
            for other in [1u8, 2, 4, 8, 16, 32] {
                assert_eq!(p.grants(&ask("Cgui", other)), bit == other, "{bit} {other}");
            }
            assert!(!p.grants(&ask("Cother", bit)));
        }
        assert!(pv(json!({"acr": [{"acor": ["Cgui"], "acop": 63}]})).grants(&ask("Cgui", 32)));
        assert!(!Privileges::default().grants(&ask("Cgui", 2)));
    }

    #[test]
    fn originators_in_every_form_and_all() {
        let p = pv(json!({"acr": [{"acor": [
            "/id-in/Cone", "//sp.example/id-in/Ctwo", "Cthree", "/id-mn/Cfour", "/id-mn",
            "//other.sp/id-x/Cfive"
        ], "acop": 2}]}));
        for who in [
            "Cone",
            "Ctwo",
            "Cthree",
            "/id-mn/Cfour",
            "/id-mn",
            "//other.sp/id-x/Cfive",
        ] {
            assert!(p.grants(&ask(who, 2)), "{who}");
        }
        for who in ["Cfour", "/id-mn/Cone", "/id-mnx", "C", ""] {
            assert!(!p.grants(&ask(who, 2)), "{who}");
        }
        let all = pv(json!({"acr": [{"acor": ["all"], "acop": 2}]}));
        assert!(all.grants(&ask("Canyone", 2)) && all.grants(&ask("/id-mn/Cx", 2)));
        let wild = pv(json!({"acr": [{"acor": ["Csensor*", "/id-mn/*"], "acop": 2}]}));
        assert!(wild.grants(&ask("Csensor12", 2)) && wild.grants(&ask("/id-mn/Cx", 2)));
        assert!(!wild.grants(&ask("Cgui", 2)) && !wild.grants(&ask("/id-mnx/Cx", 2)));
        // This CSE's entities, in SP-relative and absolute form; the whole service provider.
        for ours in ["/id-in/*", "//sp.example/id-in/*"] {
            let p = pv(json!({"acr": [{"acor": [ours], "acop": 2}]}));
            assert!(p.grants(&ask("Cgui", 2)), "{ours}");
            assert!(
                !p.grants(&ask("/id-mn/Cx", 2)) && !p.grants(&ask("/id-mn", 2)),
                "{ours}"
            );
        }
        let sp = pv(json!({"acr": [{"acor": ["//sp.example/*"], "acop": 2}]}));
        assert!(sp.grants(&ask("Cgui", 2)) && sp.grants(&ask("/id-mn/Cx", 2)));
        assert!(!sp.grants(&ask("//other.sp/id-x/Cy", 2)));
        let prefix = pv(json!({"acr": [{"acor": ["/id-in/Csen*"], "acop": 2}]}));
        assert!(prefix.grants(&ask("Csensor", 2)) && !prefix.grants(&ask("Cgui", 2)));
    }

    #[test]
    fn invalid_rules_are_4000_and_unsupported_parts_5001() {
        for bad in [
            json!([]),
            json!({"acr": {}}),
            json!({"acr": [{"acop": 2}]}),
            json!({"acr": [{"acor": ["Cx"]}]}),
            json!({"acr": [{"acor": ["Cx"], "acop": 0}]}),
            json!({"acr": [{"acor": ["Cx"], "acop": 64}]}),
            json!({"acr": [{"acor": ["Cx"], "acop": -1}]}),
            json!({"acr": [{"acor": ["Cx"], "acop": "2"}]}),
            json!({"acr": [{"acor": "Cx", "acop": 2}]}),
            json!({"acr": [{"acor": [""], "acop": 2}]}),
            json!({"acr": [{"acor": ["Cx"], "acop": 2, "what": 1}]}),
            json!({"acr": [{"acor": ["Cx"], "acop": 2, "acco": [{"actw": ["* * *"]}]}]}),
            json!({"acr": [{"acor": ["Cx"], "acop": 2, "acco": [{"actw": ["* * 25 * * *"]}]}]}),
            json!({"acr": [{"acor": ["Cx"], "acop": 2, "acco": [{"acip": {"ipv4": ["::1"]}}]}]}),
            json!({"acr": [{"acor": ["Cx"], "acop": 2, "acco": [{"acip": {"ipv4": ["300.1.1.1"]}}]}]}),
            json!({"acr": [{"acor": ["Cx"], "acop": 2, "acod": [{"chty": ["23"]}]}]}),
            json!({"acr": [{"acor": ["Cx"], "acop": 2, "acco": [{"actw": ["5-10/4294967295 * * * * *"]}]}]}),
            json!({"acr": [{"acor": ["Cx"], "acop": 2, "acco": [{"actw": ["* * * * * * 2020/99999"]}]}]}),
        ] {
            assert_eq!(err(bad.clone()).rsc, Rsc::BAD_REQUEST, "{bad}");
        }
        let e = err(json!({"acr": [{"acor": ["Cx"], "acop": 64}]}));
        assert!(e.dbg.starts_with("pv: acr[0]: acop must be"), "{}", e.dbg);
        let e = err(json!({"acr": [{"acor": ["Cx"], "acop": 2, "acco": [{"aclr": {}}]}]}));
        assert_eq!(e.rsc, Rsc::NOT_IMPLEMENTED, "{}", e.dbg);
        assert!(e.dbg.contains("aclr"), "{}", e.dbg);
        // An empty rule list is valid: it grants nothing.
        assert_eq!(pv(json!({"acr": []})), Privileges::default());
    }

    #[test]
    fn object_details_limit_create_to_child_types() {
        let p = pv(json!({"acr": [{"acor": ["Cgui"], "acop": 3, "acod": [{"chty": [23]}]}]}));
        let mut a = ask("Cgui", op::CREATE);
        a.child_type = Some(23);
        assert!(p.grants(&a));
        a.child_type = Some(4);
        assert!(!p.grants(&a));
        // The other operations of the rule are not limited by child types.
        assert!(p.grants(&ask("Cgui", op::RETRIEVE)));
    }

    #[test]
    fn time_windows_in_utc() {
        let at = |h: u32, wd_day: u32| Ask {
            now: Utc.with_ymd_and_hms(2026, 11, wd_day, h, 0, 0).unwrap(),
            ..ask("Cgui", 2)
        };
        // Working hours, Monday to Friday (2026-11-25 is a Wednesday, the 29th a Sunday).
        let p = pv(json!({"acr": [{"acor": ["Cgui"], "acop": 2,
            "acco": [{"actw": ["* * 8-17 * * 1-5"]}]}]}));
        assert!(p.grants(&at(10, 25)));
        assert!(!p.grants(&at(18, 25)));
        assert!(!p.grants(&at(10, 29)));
        // Any of the windows; steps and lists; Sunday as 7.
        let p = pv(json!({"acr": [{"acor": ["Cgui"], "acop": 2,
            "acco": [{"actw": ["* * 0-6/3 * * *", "0 0 10,12 * * 7"]}]}]}));
        assert!(p.grants(&at(3, 25)) && p.grants(&at(10, 29)));
        assert!(!p.grants(&at(4, 25)) && !p.grants(&at(10, 25)));
        // The seventh field, the year (ACME's tests: every year, and 1984).
        let year = |y: &str| {
            pv(json!({"acr": [{"acor": ["Cgui"], "acop": 2,
                "acco": [{"actw": [format!("* * * * * * {y}")]}]}]}))
        };
        assert!(year("*").grants(&at(3, 25)) && year("2020-2030").grants(&at(3, 25)));
        assert!(!year("1984").grants(&at(3, 25)) && !year("2020-2030/4").grants(&at(3, 25)));
    }

    #[test]
    fn ip_ranges_of_the_request() {
        let p = pv(json!({"acr": [{"acor": ["all"], "acop": 2,
            "acco": [{"acip": {"ipv4": ["10.1.0.0/16", "127.0.0.1"], "ipv6": ["fd00::/8"]}}]}]}));
        let from = |a: &str| Ask {
            addr: Some(a.parse().unwrap()),
            ..ask("Cgui", 2)
        };
        for ok in ["10.1.2.3", "127.0.0.1", "::ffff:10.1.9.9", "fd12::1"] {
            assert!(p.grants(&from(ok)), "{ok}");
        }
        for no in ["10.2.0.1", "127.0.0.2", "::1", "fe80::1"] {
            assert!(!p.grants(&from(no)), "{no}");
        }
        // Unknown address: outside.
        assert!(!p.grants(&ask("Cgui", 2)));
        // Any of the contexts; within one, every part.
        let p = pv(json!({"acr": [{"acor": ["all"], "acop": 2, "acco": [
            {"acip": {"ipv4": ["127.0.0.1"]}, "actw": ["* * 0 * * *"]},
            {"acip": {"ipv6": ["::1"]}}
        ]}]}));
        assert!(!p.grants(&from("127.0.0.1")));
        assert!(p.grants(&from("::1")));
    }
}
