//! The one access step. Every request path asks [`authorize`] before it touches a resource or
//! sends anything on: create (on the parent), retrieve, update, delete, discovery and `rcn=4`
//! listings (per resource listed), NOTIFY relayed to an AE, forwarding to another CSE, and
//! the checks before a subscription's verification calls out.
//!
//! A resource is governed by the `<accessControlPolicy>` resources its `acpi` names, or else
//! by those of its nearest ancestor that names some, within the AE or remote CSE it belongs
//! to ([`Policies::governing`](super::policies::Policies::governing)); an ACP by its own
//! `pvs`. A governed resource grants what some rule of those policies grants, and nothing
//! else: not even to its creator (TS-0001 §9.6.1.3.2, as ACME does). The configured admin
//! originator may do everything everywhere.
//!
//! Where no policy applies, the default is ownership: an AE has every right on its own
//! subtree and on nothing else; anyone may RETRIEVE the CSEBase (to learn the CSE's ID and
//! capabilities); everything directly under the CSEBase that is not an AE or remote CSE
//! belongs to the admin. Registering (creating an AE or remoteCSE under the CSEBase) is
//! decided by credentials, not here ([`super::Bindings`]). NOTIFY to a local AE is open to
//! every originator unless the AE's policies say otherwise. A request forwarded to another
//! CSE is decided there (TS-0004 §7.3.2.6); here it must only come from an originator this
//! CSE knows: a registered AE, a registered CSE or an entity behind one, or the admin.

use super::policies::Governing;
use super::Rules;
use crate::onem2m::acp::{op, Ask};
use crate::onem2m::{Base, Error, Operation, ResourceType, Virtual};
use crate::store::{Reader, Resource};
use std::net::IpAddr;

/// Who asks: the originator, in the form the CSE keeps it (`Cae`, `/id-mn/Cae`), and the
/// address its request came from, when the binding knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Originator {
    pub id: String,
    pub addr: Option<IpAddr>,
}

impl Originator {
    pub fn new(id: impl Into<String>, addr: Option<IpAddr>) -> Originator {
        Originator {
            id: id.into(),
            addr,
        }
    }
}

/// What an originator asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Create a child of this type.
    Create(ResourceType),
    Retrieve,
    Update,
    Delete,
    /// Send a NOTIFY to (an AE).
    Notify,
    /// Find in a discovery result.
    Discover,
    /// Have a request of this operation forwarded (to another CSE).
    Forward(Operation),
}

impl Action {
    /// The `acop` bit that grants it (none for forwarding: another CSE decides).
    fn bit(self) -> Option<u8> {
        Some(match self {
            Action::Create(_) => op::CREATE,
            Action::Retrieve => op::RETRIEVE,
            Action::Update => op::UPDATE,
            Action::Delete => op::DELETE,
            Action::Notify => op::NOTIFY,
            Action::Discover => op::DISCOVER,
            Action::Forward(_) => return None,
        })
    }
}

