//! One module per operation, as mini-redis has one file per command. Each takes a checked
//! request (see [`super::pipeline`]) to its outcome; what depends on the resource type is in
//! [`super::resources`].

pub mod create;
pub mod delete;
pub mod notify;
pub mod retrieve;
pub mod update;
