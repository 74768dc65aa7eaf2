//! The CSV report: one row per verdict, the JSON result fields as columns
//! (RFC 4180 quoting; empty for absent values).

use crate::model::{Analysis, Verdict};
use std::io::Write;

pub const COLUMNS: [&str; 19] = [
    "client",
    "target",
    "port",
    "state",
    "reason",
    "icmp_type",
    "icmp_code",
    "responder",
    "ttl",
    "hops",
    "rtt_ms",
    "probes",
    "attempts",
    "uncertain",
    "inferred",
    "host_hops",
    "name",
    "first_probe_ns",
    "decided_ns",
];

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// Columns `--fields` may choose besides [`COLUMNS`] (not in the
/// default set, which stays stable for scripts).
pub const EXTRA_COLUMNS: [&str; 2] = ["rtt_last_ms", "service"];

/// Checks a `--fields` list: each a known column, none twice.
pub fn check_fields(fields: &[String]) -> Result<(), String> {
    let mut seen = Vec::new();
    for f in fields {
        if !COLUMNS.contains(&f.as_str()) && !EXTRA_COLUMNS.contains(&f.as_str()) {
            return Err(format!(
                "--fields: no column '{f}'; the columns are {}, {}",
                COLUMNS.join(","),
                EXTRA_COLUMNS.join(",")
            ));
        }
        if seen.contains(&f) {
            return Err(format!("--fields: '{f}' is given twice"));
        }
        seen.push(f);
    }
    Ok(())
}

fn value(v: &Verdict, column: &str) -> String {
    match column {
        "client" => v.client.to_string(),
        "target" => v.target.to_string(),
        "port" => v.port.to_string(),
        "state" => v.state.as_str().to_string(),
        "reason" => v.reason.as_str().to_string(),
        "icmp_type" => opt(v.icmp_type),
        "icmp_code" => opt(v.icmp_code),
        "responder" => opt(v.responder),
        "ttl" => opt(v.ttl),
        "hops" => opt(v.hops),
        "rtt_ms" => opt(v.rtt_ms),
        "rtt_last_ms" => opt(v.rtt_last_ms),
        "probes" => v.probes.to_string(),
        "attempts" => v.attempts.to_string(),
        "uncertain" => v.uncertain.to_string(),
        "inferred" => opt(v.inferred.as_ref().map(|i| i.errors)),
        "host_hops" => opt(v.host_hops),
        "name" => v.name.clone().unwrap_or_default(),
        "first_probe_ns" => v.first_probe_ns.to_string(),
        "decided_ns" => opt(v.decided_ns),
        "service" => super::services::Services::system()
            .tcp(v.port)
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    }
}

/// One row per verdict: `fields` (checked by [`check_fields`]) in their
/// order, or every one of [`COLUMNS`] when empty.
pub fn write_csv<W: Write>(a: &Analysis, fields: &[String], mut w: W) -> std::io::Result<()> {
    let columns: Vec<&str> = if fields.is_empty() {
        COLUMNS.to_vec()
    } else {
        fields.iter().map(String::as_str).collect()
    };
    writeln!(w, "{}", columns.join(","))?;
    for v in &a.results {
        let row: Vec<String> = columns.iter().map(|c| field(&value(v, c))).collect();
        writeln!(w, "{}", row.join(","))?;
    }
    w.flush()
}