/// What the action is on.
#[derive(Debug, Clone, Copy)]
pub enum Object<'a> {
    /// A resource of this CSE.
    Resource(&'a Resource),
    /// Another CSE, by its CSE-ID (`/id-mn`).
    Cse(&'a str),
}

/// The access step: may `who` do `action` on `object`? A refusal is 4103 with a message that
/// names who, what and where.
pub fn authorize(
    r: &Reader,
    rules: &Rules,
    who: &Originator,
    action: Action,
    object: Object<'_>,
) -> Result<(), Error> {
    if who.id == rules.admin {
        return Ok(());
    }
    let allowed = match (object, action) {
        (Object::Cse(_), Action::Forward(_)) => known(r, rules, &who.id)?,
        (Object::Cse(_), _) => false,
        (Object::Resource(target), action) => permitted(rules, who, action, target),
    };
    if allowed {
        return Ok(());
    }
    let who = if who.id.is_empty() {
        "an anonymous originator"
    } else {
        who.id.as_str()
    };
    let what = match action {
        Action::Create(ty) => format!("create a {} under", ty.root_name()),
        Action::Retrieve => "retrieve".into(),
        Action::Update => "update".into(),
        Action::Delete => "delete".into(),
        Action::Notify => "notify".into(),
        Action::Discover => "discover".into(),
        Action::Forward(_) => "have requests forwarded to".into(),
    };
    let (where_, why) = match object {
        Object::Resource(r) => (r.srn.as_str(), ""),
        Object::Cse(csi) => (
            csi,
            ": only the requests of registered AEs and CSEs, the entities behind those, and \
             the admin are forwarded",
        ),
    };
    Err(Error::no_privilege(format!(
        "{who} has no privilege to {what} {where_}{why}"
    )))
}

/// Whether `who` may do `action` on `target`, by its policies or by the default rule. The
/// admin is not special here ([`authorize`] lets it through first).
pub fn permitted(rules: &Rules, who: &Originator, action: Action, target: &Resource) -> bool {
    decide(rules, &who.id, Some(who.addr), action, target)
}

/// Whether `subscriber` may still retrieve `res` (what it subscribed to, or the child an
/// event is about): checked for each notification, so that access taken away (a policy
/// changed, a time window closed) also ends the notifications. Address ranges are not
/// checked here: a notification is not a request, and has no address. The CSE's own
/// subscriptions (no subscriber) and the admin's are not checked.
pub fn may_still_notify(rules: &Rules, subscriber: &str, res: &Resource) -> bool {
    subscriber.is_empty()
        || subscriber == rules.admin
        || decide(rules, subscriber, None, Action::Retrieve, res)
}

/// [`permitted`]; `addr` is `None` when address ranges hold whatever the address.
fn decide(
    rules: &Rules,
    originator: &str,
    addr: Option<Option<std::net::IpAddr>>,
    action: Action,
    target: &Resource,
) -> bool {
    // Registration is decided by credentials (pipeline and bindings), not by policies.
    if target.ty == ResourceType::CseBase
        && matches!(
            action,
            Action::Create(ResourceType::Ae | ResourceType::RemoteCse)
        )
    {
        return true;
    }
    // A subscriber may always see and cancel its own subscription, whoever governs the
    // resource it is under.
    if target.ty == ResourceType::Subscription
        && matches!(action, Action::Retrieve | Action::Delete)
        && !originator.is_empty()
        && super::resources::subscription::subscriber(target) == originator
    {
        return true;
    }
    let Some(bit) = action.bit() else {
        return false;
    };
    // The originator is in the form rules are matched in: the pipeline brought it there.
    let ask = || Ask {
        originator,
        op: bit,
        child_type: match action {
            Action::Create(ty) => Some(ty.code()),
            _ => None,
        },
        addr: addr.flatten(),
        any_address: addr.is_none(),
        now: chrono::Utc::now(),
    };
    if target.ty == ResourceType::AccessControlPolicy {
        // An ACP is governed by its own pvs, whatever governs its parent.
        return match rules.policies.acp(&target.ri) {
            Some(own) => own.pvs.grants(&ask()),
            None => super::policies::Acp::read(target, &rules.me)
                .pvs
                .grants(&ask()),
        };
    }
    rules
        .policies
        .governing(target, |governing| match governing {
            Governing::Named(mut acps) => {
                let ask = ask();
                Iterator::any(&mut acps, |a| a.pv.grants(&ask))
            }
            Governing::Default => by_default(originator, action, target),
        })
}

/// The rule where no policy applies: ownership.
fn by_default(originator: &str, action: Action, target: &Resource) -> bool {
    match (target.ty, action) {
        (ResourceType::CseBase, Action::Retrieve | Action::Discover) => true,
        (ResourceType::CseBase, _) => false,
        (ResourceType::Ae, Action::Notify) => true,
        _ => owns(&target.owner, originator),
    }
}

/// Resolves the resource a request addresses and [authorizes](authorize) `action` on it.
pub fn target(
    r: &Reader,
    rules: &Rules,
    who: &Originator,
    action: Action,
    base: &Base,
    virt: Option<Virtual>,
    to: &str,
) -> Result<Resource, Error> {
    let target = super::resources::resolve(r, base, virt, to)?;
    authorize(r, rules, who, action, Object::Resource(&target))?;
    Ok(target)
}

/// Whether `who` may see `res` listed: DISCOVER for a discovery result, RETRIEVE for a child
/// in an `rcn=4` answer (as ACME does).
pub fn visible(rules: &Rules, who: &Originator, action: Action, res: &Resource) -> bool {
    who.id == rules.admin || permitted(rules, who, action, res)
}

/// Creating a `<subscription>` needs CREATE of a subscription on the parent and RETRIEVE of
/// the parent, the resource it subscribes to (TS-0004 §7.4.8.2.1; TS-0001 §9.6.8 names
/// RETRIEVE only).
pub fn may_subscribe(
    r: &Reader,
    rules: &Rules,
    who: &Originator,
    parent: &Resource,
) -> Result<(), Error> {
    let object = Object::Resource(parent);
    authorize(
        r,
        rules,
        who,
        Action::Create(ResourceType::Subscription),
        object,
    )?;
    authorize(r, rules, who, Action::Retrieve, object)
}

/// Whether this CSE knows `originator`: a registered AE, a registered CSE or an entity
/// behind one (`/id-mn/Cae`, as a remote CSE forwards its entities' requests), or the admin.
fn known(r: &Reader, rules: &Rules, originator: &str) -> Result<bool, Error> {
    let o = crate::onem2m::address::local_originator(originator, &rules.me);
    if o.is_empty() {
        return Ok(false);
    }
    if o == rules.admin {
        return Ok(true);
    }
    let (ri, ty) = match o.strip_prefix('/') {
        // An SP-relative ID: its CSE is registered here.
        Some(rest) if !rest.starts_with('/') => (
            rest.split('/').next().unwrap_or_default(),
            ResourceType::RemoteCse,
        ),
        // Another service provider's entity: not registered here.
        Some(_) => return Ok(false),
        // A CSE-relative ID: an AE of ours (its resource ID is its AE-ID).
        None => (o.as_str(), ResourceType::Ae),
    };
    Ok(r.get(ri)?.is_some_and(|res| res.ty == ty))
}

/// An owner owns; a registered remote CSE (owner `/id-mn`) also vouches for the entities it
/// serves (`/id-mn/Cae`), which reach us through it.
fn owns(owner: &str, originator: &str) -> bool {
    !owner.is_empty()
        && (owner == originator
            || (owner.starts_with('/')
                && originator
                    .strip_prefix(owner)
                    .is_some_and(|rest| rest.starts_with('/'))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CseKind;
    use crate::onem2m::{CseIdentity, Rsc};
    use crate::store::Store;

    fn rules() -> Rules {
        let me = CseIdentity {
            csi: "/id-in".into(),
            rn: "cse-in".into(),
            sp_id: "sp".into(),
        };
        Rules {
            bindings: std::sync::Arc::new(super::super::Bindings::new(&me, "CAdmin")),
            policies: std::sync::Arc::new(super::super::policies::Policies::new()),
            default_lifetime_s: 0,
            me,
            kind: CseKind::IN,
            admin: "CAdmin".into(),
            registrar: None,
        }
    }

    fn res(ty: ResourceType, owner: &str) -> Resource {
        Resource {
            ty,
            ri: "r".into(),
            pi: "p".into(),
            rn: "r".into(),
            srn: "cse-in/r".into(),
            owner: owner.into(),
            attrs: Default::default(),
        }
    }

    /// Runs `f` with a reader of an empty store.
    fn with_reader(f: impl FnOnce(&Reader)) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a.db")).unwrap();
        store
            .read(|r| {
                f(r);
                Ok::<_, crate::store::StoreError>(())
            })
            .unwrap();
    }

    fn check(r: &Reader, originator: &str, action: Action, target: &Resource) -> Result<(), Error> {
        let who = Originator::new(originator, None);
        authorize(r, &rules(), &who, action, Object::Resource(target))
    }

    const ALL: [Action; 5] = [
        Action::Create(ResourceType::Container),
        Action::Retrieve,
        Action::Update,
        Action::Delete,
        Action::Discover,
    ];

    #[test]
    fn owners_and_admin_may_do_everything() {
        with_reader(|r| {
            for action in ALL {
                check(r, "Cme", action, &res(ResourceType::Container, "Cme")).unwrap();
                check(r, "CAdmin", action, &res(ResourceType::Container, "Cme")).unwrap();
                check(r, "CAdmin", action, &res(ResourceType::Container, "")).unwrap();
            }
        });
    }

    #[test]
    fn others_get_4103() {
        with_reader(|r| {
            let mine = res(ResourceType::Container, "Cme");
            for action in ALL {
                let e = check(r, "Cother", action, &mine).unwrap_err();
                assert_eq!(e.rsc, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE);
                assert!(
                    e.dbg.contains("Cother") && e.dbg.contains("cse-in/r"),
                    "{}",
                    e.dbg
                );
            }
            // CSE-owned resources are the admin's.
            let cse_owned = res(ResourceType::Container, "");
            assert!(check(r, "Cme", Action::Update, &cse_owned).is_err());
            // An empty owner never matches an empty originator.
            assert!(check(r, "", Action::Retrieve, &cse_owned).is_err());
        });
    }

    #[test]
    fn a_remote_cse_vouches_for_its_own_entities() {
        with_reader(|r| {
            let under_csr = res(ResourceType::Container, "/id-mn");
            check(r, "/id-mn", Action::Update, &under_csr).unwrap();
            check(r, "/id-mn/Cae", Action::Retrieve, &under_csr).unwrap();
            assert!(check(r, "/id-mnx/Cae", Action::Retrieve, &under_csr).is_err());
            assert!(check(r, "/id-other/Cae", Action::Retrieve, &under_csr).is_err());
            assert!(check(r, "Cae", Action::Retrieve, &under_csr).is_err());
        });
    }

    #[test]
    fn the_cse_base_is_readable_and_open_to_registration_only() {
        with_reader(|r| {
            let cb = res(ResourceType::CseBase, "");
            check(r, "Canyone", Action::Retrieve, &cb).unwrap();
            check(r, "Canyone", Action::Create(ResourceType::Ae), &cb).unwrap();
            check(r, "/id-mn", Action::Create(ResourceType::RemoteCse), &cb).unwrap();
            for refused in [
                Action::Create(ResourceType::Container),
                Action::Update,
                Action::Delete,
            ] {
                assert!(check(r, "Canyone", refused, &cb).is_err(), "{refused:?}");
            }
            check(r, "CAdmin", Action::Create(ResourceType::Container), &cb).unwrap();
        });
    }

    #[test]
    fn notify_is_open_by_default_and_only_known_originators_are_forwarded() {
        with_reader(|r| {
            check(r, "Canyone", Action::Notify, &res(ResourceType::Ae, "Cae")).unwrap();
            let fwd = Action::Forward(Operation::Delete);
            let anyone = Originator::new("Canyone", None);
            let e = authorize(r, &rules(), &anyone, fwd, Object::Cse("/id-mn")).unwrap_err();
            assert!(
                e.dbg.contains("/id-mn") && e.dbg.contains("registered"),
                "{}",
                e.dbg
            );
            let admin = Originator::new("CAdmin", None);
            authorize(r, &rules(), &admin, fwd, Object::Cse("/id-mn")).unwrap();
            let e = authorize(
                r,
                &rules(),
                &anyone,
                Action::Retrieve,
                Object::Cse("/id-mn"),
            )
            .unwrap_err();
            assert!(e.dbg.contains("/id-mn"), "{}", e.dbg);
        });
    }
}
