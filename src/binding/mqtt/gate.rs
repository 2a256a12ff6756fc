//! The broker's gate (TS-0010 §8): who may connect, and which topics each connection may use.
//!
//! A CONNECT is authenticated ([`Authenticator`]): a client certificate, a user name and
//! password, or `security.anonymous` by where the client is. Its connection may then use the
//! oneM2M topics of the originators bound to its identity ([`Bindings`], in memory: no
//! database read per PUBLISH), for each such originator `o` (in topic form):
//! * publish to `/oneM2M/req/o/…` and `/oneM2M/resp/<any>/o/…`, and to
//!   `/oneM2M/reg_req/c/…` for its credential `c` only (TS-0010: that level is the
//!   Credential-ID, and the CSE binds what is registered there to it);
//! * subscribe to `/oneM2M/resp/o/…`, `/oneM2M/req/<any>/o/…` and `/oneM2M/reg_resp/o/…`.
//!
//! A filter that could match other originators' oneM2M topics (`#`, `/oneM2M/#`,
//! `/oneM2M/resp/+/…`, also as a `$share/<group>/…` filter) is refused in the SUBACK. Client
//! IDs, and so sessions, are kept apart per identity. Nobody publishes as the CSE itself, and only
//! the CSE answers registrations. Anonymous clients on this machine publish on every oneM2M
//! topic but the CSE's; anonymous clients from the network (`anonymous = "everyone"`) on every
//! one but the CSE's and the admin's; both subscribe to any filter (that mode trusts the
//! network). Topics outside oneM2M follow the ACL file, if there is one, and are free
//! otherwise. The CSE's own in-process link does not pass the gate.

use crate::auth::acl::{filters_overlap, Asker};
use crate::auth::{Authenticator, Identity, Refused};
use crate::cse::Bindings;
use crate::onem2m::topic::{Topic, TopicKind};
use crate::throttle::Throttle;
use rumqttd::{Admitted, ConnectRefusal, ConnectRequest, TopicPolicy};
use std::sync::Arc;
use tokio::sync::Semaphore;

pub struct Gate {
    auth: Arc<Authenticator>,
    bindings: Arc<Bindings>,
    /// One permit per network connection admitted, out of `mqtt.max_connections`, on every
    /// listener together (3.1.1, 5, TLS); held until the connection ends.
    slots: Arc<Semaphore>,
}

/// Refusals a client can cause by the thousand: logged at most once a minute each.
static FULL: Throttle = Throttle::new();
static REFUSED: Throttle = Throttle::new();

impl Gate {
    pub fn new(auth: Arc<Authenticator>, bindings: Arc<Bindings>, max_connections: usize) -> Gate {
        Gate {
            auth,
            bindings,
            slots: Arc::new(Semaphore::new(max_connections)),
        }
    }
}

impl rumqttd::Gate for Gate {
    fn connect(&self, r: &ConnectRequest<'_>) -> Result<Admitted, ConnectRefusal> {
        let addr = r.peer.addr;
        // Before the password is checked: a full broker spends nothing on a client.
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            if let Some(quiet) = FULL.hit() {
                tracing::warn!(client = ?addr, client_id = r.client_id, refused_since_last_line = quiet,
                    "MQTT client refused: mqtt.max_connections reached");
            }
            return Err(ConnectRefusal::ServerUnavailable);
        };
        let login = r.username.map(|u| (u, r.password.unwrap_or_default()));
        let identity = match self.auth.authenticate(
            addr.map(|a| a.ip()),
            r.peer.tls_identity.as_deref(),
            login,
        ) {
            Ok(identity) => identity,
            Err(refused) => {
                if let Some(quiet) = REFUSED.hit() {
                    tracing::warn!(client = ?addr, client_id = r.client_id, user = ?r.username,
                        why = %refused, refused_since_last_line = quiet, "MQTT client refused");
                }
                return Err(match refused {
                    Refused::BadCredentials => ConnectRefusal::BadCredentials,
                    Refused::AnonymousNotAllowed => ConnectRefusal::NotAuthorized,
                });
            }
        };
        self.bindings
            .authenticated(r.peer.tls_identity.as_deref(), &identity);
        let policy = ClientPolicy {
            identity,
            client_id: r.client_id.to_string(),
            addr: addr.map(|a| a.ip()),
            auth: self.auth.clone(),
            bindings: self.bindings.clone(),
        };
        if let Some(will) = r.will_topic {
            if !policy.may_publish(will) {
                tracing::warn!(client = ?addr, client_id = r.client_id, will,
                    "MQTT client refused: its will topic is not its to publish to");
                return Err(ConnectRefusal::NotAuthorized);
            }
        }
        tracing::debug!(client = ?addr, client_id = r.client_id, identity = ?policy.identity, "MQTT client admitted");
        // Sessions are kept apart per identity: another credential using the same client ID
        // neither takes this session over nor inherits its subscriptions.
        let session_namespace = Some(match &policy.identity {
            Identity::Local => "local".to_string(),
            Identity::Anonymous => "anonymous".to_string(),
            // Length-prefixed, so that no two credentials and client IDs make the same ID.
            Identity::Credential(c) => format!("u{}:{c}", c.len()),
        });
        Ok(Admitted {
            policy: Arc::new(policy),
            session_namespace,
            hold: Some(Box::new(slot)),
        })
    }
}

