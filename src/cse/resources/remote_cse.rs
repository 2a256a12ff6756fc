//! `<remoteCSE>` (ty 16): a CSE registering with this one (digest §6.1, as ACME's
//! RegistrationManager does it), and the `<remoteCSE>` that stands for our own registrar,
//! mirrored from its CSEBase.

use super::super::Rules;
use crate::onem2m::{time, CseIdentity, Error, ResourceType, Rsc};
use crate::store::{Resource, Writer};
use serde_json::{json, Map, Value};

/// Checks a registering CSE and returns its CSE-ID. The registrar takes the CSE-ID from the
/// request's originator (TS-0004 7.4.4.2.1), whatever `csi` the content says; the
/// `<remoteCSE>`'s resource ID is that ID without its slash, and the registree owns it.
pub fn register(w: &Writer, rules: &Rules, originator: &str) -> Result<String, Error> {
    let id = originator.trim_start_matches('/');
    let is_cse_id = originator.starts_with('/')
        && !originator.starts_with("//")
        && !id.is_empty()
        && !id.contains(['/', ':', '#', '+']);
    if !is_cse_id {
        return Err(Error::new(
            Rsc::OPERATION_NOT_ALLOWED,
            format!("only a CSE registers a remoteCSE; originator '{originator}' is not a CSE-ID such as /id-mn"),
        ));
    }
    if originator == rules.me.csi {
        return Err(Error::bad_request("a CSE does not register with itself"));
    }
    if w.get(id)?.is_some() {
        return Err(Error::conflict(format!(
            "CSE {originator} is already registered"
        )));
    }
    Ok(originator.to_string())
}

/// What the registrar's CSEBase says and how we reach it, for [`mirror_registrar`].
pub struct Registrar {
    /// Its CSE-ID, `/id-in`.
    pub csi: String,
    /// Its CSEBase's address, `/id-in/cse-in`.
    pub cb: String,
    /// How we reach it.
    pub poa: Vec<String>,
    /// Its CSEBase's attributes (`cst`, `srv`, `csz` are copied).
    pub base: Map<String, Value>,
}

/// Creates or refreshes the local `<remoteCSE>` that stands for our registrar.
pub fn mirror_registrar(w: &Writer, me: &CseIdentity, reg: &Registrar) -> Result<(), Error> {
    let csi = &reg.csi;
    let id = csi.trim_start_matches('/').to_string();
    let now = time::now();
    let mut res = match w.get(&id)? {
        Some(r) if r.ty == ResourceType::RemoteCse => r,
        Some(r) => {
            return Err(Error::conflict(format!(
                "resource {id} is a {}, not the registrar's remoteCSE",
                r.ty.root_name()
            )))
        }
        None => {
            let mut attrs = Map::new();
            for (k, v) in [
                ("ty", json!(ResourceType::RemoteCse.code())),
                ("ri", json!(id)),
                ("rn", json!(id)),
                ("pi", json!(me.id())),
                ("ct", json!(now)),
            ] {
                attrs.insert(k.into(), v);
            }
            let res = Resource {
                ty: ResourceType::RemoteCse,
                ri: id.clone(),
                pi: me.id().to_string(),
                rn: id.clone(),
                srn: format!("{}/{id}", me.rn),
                owner: csi.clone(),
                attrs,
            };
            w.insert(&res)?;
            res
        }
    };
    let a = &mut res.attrs;
    a.insert("csi".into(), json!(csi));
    a.insert("cb".into(), json!(reg.cb));
    a.insert("poa".into(), json!(reg.poa));
    a.insert("rr".into(), json!(true));
    a.insert("lt".into(), json!(now));
    for k in ["cst", "srv", "csz"] {
        if let Some(v) = reg.base.get(k) {
            a.insert(k.into(), v.clone());
        }
    }
    w.update(&res)?;
    Ok(())
}
