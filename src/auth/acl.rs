//! Access to topics outside oneM2M, in Mosquitto's `acl_file` format:
//!
//! ```text
//! topic read public/#          # before any `user` line: anonymous clients
//! user alice
//! topic readwrite factory/#
//! pattern write devices/%u/#   # every user; %u is the user name, %c the client ID
//! ```
//!
//! Access is `read`, `write`, `readwrite` (the default) or `deny`. With a file, what it does not
//! grant is refused, and `deny` wins over any grant, as in Mosquitto 2. Mosquitto checks read
//! access per delivered message; here it is decided at SUBSCRIBE, so a filter that could reach
//! a denied topic is refused whole.

use std::borrow::Cow;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    ReadWrite,
    Deny,
}

impl Access {
    fn reads(self) -> bool {
        matches!(self, Access::Read | Access::ReadWrite)
    }
    fn writes(self) -> bool {
        matches!(self, Access::Write | Access::ReadWrite)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    access: Access,
    filter: String,
}

/// The rules of an ACL file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    anonymous: Vec<Rule>,
    users: Vec<(String, Vec<Rule>)>,
    patterns: Vec<Rule>,
}

/// Who asks: a user name (a password or certificate credential), or none.
pub struct Asker<'a> {
    pub user: Option<&'a str>,
    pub client_id: &'a str,
}

impl Acl {
    pub fn parse(text: &str) -> Result<Acl, String> {
        let mut acl = Acl::default();
        let mut user: Option<usize> = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| format!("line {}: {why}", n + 1);
            let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let rest = rest.trim();
            match word {
                "user" => {
                    if rest.is_empty() {
                        return Err(bad("'user' needs a name"));
                    }
                    acl.users.push((rest.to_string(), Vec::new()));
                    user = Some(acl.users.len() - 1);
                }
                "topic" | "pattern" => {
                    let (access, filter) = match rest.split_once(char::is_whitespace) {
                        Some((a, f)) if parse_access(a).is_some() => {
                            (parse_access(a).expect("checked"), f.trim())
                        }
                        _ => (Access::ReadWrite, rest),
                    };
                    if filter.is_empty() {
                        return Err(bad("a rule needs a topic"));
                    }
                    let rule = Rule {
                        access,
                        filter: filter.to_string(),
                    };
                    match (word, user) {
                        ("pattern", _) => acl.patterns.push(rule),
                        (_, Some(i)) => acl.users[i].1.push(rule),
                        (_, None) => acl.anonymous.push(rule),
                    }
                }
                other => return Err(bad(&format!("unknown keyword '{other}'"))),
            }
        }
        Ok(acl)
    }

    pub fn load(path: &Path) -> Result<Acl, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the ACL file {}: {e}", path.display()))?;
        Acl::parse(&text).map_err(|e| format!("ACL file {}: {e}", path.display()))
    }

    /// The rules that apply to `who`, with `%u` and `%c` filled in. Borrowed where nothing
    /// is filled in: this runs for every PUBLISH and SUBSCRIBE outside oneM2M.
    fn rules<'a>(&'a self, who: &'a Asker<'_>) -> impl Iterator<Item = (Access, Cow<'a, str>)> {
        let own: &[Rule] = match who.user {
            None => &self.anonymous,
            Some(u) => self
                .users
                .iter()
                .find(|(name, _)| name == u)
                .map_or(&[][..], |(_, r)| r.as_slice()),
        };
        let patterns = self.patterns.iter().filter_map(move |r| {
            // A pattern naming the user applies only to those who have one.
            if r.filter.contains("%u") && who.user.is_none() {
                return None;
            }
            let filter = if r.filter.contains('%') {
                Cow::Owned(
                    r.filter
                        .replace("%u", who.user.unwrap_or_default())
                        .replace("%c", who.client_id),
                )
            } else {
                Cow::Borrowed(r.filter.as_str())
            };
            Some((r.access, filter))
        });
        own.iter()
            .map(|r| (r.access, Cow::Borrowed(r.filter.as_str())))
            .chain(patterns)
    }

    /// May `who` publish to `topic`?
    pub fn may_publish(&self, who: &Asker<'_>, topic: &str) -> bool {
        let mut granted = false;
        for (access, rule) in self.rules(who) {
            if topic_matches(&rule, topic) {
                if access == Access::Deny {
                    return false;
                }
                granted |= access.writes();
            }
        }
        granted
    }

    /// May `who` subscribe to `filter`? Only if a read rule covers every topic it can match.
    pub fn may_subscribe(&self, who: &Asker<'_>, filter: &str) -> bool {
        let mut granted = false;
        for (access, rule) in self.rules(who) {
            if access == Access::Deny && filters_overlap(&rule, filter) {
                return false;
            }
            granted |= access.reads() && covers(&rule, filter);
        }
        granted
    }
}

