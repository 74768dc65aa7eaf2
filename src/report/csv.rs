//! The CSV report: one row per verdict, the JSON result fields as columns
//! (RFC 4180 quoting; empty for absent values).

use crate::model::Analysis;
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

pub fn write_csv<W: Write>(a: &Analysis, mut w: W) -> std::io::Result<()> {
    writeln!(w, "{}", COLUMNS.join(","))?;
    for v in &a.results {
        let row = [
            v.client.to_string(),
            v.target.to_string(),
            v.port.to_string(),
            v.state.as_str().to_string(),
            v.reason.as_str().to_string(),
            opt(v.icmp_type),
            opt(v.icmp_code),
            opt(v.responder),
            opt(v.ttl),
            opt(v.hops),
            opt(v.rtt_ms),
            v.probes.to_string(),
            v.attempts.to_string(),
            v.uncertain.to_string(),
            opt(v.inferred.as_ref().map(|i| i.errors)),
            opt(v.host_hops),
            v.name.clone().unwrap_or_default(),
            v.first_probe_ns.to_string(),
            opt(v.decided_ns),
        ];
        let row: Vec<String> = row.iter().map(|f| field(f)).collect();
        writeln!(w, "{}", row.join(","))?;
    }
    w.flush()
}
