//! `<remoteCSE>` (ty 16): a CSE registering with this one (digest §6.1, as ACME's
//! RegistrationManager does it).

use super::super::Rules;
use crate::onem2m::{Error, Rsc};
use crate::store::Writer;

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
