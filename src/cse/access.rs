//! The one access step. Every request path asks [`authorize`] before it touches a resource or
//! sends anything on: create (on the parent), retrieve, update, delete, discovery and `rcn=4`
//! listings (per resource listed), NOTIFY relayed to an AE, forwarding to another CSE, and
//! the checks before a subscription's verification calls out. `<accessControlPolicy>`
//! resources plug in here: they are read through the [`Reader`] every call already has.
//!
//! Until then the policy is ownership, as ACME does with the ACP it creates for every AE it
//! registers: an AE has every right on its own subtree and on nothing else; the configured
//! admin originator has every right everywhere; anyone may RETRIEVE the CSEBase (to learn the
//! CSE's ID and capabilities) and register (create an AE or remoteCSE under it). Everything
//! directly under the CSEBase that is not an AE belongs to the admin. NOTIFY to a local AE and
//! forwarding to another CSE are open to every originator: the receiving AE, or the hosting
//! CSE, does its own access control (TS-0004 §7.3.2.6).

use super::Rules;
use crate::onem2m::{Base, Error, Operation, ResourceType, Virtual};
use crate::store::{Reader, Resource};

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
    /// Find in a discovery result or a listing of children.
    Discover,
    /// Have a request of this operation forwarded (to another CSE).
    Forward(Operation),
}

/// What the action is on.
#[derive(Debug, Clone, Copy)]
pub enum Object<'a> {
    /// A resource of this CSE.
    Resource(&'a Resource),
    /// Another CSE, by its CSE-ID (`/id-mn`).
    Cse(&'a str),
}

/// The access step: may `originator` do `action` on `object`? A refusal is 4103 with a
/// message that names who, what and where.
pub fn authorize(
    _r: &Reader,
    rules: &Rules,
    originator: &str,
    action: Action,
    object: Object<'_>,
) -> Result<(), Error> {
    if originator == rules.admin {
        return Ok(());
    }
    let allowed = match (object, action) {
        (Object::Cse(_), Action::Forward(_)) => true,
        (Object::Cse(_), _) => false,
        (Object::Resource(target), action) => match (target.ty, action) {
            (ResourceType::CseBase, Action::Retrieve | Action::Discover) => true,
            (ResourceType::CseBase, Action::Create(ResourceType::Ae | ResourceType::RemoteCse)) => {
                true
            }
            (ResourceType::CseBase, _) => false,
            (ResourceType::Ae, Action::Notify) => true,
            _ => owns(&target.owner, originator),
        },
    };
    if allowed {
        return Ok(());
    }
    let who = if originator.is_empty() {
        "an anonymous originator"
    } else {
        originator
    };
    let what = match action {
        Action::Create(_) => "create under",
        Action::Retrieve => "retrieve",
        Action::Update => "update",
        Action::Delete => "delete",
        Action::Notify => "notify",
        Action::Discover => "discover",
        Action::Forward(_) => "forward to",
    };
    let where_ = match object {
        Object::Resource(r) => r.srn.as_str(),
        Object::Cse(csi) => csi,
    };
    Err(Error::no_privilege(format!(
        "{who} has no privilege to {what} {where_}"
    )))
}

/// Resolves the resource a request addresses and [authorizes](authorize) `action` on it.
pub fn target(
    r: &Reader,
    rules: &Rules,
    originator: &str,
    action: Action,
    base: &Base,
    virt: Option<Virtual>,
    to: &str,
) -> Result<Resource, Error> {
    let target = super::resources::resolve(r, base, virt, to)?;
    authorize(r, rules, originator, action, Object::Resource(&target))?;
    Ok(target)
}

/// Whether `originator` may see `res` listed (discovery, `rcn=4`).
pub fn visible(r: &Reader, rules: &Rules, originator: &str, res: &Resource) -> bool {
    authorize(
        r,
        rules,
        originator,
        Action::Discover,
        Object::Resource(res),
    )
    .is_ok()
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
        authorize(r, &rules(), originator, action, Object::Resource(target))
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
    fn notify_and_forwarding_are_left_to_the_receiver() {
        with_reader(|r| {
            check(r, "Canyone", Action::Notify, &res(ResourceType::Ae, "Cae")).unwrap();
            let fwd = Action::Forward(Operation::Delete);
            authorize(r, &rules(), "Canyone", fwd, Object::Cse("/id-mn")).unwrap();
            let e = authorize(
                r,
                &rules(),
                "Canyone",
                Action::Retrieve,
                Object::Cse("/id-mn"),
            )
            .unwrap_err();
            assert!(e.dbg.contains("/id-mn"), "{}", e.dbg);
        });
    }
}
