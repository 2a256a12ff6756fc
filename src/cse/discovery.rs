//! Discovery: a RETRIEVE with filter usage 1 (`fc.fu = 1`) lists the addresses of the
//! resources below the target that match the filter criteria and that the originator may see
//! (TS-0001 §10.2.6, digest §5.3). The result is `{"m2m:uril": [...]}`, structured addresses
//! by default (`drt` 1) or resource IDs (`drt` 2), or with `rcn` 6 references to them
//! (`{"m2m:rrl": {"rrf": [{"nm", "typ", "val"}]}}`). Results come in tree order.

use super::access::{self, Action, Originator};
use super::pipeline::{result_content, Success};
use super::{resources, Cse, Rules};
use crate::onem2m::{time, Base, Error, RequestPrimitive, Rsc, Virtual};
use crate::store::{Reader, Resource};
use serde_json::{json, Map, Value};

/// The filter criteria TS-0004 defines (Table 6.3.5.8-1, and Release 4's): one of these that
/// is not evaluated here gets 5001; anything else is not a criterion at all (4000).
const DEFINED_CRITERIA: &[&str] = &[
    "crb", "cra", "ms", "us", "sts", "stb", "exb", "exa", "lbl", "clbl", "palb", "ty", "chty",
    "pty", "sza", "szb", "cty", "atr", "catr", "patr", "fu", "lim", "smf", "fo", "cfs", "cfq",
    "lvl", "ofst", "arp", "gq", "ops", "gmty", "gsf", "geom",
];

/// Most results one discovery returns when `lim` does not say fewer.
pub const MAX_RESULTS: usize = 10_000;

/// The filter criteria this CSE evaluates.
#[derive(Debug, Default)]
pub struct Filter {
    tys: Vec<u16>,
    labels: Vec<String>,
    limit: usize,
    level: Option<usize>,
    offset: usize,
    created_after: Option<String>,
    created_before: Option<String>,
    modified_since: Option<String>,
    unmodified_since: Option<String>,
}

impl Filter {
    /// Reads `fc`; `Ok(None)` when it asks for conditional retrieval rather than discovery.
    pub fn from_fc(fc: &Map<String, Value>) -> Result<Option<Filter>, Error> {
        let mut f = Filter {
            limit: MAX_RESULTS,
            ..Filter::default()
        };
        let uint = |k: &str, v: &Value| {
            v.as_u64().ok_or_else(|| {
                Error::bad_request(format!(
                    "filter criterion {k} must be a non-negative integer"
                ))
            })
        };
        let stamp = |k: &str, v: &Value| {
            v.as_str()
                .and_then(time::parse_lenient)
                .map(time::format)
                .ok_or_else(|| {
                    Error::bad_request(format!("filter criterion {k} must be a timestamp"))
                })
        };
        let mut fu = 2;
        // An empty criterion is no criterion: OpenMTC sends every one it knows,
        // `"atr": [], "cty": null`.
        let given = fc
            .iter()
            .filter(|(_, v)| !crate::onem2m::primitive::unset(v));
        for (k, v) in given {
            match k.as_str() {
                "fu" => fu = uint(k, v)?,
                "fo" => match uint(k, v)? {
                    1 => {}
                    2 | 3 => {
                        return Err(Error::new(
                            Rsc::NOT_IMPLEMENTED,
                            "only filterOperation 1 (AND) is supported",
                        ))
                    }
                    other => {
                        return Err(Error::bad_request(format!(
                            "fo {other} is not a filter operation (1 AND, 2 OR, 3 XOR)"
                        )))
                    }
                },
                "ty" => {
                    let list = v.as_array().cloned().unwrap_or_else(|| vec![v.clone()]);
                    for t in &list {
                        let t = uint(k, t)?;
                        f.tys.push(u16::try_from(t).map_err(|_| {
                            Error::bad_request(format!("ty {t} is not a resource type"))
                        })?);
                    }
                }
                "lbl" => {
                    let list = v.as_array().cloned().unwrap_or_else(|| vec![v.clone()]);
                    for l in list {
                        let l = l.as_str().ok_or_else(|| {
                            Error::bad_request("filter criterion lbl must be strings")
                        })?;
                        f.labels.push(l.to_string());
                    }
                }
                "lim" => f.limit = (uint(k, v)? as usize).min(MAX_RESULTS),
                "lvl" => f.level = Some(uint(k, v)? as usize),
                "ofst" => f.offset = uint(k, v)? as usize,
                "cra" => f.created_after = Some(stamp(k, v)?),
                "crb" => f.created_before = Some(stamp(k, v)?),
                "ms" => f.modified_since = Some(stamp(k, v)?),
                "us" => f.unmodified_since = Some(stamp(k, v)?),
                other if DEFINED_CRITERIA.contains(&other) => {
                    return Err(Error::new(
                        Rsc::NOT_IMPLEMENTED,
                        format!("filter criterion '{other}' is not supported"),
                    ))
                }
                other => {
                    return Err(Error::bad_request(format!(
                        "'{}' is not a filter criterion",
                        crate::onem2m::address::shorten(other)
                    )))
                }
            }
        }
        match fu {
            1 => Ok(Some(f)),
            2 => Ok(None),
            // 3 IPE on-demand discovery (Release 3), 4 semantic query (Release 4).
            3 | 4 => Err(Error::new(
                Rsc::NOT_IMPLEMENTED,
                format!("filter usage {fu} is not supported"),
            )),
            other => Err(Error::bad_request(format!(
                "fu {other} is not a filter usage (1 discovery, 2 conditional retrieval)"
            ))),
        }
    }

