//! Password files in Mosquitto's format, so that operators keep `mosquitto_passwd`: one
//! `user:hash` line per credential, the hash either `$7$<iterations>$<salt>$<key>` (PBKDF2 with
//! HMAC-SHA512, what `mosquitto_passwd` writes since 2.0) or `$6$<salt>$<hash>` (SHA-512 of the
//! password then the salt, its older format). Salts and hashes are standard base64.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest, Sha512};
use std::collections::HashMap;
use std::path::Path;
use subtle::ConstantTimeEq;

/// PBKDF2 iterations for new entries: what `mosquitto_passwd` 2.0 uses.
const ITERATIONS: u32 = 101;
const SALT_LEN: usize = 12;
const KEY_LEN: usize = 64;

/// One stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hash {
    Pbkdf2 {
        iterations: u32,
        salt: Vec<u8>,
        key: Vec<u8>,
    },
    Sha512 {
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
}

impl Hash {
    fn parse(s: &str) -> Option<Hash> {
        let parts: Vec<&str> = s.split('$').collect();
        match parts.as_slice() {
            ["", "7", iterations, salt, key] => Some(Hash::Pbkdf2 {
                iterations: iterations.parse().ok().filter(|n| *n > 0)?,
                salt: B64.decode(salt).ok()?,
                key: B64.decode(key).ok()?,
            }),
            ["", "6", salt, hash] => Some(Hash::Sha512 {
                salt: B64.decode(salt).ok()?,
                hash: B64.decode(hash).ok()?,
            }),
            _ => None,
        }
    }

    fn new(password: &str) -> Hash {
        let salt: [u8; SALT_LEN] = rand::random();
        let mut key = vec![0u8; KEY_LEN];
        pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), &salt, ITERATIONS, &mut key);
        Hash::Pbkdf2 {
            iterations: ITERATIONS,
            salt: salt.to_vec(),
            key,
        }
    }

    fn matches(&self, password: &str) -> bool {
        match self {
            Hash::Pbkdf2 {
                iterations,
                salt,
                key,
            } => {
                let mut got = vec![0u8; key.len()];
                pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, *iterations, &mut got);
                got.ct_eq(key).into()
            }
            Hash::Sha512 { salt, hash } => {
                let mut h = Sha512::new();
                h.update(password.as_bytes());
                h.update(salt);
                h.finalize().as_slice().ct_eq(hash).into()
            }
        }
    }

    fn encode(&self) -> String {
        match self {
            Hash::Pbkdf2 {
                iterations,
                salt,
                key,
            } => format!("$7${iterations}${}${}", B64.encode(salt), B64.encode(key)),
            Hash::Sha512 { salt, hash } => format!("$6${}${}", B64.encode(salt), B64.encode(hash)),
        }
    }
}

/// The credentials of a password file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Passwords {
    users: HashMap<String, Hash>,
    /// The file's users in their order, for writing it back.
    order: Vec<String>,
}

impl Passwords {
    /// Reads a password file's text. Blank lines and `#` comments are skipped; a malformed
    /// line is an error naming its number (never its content: it holds a hash).
    pub fn parse(text: &str) -> Result<Passwords, String> {
        let mut p = Passwords::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| format!("line {}: not user:hash", n + 1))?;
            let hash = Hash::parse(hash).ok_or_else(|| {
                format!(
                    "line {}: the hash of '{user}' is neither $7$ (PBKDF2-SHA512) nor $6$ (SHA-512)",
                    n + 1
                )
            })?;
            if user.is_empty() {
                return Err(format!("line {}: empty user name", n + 1));
            }
            if p.users.insert(user.to_string(), hash).is_none() {
                p.order.push(user.to_string());
            }
        }
        Ok(p)
    }

    /// Reads a password file.
    pub fn load(path: &Path) -> Result<Passwords, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the password file {}: {e}", path.display()))?;
        Passwords::parse(&text).map_err(|e| format!("password file {}: {e}", path.display()))
    }

    /// Whether `user` exists and `password` is theirs.
    pub fn check(&self, user: &str, password: &str) -> bool {
        self.users.get(user).is_some_and(|h| h.matches(password))
    }

    pub fn contains(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// Adds `user`, or gives them a new password (always stored as `$7$`).
    pub fn set(&mut self, user: &str, password: &str) -> Result<(), String> {
        if user.is_empty() || user.contains([':', '\n', '\r']) {
            return Err("a user name must not be empty or contain ':' or line breaks".into());
        }
        if self
            .users
            .insert(user.to_string(), Hash::new(password))
            .is_none()
        {
            self.order.push(user.to_string());
        }
        Ok(())
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        self.order
            .iter()
            .map(|u| format!("{u}:{}\n", self.users[u].encode()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by `mosquitto_passwd -c -b pw alice secret` and `-H sha512 ... bob hunter2`.
    const MOSQUITTO: &str = "alice:$7$101$9Vt26ImDw9W+qkEs$GuhxvMjqmZvwhNCLduhp1cF7BEloIpSo4GH6H7IibYfdRHV+ISpzHqW0f3qrRcC9hPSjwDj1dAMGEop7dbZv1g==\n\
bob:$6$C+dcfvB0Wj8UI5Po$X5sY/FCsu1IScXzr9QEbIsVcGqi9Vo6g+V4PXnKA76EN9EwVDVvKgKH37kZUMdvCR188XdcJEdktfhCCkLESKQ==\n";

    #[test]
    fn reads_what_mosquitto_passwd_writes() {
        let p = Passwords::parse(MOSQUITTO).unwrap();
        assert!(p.check("alice", "secret"));
        assert!(p.check("bob", "hunter2"));
        assert!(!p.check("alice", "hunter2"));
        assert!(!p.check("bob", "secret"));
        assert!(!p.check("carol", "secret"));
        assert!(!p.check("alice", ""));
    }

    #[test]
    fn new_entries_are_pbkdf2_and_round_trip() {
        let mut p = Passwords::parse(MOSQUITTO).unwrap();
        p.set("carol", "s3cret").unwrap();
        p.set("bob", "changed").unwrap();
        let text = p.to_text();
        assert!(text.starts_with("alice:$7$101$9Vt26ImDw9W+qkEs$"), "{text}");
        assert!(text.contains("\ncarol:$7$101$"), "{text}");
        let back = Passwords::parse(&text).unwrap();
        assert!(back.check("carol", "s3cret"));
        assert!(back.check("bob", "changed"));
        assert!(!back.check("bob", "hunter2"));
        assert!(back.check("alice", "secret"));
        assert!(p.set("a:b", "x").is_err());
    }

    #[test]
    fn malformed_lines_are_named_without_their_content() {
        let e = Passwords::parse("# comment\n\nalice:$5$x$y\n").unwrap_err();
        assert!(e.contains("line 3") && e.contains("alice"), "{e}");
        assert!(!e.contains("$5$"), "{e}");
        assert!(Passwords::parse("nocolon\n")
            .unwrap_err()
            .contains("line 1"));
        assert!(
            Passwords::parse("u:$7$0$AA==$AA==\n").is_err(),
            "0 iterations"
        );
    }
}
