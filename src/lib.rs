//! voxdesk: an on-premises AI voice call-center server.

pub mod config;
pub mod media;
pub mod store;
