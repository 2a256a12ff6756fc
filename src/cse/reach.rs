//! Where an entity is reached: a notification target (an AE, or a URL), or the next CSE on
//! a forwarded request's way. Both walk at most two steps: an AE's `poa` is a URL, and a CSE
//! that is not registered here is reached through our registrar, which must be.

use super::notify::string_list;
use super::{Cse, Rules};
use crate::onem2m::address::local_originator;
use crate::onem2m::{Error, MqttUrl, ResourceType, Rsc};
use crate::store::{Reader, Resource};
use serde_json::Value;

/// Where a request goes: a notification's target, or the next CSE on a forwarded request's way.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// POST to exactly this URL (a notification target).
    Http(String),
    /// A CSE's HTTP binding: the request's `to` becomes the path under this base URL.
    HttpCse(String),
    /// A broker (over TLS for `mqtts://`) and the receiver level of
    /// `/oneM2M/req/<cse-id>/<receiver>/json`.
    Mqtt {
        host: String,
        port: u16,
        tls: bool,
        receiver: String,
    },
}

/// Where `nu` points. URLs are used as they are; an `mqtt://` URL's path names the receiver
/// (Mobius' form), else the subscription's owner receives. Anything else is an AE (by AE-ID,
/// SP-relative AE-ID, resource ID or structured address) reached at its first `poa`.
pub fn resolve_target(r: &Reader, rules: &Rules, nu: &str, owner: &str) -> Result<Target, String> {
    if nu.starts_with("http://") || nu.starts_with("https://") {
        return Ok(Target::Http(nu.to_string()));
    }
    if MqttUrl::is_mqtt(nu) {
        let url = MqttUrl::parse(nu)?;
        let receiver = url.path.unwrap_or_else(|| owner.to_string());
        if receiver.is_empty() {
            return Err(format!("'{nu}' names no receiver"));
        }
        // The receiver becomes a topic level: MQTT forbids wildcards and NUL there.
        if receiver.contains(['+', '#', '\0']) {
            return Err(format!(
                "'{}': a receiver cannot contain '+', '#' or NUL",
                crate::onem2m::address::shorten(nu)
            ));
        }
        return Ok(Target::Mqtt {
            host: url.host,
            port: url.port,
            tls: url.tls,
            receiver: crate::onem2m::topic::id_to_topic(&receiver),
        });
    }
    if nu.contains("://") {
        return Err(format!(
            "'{nu}': only http, https and mqtt targets are supported"
        ));
    }
    // Any form of an ID: an absolute one of our service provider is SP-relative, and one of
    // this CSE CSE-relative.
    let local = local_originator(nu, &rules.me);
    if local.starts_with("//") {
        return Err(format!(
            "'{}' is an entity of another service provider; only this one's are reached",
            crate::onem2m::address::shorten(nu)
        ));
    }
    // An entity of another CSE (`/id-mn/Cae`): its CSE delivers it.
    if local.starts_with('/') {
        let csi = local
            .split('/')
            .nth(1)
            .map(|c| format!("/{c}"))
            .unwrap_or_default();
        return next_hop(r, rules, &csi).map_err(|e| e.dbg);
    }
    let found = if local.contains('/') {
        let structured = match local.strip_prefix("-/") {
            Some(rest) => format!("{}/{rest}", rules.me.rn),
            None => local.clone(),
        };
        r.get_by_srn(&structured)
    } else {
        r.get(&local)
    }
    .map_err(|e| e.to_string())?;
    let ae = found.ok_or_else(|| format!("'{nu}' is neither a URL nor a registered AE"))?;
    if ae.ty != ResourceType::Ae {
        return Err(format!("'{nu}' is a {}, not an AE", ae.ty.root_name()));
    }
    ae_target(r, rules, ae)
}

