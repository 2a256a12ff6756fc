//! Creating the CSEBase on first start, and checking on every later start that the database
//! belongs to the configured CSE.

use crate::config::CseKind;
use crate::onem2m::primitive::ADVERTISED_RELEASES;
use crate::onem2m::{time, CseIdentity, Error, ResourceType};
use crate::store::{Resource, Store};
use serde_json::{json, Map, Value};

pub fn ensure_cse_base(store: &Store, me: &CseIdentity, kind: CseKind) -> Result<(), Error> {
    let me = me.clone();
    let path = store.path().display().to_string();
    store.write(move |w| {
        let me = &me;
        let existing = w.children("", 1)?.into_iter().next();
        let now = time::now();
        let mut cb = match existing {
            Some(cb) if cb.ri == me.id() && cb.rn == me.rn => cb,
            Some(cb) => {
                return Err(Error::internal(format!(
                    "the database {path} belongs to CSE {} (CSEBase '{}'), but this one is \
                     configured as {} ('{}'): set cse.id and cse.name to match, or point \
                     storage.path at a new database",
                    cb.str("csi").unwrap_or("?"),
                    cb.rn,
                    me.csi,
                    me.rn
                )))
            }
            None => {
                let mut attrs = Map::new();
                attrs.insert("ct".into(), json!(now));
                let cb = Resource {
                    ty: ResourceType::CseBase,
                    ri: me.id().to_string(),
                    pi: String::new(),
                    rn: me.rn.clone(),
                    srn: me.rn.clone(),
                    owner: String::new(),
                    attrs,
                };
                w.insert(&cb)?;
                tracing::info!(csi = %me.csi, rn = %me.rn, "created the CSEBase");
                cb
            }
        };
        // Attributes that follow the configuration and this build are refreshed on every start.
        let a = &mut cb.attrs;
        a.insert("ty".into(), json!(ResourceType::CseBase.code()));
        a.insert("ri".into(), json!(me.id()));
        a.insert("rn".into(), json!(me.rn));
        a.insert("pi".into(), Value::String(String::new()));
        a.insert("lt".into(), json!(now));
        a.insert("csi".into(), json!(me.csi));
        a.insert("cst".into(), json!(kind.cst()));
        a.insert("srv".into(), json!(ADVERTISED_RELEASES));
        a.insert(
            "srt".into(),
            json!([
                ResourceType::AccessControlPolicy.code(),
                ResourceType::Ae.code(),
                ResourceType::Container.code(),
                ResourceType::ContentInstance.code(),
                ResourceType::CseBase.code(),
                ResourceType::RemoteCse.code(),
                ResourceType::Subscription.code()
            ]),
        );
        a.insert("csz".into(), json!(["application/json"]));
        w.update(&cb)?;
        Ok(())
    })
}
