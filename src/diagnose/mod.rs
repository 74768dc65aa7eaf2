//! diagnose: from verdicts to findings and reports.

pub mod findings;
pub mod html;
pub mod offline;
pub mod render;
pub mod run;

#[cfg(test)]
mod tests;

pub use findings::{Finding, HostProfile, Kind, finding, profile};
