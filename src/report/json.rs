//! The JSON report. Its contract is documented in docs/JSON.md; bump
//! [`SCHEMA_VERSION`] on any incompatible change.

use crate::analyze::{Analysis, InputSummary, Summary};
use crate::track::Verdict;
use serde::Serialize;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct Document<'a> {
    schema_version: u32,
    results: &'a [Verdict],
    summary: &'a Summary,
    inputs: &'a [InputSummary],
}

pub fn to_json(a: &Analysis) -> String {
    let doc = Document {
        schema_version: SCHEMA_VERSION,
        results: &a.results,
        summary: &a.summary,
        inputs: &a.inputs,
    };
    // Serialising plain structs of numbers, strings and addresses cannot fail.
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
