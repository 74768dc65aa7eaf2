//! The JSON report. Its contract is documented in docs/JSON.md; bump
//! [`SCHEMA_VERSION`] on any incompatible change.

use crate::model::{Analysis, InputSummary, SCHEMA_VERSION, Summary, Verdict};
use serde::Serialize;
use std::io::Write;

#[derive(Serialize)]
struct Document<'a, S: Serialize, W: Serialize> {
    schema_version: u32,
    results: &'a [Verdict],
    summary: &'a Summary,
    inputs: &'a [InputSummary],
    #[serde(skip_serializing_if = "Option::is_none")]
    scan: Option<&'a S>,
    #[serde(skip_serializing_if = "Option::is_none")]
    watch: Option<&'a W>,
}

/// Writes the report as one compact JSON document and a newline (`jq .`
/// pretty-prints it; compact keeps a 65,535-port report fast to write).
/// Fails only as the writer does.
/// `scan` (live scans only) describes how the scan went.
pub fn write_json<W: std::io::Write, S: Serialize>(
    a: &Analysis,
    scan: Option<&S>,
    w: W,
) -> std::io::Result<()> {
    write_document(a, scan, None::<&()>, w)
}

/// The report of `watch`: the verdicts and what the watch saw besides
/// (`watch`: programs, patterns, DNS failures, how names were found).
pub fn write_watch_json<W: std::io::Write, S: Serialize>(
    a: &Analysis,
    watch: &S,
    w: W,
) -> std::io::Result<()> {
    write_document(a, None::<&()>, Some(watch), w)
}

fn write_document<W: std::io::Write, S: Serialize, T: Serialize>(
    a: &Analysis,
    scan: Option<&S>,
    watch: Option<&T>,
    mut w: W,
) -> std::io::Result<()> {
    let doc = Document {
        schema_version: SCHEMA_VERSION,
        results: &a.results,
        summary: &a.summary,
        inputs: &a.inputs,
        scan,
        watch,
    };
    // A buffer of this function's own type: serde_json writes a token at a
    // time, and through a `dyn Write` every token would be a call that
    // cannot be inlined (a third of a 65,535-port scan's user time).
    let mut buf = std::io::BufWriter::with_capacity(1 << 16, &mut w);
    serde_json::to_writer(&mut buf, &doc).map_err(std::io::Error::from)?;
    buf.write_all(b"\n")?;
    buf.flush()?;
    drop(buf);
    w.flush()
}
