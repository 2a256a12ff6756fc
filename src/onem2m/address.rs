//! Addressing (TS-0001 §9.3.1, digest §5.4): the forms of `to` and of originator IDs, read
//! into a target without touching the store.

use super::rsc::Error;

/// Who this CSE is, as far as addressing cares.
#[derive(Debug, Clone)]
pub struct CseIdentity {
    /// CSE-ID with its leading slash, e.g. `/id-in`.
    pub csi: String,
    /// CSEBase resource name, e.g. `cse-in`.
    pub rn: String,
    /// Service provider ID without slashes, e.g. `m2mhub.example`.
    pub sp_id: String,
}

impl CseIdentity {
    /// The CSE-ID without its slash, as it appears in MQTT topics and as the CSEBase `ri`.
    pub fn id(&self) -> &str {
        self.csi.trim_start_matches('/')
    }
}

/// A virtual child resource of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Virtual {
    /// `la`: the latest content instance.
    Latest,
    /// `ol`: the oldest content instance.
    Oldest,
}

impl Virtual {
    fn from_segment(s: &str) -> Option<Virtual> {
        match s {
            "la" => Some(Virtual::Latest),
            "ol" => Some(Virtual::Oldest),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// A structured name starting with the CSEBase name, e.g. `cse-in/ae1/cnt1`.
    Structured(String),
    /// A resource ID.
    Unstructured(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A resource on this CSE, possibly one of its virtual children.
    Local { base: Base, virt: Option<Virtual> },
    /// A resource on another CSE, named by that CSE's ID (SP-relative, e.g. `/id-mn`).
    Remote { csi: String },
}

/// Longest `to` accepted, in bytes. A structured address is a path of resource names; real ones
/// are a few hundred bytes at most. Longer input is refused before it is looked at.
pub const MAX_ADDRESS_LEN: usize = 4096;

/// The error for an address or ID (`to`, `fr`) longer than [`MAX_ADDRESS_LEN`], if it is.
pub fn too_long(name: &str, value: &str) -> Option<Error> {
    (value.len() > MAX_ADDRESS_LEN).then(|| {
        Error::bad_request(format!(
            "{name} is {} bytes long; at most {MAX_ADDRESS_LEN} are accepted",
            value.len()
        ))
    })
}

/// Reads a `to` parameter. Accepted forms: CSE-relative structured (`cse-in/ae/cnt`, `-/ae/cnt`),
/// CSE-relative unstructured (`cnt123`, `cnt123/la`), SP-relative (`/id-in/...`) and absolute
/// (`//sp/id-in/...`). A trailing `la` or `ol` names a virtual resource.
///
/// One pass over the input, without recursion: an absolute address is brought to SP-relative
/// form once, and what follows the SP-ID must be a CSE-ID (`//sp//sp/...` is not an address).
pub fn parse_target(to: &str, me: &CseIdentity) -> Result<Target, Error> {
    if let Some(e) = too_long("the target address (to)", to) {
        return Err(e);
    }
    let invalid = || Error::bad_request(format!("'{}' is not a valid address", shorten(to)));
    let sp_relative = if let Some(abs) = to.strip_prefix("//") {
        let (sp, rest) = abs.split_once('/').unwrap_or((abs, ""));
        if sp != me.sp_id {
            return Ok(Target::Remote {
                csi: format!("//{sp}/{}", rest.split('/').next().unwrap_or("")),
            });
        }
        Some(rest)
    } else {
        to.strip_prefix('/')
    };
    let cse_relative = match sp_relative {
        None => to,
        Some(sp_rel) => {
            let (csi, rest) = sp_rel.split_once('/').unwrap_or((sp_rel, ""));
            if csi.is_empty() {
                return Err(invalid());
            }
            if csi != me.id() {
                return Ok(Target::Remote {
                    csi: format!("/{csi}"),
                });
            }
            if rest.is_empty() {
                return Ok(Target::Local {
                    base: Base::Structured(me.rn.clone()),
                    virt: None,
                });
            }
            rest
        }
    };

    let mut segs: Vec<&str> = cse_relative.trim_end_matches('/').split('/').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err(invalid());
    }
    if segs[0] == "-" {
        segs[0] = &me.rn;
    }
    let virt = if segs.len() >= 2 {
        segs.last().and_then(|s| Virtual::from_segment(s))
    } else {
        None
    };
    if virt.is_some() {
        segs.pop();
    }
    if segs[0] == me.rn {
        return Ok(Target::Local {
            base: Base::Structured(segs.join("/")),
            virt,
        });
    }
    if segs.len() == 1 {
        return Ok(Target::Local {
            base: Base::Unstructured(segs[0].to_string()),
            virt,
        });
    }
    Err(Error::not_found(format!(
        "'{}' is neither a structured address (starting with '{}' or '-') nor a resource ID",
        shorten(to),
        me.rn
    )))
}

/// At most the first 100 characters of client input, for an error message.
pub fn shorten(s: &str) -> std::borrow::Cow<'_, str> {
    const SHOWN: usize = 100;
    match s.char_indices().nth(SHOWN) {
        None => s.into(),
        Some((end, _)) => format!("{}…", &s[..end]).into(),
    }
}

/// [`originator_to_local`], after bringing an absolute ID of our own service provider to
/// SP-relative form: `//sp/id-in/Cabc` → `Cabc`, `//sp/id-mn` → `/id-mn`.
pub fn local_originator(fr: &str, me: &CseIdentity) -> String {
    let sp_relative = fr
        .strip_prefix("//")
        .and_then(|abs| abs.strip_prefix(me.sp_id.as_str()))
        .filter(|rest| rest.starts_with('/'));
    originator_to_local(sp_relative.unwrap_or(fr), me)
}

/// Brings an originator ID to the CSE-relative form this CSE stores: `/id-in/Cabc` → `Cabc`.
/// IDs of other CSEs or in other forms are returned unchanged.
pub fn originator_to_local(fr: &str, me: &CseIdentity) -> String {
    fr.strip_prefix(me.csi.as_str())
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|rest| !rest.is_empty())
        .unwrap_or(fr)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> CseIdentity {
        CseIdentity {
            csi: "/id-in".into(),
            rn: "cse-in".into(),
            sp_id: "m2mhub.example".into(),
        }
    }

