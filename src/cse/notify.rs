//! Subscriptions at work: which events a `<subscription>` reports (`enc.net`, `chty`), what a
//! notification carries (`nct`), the expiration counter (`exc`), deletion notifications
//! (`sud` to `su`), and where a `nu` entry points.
//!
//! Notices are collected inside the write transaction that caused them, so that what is
//! reported is exactly what was committed; they are delivered only after the commit, by a
//! [`Delivery`] that never blocks request handling.

use super::Rules;
use crate::onem2m::address::originator_to_local;
use crate::onem2m::{Error, MqttUrl, RequestPrimitive, ResourceType, Rsc};
use crate::store::{Reader, Resource, Writer};
use serde_json::{json, Map, Value};

/// How long the CSE waits for the answer to a request it sends itself: a verification request,
/// a forwarded request, a relayed NOTIFY.
pub const PEER_ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Event types of `enc.net` (TS-0004 notificationEventType).
pub const NET_UPDATE: u64 = 1;
pub const NET_DELETE: u64 = 2;
pub const NET_CREATE_CHILD: u64 = 3;
pub const NET_DELETE_CHILD: u64 = 4;

/// A notification to send once the transaction that caused it has committed.
#[derive(Debug, Clone)]
pub struct Notice {
    /// Notification targets (the subscription's `nu`, or its `su` for a deletion notice).
    pub targets: Vec<String>,
    /// Owner of the subscription: the receiver of an `mqtt://` target without a path.
    pub owner: String,
    /// `{"m2m:sgn": {...}}`
    pub pc: Value,
}

/// Where a request goes: a notification's target, or the next CSE on a forwarded request's way.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// POST to exactly this URL (a notification target).
    Http(String),
    /// A CSE's HTTP binding: the request's `to` becomes the path under this base URL.
    HttpCse(String),
    /// A broker and the receiver level of `/oneM2M/req/<cse-id>/<receiver>/json`.
    Mqtt {
        host: String,
        port: u16,
        receiver: String,
    },
}

/// Sends NOTIFY requests. Implemented by the bindings.
pub trait Delivery: Send + Sync {
    /// Sends and waits for the answer (verification, forwarding). Blocking.
    fn request(
        &self,
        target: &Target,
        req: RequestPrimitive,
    ) -> Result<crate::onem2m::ResponsePrimitive, String>;
    /// Queues for delivery with retries; returns at once.
    fn enqueue(&self, target: Target, req: RequestPrimitive);
}

/// The subscription's SP-relative reference, `sur`.
pub fn sur(rules: &Rules, sub_ri: &str) -> String {
    format!("{}/{sub_ri}", rules.me.csi)
}

fn nets(sub: &Resource) -> Vec<u64> {
    sub.attrs
        .get("enc")
        .and_then(|e| e.get("net"))
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_else(|| vec![NET_UPDATE])
}

fn child_types(sub: &Resource) -> Option<Vec<u64>> {
    sub.attrs
        .get("enc")
        .and_then(|e| e.get("chty"))
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_u64).collect())
}

/// The strings of a JSON list (non-strings are skipped; validation reports them).
pub fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The representation of `res` a subscription asks for with its `nct`.
fn representation(sub: &Resource, res: &Resource, modified: Option<&Map<String, Value>>) -> Value {
    match sub.int("nct").unwrap_or(1) {
        2 => {
            let attrs = modified.cloned().unwrap_or_else(|| res.attrs.clone());
            json!({ res.ty.root_name(): attrs })
        }
        3 => json!({ "m2m:uri": res.ri }),
        _ => res.to_pc(),
    }
}

/// Reports `net` about `res` to every subscription directly under `subscribed`.
fn fire(
    w: &Writer,
    rules: &Rules,
    subscribed: &Resource,
    net: u64,
    res: &Resource,
    modified: Option<&Map<String, Value>>,
    out: &mut Vec<Notice>,
) -> Result<(), Error> {
    for mut sub in w.children_of_type(&subscribed.ri, ResourceType::Subscription.code())? {
        if sub.ri == res.ri || !nets(&sub).contains(&net) {
            continue;
        }
        if matches!(net, NET_CREATE_CHILD | NET_DELETE_CHILD) {
            if let Some(tys) = child_types(&sub) {
                if !tys.contains(&(res.ty.code() as u64)) {
                    continue;
                }
            }
        }
        out.push(Notice {
            targets: string_list(sub.attrs.get("nu")),
            owner: sub.owner.clone(),
            pc: json!({ "m2m:sgn": {
                "nev": { "net": net, "rep": representation(&sub, res, modified) },
                "sur": sur(rules, &sub.ri),
            }}),
        });
        // The expiration counter: the subscription ends after that many notifications.
        if let Some(exc) = sub.int("exc") {
            if exc <= 1 {
                removed(rules, &sub, out);
                w.delete_subtree(&sub)?;
            } else {
                sub.attrs.insert("exc".into(), json!(exc - 1));
                w.update(&sub)?;
            }
        }
    }
    Ok(())
}

/// A deletion notice to `su` for a subscription that is going away.
fn removed(rules: &Rules, sub: &Resource, out: &mut Vec<Notice>) {
    if let Some(su) = sub.str("su").filter(|s| !s.is_empty()) {
        out.push(Notice {
            targets: vec![su.to_string()],
            owner: sub.owner.clone(),
            pc: json!({ "m2m:sgn": { "sud": true, "sur": sur(rules, &sub.ri) } }),
        });
    }
}

