//! Operations (`op`) and resource types (`ty`) with their JSON root names (TS-0004 §6.3).

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Create = 1,
    Retrieve = 2,
    Update = 3,
    Delete = 4,
    Notify = 5,
}

impl Operation {
    /// `op` as a number, or a number in a string (as Mobius devices send it).
    pub fn from_value(v: &Value) -> Option<Operation> {
        Some(match super::primitive::number(v)? {
            1 => Operation::Create,
            2 => Operation::Retrieve,
            3 => Operation::Update,
            4 => Operation::Delete,
            5 => Operation::Notify,
            _ => return None,
        })
    }

    pub fn code(self) -> u8 {
        self as u8
    }
}

/// The resource types this CSE knows by number. Types outside this list are answered with
/// 4000 ("resource type N is not supported") rather than silently stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceType {
    AccessControlPolicy = 1,
    Ae = 2,
    Container = 3,
    ContentInstance = 4,
    CseBase = 5,
    Group = 9,
    RemoteCse = 16,
    Subscription = 23,
}

impl ResourceType {
    const ALL: [ResourceType; 8] = [
        ResourceType::AccessControlPolicy,
        ResourceType::Ae,
        ResourceType::Container,
        ResourceType::ContentInstance,
        ResourceType::CseBase,
        ResourceType::Group,
        ResourceType::RemoteCse,
        ResourceType::Subscription,
    ];

    pub fn code(self) -> u16 {
        self as u16
    }

    pub fn all() -> &'static [ResourceType] {
        &Self::ALL
    }

    /// Whether the type has `acpi` (accessControlPolicyIDs): the types an ACP can govern
    /// directly. The others follow their parent (a content instance its container), and an
    /// `<accessControlPolicy>` its own `pvs` (TS-0001 §9.6.2).
    pub fn has_acpi(self) -> bool {
        matches!(
            self,
            ResourceType::Ae
                | ResourceType::Container
                | ResourceType::CseBase
                | ResourceType::Group
                | ResourceType::RemoteCse
                | ResourceType::Subscription
        )
    }

    pub fn from_u16(ty: u16) -> Option<ResourceType> {
        Self::ALL.into_iter().find(|t| t.code() == ty)
    }

    /// The key under which a resource of this type travels in `pc`, e.g. `m2m:cnt`.
    pub fn root_name(self) -> &'static str {
        match self {
            ResourceType::AccessControlPolicy => "m2m:acp",
            ResourceType::Ae => "m2m:ae",
            ResourceType::Container => "m2m:cnt",
            ResourceType::ContentInstance => "m2m:cin",
            ResourceType::CseBase => "m2m:cb",
            ResourceType::Group => "m2m:grp",
            ResourceType::RemoteCse => "m2m:csr",
            ResourceType::Subscription => "m2m:sub",
        }
    }

    /// The prefix of resource IDs the CSE assigns to this type (ACME's style: `cnt1234…`).
    pub fn ri_prefix(self) -> &'static str {
        self.root_name().trim_start_matches("m2m:")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operations_parse_from_numbers_only() {
        assert_eq!(Operation::from_value(&json!(1)), Some(Operation::Create));
        assert_eq!(Operation::from_value(&json!(5)), Some(Operation::Notify));
        assert_eq!(Operation::from_value(&json!(6)), None);
        assert_eq!(Operation::from_value(&json!(0)), None);
        assert_eq!(Operation::from_value(&json!("1")), Some(Operation::Create));
        assert_eq!(Operation::from_value(&json!("one")), None);
        assert_eq!(Operation::from_value(&json!(-1)), None);
    }

    #[test]
    fn resource_types_know_their_root_names() {
        for ty in ResourceType::ALL {
            assert_eq!(ResourceType::from_u16(ty.code()), Some(ty));
            assert!(ty.root_name().starts_with("m2m:"));
        }
        assert_eq!(ResourceType::Container.root_name(), "m2m:cnt");
        assert_eq!(ResourceType::ContentInstance.ri_prefix(), "cin");
        assert_eq!(ResourceType::from_u16(28), None);
    }
}
