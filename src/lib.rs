//! voxdesk: an on-premises AI voice call-center server.

pub mod config;
pub mod media;
pub mod store;
pub mod registrar;
pub mod transport;
pub mod call;
pub mod endpoint;
pub mod prompts;
