//! Resource handling shared by every type: resolving a target, creating, updating and deleting.
//! What is particular to a type lives in its own module.

pub mod access_control_policy;
mod ae;
mod container;
mod content_instance;
pub mod remote_cse;
pub mod subscription;

use super::access::{self, Action, Object, Originator};
use super::attributes::{self, check_resource_name};
use super::notify::{self, Notice};
use super::Rules;
use crate::onem2m::{time, Base, Error, ResourceType, Rsc, Virtual};
use crate::store::{Reader, Resource, StoreError, Writer};
use rand::Rng;
use serde_json::{json, Map, Value};

/// Children listed in one `rcn=4` response; a container with more lists its oldest ones.
pub const MAX_CHILDREN_IN_RESPONSE: usize = 1000;
/// The most bytes of resources one answer carries (`rcn=4`, discovery): past them the result
/// is partial (`cnst` 2) rather than held in memory whole.
pub const MAX_RESULT_BYTES: usize = 4 << 20;

pub fn creatable(ty: ResourceType) -> bool {
    matches!(
        ty,
        ResourceType::AccessControlPolicy
            | ResourceType::Ae
            | ResourceType::Container
            | ResourceType::ContentInstance
            | ResourceType::Subscription
            | ResourceType::RemoteCse
    )
}

/// Which types may be created under which (TS-0001 resource structure, as ACME allows).
fn allowed_child(parent: ResourceType, child: ResourceType) -> bool {
    use ResourceType::*;
    matches!(
        (parent, child),
        (CseBase, Ae)
            | (CseBase, Container)
            | (Ae, Container)
            | (Container, Container)
            | (Container, ContentInstance)
            | (CseBase, Subscription)
            | (Ae, Subscription)
            | (Container, Subscription)
            | (CseBase, RemoteCse)
            | (RemoteCse, Container)
            | (RemoteCse, Subscription)
            | (CseBase, AccessControlPolicy)
            | (Ae, AccessControlPolicy)
            | (RemoteCse, AccessControlPolicy)
    )
}

/// Finds the resource a request addresses; `to` is only used in the error text.
pub fn resolve(
    r: &Reader,
    base: &Base,
    virt: Option<Virtual>,
    to: &str,
) -> Result<Resource, Error> {
    let found = match base {
        Base::Structured(srn) => r.get_by_srn(srn)?,
        Base::Unstructured(ri) => r.get(ri)?,
    };
    let res = found.ok_or_else(|| Error::not_found(format!("no resource at '{to}'")))?;
    let Some(virt) = virt else { return Ok(res) };
    if res.ty != ResourceType::Container {
        return Err(Error::not_found(format!(
            "'{to}': la and ol exist only under a container"
        )));
    }
    let latest = virt == Virtual::Latest;
    r.edge_child(&res.ri, ResourceType::ContentInstance.code(), latest)?
        .ok_or_else(|| Error::not_found(format!("'{to}': the container has no content instance")))
}

/// Takes the attributes out of `pc`, which must be `{"<root name of ty>": {...}}`.
pub fn content(pc: Option<&Value>, ty: ResourceType) -> Result<Map<String, Value>, Error> {
    let root = ty.root_name();
    let obj = pc.and_then(Value::as_object).ok_or_else(|| {
        Error::bad_request(format!("content (pc) must be {{\"{root}\": {{...}}}}"))
    })?;
    if obj.len() != 1 {
        return Err(Error::bad_request(format!(
            "content (pc) must hold exactly one resource, {{\"{root}\": {{...}}}}"
        )));
    }
    match obj.get(root) {
        Some(Value::Object(attrs)) => Ok(attrs.clone()),
        Some(_) => Err(Error::bad_request(format!("{root} must be an object"))),
        None => Err(Error::bad_request(format!(
            "content holds {} but {} needs {root}",
            obj.keys().next().map(String::as_str).unwrap_or(""),
            ty.root_name()
        ))),
    }
}

