//! Configuration: built-in defaults < `config.toml` < `M2MHUB_<SECTION>__<KEY>` environment
//! variables, merged by figment. Unknown keys are errors, so a misspelt key is reported at
//! start-up instead of being ignored.

use crate::binding::outbound;
use crate::onem2m::MqttUrl;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub cse: CseConfig,
    pub storage: StorageConfig,
    pub mqtt: MqttConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub security: SecurityConfig,
    pub tls: TlsConfig,
    /// CSEs this one registers with (its registrar; OpenMTC's `remote_cses`).
    pub remote_cse: Vec<RemoteCseConfig>,
}

/// A password in the configuration: never printed, neither by `check-config` nor in logs.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"********\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("********")
    }
}

/// Who may connect, and as what (TS-0010 §8).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Who needs no credentials: `loopback` (clients on this machine), `everyone`, or
    /// `nobody`.
    pub anonymous: Anonymous,
    /// Credentials in Mosquitto's password file format (`mosquitto_passwd`, or
    /// `m2mhub passwd`); re-read on SIGHUP.
    pub password_file: Option<PathBuf>,
    /// Access to topics outside oneM2M, in Mosquitto's `acl_file` format; re-read on SIGHUP.
    /// Without one, authenticated clients use such topics freely.
    pub acl_file: Option<PathBuf>,
    /// Address ranges (CIDR) the CSE may be made to call by what clients set (`nu`, `su`,
    /// `poa`): allowed when in some `outbound_allow` range and in no `outbound_deny` range.
    /// Hosts this file names (registrars, the outside broker) are always allowed.
    pub outbound_allow: Vec<String>,
    pub outbound_deny: Vec<String>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        let owned = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        SecurityConfig {
            anonymous: Anonymous::Loopback,
            password_file: None,
            acl_file: None,
            outbound_allow: owned(outbound::DEFAULT_ALLOW),
            outbound_deny: owned(outbound::DEFAULT_DENY),
        }
    }
}

impl Config {
    /// The largest request either binding accepts (`cse.max_request_size`, or its former
    /// name `mqtt.max_payload_size`).
    pub fn max_request_size(&self) -> usize {
        self.mqtt
            .max_payload_size
            .unwrap_or(self.cse.max_request_size)
    }

