//! synscope: which part is at fault when a TCP connection is refused or hangs.
//!
//! The pipeline, one module a stage:
//! [`source`] (capture file | memory | live) → [`wire`] (bytes → headers) →
//! [`track`] (probe table, matching, verdicts; pure, packet time only) →
//! [`report`] (table, JSON). [`analyze`] wires the stages for captures.

pub mod analyze;
pub mod diagnose;
pub mod fixture;
pub mod report;
pub mod scan;
pub mod select;
pub mod source;
pub mod track;
pub mod wire;
