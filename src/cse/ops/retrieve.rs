//! RETRIEVE of one resource, in the result content (`rcn`) asked for (TS-0001 Table
//! 8.1.2-1, TS-0004 §7.3.3.6): 1 its attributes (the default), 4 its attributes and its
//! subtree nested, 5 its attributes and references to its children (`ch`), 6 those
//! references only (`m2m:rrl`), 8 its subtree nested without its own attributes. Only what
//! the originator may retrieve is listed. Discovery (`fu` 1) is in [`crate::cse::discovery`].

use super::super::access::{self, Action, Originator};
use super::super::pipeline::{result_content, Success};
use super::super::{resources, Cse};
use crate::onem2m::{Base, Error, RequestPrimitive, Rsc, Virtual};
use crate::store::Resource;
use serde_json::{json, Map, Value};

/// How many levels below the resource `rcn` 4 and 8 nest (each level is two of JSON).
pub const MAX_NESTED_LEVELS: usize = 32;

pub fn run(
    cse: &Cse,
    req: &RequestPrimitive,
    originator: &Originator,
    base: &Base,
    virt: Option<Virtual>,
) -> Result<Success, Error> {
    let rcn = result_content(req.rcn, 1, &[1, 4, 5, 6, 8], "RETRIEVE")?;
    let drt = resources::address_type(req.drt)?;
    let mut partial = None;
    let pc = cse.store.read(|r| -> Result<Value, Error> {
        let target = access::target(
            r,
            &cse.rules,
            originator,
            Action::Retrieve,
            base,
            virt,
            &req.to,
        )?;
        let readable = |c: &Resource| access::visible(&cse.rules, originator, Action::Retrieve, c);
        // At most so many resources, and so many bytes of them: the rest is left out, and
        // the answer says so (cnst 2, cnot the number given).
        let (max_count, max_bytes) = (
            resources::MAX_CHILDREN_IN_RESPONSE,
            resources::MAX_RESULT_BYTES,
        );
        Ok(match rcn {
            4 | 8 => {
                // Nested answers nest no deeper than this: a client's JSON parser (and this
                // CSE's, reading another CSE's answer) stops at 128 levels.
                let top = target.srn.matches('/').count();
                let mut too_deep = false;
                let (below, more) = r.subtree_within(&target.srn, max_count, max_bytes, |c| {
                    if c.srn.matches('/').count() - top > MAX_NESTED_LEVELS {
                        too_deep = true;
                        return false;
                    }
                    readable(c)
                })?;
                if more || too_deep {
                    partial = Some(below.len() as u64);
                }
                nested(target, below, rcn == 4)
            }
            5 | 6 => {
                let (children, more) =
                    r.children_within(&target.ri, max_count, max_bytes, readable)?;
                if more {
                    partial = Some(children.len() as u64);
                }
                let refs: Vec<Value> = children
                    .iter()
                    .map(|c| resources::reference(c, drt))
                    .collect();
                if rcn == 6 {
                    json!({ "m2m:rrl": { "rrf": refs } })
                } else {
                    let mut attrs = target.attrs;
                    attrs.insert("ch".into(), Value::Array(refs));
                    json!({ target.ty.root_name(): attrs })
                }
            }
            _ => target.to_pc(),
        })
    })?;
    Ok(Success {
        rsc: Rsc::OK,
        pc: Some(pc),
        partial,
    })
}

/// The resource with its descendants nested under it, each type's in a list under its root
/// name (`"m2m:cnt": [...]`), parents before children; without the resource's own
/// attributes for `rcn` 8. A descendant whose parent was left out (not readable, or past a
/// limit) is left out too. Built without recursion: a tree may be deep.
fn nested(target: Resource, below: Vec<Resource>, with_attrs: bool) -> Value {
    let root_name = target.ty.root_name();
    let mut index = std::collections::HashMap::new();
    index.insert(target.ri.clone(), 0usize);
    // (parent, root name, attributes) per node; node 0 is the target.
    let root_attrs = if with_attrs { target.attrs } else { Map::new() };
    let mut nodes: Vec<(usize, &'static str, Map<String, Value>)> =
        vec![(0, root_name, root_attrs)];
    for res in below {
        let Some(&parent) = index.get(&res.pi) else {
            continue;
        };
        index.insert(res.ri, nodes.len());
        nodes.push((parent, res.ty.root_name(), res.attrs));
    }
    // Children come after their parents: attach from the last node back, then put each
    // list back in tree order.
    let mut lists: Vec<Vec<(&'static str, Map<String, Value>)>> = vec![Vec::new(); nodes.len()];
    for i in (1..nodes.len()).rev() {
        let (parent, name, mut attrs) = std::mem::replace(&mut nodes[i], (0, "", Map::new()));
        attach(&mut attrs, std::mem::take(&mut lists[i]));
        lists[parent].push((name, attrs));
    }
    let mut attrs = std::mem::take(&mut nodes[0].2);
    attach(&mut attrs, std::mem::take(&mut lists[0]));
    json!({ root_name: attrs })
}

/// Puts children (collected last first) into `attrs`, by type, in tree order.
fn attach(attrs: &mut Map<String, Value>, mut children: Vec<(&'static str, Map<String, Value>)>) {
    children.reverse();
    for (name, child) in children {
        let list = attrs
            .entry(name)
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(items) = list {
            items.push(Value::Object(child));
        }
    }
}
