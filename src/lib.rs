//! synscope: which part is at fault when a TCP connection is refused or hangs.
//!
//! The pipeline, one module a stage (docs/ARCHITECTURE.md):
//! [`source`] (capture file | memory | live) → [`wire`] (bytes → headers) →
//! [`track`] (probe table, matching, verdicts; pure, packet time only) →
//! [`diagnose`] (findings) → [`report`] (table, JSON, ...). [`model`] is
//! the data they all speak and [`error`] their errors; [`analyze`] wires
//! the stages for captures, [`scan`] for live probes and [`watch`] for a
//! live passive capture; [`cli`] turns the
//! command line into each command's options, writes the report and
//! chooses the exit code.

pub mod analyze;
pub mod cli;
pub mod diagnose;
pub mod error;
pub mod fixture;
pub mod model;
pub mod report;
pub mod resolve;
pub mod scan;
pub mod select;
pub mod source;
pub mod track;
pub mod watch;
pub mod wire;

pub use error::{Error, Result};
