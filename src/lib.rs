pub mod config;
pub mod onem2m;
pub mod store;
