//! Verdicts: what one (client, target, port) came to, and why.

use super::merge::Record;
use super::{Evidence, EvidenceKind, Nanos, Triple};
use serde::Serialize;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// SYN-ACK (or a split-handshake SYN): something accepts connections.
    Open,
    /// RST: the connection was refused.
    Refused,
    /// Silence: nothing came back within the timeout.
    Filtered,
    /// An ICMP destination-unreachable or time-exceeded error.
    Unreachable,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Refused => "refused",
            State::Filtered => "filtered",
            State::Unreachable => "unreachable",
        }
    }

    pub const ALL: [State; 4] = [
        State::Open,
        State::Refused,
        State::Filtered,
        State::Unreachable,
    ];
}

/// Why, in nmap's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    SynAck,
    SplitHandshakeSyn,
    Reset,
    NoResponse,
    NetUnreach,
    HostUnreach,
    ProtoUnreach,
    PortUnreach,
    NetProhibited,
    HostProhibited,
    AdminProhibited,
    TimeExceeded,
    DestUnreach,
    NoRoute,
    BeyondScope,
    RejectRoute,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::SynAck => "syn-ack",
            Reason::SplitHandshakeSyn => "split-handshake-syn",
            Reason::Reset => "reset",
            Reason::NoResponse => "no-response",
            Reason::NetUnreach => "net-unreach",
            Reason::HostUnreach => "host-unreach",
            Reason::ProtoUnreach => "proto-unreach",
            Reason::PortUnreach => "port-unreach",
            Reason::NetProhibited => "net-prohibited",
            Reason::HostProhibited => "host-prohibited",
            Reason::AdminProhibited => "admin-prohibited",
            Reason::TimeExceeded => "time-exceeded",
            Reason::DestUnreach => "dest-unreach",
            Reason::NoRoute => "no-route",
            Reason::BeyondScope => "beyond-scope",
            Reason::RejectRoute => "reject-route",
        }
    }

    /// The reason an ICMP error of this family, type and code gives.
    pub fn from_icmp(v6: bool, icmp_type: u8, code: u8) -> Reason {
        match (v6, icmp_type, code) {
            (false, 11, _) | (true, 3, _) => Reason::TimeExceeded,
            (false, 3, 0) => Reason::NetUnreach,
            (false, 3, 1) => Reason::HostUnreach,
            (false, 3, 2) => Reason::ProtoUnreach,
            (false, 3, 3) => Reason::PortUnreach,
            (false, 3, 9) => Reason::NetProhibited,
            (false, 3, 10) => Reason::HostProhibited,
            (false, 3, 13) => Reason::AdminProhibited,
            (true, 1, 0) => Reason::NoRoute,
            (true, 1, 1) => Reason::AdminProhibited,
            (true, 1, 2) => Reason::BeyondScope,
            (true, 1, 3) => Reason::HostUnreach,
            (true, 1, 4) => Reason::PortUnreach,
            (true, 1, 6) => Reason::RejectRoute,
            _ => Reason::DestUnreach,
        }
    }
}

/// The verdict for one (client, target, port). Its JSON form is the
/// contract documented in docs/JSON.md.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub client: IpAddr,
    pub target: IpAddr,
    pub port: u16,
    pub state: State,
    pub reason: Reason,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    /// Source address of the deciding packet.
    pub responder: Option<IpAddr>,
    /// TTL / hop limit of the deciding packet.
    pub ttl: Option<u8>,
    /// Distance to the responder, 1 = same link (nmap's convention).
    pub hops: Option<u8>,
    /// From the first SYN of the answered attempt to the deciding reply.
    pub rtt_ms: Option<f64>,
    /// SYNs sent, retransmissions included.
    pub probes: u32,
    /// Attempts (distinct source ports or reopenings).
    pub attempts: u32,
    /// Distinct TTLs of all matching replies, when more than one was seen.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ttls: Vec<u8>,
    /// IPv4 identification of the deciding packet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_id: Option<u16>,
    /// Capture time of the first SYN, nanoseconds since the Unix epoch.
    pub first_probe_ns: Nanos,
    /// Capture time of the deciding reply.
    pub decided_ns: Option<Nanos>,
    /// Silence that cannot be trusted: the capture lost packets, or never
    /// saw this probe. Only present (true) then.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub uncertain: bool,
}

