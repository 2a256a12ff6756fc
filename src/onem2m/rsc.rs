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
    ORIGINATOR_NOT_AUTHENTICATED = 4106,
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

    /// The HTTP status that carries this code (TS-0009 §6.3, as ACME maps it; OpenMTC agrees
    /// where both have the code). Clients should read `X-M2M-RSC`, not the status.
    pub fn http_status(self) -> u16 {
        match self.0 {
            1000..=1999 => 202,
            2001 => 201,
            2000..=2999 => 200,
            4001 => 501,
            // Credentials missing or wrong: HTTP's own answer, so that clients send them.
            4106 => 401,
            4004 => 404,
            4005 => 405,
            4008 => 504,
            4015 => 415,
            4101 | 4103 | 4107 | 4108 | 4117 | 4126 | 4127 | 4128 => 403,
            4104 | 4105 => 409,
            5001 | 5206 => 501,
            5103 | 5107 => 404,
            5105 | 5203 | 5205 => 403,
            5106 => 409,
            5207 => 406,
            4000..=4999 | 6000..=6999 => 400,
            _ => 500,
        }
    }

    /// The constant's name for codes this crate knows.
    pub fn name(self) -> Option<&'static str> {
        Self::NAMED
            .iter()
            .find(|(r, _)| *r == self)
            .map(|(_, n)| *n)
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

/// The longest `dbg` text, in characters. Texts quote a client's input shortened already
/// ([`crate::onem2m::address::shorten`]); this bounds what any text can echo, wherever it
/// was made.
pub const MAX_DBG_CHARS: usize = 600;

impl Error {
    pub fn new(rsc: Rsc, dbg: impl Into<String>) -> Self {
        let mut dbg = dbg.into();
        if let Some((cut, _)) = dbg.char_indices().nth(MAX_DBG_CHARS) {
            dbg.truncate(cut);
            dbg.push('…');
        }
        Error { rsc, dbg }
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
    fn a_dbg_text_is_cut_at_a_character_boundary() {
        let e = Error::bad_request(format!("'{}'", "é".repeat(5000)));
        assert_eq!(e.dbg.chars().count(), MAX_DBG_CHARS + 1);
        assert!(e.dbg.ends_with('…'));
        assert_eq!(Error::bad_request("short").dbg, "short");
    }

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
    fn http_statuses_follow_ts_0009() {
        for (rsc, status) in [
            (Rsc::ACCEPTED, 202),
            (Rsc::OK, 200),
            (Rsc::CREATED, 201),
            (Rsc::DELETED, 200),
            (Rsc::UPDATED, 200),
            (Rsc::BAD_REQUEST, 400),
            (Rsc::RELEASE_VERSION_NOT_SUPPORTED, 501),
            (Rsc::NOT_FOUND, 404),
            (Rsc::OPERATION_NOT_ALLOWED, 405),
            (Rsc::REQUEST_TIMEOUT, 504),
            (Rsc::UNSUPPORTED_MEDIA_TYPE, 415),
            (Rsc::CONTENTS_UNACCEPTABLE, 400),
            (Rsc::ORIGINATOR_HAS_NO_PRIVILEGE, 403),
            (Rsc::CONFLICT, 409),
            (Rsc::INVALID_CHILD_RESOURCE_TYPE, 403),
            (Rsc::INTERNAL_SERVER_ERROR, 500),
            (Rsc::NOT_IMPLEMENTED, 501),
            (Rsc::TARGET_NOT_REACHABLE, 404),
            (Rsc::SUBSCRIPTION_VERIFICATION_INITIATION_FAILED, 500),
            (Rsc::NOT_ACCEPTABLE, 406),
            (Rsc(6010), 400),
        ] {
            assert_eq!(rsc.http_status(), status, "{rsc}");
        }
    }

    #[test]
    fn display_names_code_and_meaning() {
        assert_eq!(Rsc::NOT_FOUND.to_string(), "4004 (NOT_FOUND)");
        assert_eq!(Rsc(4999).to_string(), "4999");
        let e = Error::not_found("no resource 'x'");
        assert_eq!(e.to_string(), "4004 (NOT_FOUND): no resource 'x'");
    }
}
