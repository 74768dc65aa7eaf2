//! Findings: verdicts turned into the answer to "why is my connection
//! refused (or hanging), and which part is at fault?", in plain language,
//! each with the packets that show it. Pure: verdicts in, findings out.
//!
//! [`finding`] decides which kind a port's verdict shows; one file a family
//! words it: `open.rs` and `refused.rs` (the TCP answers: SYN-ACK, RST from
//! the host or forged on the path), `rejected.rs` (ICMP errors from the
//! host's or a router's filter), `unreachable.rs` (routers that cannot
//! deliver) and `dropped.rs` (silence, and where on the path it starts).

mod dropped;
mod open;
mod refused;
mod rejected;
pub mod session;
mod unreachable;

pub use dropped::{DropLocation, full_backlog_note, locate_drop, slow_reprobe_note};
pub use unreachable::{arp_failed, blames_arp};

use crate::model::{Reason, State, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Something accepts connections.
    Open,
    /// The host itself reset the connection: nothing listens there.
    RefusedByHost,
    /// A reset that came from nearer (or farther) than the host's own
    /// replies: a device on the path forged it.
    MiddleboxReset,
    /// An ICMP error from the host's own firewall or stack.
    RejectedByHost,
    /// An ICMP error from a router on the path.
    RejectedOnPath,
    /// The last router could not reach the host (ARP / neighbour
    /// discovery failed).
    HostUnreachable,
    /// A router has no route to the network.
    NetworkUnreachable,
    /// Silence, while the host answers on other ports.
    DroppedHostUp,
    /// Silence on every probed port.
    NoAnswerAtAll,
    /// The handshake completes, then the connection is reset.
    AcceptsThenResets,
    /// The handshake completes, then the server closes without a byte.
    AcceptsThenCloses,
    /// A device (a SYN proxy) answers SYN-ACK for most ports; only some
    /// are served.
    AnsweredOnBehalf,
}

/// One packet that shows a finding: who sent it and what it was.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvidencePacket {
    pub port: u16,
    pub state: State,
    pub reason: Reason,
    pub responder: Option<IpAddr>,
    pub ttl: Option<u8>,
    pub hops: Option<u8>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    pub rtt_ms: Option<f64>,
    pub probes: u32,
}

impl From<&Verdict> for EvidencePacket {
    fn from(v: &Verdict) -> Self {
        EvidencePacket {
            port: v.port,
            state: v.state,
            reason: v.reason,
            responder: v.responder,
            ttl: v.ttl,
            hops: v.hops,
            icmp_type: v.icmp_type,
            icmp_code: v.icmp_code,
            rtt_ms: v.rtt_ms,
            probes: v.probes,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub target: IpAddr,
    pub port: u16,
    pub kind: Kind,
    /// One sentence: what happened and who did it.
    pub summary: String,
    /// What it means and what to check next.
    pub details: Vec<String>,
    /// What an application's connect() sees, when it fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_error: Option<String>,
    /// The deciding packets: the port's own, then the reference ports'.
    pub evidence: Vec<EvidencePacket>,
}

/// What the target's own replies look like, learnt from every probed port.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HostProfile {
    /// Hop distance of the replies sent from the target's address (the most
    /// common one), if any came.
    pub hops: Option<u8>,
    /// Ports that answered from the target's address.
    pub answering: Vec<u16>,
    pub open: Vec<u16>,
    /// The first replies from the target's address, in the verdicts'
    /// order: a finding's reference evidence (learnt once per host).
    #[serde(skip)]
    samples: Vec<EvidencePacket>,
    /// The timing of the first host-unreachable a router sent for this
    /// target on a packet of its own: (router, rtt_ms, rtt_last_ms), for the
    /// ports whose verdict was inferred from it.
    #[serde(skip)]
    pub unreach_timing: Option<(IpAddr, f64, Option<f64>)>,
}

/// Replies kept in [`HostProfile`] for evidence: the three a finding
/// shows, and one more in case one is the asked port itself.
const SAMPLES: usize = 4;

/// Learns the host's profile from all verdicts on one target.
pub fn profile(target: IpAddr, verdicts: &[Verdict]) -> HostProfile {
    let mut hops: BTreeMap<u8, usize> = BTreeMap::new();
    let mut p = HostProfile::default();
    for v in verdicts.iter().filter(|v| v.target == target) {
        if v.responder == Some(target) {
            p.answering.push(v.port);
            if p.samples.len() < SAMPLES {
                p.samples.push(EvidencePacket::from(v));
            }
            if let Some(h) = v.hops {
                *hops.entry(h).or_default() += 1;
            }
        }
        if v.state == State::Open {
            p.open.push(v.port);
        }
        if p.unreach_timing.is_none()
            && v.reason == Reason::HostUnreach
            && v.inferred.is_none()
            && v.responder != Some(target)
            && let (Some(r), Some(ms)) = (v.responder, v.rtt_ms)
        {
            p.unreach_timing = Some((r, ms, v.rtt_last_ms));
        }
    }
    // The most common distance; on a tie, the farther (a forged reset from
    // a middlebox is nearer than the host).
    p.hops = hops.iter().max_by_key(|(h, n)| (**n, **h)).map(|(h, _)| *h);
    p.answering.sort_unstable();
    p.open.sort_unstable();
    p
}

impl HostProfile {
    /// The port to trace a silent `asked` port against: one that answers
    /// from the host's address, an open one first.
    pub fn reference_port(&self, asked: u16) -> Option<u16> {
        self.open
            .iter()
            .chain(self.answering.iter())
            .find(|p| **p != asked)
            .copied()
    }
}

/// What Linux's connect() returns for an ICMP destination-unreachable
/// during the handshake (net/ipv4/icmp.c icmp_err_convert,
/// net/ipv6/icmp.c tab_unreach).
pub fn application_error(v: &Verdict) -> Option<String> {
    let (errno, text) = match (v.target.is_ipv6(), v.icmp_type?, v.icmp_code?) {
        (false, 3, 0) | (false, 3, 6) | (false, 3, 9) | (false, 3, 11) => {
            ("ENETUNREACH", "Network is unreachable")
        }
        (false, 3, 2) => ("ENOPROTOOPT", "Protocol not available"),
        (false, 3, 3) => ("ECONNREFUSED", "Connection refused"),
        (false, 3, 4) => ("EMSGSIZE", "Message too long"),
        (false, 3, 7) => ("EHOSTDOWN", "Host is down"),
        (false, 3, _) => ("EHOSTUNREACH", "No route to host"),
        (true, 1, 0) => ("ENETUNREACH", "Network is unreachable"),
        (true, 1, 4) => ("ECONNREFUSED", "Connection refused"),
        (true, 1, 1) | (true, 1, 5) | (true, 1, 6) => ("EACCES", "Permission denied"),
        (true, 1, _) => ("EHOSTUNREACH", "No route to host"),
        // Time exceeded is a soft error: connect() retries, then times out.
        _ => ("ETIMEDOUT", "Connection timed out (after its retries)"),
    };
    Some(format!("connect() fails with {errno} \"{text}\""))
}

/// "2 hops away", "1 hop away, on your own network".
fn describe_hops(h: Option<u8>) -> String {
    match h {
        Some(1) => "1 hop away, on your own network".into(),
        Some(n) => format!("{n} hops away"),
        None => "at an unknown distance".into(),
    }
}

/// What one asked port's finding is judged from.
struct Case<'a> {
    target: IpAddr,
    port: u16,
    /// The asked port's verdict.
    v: &'a Verdict,
    /// What the target's replies on every probed port look like.
    host: &'a HostProfile,
    /// Who answered, as text ("" when nothing did).
    responder: String,
}

