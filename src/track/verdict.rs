//! Building verdicts from what the probe table found.

use super::merge::Record;
use super::{Evidence, EvidenceKind};
use crate::model::{Nanos, Reason, State, Verdict, hops_from_ttl};
use std::net::IpAddr;

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
    let mut v = Verdict::silent(
        r.key.client.ip(r.key.v6),
        r.key.target.ip(r.key.v6),
        r.key.port,
    );
    v.probes = r.probes;
    v.attempts = r.attempts;
    v.ttls = r.ttls.to_vec();
    v.first_probe_ns = r.first_syn;
    if let Some(ev) = &r.evidence {
        apply(&mut v, ev);
    }
    v
}

/// What decided an attempt, however it was seen: a captured reply, or a
/// connect() result (which knows no TTL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub kind: EvidenceKind,
    pub responder: Option<IpAddr>,
    pub ttl: Option<u8>,
    pub ip_id: Option<u16>,
    /// When it came, how long after the first SYN, and after the last SYN
    /// before it.
    pub at: Nanos,
    pub rtt: Nanos,
    pub since_syn: Nanos,
}

fn apply(v: &mut Verdict, ev: &Evidence) {
    decide(
        v,
        &Outcome {
            kind: ev.kind,
            responder: Some(ev.responder),
            ttl: Some(ev.ttl),
            ip_id: ev.ip_id,
            at: ev.at,
            rtt: ev.rtt,
            since_syn: Nanos::from(ev.since_syn_us) * 1_000,
        },
    );
}

/// The one mapping from what answered to state, reason and the rest of a
/// verdict.
pub fn decide(v: &mut Verdict, o: &Outcome) {
    let (state, reason) = match o.kind {
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
    v.responder = o.responder;
    v.ttl = o.ttl;
    v.hops = o.ttl.map(hops_from_ttl);
    // Nanoseconds to milliseconds, rounded to the microsecond.
    let ms = |ns: Nanos| (ns / 1_000) as f64 / 1_000.0;
    v.rtt_ms = Some(ms(o.rtt));
    // (Compared in microseconds: the evidence keeps no finer.)
    v.rtt_last_ms = (o.since_syn / 1_000 < o.rtt / 1_000).then(|| ms(o.since_syn));
    v.ip_id = o.ip_id;
    v.decided_ns = Some(o.at);
}