/// A resource reference (`m2m:rrf`, an entry of `ch`): its name, type, and address in the
/// form `drt` asks for (structured by default, as TS-0004 §8.4.3's examples; OpenMTC's own
/// CSE gives resource IDs, which `drt` 2 gives).
pub fn reference(res: &Resource, drt: u64) -> Value {
    let val = if drt == 2 { &res.ri } else { &res.srn };
    json!({ "nm": res.rn, "typ": res.ty.code(), "val": val })
}

/// A subscription's `enc.chty` names types that can be children of what it subscribes to
/// (TS-0004 §7.4.8.2.1: 4000 otherwise).
fn check_child_types(parent: &Resource, attrs: &Map<String, Value>) -> Result<(), Error> {
    for t in subscription::child_types(attrs).unwrap_or_default() {
        let child = u16::try_from(t).ok().and_then(ResourceType::from_u16);
        if !child.is_some_and(|c| allowed_child(parent.ty, c)) {
            return Err(Error::bad_request(format!(
                "enc.chty {t} is not a type of child a {} can have",
                parent.ty.root_name()
            )));
        }
    }
    Ok(())
}

/// The address form (`drt`) asked for: 1 structured (the default), 2 unstructured.
pub fn address_type(drt: Option<u64>) -> Result<u64, Error> {
    match drt.unwrap_or(1) {
        d @ (1 | 2) => Ok(d),
        d => Err(Error::bad_request(format!(
            "drt {d} is not 1 (structured) or 2 (unstructured)"
        ))),
    }
}

/// A new resource ID: the type's prefix, a clock of this process (microseconds, never repeating,
/// 11 base-36 digits) and 3 random characters (IDs from before a clock step back still differ).
///
/// IDs in creation order make every index on them (ri, srn, type and name) grow at its end, so
/// a batch of new instances dirties a few pages instead of one page per index per instance:
/// that is most of the cost of a commit. Mobius orders its IDs by time the same way.
fn new_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let mut prev = LAST.load(Ordering::Relaxed);
    let tick = loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(actual) => prev = actual,
        }
    };
    let mut id = String::with_capacity(prefix.len() + 14);
    id.push_str(prefix);
    let mut clock = [b'0'; 11];
    let mut n = tick;
    for d in clock.iter_mut().rev() {
        *d = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    id.extend(clock.iter().map(|&b| b as char));
    let mut rng = rand::thread_rng();
    id.extend((0..3).map(|_| DIGITS[rng.gen_range(0..DIGITS.len())] as char));
    id
}

/// Checks a requested expiration time and brings it to the stored form.
fn expiration(attrs: &mut Map<String, Value>, now: &str) -> Result<(), Error> {
    if let Some(et) = attrs.get("et").and_then(Value::as_str) {
        let at = time::parse(et).ok_or_else(|| {
            Error::bad_request(format!(
                "et '{}' is not a timestamp",
                crate::onem2m::address::shorten(et)
            ))
        })?;
        if time::parse(now).is_some_and(|now| at <= now) {
            return Err(Error::bad_request(format!("et {et} is in the past")));
        }
        attrs.insert("et".into(), json!(time::format(at)));
    }
    Ok(())
}

/// Fills in `et` when the request gave none: `lifetime` seconds after `now` (0: left unset).
fn default_expiration(
    attrs: &mut Map<String, Value>,
    now: chrono::DateTime<chrono::Utc>,
    lifetime: u64,
) {
    if lifetime == 0 || attrs.contains_key("et") {
        return;
    }
    if let Some(at) = time::after(now, lifetime) {
        attrs.insert("et".into(), json!(time::format(at)));
    }
}

