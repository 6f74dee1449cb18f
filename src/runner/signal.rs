//! SIGINT and SIGTERM for the runner: the process layer's
//! ([`crate::process::signal`]), re-exported until the runner's modules
//! name it themselves.

pub use crate::process::signal::{install, received};