    /// The outbound policy, with the hosts this configuration names as always allowed.
    pub fn outbound_policy(&self) -> Result<outbound::Policy, String> {
        let hosts = self
            .remote_cse
            .iter()
            .flat_map(|r| r.poa.iter())
            .chain((self.mqtt.mode == MqttMode::External).then_some(&self.mqtt.broker))
            .filter_map(|u| {
                let url = url::Url::parse(u).ok()?;
                let port = url.port().unwrap_or(match url.scheme() {
                    "mqtts" => 8883,
                    "mqtt" => 1883,
                    "https" => 443,
                    _ => 80,
                });
                Some((url.host_str()?.to_string(), port))
            });
        outbound::Policy::new(
            &self.security.outbound_allow,
            &self.security.outbound_deny,
            hosts,
        )
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Anonymous {
    /// Clients on this machine need no credentials; everyone else does.
    Loopback,
    /// No client needs credentials (a trusted network only).
    Everyone,
    /// Every client needs credentials.
    Nobody,
}

/// The certificates of the TLS listeners (`mqtt.tls_listen`, `http.tls_listen`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// This server's certificate chain (PEM).
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    pub key_file: Option<PathBuf>,
    /// The CA (PEM) whose client certificates authenticate a client as their subject CN;
    /// also trusted for notification targets over https.
    pub ca_certs: Option<PathBuf>,
    /// Refuse TLS clients without such a certificate.
    pub require_client_cert: bool,
}

/// How this CSE authenticates to a peer it connects to (an outside broker, a registrar), from
/// the keys of `[mqtt]` (`broker_*`) or of a `[[remote_cse]]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PeerAuth {
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The CA (PEM) that signed the peer's certificate; the system roots when unset.
    pub ca_certs: Option<PathBuf>,
    /// A client certificate (PEM) to present, with its key.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// A CSE this one registers to, as `[[remote_cse]]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RemoteCseConfig {
    /// Its CSE-ID, without the slash.
    pub cse_id: String,
    /// Its CSEBase resource name.
    pub name: String,
    #[serde(default = "in_kind")]
    pub kind: CseKind,
    /// How to reach it: `mqtt://host:port` (its broker) or `http://host:port`.
    pub poa: Vec<String>,
    /// How it reaches us, registered in our `<remoteCSE>` there.
    pub own_poa: Vec<String>,
    /// Seconds between checks that our registration is still there.
    #[serde(default = "reregister_default")]
    pub reregister_interval_s: u64,
    /// User name and password at the registrar's broker or HTTP binding.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// The CA (PEM) of the registrar's certificate (mqtts, https); the system roots when
    /// unset.
    #[serde(default)]
    pub ca_certs: Option<PathBuf>,
    /// A client certificate (PEM) to present, with its key.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

impl RemoteCseConfig {
    pub fn auth(&self) -> PeerAuth {
        PeerAuth {
            username: self.username.clone(),
            password: self.password.clone(),
            ca_certs: self.ca_certs.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
        }
    }
}

fn in_kind() -> CseKind {
    CseKind::IN
}

fn reregister_default() -> u64 {
    30
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum CseKind {
    IN,
    MN,
    ASN,
}

impl CseKind {
    /// `cst` of the CSEBase: 1 IN, 2 MN, 3 ASN.
    pub fn cst(self) -> u8 {
        match self {
            CseKind::IN => 1,
            CseKind::MN => 2,
            CseKind::ASN => 3,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CseConfig {
    /// CSE-ID without the leading slash.
    pub id: String,
    /// Resource name of the CSEBase.
    pub name: String,
    /// Service provider ID, without slashes.
    pub sp_id: String,
    pub kind: CseKind,
    /// Originator that may do everything (ACME's `CAdmin`).
    pub admin: String,
    /// The largest request primitive either binding accepts, in bytes: an MQTT PUBLISH
    /// payload (any topic), an HTTP body.
    pub max_request_size: usize,
    /// The lifetime, in seconds, of a resource created without an expiration time (`et`):
    /// its `et` is filled in so (TS-0001: every resource has one). 0 leaves `et` unset.
    pub default_lifetime_s: u64,
}

impl Default for CseConfig {
    fn default() -> Self {
        CseConfig {
            id: "id-in".into(),
            name: "cse-in".into(),
            sp_id: "m2mhub.example".into(),
            kind: CseKind::IN,
            admin: "CAdmin".into(),
            max_request_size: 256 * 1024,
            // Five years, as ACME.
            default_lifetime_s: 5 * 365 * 24 * 3600,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub path: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            path: PathBuf::from("./data/m2mhub.db"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    pub enabled: bool,
    /// `embedded`: run the broker in this process. `external`: connect to `broker` instead,
    /// for sites that already run Mosquitto or an EMQX/VerneMQ cluster.
    pub mode: MqttMode,
    /// The outside broker in `external` mode, `mqtt://host:port` or `mqtts://host:port`.
    pub broker: String,
    /// User name and password at the outside broker.
    pub broker_username: Option<String>,
    pub broker_password: Option<Secret>,
    /// The CA (PEM) of the outside broker's certificate (mqtts); the system roots when unset.
    pub broker_ca_certs: Option<PathBuf>,
    /// A client certificate (PEM) to present to it, with its key.
    pub broker_cert_file: Option<PathBuf>,
    pub broker_key_file: Option<PathBuf>,
    /// MQTT 3.1.1 listener.
    pub listen: SocketAddr,
    /// MQTT 5 listener. rumqttd serves each protocol version on its own port; none by default.
    pub listen_v5: Option<SocketAddr>,
    /// MQTT 3.1.1 over TLS (`[tls]` certificates); none by default.
    pub tls_listen: Option<SocketAddr>,
    pub max_connections: usize,
    /// The former name of `cse.max_request_size`, still read: when set, it wins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_payload_size: Option<usize>,
    /// Packets read from one client in one batch (rumqttd's `max_inflight_count`, despite
    /// its name). The unacknowledged QoS 1/2 messages in flight to a client are fixed at 100
    /// by the broker.
    pub max_inflight: usize,
    /// Time a new TCP connection has to send CONNECT, in milliseconds.
    pub connect_timeout_ms: u16,
    /// Subscription filters one client may hold.
    pub max_subscriptions_per_client: usize,
    /// Distinct subscription filters the broker holds, all clients together. A filter goes
    /// when its last subscriber does.
    pub max_filters: usize,
    /// Topics with a retained message.
    pub max_retained: usize,
}

impl MqttConfig {
    pub fn broker_auth(&self) -> PeerAuth {
        PeerAuth {
            username: self.broker_username.clone(),
            password: self.broker_password.clone(),
            ca_certs: self.broker_ca_certs.clone(),
            cert_file: self.broker_cert_file.clone(),
            key_file: self.broker_key_file.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MqttMode {
    Embedded,
    External,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            enabled: true,
            mode: MqttMode::Embedded,
            broker: "mqtt://127.0.0.1:1883".into(),
            broker_username: None,
            broker_password: None,
            broker_ca_certs: None,
            broker_cert_file: None,
            broker_key_file: None,
            listen: SocketAddr::from(([0, 0, 0, 0], 1883)),
            listen_v5: None,
            tls_listen: None,
            max_connections: 10_000,
            max_payload_size: None,
            max_inflight: 100,
            connect_timeout_ms: 5_000,
            max_subscriptions_per_client: 100,
            max_filters: 50_000,
            max_retained: 10_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// HTTPS (`[tls]` certificates); none by default.
    pub tls_listen: Option<SocketAddr>,
    /// HTTP and HTTPS connections open at once; more are refused (503) at once, so that idle
    /// HTTP clients cannot take the file descriptors MQTT devices need.
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers, from the moment the server waits
    /// for them: after connecting, and after each response on a kept-alive connection (so it
    /// is also the idle timeout).
    pub header_timeout_s: u64,
    /// Seconds a client has to send a request's body once its headers are in.
    pub body_timeout_s: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            tls_listen: None,
            max_connections: 256,
            header_timeout_s: 15,
            body_timeout_s: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, or per module such as `info,m2mhub::cse=debug`.
    /// `RUST_LOG`, when set, wins.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    Missing(PathBuf),
    #[error("{0}")]
    Figment(#[from] Box<figment::Error>),
    #[error("invalid value for {key}: {msg}")]
    Invalid { key: &'static str, msg: String },
}

impl Config {
    /// Loads the configuration. With an explicit path the file must exist; without one,
    /// `./config.toml` is read if present.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let file = match path {
            Some(p) if !p.exists() => return Err(ConfigError::Missing(p.to_path_buf())),
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from("config.toml")).filter(|p| p.exists()),
        };
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        Self::from_figment(figment.merge(Env::prefixed("M2MHUB_").split("__")))
    }

    pub fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, msg: &str| {
            Err(ConfigError::Invalid {
                key,
                msg: msg.to_string(),
            })
        };
        let plain = |s: &str| !s.is_empty() && !s.contains(['/', ' ', '#', '+', ':']);
        if self.cse.default_lifetime_s > crate::onem2m::time::MAX_SECONDS {
            return invalid(
                "cse.default_lifetime_s",
                "must be at most 100 years (0: resources have no expiration time by default)",
            );
        }
        if !plain(&self.cse.id) {
            return invalid(
                "cse.id",
                "must be a non-empty name without '/', ':', '#', '+' or spaces",
            );
        }
        if !plain(&self.cse.name) || self.cse.name == "-" {
            return invalid(
                "cse.name",
                "must be a non-empty name without '/', ':', '#', '+' or spaces",
            );
        }
        if !plain(&self.cse.sp_id.replace(':', "")) {
            return invalid(
                "cse.sp_id",
                "must be a non-empty name without '/' or spaces",
            );
        }
        if !(self.cse.admin.starts_with('C') || self.cse.admin.starts_with('S'))
            || !plain(&self.cse.admin)
        {
            return invalid("cse.admin", "must be an AE-ID starting with 'C' or 'S'");
        }
        if self.storage.path.as_os_str().is_empty() {
            return invalid("storage.path", "must not be empty");
        }
        if self.mqtt.mode == MqttMode::External && MqttUrl::parse(&self.mqtt.broker).is_err() {
            return invalid(
                "mqtt.broker",
                "must be an mqtt://host:port or mqtts://host:port URL",
            );
        }
        let listens_tls = self.mqtt.tls_listen.is_some() || self.http.tls_listen.is_some();
        if listens_tls && (self.tls.cert_file.is_none() || self.tls.key_file.is_none()) {
            return invalid(
                "tls.cert_file",
                "a TLS listener (mqtt.tls_listen, http.tls_listen) needs tls.cert_file and tls.key_file",
            );
        }
        if self.tls.require_client_cert && self.tls.ca_certs.is_none() {
            return invalid(
                "tls.require_client_cert",
                "needs tls.ca_certs, the CA of the client certificates",
            );
        }
        let peers = std::iter::once(("mqtt.broker_*", self.mqtt.broker_auth()))
            .chain(self.remote_cse.iter().map(|r| ("remote_cse", r.auth())));
        for (key, auth) in peers {
            if auth.cert_file.is_some() != auth.key_file.is_some() {
                return invalid(key, "cert_file and key_file go together");
            }
            if auth.password.is_some() && auth.username.is_none() {
                return invalid(key, "a password needs a username");
            }
        }
        for (key, ranges) in [
            ("security.outbound_allow", &self.security.outbound_allow),
            ("security.outbound_deny", &self.security.outbound_deny),
        ] {
            if let Some(e) = ranges.iter().find_map(|r| outbound::parse_range(r).err()) {
                return invalid(key, &e);
            }
        }
        if self.mqtt.max_connections == 0 {
            return invalid("mqtt.max_connections", "must be at least 1");
        }
        if !(1..=65_536).contains(&self.http.max_connections) {
            return invalid("http.max_connections", "must be between 1 and 65536");
        }
        if !(1..=3600).contains(&self.http.header_timeout_s) {
            return invalid(
                "http.header_timeout_s",
                "must be between 1 and 3600 seconds",
            );
        }
        if !(1..=3600).contains(&self.http.body_timeout_s) {
            return invalid("http.body_timeout_s", "must be between 1 and 3600 seconds");
        }
        if self.mqtt.max_connections > 1_000_000 {
            return invalid("mqtt.max_connections", "must be at most 1000000");
        }
        if self.max_request_size() < 1024 {
            return invalid("cse.max_request_size", "must be at least 1024 bytes");
        }
        if self.mqtt.max_inflight == 0 || self.mqtt.max_inflight > u16::MAX as usize {
            return invalid("mqtt.max_inflight", "must be between 1 and 65535");
        }
        if self.mqtt.connect_timeout_ms == 0 {
            return invalid("mqtt.connect_timeout_ms", "must be at least 1");
        }
        if Some(self.mqtt.listen) == self.mqtt.listen_v5 && self.mqtt.listen.port() != 0 {
            return invalid("mqtt.listen_v5", "must differ from mqtt.listen");
        }
        for r in &self.remote_cse {
            if !plain(&r.cse_id) || r.cse_id == self.cse.id {
                return invalid("remote_cse.cse_id", "must be another CSE's ID, without '/'");
            }
            if !plain(&r.name) {
                return invalid("remote_cse.name", "must be a CSEBase name without '/'");
            }
            let url = |s: &String| {
                if MqttUrl::is_mqtt(s) {
                    MqttUrl::parse(s).is_ok()
                } else {
                    s.starts_with("http://") || s.starts_with("https://")
                }
            };
            if r.poa.is_empty() || !r.poa.iter().all(url) {
                return invalid("remote_cse.poa", "must list mqtt:// or http:// URLs");
            }
            if !r.own_poa.iter().all(url) {
                return invalid("remote_cse.own_poa", "must list mqtt:// or http:// URLs");
            }
            if r.reregister_interval_s == 0 {
                return invalid("remote_cse.reregister_interval_s", "must be at least 1");
            }
        }
        if self.remote_cse.len() > 1 {
            return invalid("remote_cse", "a CSE registers with one registrar");
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return invalid("log.level", &e.to_string());
        }
        Ok(())
    }

    /// The configuration as TOML, for `m2mhub check-config`.
    /// Passwords are printed as `********`, also inside URLs (`mqtt://user:****@host`).
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        shown.mqtt.broker = crate::onem2m::poa::hide_password(&shown.mqtt.broker);
        for r in &mut shown.remote_cse {
            for url in r.poa.iter_mut().chain(r.own_poa.iter_mut()) {
                *url = crate::onem2m::poa::hide_password(url);
            }
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }
}

#[cfg(test)]
// figment's Jail returns its own large error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::default();
        assert_eq!(c.cse.id, "id-in");
        assert_eq!(c.cse.name, "cse-in");
        assert_eq!(c.cse.kind, CseKind::IN);
        assert_eq!(c.mqtt.listen.to_string(), "0.0.0.0:1883");
        assert_eq!(c.http.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.storage.path, PathBuf::from("./data/m2mhub.db"));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn file_overrides_defaults_and_env_overrides_file() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "[cse]\nid = \"id-file\"\n[mqtt]\nlisten = \"127.0.0.1:1999\"\n",
            )?;
            jail.set_env("M2MHUB_MQTT__LISTEN", "127.0.0.1:2999");
            let c = Config::load(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.cse.id, "id-file");
            assert_eq!(c.mqtt.listen.to_string(), "127.0.0.1:2999");
            assert_eq!(c.cse.name, "cse-in");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_key() {
        Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[mqtt]\nlisen = \"127.0.0.1:1\"\n")?;
            let e = Config::load(Some(Path::new("c.toml")))
                .unwrap_err()
                .to_string();
            assert!(e.contains("lisen"), "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("M2MHUB_CSE__COLOUR", "red");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("colour"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_the_key() {
        Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[cse]\nkind = \"XL\"\n")?;
            let e = Config::load(Some(Path::new("c.toml")))
                .unwrap_err()
                .to_string();
            assert!(e.contains("kind"), "{e}");
            jail.create_file("d.toml", "[cse]\nid = \"/id-in\"\n")?;
            let e = Config::load(Some(Path::new("d.toml")))
                .unwrap_err()
                .to_string();
            assert!(e.contains("cse.id"), "{e}");
            jail.create_file("e.toml", "[mqtt]\nlisten = \"nowhere\"\n")?;
            let e = Config::load(Some(Path::new("e.toml")))
                .unwrap_err()
                .to_string();
            assert!(e.contains("listen"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn an_explicit_missing_file_is_an_error() {
        let e = Config::load(Some(Path::new("/nonexistent/m2mhub.toml"))).unwrap_err();
        assert!(matches!(e, ConfigError::Missing(_)));
    }

    #[test]
    fn printed_configuration_reads_back() {
        let c = Config::default();
        let again = Config::from_figment(Figment::from(Toml::string(&c.to_toml()))).unwrap();
        assert_eq!(again, c);
    }
}
