//! What access control reads on every request, kept in memory so that a decision costs no
//! database read: the rules of every `<accessControlPolicy>`, and which resources name which
//! policies (`acpi`). Loaded when the CSE opens; changed by the writes that change them, once
//! they are committed (see `resources`), as [`super::Bindings`] is.
//!
//! Resources are found by structured name: a resource's ancestors are the prefixes of its
//! `srn`, so the policies that govern it are found by walking those prefixes in memory.
//! Names never change (`rn` cannot be updated), and a deleted subtree takes its entries with
//! it, so a later resource of the same name starts with none.

use crate::onem2m::acp::Privileges;
use crate::onem2m::{CseIdentity, ResourceType};
use crate::store::{Reader, Resource, StoreError};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// One `<accessControlPolicy>`, read.
#[derive(Debug)]
pub struct Acp {
    pub srn: String,
    /// `pv`: what it grants on the resources that name it.
    pub pv: Privileges,
    /// `pvs`: what it grants on itself.
    pub pvs: Privileges,
}

impl Acp {
    /// Reads a stored ACP. Rules that no longer parse (a database written by another
    /// version) grant nothing, and say so in the log.
    pub fn read(res: &Resource, me: &CseIdentity) -> Acp {
        let list = |name: &str| {
            let v = res.attrs.get(name).unwrap_or(&Value::Null);
            Privileges::parse(v, name, me).unwrap_or_else(|e| {
                tracing::error!(acp = %res.srn, attribute = name, error = %e.dbg,
                    "stored access control rules are invalid; they grant nothing");
                Privileges::default()
            })
        };
        Acp {
            srn: res.srn.clone(),
            pv: list("pv"),
            pvs: list("pvs"),
        }
    }
}

/// The policies a resource is governed by.
pub enum Governing<'a> {
    /// The ACPs its `acpi` (or its nearest ancestor's) names, those that exist.
    Named(&'a mut dyn Iterator<Item = &'a Acp>),
    /// None: the default rule (ownership) applies.
    Default,
}

#[derive(Default)]
struct Inner {
    acps: HashMap<String, Arc<Acp>>,
    /// srn of each resource with a non-empty `acpi` → the resource IDs it names.
    named: BTreeMap<String, Arc<[String]>>,
}

pub struct Policies {
    inner: RwLock<Inner>,
    /// Whether any resource names policies: until one does, every decision is the default
    /// one, without taking the lock.
    any_named: AtomicBool,
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.read();
        f.debug_struct("Policies")
            .field("acps", &inner.acps.len())
            .field("named", &inner.named.len())
            .finish()
    }
}

/// The resource IDs an `acpi` value names (none when it is absent or not a list of strings).
pub fn acpi_of(res: &Resource) -> Vec<String> {
    crate::cse::notify::string_list(res.attrs.get("acpi"))
}

impl Policies {
    pub fn new() -> Policies {
        Policies {
            inner: RwLock::default(),
            any_named: AtomicBool::new(false),
        }
    }

