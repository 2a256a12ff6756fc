//! The MQTT binding (TS-0010): the embedded broker, and the CSE's session on it (or on an
//! outside broker) with what happens to each request that arrives there.
//!
//! * [`broker`]: the embedded rumqttd broker and its listeners.
//! * [`link`]: the CSE's session: publishing, matching answers to its own requests, and the
//!   in-process link into the embedded broker.
//! * [`external`]: the same session as a client of a broker the site already runs.
//! * [`ordering`]: each originator's requests in order, different originators side by side.
//! * [`inbound`]: reading and checking one request publish.

pub mod broker;
pub mod external;
mod forms;
pub mod gate;
mod inbound;
pub mod link;
mod ordering;

pub use broker::EmbeddedBroker;
pub use link::serve;