/// What a CREATE asks for.
pub struct NewResource {
    pub ty: ResourceType,
    pub attrs: Map<String, Value>,
    /// `fr` as sent, for an AE registration.
    pub requested_id: Option<String>,
    /// A resource ID chosen before the write (a subscription's, known to its verification).
    pub ri: Option<String>,
    /// The credential a registration (AE, remoteCSE) is bound to.
    pub credential: Option<String>,
    /// The request's release (`rvi`; none: Release 1).
    pub rvi: Option<String>,
}

pub fn create(
    w: &Writer,
    rules: &Rules,
    originator: &Originator,
    parent: &Base,
    new: NewResource,
    out: &mut Vec<Notice>,
) -> Result<Resource, Error> {
    let NewResource {
        ty,
        mut attrs,
        requested_id,
        ri: preset_ri,
        credential,
        rvi,
    } = new;
    let parent = resolve(w, parent, None, &describe(parent))?;
    if !allowed_child(parent.ty, ty) {
        return Err(Error::new(
            Rsc::INVALID_CHILD_RESOURCE_TYPE,
            format!(
                "a {} cannot be created under a {}",
                ty.root_name(),
                parent.ty.root_name()
            ),
        ));
    }
    if ty == ResourceType::Subscription {
        access::may_subscribe(w, rules, originator, &parent)?;
    } else {
        access::authorize(
            w,
            rules,
            originator,
            Action::Create(ty),
            Object::Resource(&parent),
        )?;
    }
    let acpi = access_control_policy::take_acpi(w, rules, &mut attrs)?;
    if acpi.as_ref().is_some_and(|ris| !ris.is_empty()) {
        access_control_policy::may_name_on_create(w, rules, originator, ty, &parent)?;
    }
    if ty == ResourceType::AccessControlPolicy {
        access_control_policy::room_under(w, &parent)?;
    }
    let originator = originator.id.as_str();
    let (ri, owner) = if ty == ResourceType::Ae {
        let aei = ae::register(w, rules, originator, requested_id.as_deref())?;
        (aei.clone(), aei)
    } else if ty == ResourceType::RemoteCse {
        let csi = remote_cse::register(w, rules, originator)?;
        attrs.insert("csi".into(), json!(csi));
        (csi.trim_start_matches('/').to_string(), csi)
    } else {
        let ri = preset_ri.unwrap_or_else(|| new_id(ty.ri_prefix()));
        (ri, parent.owner.clone())
    };
    let rn = match attrs.remove("rn") {
        Some(Value::String(rn)) => rn,
        _ => ri.clone(),
    };
    check_resource_name(&rn)?;
    // A sibling with the same name makes the insert below fail on the unique index of srn
    // (4105 CONFLICT); no lookup beforehand.
    let srn = format!("{}/{rn}", parent.srn);
    // One reading of the clock for ct, lt and a default et.
    let clock = chrono::Utc::now();
    let now = time::format(clock);
    expiration(&mut attrs, &now)?;
    default_expiration(&mut attrs, clock, rules.default_lifetime_s);
    // A subscription records its subscriber (cr), always: it may see and cancel it, and its
    // notifications stop when it may no longer retrieve what it subscribed to.
    if attrs.contains_key("cr") || ty == ResourceType::Subscription {
        // `cr: null` asks the CSE to record the creator.
        attrs.insert(
            "cr".into(),
            json!(if originator.is_empty() {
                &ri
            } else {
                originator
            }),
        );
    }
    attrs.insert("ty".into(), json!(ty.code()));
    attrs.insert("ri".into(), json!(ri));
    attrs.insert("rn".into(), json!(rn));
    attrs.insert("pi".into(), json!(parent.ri));
    attrs.insert("ct".into(), json!(now));
    attrs.insert("lt".into(), json!(now));
    match ty {
        ResourceType::Ae => ae::init(&mut attrs, &ri, rvi.as_deref())?,
        ResourceType::Container => container::init(&mut attrs),
        ResourceType::ContentInstance => content_instance::init(&parent, &mut attrs, &now)?,
        ResourceType::Subscription => {
            subscription::init(&attrs)?;
            check_child_types(&parent, &attrs)?;
            // TS-0004: the CSE sets nct when the originator does not (1, all attributes).
            attrs.entry("nct").or_insert(json!(1));
        }
        ResourceType::AccessControlPolicy => access_control_policy::check(&attrs, rules)?,
        _ => {}
    }
    let res = Resource {
        ty,
        ri,
        pi: parent.ri.clone(),
        rn,
        srn,
        owner,
        attrs,
    };
    w.insert(&res).map_err(|e| match e {
        StoreError::Conflict(_) => Error::conflict(format!(
            "a resource named '{}' already exists under {}",
            res.rn, parent.srn
        )),
        other => other.into(),
    })?;
    // Who registered it may act as it; `bindings` learns it once this is on disk.
    if let (Some(originator), Some(credential)) = (registered_as(&res), credential) {
        let originator = originator.to_string();
        w.bind(&originator, &credential)?;
        let bindings = rules.bindings.clone();
        w.after_commit(move || bindings.bound(&originator, &credential));
    }
    if let Some(ris) = acpi.filter(|ris| !ris.is_empty()) {
        access_control_policy::acpi_set(w, &rules.policies, &res.srn, ris);
    }
    if ty == ResourceType::AccessControlPolicy {
        access_control_policy::stored(w, rules, &res);
    }
    notify::child_created(w, rules, &parent, &res, out)?;
    if ty == ResourceType::ContentInstance {
        container::instance_added(w, rules, parent, &res, &now, out)?;
    }
    Ok(res)
}