fn parse_access(s: &str) -> Option<Access> {
    match s {
        "read" => Some(Access::Read),
        "write" => Some(Access::Write),
        "readwrite" => Some(Access::ReadWrite),
        "deny" => Some(Access::Deny),
        _ => None,
    }
}

/// MQTT matching of a topic name against a filter.
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    // Topics starting with $ are not matched by filters starting with a wildcard.
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether every topic `filter` matches is matched by `acl`.
pub fn covers(acl: &str, filter: &str) -> bool {
    let mut a = acl.split('/');
    let mut f = filter.split('/');
    loop {
        match (a.next(), f.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(x)) if x != "#" => {}
            (Some(x), Some(y)) if x == y && x != "+" && x != "#" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether some topic is matched by both filters.
pub fn filters_overlap(a: &str, b: &str) -> bool {
    let mut x = a.split('/');
    let mut y = b.split('/');
    loop {
        match (x.next(), y.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (Some(p), Some(q)) if p == "+" || q == "+" || p == q => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# anonymous clients
topic read public/#

user alice
topic readwrite factory/#
topic deny factory/secret

pattern write devices/%u/#
pattern read clients/%c/#
";

    fn who<'a>(user: Option<&'a str>, client_id: &'a str) -> Asker<'a> {
        Asker { user, client_id }
    }

    #[test]
    fn users_anonymous_and_patterns() {
        let acl = Acl::parse(FILE).unwrap();
        let alice = who(Some("alice"), "c1");
        assert!(acl.may_publish(&alice, "factory/line1/t"));
        assert!(acl.may_subscribe(&alice, "factory/+/t"));
        assert!(!acl.may_publish(&alice, "factory/secret"), "deny wins");
        assert!(
            !acl.may_subscribe(&alice, "factory/#"),
            "a filter that reaches a denied topic is refused whole"
        );
        assert!(acl.may_publish(&alice, "devices/alice/temp"));
        assert!(!acl.may_publish(&alice, "devices/bob/temp"));
        assert!(acl.may_subscribe(&alice, "clients/c1/#"));
        assert!(!acl.may_subscribe(&alice, "clients/c2/#"));
        assert!(
            !acl.may_publish(&alice, "public/x"),
            "anonymous rules are not alice's"
        );

        let anon = who(None, "c9");
        assert!(acl.may_subscribe(&anon, "public/+"));
        assert!(!acl.may_publish(&anon, "public/x"), "read only");
        assert!(!acl.may_publish(&anon, "devices//temp"), "%u needs a user");
        assert!(!acl.may_subscribe(&anon, "#"));
    }

    #[test]
    fn subscriptions_must_be_covered_whole() {
        assert!(covers("a/#", "a/b/+"));
        assert!(covers("a/+", "a/b"));
        assert!(!covers("a/+", "a/#"));
        assert!(!covers("a/b", "a/+"));
        assert!(covers("#", "#"));
        assert!(!covers("a/#", "#"));
    }

    #[test]
    fn matching_and_overlap() {
        assert!(topic_matches("a/+/c", "a/b/c"));
        assert!(topic_matches("a/#", "a"));
        assert!(!topic_matches("a/+", "a/b/c"));
        assert!(!topic_matches("#", "$SYS/x"));
        assert!(filters_overlap("a/+/c", "a/b/#"));
        assert!(!filters_overlap("a/b", "a/c"));
    }

    #[test]
    fn bad_lines_are_named() {
        assert!(Acl::parse("user\n").unwrap_err().contains("line 1"));
        assert!(Acl::parse("topic\n").unwrap_err().contains("needs a topic"));
        assert!(Acl::parse("allow x\n")
            .unwrap_err()
            .contains("unknown keyword"));
    }
}