/// `child` was created under `parent` (net 3).
pub fn child_created(
    w: &Writer,
    rules: &Rules,
    parent: &Resource,
    child: &Resource,
    out: &mut Vec<Notice>,
) -> Result<(), Error> {
    fire(w, rules, parent, NET_CREATE_CHILD, child, None, out)
}

/// `res` was updated; `modified` holds the attributes the request changed (net 1).
pub fn updated(
    w: &Writer,
    rules: &Rules,
    res: &Resource,
    modified: &Map<String, Value>,
    out: &mut Vec<Notice>,
) -> Result<(), Error> {
    fire(w, rules, res, NET_UPDATE, res, Some(modified), out)
}

/// `res` (with its subtree) is about to be deleted: net 2 to its own subscriptions, net 4 to
/// its parent's, and a deletion notice for every subscription in the subtree.
pub fn deleting(
    w: &Writer,
    rules: &Rules,
    res: &Resource,
    out: &mut Vec<Notice>,
) -> Result<(), Error> {
    if res.ty == ResourceType::Subscription {
        removed(rules, res, out);
    } else {
        fire(w, rules, res, NET_DELETE, res, None, out)?;
        let mut subs = Vec::new();
        w.walk_subtree(&res.srn, &[ResourceType::Subscription.code()], |s| {
            subs.push(s);
            true
        })?;
        for sub in subs {
            removed(rules, &sub, out);
        }
    }
    if let Some(parent) = w.get(&res.pi)? {
        child_deleted(w, rules, &parent, res, out)?;
    }
    Ok(())
}

/// `child` of `parent` was deleted (net 4); also used for evicted content instances.
pub fn child_deleted(
    w: &Writer,
    rules: &Rules,
    parent: &Resource,
    child: &Resource,
    out: &mut Vec<Notice>,
) -> Result<(), Error> {
    fire(w, rules, parent, NET_DELETE_CHILD, child, None, out)
}

/// Where `nu` points. URLs are used as they are; an `mqtt://` URL's path names the receiver
/// (Mobius' form), else the subscription's owner receives. Anything else is an AE (by AE-ID,
/// SP-relative AE-ID, resource ID or structured address) reached at its first `poa`.
pub fn resolve_target(r: &Reader, rules: &Rules, nu: &str, owner: &str) -> Result<Target, String> {
    if nu.starts_with("http://") || nu.starts_with("https://") {
        return Ok(Target::Http(nu.to_string()));
    }
    if nu.starts_with("mqtt://") {
        let url = MqttUrl::parse(nu)?;
        let receiver = url.path.unwrap_or_else(|| owner.to_string());
        if receiver.is_empty() {
            return Err(format!("'{nu}' names no receiver"));
        }
        return Ok(Target::Mqtt {
            host: url.host,
            port: url.port,
            receiver: crate::onem2m::topic::id_to_topic(&receiver),
        });
    }
    if nu.contains("://") {
        return Err(format!(
            "'{nu}': only http, https and mqtt targets are supported"
        ));
    }
    let local = originator_to_local(nu, &rules.me);
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
    let poa = ae
        .attrs
        .get("poa")
        .and_then(Value::as_array)
        .and_then(|l| {
            l.iter().filter_map(Value::as_str).find(|p| {
                p.starts_with("http://") || p.starts_with("https://") || p.starts_with("mqtt://")
            })
        })
        .ok_or_else(|| {
            format!(
                "AE {} has no http:// or mqtt:// point of access (poa)",
                ae.ri
            )
        })?
        .to_string();
    match resolve_target(r, rules, &poa, &ae.ri)? {
        // An AE's own mqtt poa names its broker; the AE itself receives.
        Target::Mqtt { host, port, .. } => Ok(Target::Mqtt {
            host,
            port,
            receiver: ae.ri,
        }),
        http => Ok(http),
    }
}

/// How to reach the CSE `csi` (SP-relative, `/id-mn`): through its `<remoteCSE>` here if it
/// registered with us or we with it, else through our registrar, else not at all (5103).
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
                    "CSE {csi} is not registered with this CSE"
                )))
            }
        },
    };
    let poa = string_list(csr.attrs.get("poa"));
    let Some(poa) = poa.iter().find(|p| {
        p.starts_with("mqtt://") || p.starts_with("http://") || p.starts_with("https://")
    }) else {
        return Err(unreachable(format!(
            "CSE {csi} has no mqtt:// or http:// point of access"
        )));
    };
    if poa.starts_with("mqtt://") {
        let url = MqttUrl::parse(poa).map_err(|e| unreachable(format!("poa of {csi}: {e}")))?;
        Ok(Target::Mqtt {
            host: url.host,
            port: url.port,
            receiver: id.to_string(),
        })
    } else {
        Ok(Target::HttpCse(poa.trim_end_matches('/').to_string()))
    }
}

/// A request identifier for a request this CSE sends itself.
pub fn fresh_rqi(kind: &str) -> String {
    format!("{kind}-{:016x}", rand::random::<u64>())
}

/// A NOTIFY request from this CSE to `to` carrying `pc`.
pub fn request(rules: &Rules, to: &str, pc: Value) -> RequestPrimitive {
    let rqi = fresh_rqi("notify");
    let mut req = RequestPrimitive::new(
        crate::onem2m::Operation::Notify,
        to,
        rules.me.csi.clone(),
        rqi,
    );
    req.pc = Some(pc);
    req
}
