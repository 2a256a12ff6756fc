//! Who a client is: authentication for both bindings. A client proves a credential with a
//! password from the password file, or with a TLS client certificate signed by the site CA
//! (its subject CN is the credential); without either, `security.anonymous` decides.
//!
//! What an identity may then do is decided elsewhere: the CSE knows which originators a
//! credential may act as ([`crate::cse::Bindings`]), and the MQTT binding which topics follow
//! from that.

pub mod acl;
pub mod passwords;

use crate::config::{Anonymous, SecurityConfig};
use crate::sync::lock;
use acl::Acl;
use passwords::Passwords;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Who a client is, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// An anonymous client on this machine: trusted like the machine's own tools, it may act
    /// as any originator, the admin included.
    Local,
    /// An anonymous client from the network (`anonymous = "everyone"`): it may act as any
    /// originator but the admin.
    Anonymous,
    /// A credential proved with a password or a client certificate.
    Credential(String),
}

impl Identity {
    pub fn credential(&self) -> Option<&str> {
        match self {
            Identity::Credential(c) => Some(c),
            _ => None,
        }
    }
}

/// Why a client was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Credentials that do not match (or none where they are needed).
    BadCredentials,
    /// No credentials, and anonymous clients from there are not accepted.
    AnonymousNotAllowed,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refused::BadCredentials => "wrong user name or password",
            Refused::AnonymousNotAllowed => "credentials are required",
        })
    }
}

/// The files behind authentication, re-read on demand (SIGHUP).
struct Files {
    passwords: Arc<Passwords>,
    acl: Option<Arc<Acl>>,
}

/// Authentication as the configuration says.
pub struct Authenticator {
    anonymous: Anonymous,
    password_file: Option<PathBuf>,
    acl_file: Option<PathBuf>,
    files: Mutex<Files>,
}

impl Authenticator {
    /// Reads the password and ACL files; a file that cannot be read or parsed is an error.
    pub fn new(config: &SecurityConfig) -> Result<Authenticator, String> {
        let a = Authenticator {
            anonymous: config.anonymous,
            password_file: config.password_file.clone(),
            acl_file: config.acl_file.clone(),
            files: Mutex::new(Files {
                passwords: Arc::default(),
                acl: None,
            }),
        };
        a.reload()?;
        Ok(a)
    }

    /// Reads the files again. On an error the files in use stay as they were.
    pub fn reload(&self) -> Result<(), String> {
        let passwords = match &self.password_file {
            Some(path) => Passwords::load(path)?,
            None => Passwords::default(),
        };
        let acl = match &self.acl_file {
            Some(path) => Some(Arc::new(Acl::load(path)?)),
            None => None,
        };
        *lock(&self.files) = Files {
            passwords: Arc::new(passwords),
            acl,
        };
        Ok(())
    }

    /// Decides who a client is: a verified certificate's CN wins; else a user name and
    /// password, which must match; else `anonymous` decides by where the client is.
    pub fn authenticate(
        &self,
        peer: Option<IpAddr>,
        certificate_cn: Option<&str>,
        login: Option<(&str, &str)>,
    ) -> Result<Identity, Refused> {
        if let Some(cn) = certificate_cn.filter(|cn| !cn.is_empty()) {
            return Ok(Identity::Credential(cn.to_string()));
        }
        if let Some((user, password)) = login.filter(|(user, _)| !user.is_empty()) {
            let passwords = lock(&self.files).passwords.clone();
            return if passwords.check(user, password) {
                Ok(Identity::Credential(user.to_string()))
            } else {
                Err(Refused::BadCredentials)
            };
        }
        // `to_canonical`: `::ffff:127.0.0.1` is an IPv4 loopback client on a dual-stack listener.
        let local = peer.is_some_and(|ip| ip.to_canonical().is_loopback());
        match (self.anonymous, local) {
            (Anonymous::Loopback | Anonymous::Everyone, true) => Ok(Identity::Local),
            (Anonymous::Everyone, false) => Ok(Identity::Anonymous),
            _ => Err(Refused::AnonymousNotAllowed),
        }
    }

    /// Whether `name` is a user of the password file: an AE-ID of that name is reserved for
    /// that credential.
    pub fn is_user(&self, name: &str) -> bool {
        lock(&self.files).passwords.contains(name)
    }

    /// The ACL file's rules for topics outside oneM2M, if there is one.
    pub fn acl(&self) -> Option<Arc<Acl>> {
        lock(&self.files).acl.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(anonymous: Anonymous, passwords: &str) -> Authenticator {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        let mut p = Passwords::default();
        if !passwords.is_empty() {
            let (u, pw) = passwords.split_once(':').unwrap();
            p.set(u, pw).unwrap();
        }
        std::fs::write(&file, p.to_text()).unwrap();
        let a = Authenticator::new(&SecurityConfig {
            anonymous,
            password_file: Some(file),
            ..SecurityConfig::default()
        })
        .unwrap();
        // The files are read; the directory may go.
        drop(dir);
        a
    }

    const LOCAL: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    const REMOTE: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7)));

    #[test]
    fn anonymous_clients_by_where_they_are() {
        let a = auth(Anonymous::Loopback, "");
        assert_eq!(a.authenticate(LOCAL, None, None), Ok(Identity::Local));
        let mapped = Some("::ffff:127.0.0.1".parse().unwrap());
        assert_eq!(a.authenticate(mapped, None, None), Ok(Identity::Local));
        assert_eq!(
            a.authenticate(REMOTE, None, None),
            Err(Refused::AnonymousNotAllowed)
        );
        assert_eq!(
            a.authenticate(None, None, None),
            Err(Refused::AnonymousNotAllowed)
        );
        let a = auth(Anonymous::Everyone, "");
        assert_eq!(a.authenticate(REMOTE, None, None), Ok(Identity::Anonymous));
        let a = auth(Anonymous::Nobody, "");
        assert_eq!(
            a.authenticate(LOCAL, None, None),
            Err(Refused::AnonymousNotAllowed)
        );
    }

    #[test]
    fn credentials_must_match_wherever_the_client_is() {
        let a = auth(Anonymous::Loopback, "alice:secret");
        let ok = Ok(Identity::Credential("alice".into()));
        assert_eq!(a.authenticate(REMOTE, None, Some(("alice", "secret"))), ok);
        assert_eq!(
            a.authenticate(LOCAL, None, Some(("alice", "wrong"))),
            Err(Refused::BadCredentials),
            "a wrong password is refused even where anonymous clients are welcome"
        );
        assert_eq!(
            a.authenticate(REMOTE, None, Some(("mallory", "secret"))),
            Err(Refused::BadCredentials)
        );
        assert_eq!(
            a.authenticate(REMOTE, Some("Cdevice"), None),
            Ok(Identity::Credential("Cdevice".into())),
            "a verified certificate's CN is a credential"
        );
        assert!(a.is_user("alice") && !a.is_user("bob"));
    }
}