    fn matches(&self, r: &Resource) -> bool {
        let attr = |name: &str| r.str(name).unwrap_or_default().to_string();
        if !self.labels.is_empty() {
            let has = r
                .attrs
                .get("lbl")
                .and_then(Value::as_array)
                .is_some_and(|l| {
                    l.iter().any(|x| {
                        x.as_str()
                            .is_some_and(|x| self.labels.iter().any(|w| w == x))
                    })
                });
            if !has {
                return false;
            }
        }
        let ct = attr("ct");
        let lt = attr("lt");
        self.created_after.as_ref().is_none_or(|t| &ct > t)
            && self.created_before.as_ref().is_none_or(|t| &ct < t)
            && self.modified_since.as_ref().is_none_or(|t| &lt > t)
            && self.unmodified_since.as_ref().is_none_or(|t| &lt < t)
    }
}

fn depth(srn: &str) -> usize {
    srn.matches('/').count()
}

/// What a discovery answers with.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    /// 1: structured addresses, 2: resource IDs.
    pub drt: u64,
    /// References (`m2m:rrl`, rcn 6) rather than addresses (`m2m:uril`).
    pub references: bool,
}

/// The RETRIEVE with `fu` 1: checks what the answer may be (`rcn` 11 or 6, `drt` 1 or 2), then
/// [discovers](discover). Blocking.
pub(super) fn run(
    cse: &Cse,
    req: &RequestPrimitive,
    originator: &Originator,
    base: &Base,
    virt: Option<Virtual>,
    filter: &Filter,
) -> Result<Success, Error> {
    if virt.is_some() {
        return Err(Error::bad_request(
            "discovery under la or ol is not possible",
        ));
    }
    // 11 (ACME's) and no rcn: the addresses found (`m2m:uril`); 6 (TS-0001 Table 8.1.2-1):
    // references to them (`m2m:rrl`). OpenMTC's application framework sends rcn 5 with
    // every discovery and reads `m2m:uril`, as its own CSE answers whatever rcn says: 5 is
    // read as the default, which cannot change what a discovery finds.
    let rcn = result_content(
        req.rcn.map(|r| if r == 5 { 11 } else { r }),
        11,
        &[6, 11],
        "discovery",
    )?;
    let answer = Answer {
        drt: resources::address_type(req.drt)?,
        references: rcn == 6,
    };
    let (pc, partial) = cse
        .store
        .read(|r| discover(r, &cse.rules, originator, base, &req.to, filter, answer))?;
    Ok(Success {
        rsc: Rsc::OK,
        pc: Some(pc),
        partial,
    })
}