/// How to reach the AE `ae`: at its first usable point of access.
pub fn ae_target(r: &Reader, rules: &Rules, ae: Resource) -> Result<Target, String> {
    let poa = first_usable_poa(ae.attrs.get("poa")).ok_or_else(|| {
        format!(
            "AE {} has no http:// or mqtt:// point of access (poa)",
            ae.ri
        )
    })?;
    match resolve_target(r, rules, &poa, &ae.ri)? {
        // An AE's own mqtt poa names its broker; the AE itself receives.
        Target::Mqtt {
            host, port, tls, ..
        } => Ok(Target::Mqtt {
            host,
            port,
            tls,
            receiver: ae.ri,
        }),
        http => Ok(http),
    }
}

/// The first http(s):// or mqtt(s):// address of a `poa` list.
fn first_usable_poa(poa: Option<&Value>) -> Option<String> {
    string_list(poa)
        .into_iter()
        .find(|p| p.starts_with("http://") || p.starts_with("https://") || MqttUrl::is_mqtt(p))
}

/// How to reach the CSE `csi` (SP-relative, `/id-mn`): through its `<remoteCSE>` here if it
/// registered with us or we with it, else through our registrar, else not at all (5103).
/// Mobius devices address their CSE as `/<CSEBase name>`, which is SP-relative: a CSE of
/// that ID. When `csi` is our CSEBase's name, the text that says how to name it.
pub fn own_name_hint(rules: &Rules, csi: &str) -> String {
    if csi.trim_start_matches('/') != rules.me.rn {
        return String::new();
    }
    format!(
        " ('/{rn}' is SP-relative: a CSE-ID, then a path; this CSEBase is '{rn}', or \
         '{me}/{rn}')",
        rn = rules.me.rn,
        me = rules.me.csi
    )
}

pub fn next_hop(r: &Reader, rules: &Rules, csi: &str) -> Result<Target, Error> {
    let unreachable = |why: String| Error::new(Rsc::TARGET_NOT_REACHABLE, why);
    let id = csi
        .trim_start_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let csr = match r.get(id)? {
        Some(csr) if csr.ty == ResourceType::RemoteCse => csr,
        _ => match &rules.registrar {
            Some(reg) if reg != csi => {
                return next_hop(r, rules, reg).map_err(|e| {
                    unreachable(format!("CSE {csi} is not known here, and {}", e.dbg))
                })
            }
            _ => {
                return Err(unreachable(format!(
                    "CSE {csi} is not registered with this CSE{}",
                    own_name_hint(rules, csi)
                )))
            }
        },
    };
    let Some(poa) = first_usable_poa(csr.attrs.get("poa")) else {
        return Err(unreachable(format!(
            "CSE {csi} has no mqtt:// or http:// point of access"
        )));
    };
    if MqttUrl::is_mqtt(&poa) {
        let url = MqttUrl::parse(&poa).map_err(|e| unreachable(format!("poa of {csi}: {e}")))?;
        Ok(Target::Mqtt {
            host: url.host,
            port: url.port,
            tls: url.tls,
            receiver: id.to_string(),
        })
    } else {
        Ok(Target::HttpCse(poa.trim_end_matches('/').to_string()))
    }
}

/// The `poa` a CREATE or UPDATE sets on an AE or a remote CSE, if it sets one.
pub fn poa_set(req: &crate::onem2m::RequestPrimitive) -> Option<Vec<String>> {
    let pc = req.pc.as_ref()?;
    let res = pc.get("m2m:ae").or_else(|| pc.get("m2m:csr"))?;
    res.get("poa").map(|p| string_list(Some(p)))
}

impl Cse {
    /// Refuses (4000) a `poa` with an address the outbound policy does not let this CSE
    /// call: the CSE would call it for every notification to that entity. Blocking.
    pub(super) fn check_poa(&self, poa: &[String]) -> Result<(), Error> {
        let Some(delivery) = self.delivery() else {
            return Ok(());
        };
        let urls = poa.iter().filter(|p| {
            p.starts_with("http://") || p.starts_with("https://") || MqttUrl::is_mqtt(p)
        });
        for url in urls {
            delivery.permits(url).map_err(|why| {
                Error::bad_request(format!(
                    "poa '{}': {why}",
                    crate::onem2m::address::shorten(url)
                ))
            })?;
        }
        Ok(())
    }
}
