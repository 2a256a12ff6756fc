//! Response status codes (`rsc`, TS-0004 §6.6) and the error type that carries one.

use std::fmt;

/// A oneM2M response status code. Open: a code received from a peer that this CSE never
/// emits is still a value; the constants name the ones m2mhub uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rsc(pub u16);

macro_rules! codes {
    ($($name:ident = $code:literal),* $(,)?) => {
        impl Rsc {
            $(pub const $name: Rsc = Rsc($code);)*
            const NAMED: &'static [(Rsc, &'static str)] = &[$((Rsc($code), stringify!($name))),*];
        }
    };
}

codes! {
    ACCEPTED = 1000,
    OK = 2000,
    CREATED = 2001,
    DELETED = 2002,
    UPDATED = 2004,
    BAD_REQUEST = 4000,
    RELEASE_VERSION_NOT_SUPPORTED = 4001,
    NOT_FOUND = 4004,
    OPERATION_NOT_ALLOWED = 4005,
    REQUEST_TIMEOUT = 4008,
    UNSUPPORTED_MEDIA_TYPE = 4015,
    SUBSCRIPTION_CREATOR_HAS_NO_PRIVILEGE = 4101,
    CONTENTS_UNACCEPTABLE = 4102,
    ORIGINATOR_HAS_NO_PRIVILEGE = 4103,
    CONFLICT = 4105,
    INVALID_CHILD_RESOURCE_TYPE = 4108,
    ORIGINATOR_HAS_ALREADY_REGISTERED = 4117,
    INTERNAL_SERVER_ERROR = 5000,
    NOT_IMPLEMENTED = 5001,
    TARGET_NOT_REACHABLE = 5103,
    SUBSCRIPTION_VERIFICATION_INITIATION_FAILED = 5204,
    NON_BLOCKING_REQUEST_NOT_SUPPORTED = 5206,
    NOT_ACCEPTABLE = 5207,
}

impl Rsc {
    pub fn code(self) -> u16 {
        self.0
    }

    /// Clients treat every code from 4000 on as an error (OpenMTC's ERROR_MIN).
    pub fn is_error(self) -> bool {
        self.0 >= 4000
    }

    /// The constant's name for codes this crate knows.
    pub fn name(self) -> Option<&'static str> {
        Self::NAMED.iter().find(|(r, _)| *r == self).map(|(_, n)| *n)
    }
}

impl fmt::Display for Rsc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{} ({name})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// A failed request: the status code to answer with and the human-readable text that goes into
/// the response as `pc: {"m2m:dbg": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rsc}: {dbg}")]
pub struct Error {
    pub rsc: Rsc,
    pub dbg: String,
}

impl Error {
    pub fn new(rsc: Rsc, dbg: impl Into<String>) -> Self {
        Error {
            rsc,
            dbg: dbg.into(),
        }
    }
    pub fn bad_request(dbg: impl Into<String>) -> Self {
        Self::new(Rsc::BAD_REQUEST, dbg)
    }
    pub fn not_found(dbg: impl Into<String>) -> Self {
        Self::new(Rsc::NOT_FOUND, dbg)
    }
    pub fn not_allowed(dbg: impl Into<String>) -> Self {
        Self::new(Rsc::OPERATION_NOT_ALLOWED, dbg)
    }
    pub fn conflict(dbg: impl Into<String>) -> Self {
        Self::new(Rsc::CONFLICT, dbg)
    }
    pub fn no_privilege(dbg: impl Into<String>) -> Self {
        Self::new(Rsc::ORIGINATOR_HAS_NO_PRIVILEGE, dbg)
    }
    pub fn internal(dbg: impl Into<String>) -> Self {
        Self::new(Rsc::INTERNAL_SERVER_ERROR, dbg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_codes_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for (rsc, name) in Rsc::NAMED {
            assert!(seen.insert(rsc.0), "{name} repeats {}", rsc.0);
            assert_eq!(rsc.name(), Some(*name));
        }
        assert_eq!(Rsc(4999).name(), None);
    }

    #[test]
    fn errors_start_at_4000() {
        assert!(!Rsc::UPDATED.is_error());
        assert!(!Rsc(3999).is_error());
        assert!(Rsc::BAD_REQUEST.is_error());
        assert!(Rsc::TARGET_NOT_REACHABLE.is_error());
        assert!(Rsc(6010).is_error());
    }

    #[test]
    fn display_names_code_and_meaning() {
        assert_eq!(Rsc::NOT_FOUND.to_string(), "4004 (NOT_FOUND)");
        assert_eq!(Rsc(4999).to_string(), "4999");
        let e = Error::not_found("no resource 'x'");
        assert_eq!(e.to_string(), "4004 (NOT_FOUND): no resource 'x'");
    }
}