pub fn update(
    w: &Writer,
    rules: &Rules,
    originator: &Originator,
    base: &Base,
    to: &str,
    pc: Value,
    out: &mut Vec<Notice>,
) -> Result<Resource, Error> {
    let target = access::target(w, rules, originator, Action::Update, base, None, to)?;
    if target.ty == ResourceType::ContentInstance {
        return Err(Error::not_allowed("a contentInstance cannot be updated"));
    }
    let mut attrs = content(Some(&pc), target.ty)?;
    // The rest of the CSEBase follows the configuration.
    if target.ty == ResourceType::CseBase {
        if let Some(other) = attrs.keys().find(|k| !matches!(k.as_str(), "acpi" | "lbl")) {
            return Err(Error::not_allowed(format!(
                "only acpi and lbl of the CSEBase can be updated, not {}",
                crate::onem2m::address::shorten(other)
            )));
        }
    }
    attributes::tidy(target.ty, attributes::Op::Update, &mut attrs);
    attributes::validate(target.ty, attributes::Op::Update, &attrs)?;
    let acpi = access_control_policy::take_acpi(w, rules, &mut attrs)?;
    if acpi.as_ref().is_some_and(Vec::is_empty) {
        attrs.insert("acpi".into(), Value::Null);
    }
    let now = time::now();
    expiration(&mut attrs, &now)?;
    if matches!(
        target.ty,
        ResourceType::Subscription | ResourceType::AccessControlPolicy
    ) {
        let mut merged = target.attrs.clone();
        merged.extend(attrs.clone());
        match target.ty {
            ResourceType::Subscription => {
                subscription::init(&merged)?;
                if let Some(parent) = w.get(&target.pi)? {
                    check_child_types(&parent, &merged)?;
                }
            }
            _ => access_control_policy::check(&merged, rules)?,
        }
    }
    // Only a change of what governs decisions reaches the in-memory policies (and ends the
    // group commit): a write that names the same policies again does not.
    let acpi = acpi.filter(|ris| *ris != super::policies::acpi_of(&target));
    let rules_changed = attrs.contains_key("pv") || attrs.contains_key("pvs");
    let mut res = target;
    for (name, value) in &attrs {
        if value.is_null() {
            res.attrs.remove(name);
        } else {
            res.attrs.insert(name.clone(), value.clone());
        }
    }
    res.attrs.insert("lt".into(), json!(now));
    if res.ty == ResourceType::Container {
        container::updated(w, rules, &mut res, &now, out)?;
    }
    w.update(&res)?;
    if let Some(ris) = acpi {
        access_control_policy::acpi_set(w, &rules.policies, &res.srn, ris);
    }
    if res.ty == ResourceType::AccessControlPolicy && rules_changed {
        access_control_policy::stored(w, rules, &res);
    }
    notify::updated(w, rules, &res, &attrs, out)?;
    Ok(res)
}

