//! The oneM2M protocol as data: primitives, status codes, resource types, addressing, topics
//! and timestamps. Pure: nothing here does I/O.

pub mod acp;
pub mod address;
pub mod http;
pub mod poa;
pub mod primitive;
pub mod rsc;
pub mod time;
pub mod topic;
pub mod types;

pub use address::{Base, CseIdentity, Target, Virtual};
pub use poa::MqttUrl;
pub use primitive::{PrimitiveError, RequestPrimitive, ResponsePrimitive, ResponseType};
pub use rsc::{Error, Rsc};
pub use types::{Operation, ResourceType};
