//! diagnose: from verdicts to findings and reports.

mod diagnosis;
pub mod findings;
pub mod html;
pub mod offline;
pub mod render;
pub mod run;

#[cfg(test)]
mod tests;

pub use diagnosis::{AddressDiagnosis, Diagnosis, Route};
pub use findings::{Finding, HostProfile, Kind, finding, profile};