/// Lists what under `base` matches `filter` and `originator` may see, at most `lim` of them
/// and [`MAX_RESULT_BYTES`](resources::MAX_RESULT_BYTES) of addresses. When more matched,
/// also returns the offset they start at (for `cnot`, and the next request's `ofst`).
pub fn discover(
    r: &Reader,
    rules: &Rules,
    originator: &Originator,
    base: &Base,
    to: &str,
    filter: &Filter,
    answer: Answer,
) -> Result<(Value, Option<u64>), Error> {
    let Answer { drt, references } = answer;
    // The root is not checked, only each result (as ACME does): an originator may discover
    // what it is granted below resources it may not see itself.
    let root = resources::resolve(r, base, None, to)?;
    // A client's lvl can be as large as u64 allows: saturate rather than overflow.
    let max_depth = filter.level.map(|l| depth(&root.srn).saturating_add(l));
    let mut skipped = 0;
    let mut found = Vec::new();
    let mut bytes = 0usize;
    let mut more = false;
    r.walk_subtree(&root.srn, &filter.tys, |res| {
        if max_depth.is_some_and(|d| depth(&res.srn) > d) || !filter.matches(&res) {
            return true;
        }
        if !access::visible(rules, originator, Action::Discover, &res) {
            return true;
        }
        if skipped < filter.offset {
            skipped += 1;
            return true;
        }
        let entry = if references {
            resources::reference(&res, drt)
        } else {
            Value::String(if drt == 2 { res.ri } else { res.srn })
        };
        let size = match &entry {
            Value::String(s) => s.len(),
            other => other.to_string().len(),
        };
        // One match past a limit only says that the result is partial.
        if found.len() >= filter.limit || bytes + size > resources::MAX_RESULT_BYTES {
            more = true;
            return false;
        }
        bytes += size;
        found.push(entry);
        true
    })?;
    let partial = more.then(|| (filter.offset + found.len()) as u64);
    let pc = if references {
        json!({ "m2m:rrl": { "rrf": found } })
    } else {
        json!({ "m2m:uril": found })
    };
    Ok((pc, partial))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fc(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn reads_discovery_criteria() {
        let f = Filter::from_fc(&fc(
            json!({"fu":1,"ty":[3,4],"lbl":["a"],"lim":5,"lvl":2,"ofst":1,"cra":"20250101T000000"}),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(f.tys, vec![3, 4]);
        assert_eq!(f.labels, vec!["a".to_string()]);
        assert_eq!((f.limit, f.level, f.offset), (5, Some(2), 1));
        assert_eq!(f.created_after.as_deref(), Some("20250101T000000,000000"));
        assert!(
            Filter::from_fc(&fc(json!({"ty":[3]}))).unwrap().is_none(),
            "fu defaults to 2"
        );
        assert_eq!(
            Filter::from_fc(&fc(json!({"fu":1,"lim":1_000_000})))
                .unwrap()
                .unwrap()
                .limit,
            MAX_RESULTS
        );
    }

    #[test]
    fn refuses_what_it_cannot_evaluate() {
        assert_eq!(
            Filter::from_fc(&fc(json!({"fu":1,"fo":2})))
                .unwrap_err()
                .rsc,
            Rsc::NOT_IMPLEMENTED
        );
        assert_eq!(
            Filter::from_fc(&fc(json!({"fu":1,"smf":"x"})))
                .unwrap_err()
                .rsc,
            Rsc::NOT_IMPLEMENTED
        );
        assert_eq!(
            Filter::from_fc(&fc(json!({"fu":1,"lim":"x"})))
                .unwrap_err()
                .rsc,
            Rsc::BAD_REQUEST
        );
        assert_eq!(
            Filter::from_fc(&fc(json!({"fu":1,"cra":"yesterday"})))
                .unwrap_err()
                .rsc,
            Rsc::BAD_REQUEST
        );
        // Not filter usages, operations or criteria at all: 4000.
        for bad in [
            json!({"fu":5}),
            json!({"fu":1,"fo":4}),
            json!({"fu":1,"colour":"red"}),
        ] {
            let e = Filter::from_fc(&fc(bad.clone())).unwrap_err();
            assert_eq!(e.rsc, Rsc::BAD_REQUEST, "{bad}");
        }
        assert_eq!(
            Filter::from_fc(&fc(json!({"fu":1,"fo":2})))
                .unwrap_err()
                .rsc,
            Rsc::NOT_IMPLEMENTED
        );
        // Empty criteria are none; ISO 8601's extended form is read.
        let f = Filter::from_fc(&fc(json!({"fu":1,"atr":[],"cty":null,"sza":null,"ty":[],
            "cra":"2026-11-25T19:49:10.784480+00:00"})))
        .unwrap()
        .unwrap();
        assert!(f.tys.is_empty());
        assert_eq!(f.created_after.as_deref(), Some("20261125T194910,784480"));
    }

    #[test]
    fn label_and_time_matching() {
        let f = Filter::from_fc(&fc(
            json!({"fu":1,"lbl":["room:1","room:2"],"crb":"20300101T000000"}),
        ))
        .unwrap()
        .unwrap();
        let mut r = Resource {
            ty: crate::onem2m::ResourceType::Container,
            ri: "c".into(),
            pi: "p".into(),
            rn: "c".into(),
            srn: "cb/c".into(),
            owner: String::new(),
            attrs: Map::new(),
        };
        r.attrs.insert("ct".into(), json!("20250101T000000,000000"));
        assert!(!f.matches(&r), "no labels");
        r.attrs.insert("lbl".into(), json!(["room:2", "x"]));
        assert!(f.matches(&r));
        r.attrs.insert("ct".into(), json!("20310101T000000,000000"));
        assert!(!f.matches(&r), "created too late");
    }
}