impl Verdict {
    pub fn triple(&self) -> Triple {
        Triple {
            client: self.client,
            target: self.target,
            port: self.port,
        }
    }
}

/// The first of the usual initial TTLs (32, 64, 128, 255) at or above
/// `ttl`, and the distance in hops from it: 1 = the sender is on our link.
pub fn hops_from_ttl(ttl: u8) -> u8 {
    let initial: u16 = [32u16, 64, 128, 255]
        .into_iter()
        .find(|&i| i >= u16::from(ttl))
        .unwrap_or(255);
    // initial >= ttl, so this cannot underflow; +1 fits since initial <= 255.
    u8::try_from(initial - u16::from(ttl) + 1).unwrap_or(u8::MAX)
}

/// A small set of distinct TTLs, kept sorted, at most [`TtlSet::CAP`],
/// inline (no allocation per attempt).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct TtlSet {
    v: [u8; TtlSet::CAP],
    n: u8,
}

impl TtlSet {
    const CAP: usize = 8;

    fn as_slice(&self) -> &[u8] {
        &self.v[..usize::from(self.n).min(Self::CAP)]
    }

    pub(super) fn insert(&mut self, ttl: u8) {
        let n = usize::from(self.n);
        if n >= Self::CAP {
            return;
        }
        if let Err(pos) = self.as_slice().binary_search(&ttl) {
            self.v.copy_within(pos..n, pos + 1);
            self.v[pos] = ttl;
            self.n += 1;
        }
    }

    pub(super) fn union(&mut self, other: &TtlSet) {
        for &t in other.as_slice() {
            self.insert(t);
        }
    }

    /// The TTLs if more than one was seen, else empty.
    pub(super) fn to_vec(self) -> Vec<u8> {
        if self.n > 1 {
            self.as_slice().to_vec()
        } else {
            Vec::new()
        }
    }
}

pub(super) fn build(r: &Record) -> Verdict {
    let mut v = Verdict {
        client: r.key.client.ip(r.key.v6),
        target: r.key.target.ip(r.key.v6),
        port: r.key.port,
        state: State::Filtered,
        reason: Reason::NoResponse,
        icmp_type: None,
        icmp_code: None,
        responder: None,
        ttl: None,
        hops: None,
        rtt_ms: None,
        probes: r.probes,
        attempts: r.attempts,
        ttls: r.ttls.to_vec(),
        ip_id: None,
        first_probe_ns: r.first_syn,
        decided_ns: None,
        uncertain: false,
    };
    if let Some(ev) = &r.evidence {
        apply(&mut v, ev);
    }
    v
}

fn apply(v: &mut Verdict, ev: &Evidence) {
    let (state, reason) = match ev.kind {
        EvidenceKind::SynAck => (State::Open, Reason::SynAck),
        EvidenceKind::SplitSyn => (State::Open, Reason::SplitHandshakeSyn),
        EvidenceKind::Reset => (State::Refused, Reason::Reset),
        EvidenceKind::Icmp {
            v6,
            icmp_type,
            code,
        } => {
            v.icmp_type = Some(icmp_type);
            v.icmp_code = Some(code);
            (State::Unreachable, Reason::from_icmp(v6, icmp_type, code))
        }
    };
    v.state = state;
    v.reason = reason;
    v.responder = Some(ev.responder);
    v.ttl = Some(ev.ttl);
    v.hops = Some(hops_from_ttl(ev.ttl));
    // Nanoseconds to milliseconds, rounded to the microsecond.
    v.rtt_ms = Some((ev.rtt / 1_000) as f64 / 1_000.0);
    v.ip_id = ev.ip_id;
    v.decided_ns = Some(ev.at);
}