    fn local(base: Base, virt: Option<Virtual>) -> Target {
        Target::Local { base, virt }
    }

    fn s(x: &str) -> Base {
        Base::Structured(x.into())
    }

    fn u(x: &str) -> Base {
        Base::Unstructured(x.into())
    }

    #[test]
    fn cse_relative_forms() {
        let me = me();
        assert_eq!(
            parse_target("cse-in", &me).unwrap(),
            local(s("cse-in"), None)
        );
        assert_eq!(parse_target("-", &me).unwrap(), local(s("cse-in"), None));
        assert_eq!(
            parse_target("cse-in/ae/cnt", &me).unwrap(),
            local(s("cse-in/ae/cnt"), None)
        );
        assert_eq!(
            parse_target("-/ae/cnt/", &me).unwrap(),
            local(s("cse-in/ae/cnt"), None)
        );
        assert_eq!(
            parse_target("cnt123", &me).unwrap(),
            local(u("cnt123"), None)
        );
        assert_eq!(parse_target("id-in", &me).unwrap(), local(u("id-in"), None));
    }

    #[test]
    fn virtual_children() {
        let me = me();
        assert_eq!(
            parse_target("cse-in/ae/cnt/la", &me).unwrap(),
            local(s("cse-in/ae/cnt"), Some(Virtual::Latest))
        );
        assert_eq!(
            parse_target("cnt123/ol", &me).unwrap(),
            local(u("cnt123"), Some(Virtual::Oldest))
        );
        // A lone "la" is a resource ID, not a virtual resource of nothing.
        assert_eq!(parse_target("la", &me).unwrap(), local(u("la"), None));
    }

    #[test]
    fn sp_relative_and_absolute_forms() {
        let me = me();
        assert_eq!(
            parse_target("/id-in", &me).unwrap(),
            local(s("cse-in"), None)
        );
        assert_eq!(
            parse_target("/id-in/cnt9", &me).unwrap(),
            local(u("cnt9"), None)
        );
        assert_eq!(
            parse_target("/id-in/cse-in/a/la", &me).unwrap(),
            local(s("cse-in/a"), Some(Virtual::Latest))
        );
        assert_eq!(
            parse_target("/id-in/-/a", &me).unwrap(),
            local(s("cse-in/a"), None)
        );
        assert_eq!(
            parse_target("//m2mhub.example/id-in/cse-in/a", &me).unwrap(),
            local(s("cse-in/a"), None)
        );
    }

    #[test]
    fn other_cses_are_remote() {
        let me = me();
        assert_eq!(
            parse_target("/id-mn/cse-mn/ae", &me).unwrap(),
            Target::Remote {
                csi: "/id-mn".into()
            }
        );
        assert_eq!(
            parse_target("//other.sp/id-x/cb", &me).unwrap(),
            Target::Remote {
                csi: "//other.sp/id-x".into()
            }
        );
    }

    #[test]
    fn malformed_addresses() {
        let me = me();
        assert_eq!(
            parse_target("cse-in//x", &me).unwrap_err().rsc,
            super::super::Rsc::BAD_REQUEST
        );
        assert_eq!(
            parse_target("/", &me).unwrap_err().rsc,
            super::super::Rsc::BAD_REQUEST
        );
        assert_eq!(
            parse_target("abc/def", &me).unwrap_err().rsc,
            super::super::Rsc::NOT_FOUND
        );
    }

    #[test]
    fn absolute_prefixes_do_not_repeat() {
        let me = me();
        for bad in [
            "//m2mhub.example",
            "//m2mhub.example/",
            "//m2mhub.example//id-in",
        ] {
            assert_eq!(
                parse_target(bad, &me).unwrap_err().rsc,
                super::super::Rsc::BAD_REQUEST,
                "{bad}"
            );
        }
        // What once recursed once per prefix: refused in one pass, whatever its length.
        let stacked = "//m2mhub.example".repeat(200);
        assert_eq!(
            parse_target(&stacked, &me).unwrap_err().rsc,
            super::super::Rsc::BAD_REQUEST
        );
        let huge = "//m2mhub.example".repeat(8_000);
        let e = parse_target(&huge, &me).unwrap_err();
        assert_eq!(e.rsc, super::super::Rsc::BAD_REQUEST);
        assert!(e.dbg.contains("at most 4096"), "{}", e.dbg);
        assert!(e.dbg.len() < 200, "the message does not echo the input");
    }

    #[test]
    fn long_input_is_shortened_in_messages() {
        assert_eq!(shorten("abc"), "abc");
        let long = "é".repeat(300);
        let short = shorten(&long);
        assert_eq!(short.chars().count(), 101);
        assert!(short.ends_with('…'));
    }

    #[test]
    fn originators_are_made_cse_relative() {
        let me = me();
        assert_eq!(originator_to_local("/id-in/Cabc", &me), "Cabc");
        assert_eq!(originator_to_local("Cabc", &me), "Cabc");
        assert_eq!(originator_to_local("/id-mn/Cabc", &me), "/id-mn/Cabc");
        assert_eq!(originator_to_local("/id-in", &me), "/id-in");
        assert_eq!(originator_to_local("/id-inx/C", &me), "/id-inx/C");
    }
}
