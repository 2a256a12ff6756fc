//! m2mhub: a oneM2M CSE and an MQTT broker in one process.
//!
//! * [`onem2m`]: the protocol as data (pure).
//! * [`cse`]: the dispatcher from request primitive to response primitive.
//! * [`store`]: SQLite persistence.
//! * [`binding`]: MQTT (embedded broker and in-process link) and HTTP.
//! * [`client`]: the AE-side library, one API over MQTT and HTTP.
//! * [`config`]: defaults < `config.toml` < `M2MHUB_*` environment.
//! * [`auth`]: who a client is (passwords, certificates, anonymous); [`tls`]: certificates.
//! * [`app`]: starting it all.

pub mod app;
pub mod auth;
pub mod binding;
pub mod client;
pub mod config;
pub mod cse;
pub mod onem2m;
pub mod remote;
pub mod store;
mod sync;
pub mod throttle;
pub mod tls;
