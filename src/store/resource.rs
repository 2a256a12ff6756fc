//! A stored resource: the columns the store indexes plus the JSON representation.

use super::StoreError;
use crate::onem2m::ResourceType;
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub ty: ResourceType,
    pub ri: String,
    /// Parent's resource ID; empty for the CSEBase.
    pub pi: String,
    pub rn: String,
    /// Structured resource name, e.g. `cse-in/ae1/cnt1`.
    pub srn: String,
    /// AE-ID of the AE this resource belongs to (itself, for an AE); empty for resources that
    /// belong to the CSE. Used by access control.
    pub owner: String,
    /// Every attribute as it is returned to clients, `ty`, `ri`, `rn`, `pi`, `ct`, `lt` included.
    pub attrs: Map<String, Value>,
}

impl Resource {
    /// `{"m2m:cnt": {...}}`
    pub fn to_pc(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            self.ty.root_name().into(),
            Value::Object(self.attrs.clone()),
        );
        Value::Object(m)
    }

    pub fn et(&self) -> Option<&str> {
        self.attrs.get("et").and_then(Value::as_str)
    }

    pub fn int(&self, name: &str) -> Option<u64> {
        self.attrs.get(name).and_then(Value::as_u64)
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).and_then(Value::as_str)
    }
}

pub(super) fn from_row(row: &rusqlite::Row) -> rusqlite::Result<Result<Resource, StoreError>> {
    let ri: String = row.get(0)?;
    let ty: u16 = row.get(3)?;
    let attrs: String = row.get(6)?;
    let Some(ty) = ResourceType::from_u16(ty) else {
        return Ok(Err(StoreError::Corrupt(
            ri,
            format!("unknown resource type {ty}"),
        )));
    };
    let attrs = match serde_json::from_str::<Value>(&attrs) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return Ok(Err(StoreError::Corrupt(
                ri,
                "attributes are not an object".into(),
            )))
        }
        Err(e) => return Ok(Err(StoreError::Corrupt(ri, e.to_string()))),
    };
    Ok(Ok(Resource {
        ty,
        ri,
        pi: row.get(1)?,
        rn: row.get(2)?,
        srn: row.get(4)?,
        owner: row.get(5)?,
        attrs,
    }))
}