impl Case<'_> {
    /// Whether the answer carries the target's own address.
    fn answered_by_target(&self) -> bool {
        self.v.responder == Some(self.target)
    }
}

/// A finding's words, as each kind's function gives them.
struct Said {
    kind: Kind,
    summary: String,
    details: Vec<String>,
    application_error: Option<String>,
}

/// The finding for one asked port, given every verdict on its target.
pub fn finding(target: IpAddr, port: u16, verdicts: &[Verdict]) -> Option<Finding> {
    let v = verdicts
        .iter()
        .find(|v| v.target == target && v.port == port)?;
    Some(finding_of(v, &profile(target, verdicts)))
}

/// The finding of verdict `v`, given its host's profile (learnt from every
/// verdict on its target: a capture of thousands of ports learns it once,
/// not once a port).
pub fn finding_of(v: &Verdict, host: &HostProfile) -> Finding {
    let (target, port) = (v.target, v.port);
    let c = Case {
        target,
        port,
        v,
        host,
        responder: v.responder.map(|r| r.to_string()).unwrap_or_default(),
    };
    let said = match v.state {
        State::Open => open::open(&c),
        // A reset from the host's own distance is its own stack's.
        State::Refused if c.answered_by_target() && host.hops.is_none_or(|h| v.hops == Some(h)) => {
            refused::by_host(&c)
        }
        State::Refused => refused::middlebox(&c),
        State::Unreachable => match v.reason {
            Reason::HostUnreach if !c.answered_by_target() => unreachable::host(&c),
            Reason::NetUnreach | Reason::NoRoute => unreachable::network(&c),
            _ if c.answered_by_target() => rejected::by_host(&c),
            _ => rejected::on_path(&c),
        },
        State::Filtered if host.answering.is_empty() => dropped::no_answer_at_all(&c),
        State::Filtered => dropped::host_up(&c),
    };
    // The port's own packet, then up to three the host sent on other ports.
    let mut evidence = vec![EvidencePacket::from(v)];
    evidence.extend(
        host.samples
            .iter()
            .filter(|r| r.port != port)
            .take(3)
            .cloned(),
    );
    Finding {
        target,
        port,
        kind: said.kind,
        summary: said.summary,
        details: said.details,
        application_error: said.application_error,
        evidence,
    }
}
