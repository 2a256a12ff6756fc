//! Response status codes (`rsc`, TS-0004 §6.6) and the error type that carries one.

use std::fmt;

/// A oneM2M response status code. Kept as a closed enum so that every code the
/// CSE can emit is listed here; codes received from peers are read with [`Rsc::from_u16`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Rsc {
    Accepted = 1000,
    Ok = 2000,
    Created = 2001,
    Deleted = 2002,
    Updated = 2004,
    BadRequest = 4000,
    ReleaseVersionNotSupported = 4001,
    NotFound = 4004,
    OperationNotAllowed = 4005,
    RequestTimeout = 4008,
    UnsupportedMediaType = 4015,
    SubscriptionCreatorHasNoPrivilege = 4101,
    ContentsUnacceptable = 4102,
    OriginatorHasNoPrivilege = 4103,
    Conflict = 4105,
    InvalidChildResourceType = 4108,
    OriginatorHasAlreadyRegistered = 4117,
    InternalServerError = 5000,
    NotImplemented = 5001,
    TargetNotReachable = 5103,
    NonBlockingRequestNotSupported = 5206,
    NotAcceptable = 5207,
}

impl Rsc {
    const ALL: [Rsc; 22] = [
        Rsc::Accepted,
        Rsc::Ok,
        Rsc::Created,
        Rsc::Deleted,
        Rsc::Updated,
        Rsc::BadRequest,
        Rsc::ReleaseVersionNotSupported,
        Rsc::NotFound,
        Rsc::OperationNotAllowed,
        Rsc::RequestTimeout,
        Rsc::UnsupportedMediaType,
        Rsc::SubscriptionCreatorHasNoPrivilege,
        Rsc::ContentsUnacceptable,
        Rsc::OriginatorHasNoPrivilege,
        Rsc::Conflict,
        Rsc::InvalidChildResourceType,
        Rsc::OriginatorHasAlreadyRegistered,
        Rsc::InternalServerError,
        Rsc::NotImplemented,
        Rsc::TargetNotReachable,
        Rsc::NonBlockingRequestNotSupported,
        Rsc::NotAcceptable,
    ];

    pub fn code(self) -> u16 {
        self as u16
    }

    pub fn from_u16(code: u16) -> Option<Rsc> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// Clients treat every code from 4000 on as an error (OpenMTC's ERROR_MIN).
    pub fn is_error(self) -> bool {
        self.code() >= 4000
    }
}

impl fmt::Display for Rsc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?})", self.code(), self)
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
        Self::new(Rsc::BadRequest, dbg)
    }
    pub fn not_found(dbg: impl Into<String>) -> Self {
        Self::new(Rsc::NotFound, dbg)
    }
    pub fn not_allowed(dbg: impl Into<String>) -> Self {
        Self::new(Rsc::OperationNotAllowed, dbg)
    }
    pub fn conflict(dbg: impl Into<String>) -> Self {
        Self::new(Rsc::Conflict, dbg)
    }
    pub fn no_privilege(dbg: impl Into<String>) -> Self {
        Self::new(Rsc::OriginatorHasNoPrivilege, dbg)
    }
    pub fn internal(dbg: impl Into<String>) -> Self {
        Self::new(Rsc::InternalServerError, dbg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for rsc in Rsc::ALL {
            assert_eq!(Rsc::from_u16(rsc.code()), Some(rsc));
        }
        assert_eq!(Rsc::from_u16(4999), None);
    }

    #[test]
    fn errors_start_at_4000() {
        assert!(!Rsc::Updated.is_error());
        assert!(Rsc::BadRequest.is_error());
        assert!(Rsc::TargetNotReachable.is_error());
    }

    #[test]
    fn display_names_code_and_meaning() {
        assert_eq!(Rsc::NotFound.to_string(), "4004 (NotFound)");
        let e = Error::not_found("no resource 'x'");
        assert_eq!(e.to_string(), "4004 (NotFound): no resource 'x'");
    }
}
