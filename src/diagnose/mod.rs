//! diagnose: from verdicts to findings. [`run`] orchestrates a live
//! diagnosis (resolve, probe, re-probe, trace); [`findings`] and
//! [`offline`] reason, purely, over the verdicts; [`crate::report`] renders them.

mod diagnosis;
pub mod findings;
pub mod groups;
pub mod offline;
pub mod run;

#[cfg(test)]
mod tests;

pub use diagnosis::{AddressDiagnosis, Diagnosis, Route};
pub use findings::{Finding, HostProfile, Kind, finding, profile};
