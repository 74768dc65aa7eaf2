//! Diagnosis reports: Markdown (the terminal and a ticket), one HTML page,
//! the JSON document, and a capture's findings as text. What the evidence
//! table and the path show is worked out once here ([`evidence_rows`],
//! [`path_rows`]); each format only lays it out.

mod html;
mod markdown;
mod offline;

pub use html::render_diagnosis_html;
pub use markdown::render_diagnosis_markdown;
pub use offline::render_findings;

use crate::diagnose::AddressDiagnosis;
use crate::diagnose::Diagnosis;
use crate::model::{HopKind, PortTrace, Verdict};
use std::net::IpAddr;

/// Writes the diagnosis as one compact JSON document and a newline.
/// Fails only as the writer does.
pub fn write_diagnosis_json<W: std::io::Write>(d: &Diagnosis, mut w: W) -> std::io::Result<()> {
    serde_json::to_writer(&mut w, d).map_err(std::io::Error::from)?;
    w.write_all(b"\n")?;
    w.flush()
}

/// The evidence table's column heads.
const EVIDENCE_COLUMNS: [&str; 7] = [
    "port",
    "state",
    "reason",
    "responder",
    "TTL/hops",
    "RTT",
    "probes",
];

/// One verdict of the evidence table, as the cells show it.
struct EvidenceRow {
    /// The port the diagnosis is about.
    asked: bool,
    port: u16,
    state: &'static str,
    /// "admin-prohibited (3/13)": the reason, and the ICMP type/code if any.
    reason: String,
    responder: String,
    /// "63/2", or "-".
    ttl_hops: String,
    /// "0.215 ms", or "-".
    rtt: String,
    probes: u32,
}

/// The evidence rows of one address: the asked port first, then the rest
/// by port.
fn evidence_rows(a: &AddressDiagnosis, asked: u16) -> Vec<EvidenceRow> {
    let mut rows: Vec<&Verdict> = a.results.iter().collect();
    rows.sort_by_key(|v| (v.port != asked, v.port));
    rows.into_iter()
        .map(|v| EvidenceRow {
            asked: v.port == asked,
            port: v.port,
            state: v.state.as_str(),
            reason: match (v.icmp_type, v.icmp_code) {
                (Some(t), Some(c)) => format!("{} ({t}/{c})", v.reason.as_str()),
                _ => v.reason.as_str().to_string(),
            },
            responder: v
                .responder
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
            ttl_hops: match (v.ttl, v.hops) {
                (Some(t), Some(h)) => format!("{t}/{h}"),
                _ => "-".into(),
            },
            rtt: v
                .rtt_ms
                .map(|r| format!("{r:.3} ms"))
                .unwrap_or_else(|| "-".into()),
            probes: v.probes,
        })
        .collect()
}

/// One TTL of a traced path, after "you".
enum Step {
    /// A router's time-exceeded.
    Router { ttl: u8, from: IpAddr },
    /// The target answered (SYN-ACK or RST).
    Reached {
        ttl: u8,
        from: IpAddr,
        reason: &'static str,
    },
    /// A destination-unreachable at this TTL.
    Rejects {
        ttl: u8,
        from: IpAddr,
        reason: &'static str,
    },
    /// Nothing answered at this TTL.
    Unknown { ttl: u8 },
}

/// One port's traced path.
struct PathRow {
    port: u16,
    /// "asked" or "reference".
    label: &'static str,
    steps: Vec<Step>,
    /// The host never answered: no answer beyond this hop.
    stops_after: Option<u8>,
}

/// Each traced port's path, up to where the host answered (later TTLs
/// reach it too), or the last hop that answered at all.
fn path_rows(traces: &[PortTrace], asked: u16) -> Vec<PathRow> {
    traces
        .iter()
        .map(|t| {
            let max = t
                .reached_at()
                .unwrap_or_else(|| t.hops.iter().map(|h| h.ttl).max().unwrap_or(0));
            let steps = (1..=max)
                .map(|ttl| match t.hops.iter().find(|h| h.ttl == ttl) {
                    Some(h) => match h.kind {
                        HopKind::TimeExceeded => Step::Router { ttl, from: h.from },
                        HopKind::Reached { reason } => Step::Reached {
                            ttl,
                            from: h.from,
                            reason: reason.as_str(),
                        },
                        HopKind::Rejected { reason } => Step::Rejects {
                            ttl,
                            from: h.from,
                            reason: reason.as_str(),
                        },
                    },
                    None => Step::Unknown { ttl },
                })
                .collect();
            PathRow {
                port: t.port,
                label: if t.port == asked {
                    "asked"
                } else {
                    "reference"
                },
                steps,
                stops_after: t.reached_at().is_none().then_some(max),
            }
        })
        .collect()
}
