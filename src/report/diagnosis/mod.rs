//! Diagnosis reports: Markdown (the terminal and a ticket), one HTML page,
//! the JSON document, and a capture's findings as text. What the evidence
//! table and the path show is worked out once here ([`evidence_rows`],
//! [`path_rows`]); each format only lays it out.

mod html;
mod markdown;
mod offline;

pub use html::{render_diagnosis_html, render_findings_html, render_watch_html};
pub use markdown::render_diagnosis_markdown;
pub use offline::render_findings;

use crate::diagnose::{AddressDiagnosis, Diagnosis, Finding, Kind};
use crate::model::{AfterHandshake, HopKind, PortTrace, Verdict};
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

/// One box of a finding's picture.
pub struct Pic {
    pub lines: Vec<String>,
    /// The HTML class: "hop" (on the way), "hop host" (the host answered
    /// as it should), "hop stop" (where it went wrong), "hop far" (not
    /// reached, or not what decided it).
    pub class: &'static str,
}

fn pic(class: &'static str, lines: Vec<String>) -> Pic {
    Pic { lines, class }
}

/// "⋯ 2 routers", for the hops before `at` whose addresses are not known.
fn routers_before(at: Option<u8>) -> Option<Pic> {
    let n = at?.checked_sub(1).filter(|n| *n > 0)?;
    Some(pic(
        "hop",
        vec![format!("⋯ {n} router{}", if n == 1 { "" } else { "s" })],
    ))
}

fn at_hop(h: Option<u8>) -> String {
    h.map_or_else(|| "hop ?".to_string(), |h| format!("hop {h}"))
}

fn ms_text(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{ms:.1} ms")
    }
}

/// The handshake and what followed, as boxes.
fn timeline(h: &AfterHandshake) -> Vec<Pic> {
    use crate::model::EventKind;
    let mut out = Vec::new();
    if !h.connected {
        out.push(pic(
            "hop stop",
            vec![
                "connect()".into(),
                h.connect_error.clone().unwrap_or_default(),
                format!("after {}", ms_text(h.connect_ms)),
            ],
        ));
        return out;
    }
    out.push(pic(
        "hop",
        vec!["handshake".into(), format!("{}", ms_text(h.connect_ms))],
    ));
    for e in [&h.first, &h.then].into_iter().flatten() {
        let later = format!("{} later", ms_text(e.at_ms));
        out.push(match e.kind {
            EventKind::Data => pic(
                "hop host",
                vec![
                    format!("data: {}", e.text.clone().unwrap_or_default()),
                    later,
                ],
            ),
            EventKind::Fin => pic("hop stop", vec!["FIN, no data".into(), later]),
            EventKind::Reset => pic("hop stop", vec!["RST".into(), later]),
        });
    }
    if h.first.is_none() {
        out.push(pic(
            "hop",
            vec![
                format!("silent {}", ms_text(h.waited_ms)),
                "waits for the client".into(),
            ],
        ));
    }
    out
}

/// A finding drawn as boxes from "you" to where it happened: the routers
/// on the way (by count, where only the distance is known), who answered
/// and how, and the host when it was not what decided it; after a
/// completed handshake, what followed it. `host_hops`: the host's own
/// distance.
pub fn picture(f: &Finding, host_hops: Option<u8>, after: Option<&AfterHandshake>) -> Vec<Pic> {
    let e = f.evidence.first();
    let (target, port) = (f.target, f.port);
    let hops = e.and_then(|e| e.hops);
    let by = e
        .and_then(|e| e.responder)
        .map_or_else(|| "?".to_string(), |r| r.to_string());
    let reason = e.map_or_else(String::new, |e| match (e.icmp_type, e.icmp_code) {
        (Some(t), Some(c)) => format!("{} ({t}/{c})", e.reason.as_str()),
        _ => e.reason.as_str().to_string(),
    });
    let host = |class: &'static str, what: String| {
        pic(class, vec![at_hop(host_hops), target.to_string(), what])
    };
    let mut out = vec![pic("hop", vec!["you".into()])];
    match f.kind {
        Kind::Open | Kind::AcceptsThenResets | Kind::AcceptsThenCloses => {
            out.extend(routers_before(hops.or(host_hops)));
            out.push(pic(
                "hop host",
                vec![
                    at_hop(hops.or(host_hops)),
                    by,
                    format!("SYN-ACK for port {port}"),
                ],
            ));
            if let Some(h) = after {
                out.extend(timeline(h));
            }
        }
        Kind::RefusedByHost => {
            out.extend(routers_before(hops));
            out.push(pic(
                "hop stop",
                vec![at_hop(hops), by, format!("RST: nothing listens on {port}")],
            ));
        }
        Kind::RejectedByHost => {
            out.extend(routers_before(hops));
            out.push(pic(
                "hop stop",
                vec![at_hop(hops), by, format!("rejects {port}: {reason}")],
            ));
        }
        Kind::MiddleboxReset => {
            out.extend(routers_before(hops));
            out.push(pic(
                "hop stop",
                vec![at_hop(hops), format!("RST for {port}, in {by}'s name")],
            ));
            out.push(host("hop far", "its own replies come from here".into()));
        }
        Kind::RejectedOnPath => {
            out.extend(routers_before(hops));
            out.push(pic(
                "hop stop",
                vec![at_hop(hops), by, format!("rejects {port}: {reason}")],
            ));
            out.push(host("hop far", "not reached".into()));
        }
        Kind::HostUnreachable | Kind::NetworkUnreachable => {
            out.extend(routers_before(hops));
            let what = if f.kind == Kind::HostUnreachable {
                format!("{reason}: cannot reach it")
            } else {
                format!("{reason}: no route")
            };
            out.push(pic("hop stop", vec![at_hop(hops), by, what]));
            out.push(pic(
                "hop far",
                vec![
                    target.to_string(),
                    match (f.kind, crate::diagnose::findings::blames_arp(f)) {
                        (Kind::HostUnreachable, Some(true)) => {
                            "no answer to the router's ARP / ND".into()
                        }
                        (Kind::HostUnreachable, Some(false)) => "no route to it".into(),
                        (Kind::HostUnreachable, None) => "not reached".into(),
                        _ => "its network is not routed".into(),
                    },
                ],
            ));
        }
        Kind::DroppedHostUp => {
            out.push(pic(
                "hop stop",
                vec![format!("✗ port {port}"), "no answer".into()],
            ));
            out.push(host("hop far", "answers other ports".into()));
        }
        Kind::NoAnswerAtAll => {
            out.push(pic(
                "hop stop",
                vec!["✗ no answer".into(), "on any port".into()],
            ));
            out.push(pic("hop far", vec![target.to_string()]));
        }
        Kind::AnsweredOnBehalf => {
            out.push(pic(
                "hop stop",
                vec![
                    "a device (SYN proxy)".into(),
                    "SYN-ACK for most ports".into(),
                ],
            ));
            if let Some(h) = after {
                out.extend(timeline(h));
            }
            out.push(host("hop far", "serves only some".into()));
        }
    }
    out
}

/// A picture as one line of text: "you → hop 1 198.51.100.1 rejects 9002:
/// admin-prohibited (3/13) → hop 2 203.0.113.2 not reached".
pub fn picture_text(p: &[Pic]) -> String {
    p.iter()
        .map(|b| b.lines.join(" "))
        .collect::<Vec<_>>()
        .join(" → ")
}
