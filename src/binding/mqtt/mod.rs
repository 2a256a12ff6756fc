//! The MQTT binding (TS-0010): the embedded broker and the CSE's in-process link to it.

pub mod broker;
pub mod link;

pub use broker::EmbeddedBroker;
pub use link::serve;