/// The originator a registration (AE, remoteCSE) lets act: the one it is owned by (an AE owns
/// itself: its `ri` is its AE-ID; a remoteCSE is owned by its CSE-ID).
fn registered_as(res: &Resource) -> Option<&str> {
    matches!(res.ty, ResourceType::Ae | ResourceType::RemoteCse).then_some(res.owner.as_str())
}

/// Deletes a resource with its subtree, keeping the parent container's counters right when it
/// is a content instance. Used by DELETE and by expiry.
pub fn delete(
    w: &Writer,
    rules: &Rules,
    target: &Resource,
    out: &mut Vec<Notice>,
) -> Result<(), Error> {
    notify::deleting(w, rules, target, out)?;
    if let Some(originator) = registered_as(target) {
        let originator = originator.to_string();
        w.unbind(&originator)?;
        let bindings = rules.bindings.clone();
        w.after_commit(move || bindings.unbound(&originator));
    }
    if target.ty == ResourceType::ContentInstance {
        container::instance_removed(w, target)?;
    } else {
        access_control_policy::deleting(w, rules, target)?;
    }
    w.delete_subtree(target)?;
    Ok(())
}

fn describe(base: &Base) -> String {
    match base {
        Base::Structured(s) | Base::Unstructured(s) => s.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_child_rules() {
        use ResourceType::*;
        assert!(allowed_child(CseBase, Ae));
        assert!(allowed_child(Container, ContentInstance));
        assert!(allowed_child(Container, Container));
        assert!(!allowed_child(Ae, Ae));
        assert!(!allowed_child(ContentInstance, Container));
        assert!(!allowed_child(Ae, ContentInstance));
        assert!(!allowed_child(CseBase, ContentInstance));
    }

    #[test]
    fn ids_have_the_type_prefix_differ_and_sort_in_creation_order() {
        let ids: Vec<String> = (0..1000).map(|_| new_id("cin")).collect();
        for id in &ids {
            assert!(id.starts_with("cin") && id.len() == 17, "{id}");
            assert!(id[3..]
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
        }
        for pair in ids.windows(2) {
            assert!(
                pair[0][..14] < pair[1][..14],
                "{} then {}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn content_must_match_the_type() {
        let pc = json!({"m2m:cnt": {"mni": 1}});
        assert_eq!(
            content(Some(&pc), ResourceType::Container).unwrap()["mni"],
            1
        );
        let e = content(Some(&pc), ResourceType::ContentInstance).unwrap_err();
        assert!(e.dbg.contains("m2m:cin"), "{}", e.dbg);
        assert!(content(None, ResourceType::Container).is_err());
        assert!(content(Some(&json!({"m2m:cnt": 1})), ResourceType::Container).is_err());
        assert!(content(
            Some(&json!({"m2m:cnt": {}, "x": {}})),
            ResourceType::Container
        )
        .is_err());
    }

    #[test]
    fn expiration_is_canonical_and_in_the_future() {
        let now = time::now();
        let mut a = Map::new();
        a.insert("et".into(), json!("20991231T235959"));
        expiration(&mut a, &now).unwrap();
        assert_eq!(a["et"], "20991231T235959,000000");
        a.insert("et".into(), json!("20000101T000000"));
        assert!(expiration(&mut a, &now).unwrap_err().dbg.contains("past"));
    }
}