/// The topics of one connection.
struct ClientPolicy {
    identity: Identity,
    client_id: String,
    /// The client's address: the router stamps it on the client's publishes, for access
    /// control policies that name address ranges (`acip`).
    addr: Option<std::net::IpAddr>,
    auth: Arc<Authenticator>,
    bindings: Arc<Bindings>,
}

impl ClientPolicy {
    /// May this connection speak as the originator in topic level `level`?
    fn speaks_as(&self, level: &str) -> bool {
        self.bindings.may_act_as(&self.identity, level)
    }

    /// May it register under the credential in `reg_req` topic level `level`? A credential
    /// registers as itself only (TS-0010: that level is the Credential-ID), so the CSE binds
    /// what it registers to the identity that really logged in.
    fn registers_as(&self, level: &str) -> bool {
        match &self.identity {
            Identity::Credential(c) => level == c && !self.bindings.is_cse(level),
            _ => self.speaks_as(level),
        }
    }

    fn asker(&self) -> Asker<'_> {
        Asker {
            user: self.identity.credential(),
            client_id: &self.client_id,
        }
    }

    /// A oneM2M filter this credential may use: its own response, registration-response and
    /// request topics, with no wildcard where an originator level goes.
    fn own_filter(&self, filter: &str) -> bool {
        let levels: Vec<&str> = filter.split('/').collect();
        let literal = |i: usize| {
            levels
                .get(i)
                .filter(|l| !l.is_empty() && **l != "+" && **l != "#")
        };
        if levels.len() < 4 || !levels[0].is_empty() || levels[1] != "oneM2M" {
            return false;
        }
        match levels[2] {
            "resp" | "reg_resp" => literal(3).is_some_and(|o| self.speaks_as(o)),
            "req" => {
                levels.get(3).is_some_and(|l| *l != "#")
                    && literal(4).is_some_and(|o| self.speaks_as(o))
            }
            _ => false,
        }
    }
}

impl TopicPolicy for ClientPolicy {
    fn may_publish(&self, topic: &str) -> bool {
        if let Some(t) = Topic::parse(topic) {
            return match t.kind {
                TopicKind::Req => self.speaks_as(t.originator),
                TopicKind::RegReq => self.registers_as(t.originator),
                TopicKind::Resp => self.speaks_as(t.receiver),
                // Only the CSE answers registrations.
                TopicKind::RegResp => false,
            };
        }
        if topic == "/oneM2M" || topic.starts_with("/oneM2M/") {
            // Not a oneM2M topic, but in their space: only this machine's tools.
            return self.identity == Identity::Local;
        }
        match self.auth.acl() {
            Some(acl) => acl.may_publish(&self.asker(), topic),
            None => true,
        }
    }

    fn source(&self) -> Option<std::net::IpAddr> {
        self.addr
    }

    fn may_subscribe(&self, filter: &str) -> bool {
        // A shared subscription ($share/<group>/<filter>) is its filter to the router.
        let filter = match filter.strip_prefix("$share/") {
            Some(rest) => match rest.split_once('/') {
                Some((group, f)) if !group.is_empty() && !f.is_empty() => f,
                _ => return false,
            },
            None => filter,
        };
        if filters_overlap(filter, "/oneM2M/#") {
            return match self.identity {
                Identity::Local | Identity::Anonymous => true,
                Identity::Credential(_) => self.own_filter(filter),
            };
        }
        match self.auth.acl() {
            Some(acl) => acl.may_subscribe(&self.asker(), filter),
            None => true,
        }
    }
}
