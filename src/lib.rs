//! voxdesk: an on-premises AI voice call-center server.

pub mod admin;
pub mod api;
pub mod audio;
pub mod brain;
pub mod call;
pub mod clock;
pub mod config;
pub mod csv_text;
pub mod dialog;
pub mod endpoint;
pub mod eval_voice;
pub mod kb;
pub mod limits;
pub mod local_line;
pub mod media;
pub mod models;
pub mod nlu;
pub mod privacy;
pub mod prompts;
pub mod registrar;
pub mod replay;
pub mod routing;
pub mod shared;
pub mod speech;
pub mod store;
pub mod transport;
