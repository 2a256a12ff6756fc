//! Access control until `<accessControlPolicy>` resources exist: ownership.
//!
//! As ACME does with the ACP it creates for every AE it registers, an AE has every right on its
//! own subtree and on nothing else; the configured admin originator has every right everywhere;
//! anyone may RETRIEVE the CSEBase (to learn the CSE's ID and capabilities) and register an AE.
//! Everything directly under the CSEBase that is not an AE belongs to the admin.

use super::Rules;
use crate::onem2m::{Error, Operation, ResourceType};
use crate::store::Resource;

pub fn check(
    rules: &Rules,
    originator: &str,
    op: Operation,
    target: &Resource,
) -> Result<(), Error> {
    if originator == rules.admin {
        return Ok(());
    }
    let allowed = match target.ty {
        ResourceType::CseBase => op == Operation::Retrieve,
        _ => owns(&target.owner, originator),
    };
    if allowed {
        return Ok(());
    }
    let who = if originator.is_empty() {
        "an anonymous originator"
    } else {
        originator
    };
    Err(Error::no_privilege(format!(
        "{who} has no privilege to {} {}",
        match op {
            Operation::Create => "create under",
            Operation::Retrieve => "retrieve",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Notify => "notify",
        },
        target.srn
    )))
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

    fn rules() -> Rules {
        Rules {
            me: CseIdentity {
                csi: "/id-in".into(),
                rn: "cse-in".into(),
                sp_id: "sp".into(),
            },
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

    #[test]
    fn owners_and_admin_may_do_everything() {
        let r = rules();
        for op in [
            Operation::Create,
            Operation::Retrieve,
            Operation::Update,
            Operation::Delete,
        ] {
            check(&r, "Cme", op, &res(ResourceType::Container, "Cme")).unwrap();
            check(&r, "CAdmin", op, &res(ResourceType::Container, "Cme")).unwrap();
            check(&r, "CAdmin", op, &res(ResourceType::Container, "")).unwrap();
        }
    }

    #[test]
    fn others_get_4103() {
        let r = rules();
        let e = check(
            &r,
            "Cother",
            Operation::Retrieve,
            &res(ResourceType::Container, "Cme"),
        )
        .unwrap_err();
        assert_eq!(e.rsc, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE);
        assert!(
            e.dbg.contains("Cother") && e.dbg.contains("cse-in/r"),
            "{}",
            e.dbg
        );
        // CSE-owned resources are the admin's.
        assert!(check(
            &r,
            "Cme",
            Operation::Update,
            &res(ResourceType::Container, "")
        )
        .is_err());
        // An empty owner never matches an empty originator.
        assert!(check(
            &r,
            "",
            Operation::Retrieve,
            &res(ResourceType::Container, "")
        )
        .is_err());
    }

    #[test]
    fn a_remote_cse_vouches_for_its_own_entities() {
        let r = rules();
        let under_csr = res(ResourceType::Container, "/id-mn");
        check(&r, "/id-mn", Operation::Update, &under_csr).unwrap();
        check(&r, "/id-mn/Cae", Operation::Create, &under_csr).unwrap();
        assert!(check(&r, "/id-mnx/Cae", Operation::Create, &under_csr).is_err());
        assert!(check(&r, "/id-other/Cae", Operation::Retrieve, &under_csr).is_err());
        assert!(check(&r, "Cae", Operation::Retrieve, &under_csr).is_err());
    }

    #[test]
    fn the_cse_base_is_readable_by_all_and_writable_by_the_admin() {
        let r = rules();
        let cb = res(ResourceType::CseBase, "");
        check(&r, "Canyone", Operation::Retrieve, &cb).unwrap();
        assert!(check(&r, "Canyone", Operation::Create, &cb).is_err());
        check(&r, "CAdmin", Operation::Create, &cb).unwrap();
    }
}