    /// Reads every ACP, and every resource that names ACPs. Content instances, by far the
    /// most numerous resources, have no `acpi` and are not read.
    pub fn load(r: &Reader, me: &CseIdentity) -> Result<Policies, StoreError> {
        let policies = Policies::new();
        let mut inner = Inner::default();
        let mut take = |res: Resource| {
            if res.ty == ResourceType::AccessControlPolicy {
                inner
                    .acps
                    .insert(res.ri.clone(), Arc::new(Acp::read(&res, me)));
            }
            let acpi = acpi_of(&res);
            if !acpi.is_empty() {
                inner.named.insert(res.srn.clone(), acpi.into());
            }
        };
        for ty in ResourceType::all() {
            if ty.has_acpi() || *ty == ResourceType::AccessControlPolicy {
                r.walk_type(ty.code(), &mut take)?;
            }
        }
        policies
            .any_named
            .store(!inner.named.is_empty(), Ordering::Release);
        *policies.write() = inner;
        Ok(policies)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn acp(&self, ri: &str) -> Option<Arc<Acp>> {
        self.read().acps.get(ri).cloned()
    }

    /// Decides by the policies that govern `res`: those its own `acpi` names, or else its
    /// parent's, and so on up. The walk ends at the AE or remote CSE a resource belongs to:
    /// the CSEBase's `acpi` governs the CSEBase and the resources of the CSE itself, not what
    /// AEs and other CSEs own (an operator granting discovery on the CSEBase does not take
    /// their own data away from every device). `decide` runs under the lock, without copies.
    pub fn governing<T>(&self, res: &Resource, decide: impl FnOnce(Governing<'_>) -> T) -> T {
        if !self.any_named.load(Ordering::Acquire) {
            return decide(Governing::Default);
        }
        let inner = self.read();
        let mut srn = res.srn.as_str();
        loop {
            if let Some(ids) = inner.named.get(srn) {
                let mut acps = ids
                    .iter()
                    .filter_map(|id| inner.acps.get(id).map(|a| a.as_ref()));
                return decide(Governing::Named(&mut acps));
            }
            match srn.rfind('/') {
                // The CSEBase is next: only for what the CSE itself owns.
                Some(i) if !srn[..i].contains('/') && !res.owner.is_empty() => {
                    return decide(Governing::Default)
                }
                Some(i) => srn = &srn[..i],
                None => return decide(Governing::Default),
            }
        }
    }

    /// Whether anything kept here lies at `srn` or below it (an ACP, or a resource that
    /// names some).
    pub fn has_within(&self, srn: &str) -> bool {
        let inner = self.read();
        inner.named.contains_key(srn)
            || inner
                .named
                .range(format!("{srn}/")..format!("{srn}0"))
                .next()
                .is_some()
            || inner.acps.values().any(|acp| within(&acp.srn, srn))
    }

    /// The resource IDs of the ACPs at `srn` or below it.
    pub fn acps_within(&self, srn: &str) -> Vec<String> {
        self.read()
            .acps
            .iter()
            .filter(|(_, acp)| within(&acp.srn, srn))
            .map(|(ri, _)| ri.clone())
            .collect()
    }

    /// The resources outside the subtree at `srn` whose `acpi` names one of `ris`, with what
    /// their `acpi` names.
    pub fn naming(&self, ris: &[String], srn: &str) -> Vec<(String, Vec<String>)> {
        self.read()
            .named
            .iter()
            .filter(|(named, ids)| !within(named, srn) && ids.iter().any(|id| ris.contains(id)))
            .map(|(named, ids)| (named.clone(), ids.to_vec()))
            .collect()
    }

    /// After a commit that created or changed the ACP `ri`.
    pub fn set_acp(&self, ri: &str, acp: Acp) {
        self.write().acps.insert(ri.to_string(), Arc::new(acp));
    }

    /// After a commit that set the `acpi` of the resource at `srn` (empty: it names none).
    pub fn set_named(&self, srn: &str, acpi: Vec<String>) {
        let mut inner = self.write();
        if acpi.is_empty() {
            inner.named.remove(srn);
        } else {
            inner.named.insert(srn.to_string(), acpi.into());
        }
        self.any_named
            .store(!inner.named.is_empty(), Ordering::Release);
    }

    /// After a commit that deleted the resource at `srn` with its subtree.
    pub fn subtree_gone(&self, srn: &str) {
        let mut inner = self.write();
        // Descendants sort between "srn/" and "srn0" ('0' follows '/').
        let below: Vec<String> = inner
            .named
            .range(format!("{srn}/")..format!("{srn}0"))
            .map(|(k, _)| k.clone())
            .collect();
        for k in below {
            inner.named.remove(&k);
        }
        inner.named.remove(srn);
        inner.acps.retain(|_, acp| !within(&acp.srn, srn));
        self.any_named
            .store(!inner.named.is_empty(), Ordering::Release);
    }
}

/// Whether the structured name `s` is `srn` or below it.
fn within(s: &str, srn: &str) -> bool {
    s.strip_prefix(srn)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map};

    fn me() -> CseIdentity {
        CseIdentity {
            csi: "/id-in".into(),
            rn: "cse-in".into(),
            sp_id: "sp".into(),
        }
    }

    fn res(ty: ResourceType, ri: &str, srn: &str, owner: &str) -> Resource {
        Resource {
            ty,
            ri: ri.into(),
            pi: String::new(),
            rn: srn.rsplit('/').next().unwrap().into(),
            srn: srn.into(),
            owner: owner.into(),
            attrs: Map::new(),
        }
    }

    fn acp(srn: &str) -> Acp {
        let mut r = res(ResourceType::AccessControlPolicy, "x", srn, "Cae");
        r.attrs
            .insert("pv".into(), json!({"acr": [{"acor": ["Cgui"], "acop": 2}]}));
        r.attrs.insert("pvs".into(), json!({"acr": []}));
        Acp::read(&r, &me())
    }

    fn named(p: &Policies, res: &Resource) -> Vec<String> {
        p.governing(res, |g| match g {
            Governing::Named(acps) => acps.map(|a| a.srn.clone()).collect(),
            Governing::Default => vec!["default".into()],
        })
    }

    #[test]
    fn the_nearest_acpi_up_the_tree_governs_within_an_owner() {
        let p = Policies::new();
        p.set_acp("acp1", acp("cse-in/Cae/acp1"));
        p.set_acp("acpcb", acp("cse-in/acpcb"));
        p.set_named("cse-in/Cae/cnt", vec!["acp1".into()]);
        p.set_named("cse-in", vec!["acpcb".into()]);
        let cin = res(
            ResourceType::ContentInstance,
            "c",
            "cse-in/Cae/cnt/sub/cin",
            "Cae",
        );
        assert_eq!(named(&p, &cin), ["cse-in/Cae/acp1"]);
        // Not named by its parent, and owned by an AE: the CSEBase's acpi does not reach it.
        let other = res(ResourceType::Container, "o", "cse-in/Cae/other", "Cae");
        assert_eq!(named(&p, &other), ["default"]);
        // The CSE's own resources and the CSEBase itself follow the CSEBase.
        let own = res(ResourceType::Container, "o", "cse-in/cnt", "");
        assert_eq!(named(&p, &own), ["cse-in/acpcb"]);
        let cb = res(ResourceType::CseBase, "id-in", "cse-in", "");
        assert_eq!(named(&p, &cb), ["cse-in/acpcb"]);
        // A name that only starts like a governed one is not below it.
        let sibling = res(ResourceType::Container, "s", "cse-in/Cae/cntx", "Cae");
        assert_eq!(named(&p, &sibling), ["default"]);
    }

    #[test]
    fn missing_acps_grant_nothing_and_deleted_subtrees_take_their_entries() {
        let p = Policies::new();
        p.set_named("cse-in/Cae/cnt", vec!["gone".into()]);
        let cnt = res(ResourceType::Container, "c", "cse-in/Cae/cnt", "Cae");
        assert!(named(&p, &cnt).is_empty());
        p.set_acp("acp1", acp("cse-in/Cae/acp1"));
        p.set_named("cse-in/Cae/cntx", vec!["acp1".into()]);
        p.subtree_gone("cse-in/Cae/cnt");
        assert_eq!(named(&p, &cnt), ["default"]);
        assert!(p.acp("acp1").is_some());
        p.subtree_gone("cse-in/Cae");
        assert!(p.acp("acp1").is_none());
        let cntx = res(ResourceType::Container, "c", "cse-in/Cae/cntx", "Cae");
        assert_eq!(named(&p, &cntx), ["default"]);
        assert!(!p.has_within("cse-in/Cae"));
    }
}
