//! track: the probe table, reply matching and verdicts.
//!
//! Pure: no I/O and no wall clock. Time is the packets' own timestamps, so
//! the same packets give the same verdicts live, from a file, or in a test.
//!
//! A SYN without ACK opens an *attempt* keyed by (client, sport, target,
//! dport); a repeated SYN on that key is a retransmission. Replies are
//! matched to attempts by the reversed 4-tuple and the sequence numbers
//! (SYN-ACK / RST: `ack == isn + 1`, RST also `ack == isn`; ICMP errors by
//! the quoted 4-tuple and quoted seq). Verdicts are per (client, target,
//! port) *triple*, built from all attempts of that triple, because nmap
//! retries from a new source port.
//!
//! Memory is bounded: an attempt leaves the table once the capture's clock
//! passes its last SYN (or last packet, for a connection that is in use)
//! plus the timeout; the triple's verdict is emitted when its last attempt
//! leaves. A hard cap on live attempts evicts the oldest early (counted).

mod verdict;

pub use verdict::{Reason, State, Verdict, hops_from_ttl, merge_into};

use crate::wire::{Body, Packet, Tcp, flags};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::VecDeque;
use std::collections::hash_map::Entry;
use std::net::IpAddr;

/// Nanoseconds since the Unix epoch, from the packet headers.
pub type Nanos = u64;

pub const NANOS_PER_SEC: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// How long after its last SYN an attempt waits for an answer.
    pub timeout: Nanos,
    /// Live attempts at most; past it the oldest are decided early.
    pub max_attempts: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeout: 3 * NANOS_PER_SEC,
            max_attempts: 1 << 18,
        }
    }
}

/// Counters of what the tracker saw; all packets it was handed are in
/// exactly one of `syns`, `replies`, `unsolicited`, `other_tcp`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// SYNs without ACK sent by clients (first sends and retransmissions).
    pub syns: u64,
    /// Of those, retransmissions on an already open attempt.
    pub retransmissions: u64,
    /// SYN-ACKs, RSTs, SYNs and ICMP errors matched to an attempt.
    pub replies: u64,
    /// SYN-ACKs, RSTs and ICMP errors that matched no attempt (wrong
    /// addresses, ports or sequence numbers, or too late).
    pub unsolicited: u64,
    /// Other TCP segments (data, ACKs, FINs, the client's own RSTs).
    pub other_tcp: u64,
    /// Attempts decided before their timeout because the table was full.
    pub evicted: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey {
    client: IpAddr,
    sport: u16,
    target: IpAddr,
    dport: u16,
}

impl FlowKey {
    fn triple(&self) -> Triple {
        Triple {
            client: self.client,
            target: self.target,
            port: self.dport,
        }
    }
}

/// (client, target, port): what a verdict is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Triple {
    pub client: IpAddr,
    pub target: IpAddr,
    pub port: u16,
}

/// Up to this many distinct initial sequence numbers are kept per attempt
/// (a client may re-use a 4-tuple with a new ISN); more are ignored.
const MAX_ISNS: usize = 4;

#[derive(Debug)]
struct Attempt {
    isns: [u32; MAX_ISNS],
    n_isns: u8,
    first_syn: Nanos,
    last_syn: Nanos,
    last_seen: Nanos,
    /// A SYN-ACK (or split-handshake SYN) was matched: later segments are
    /// the connection's own traffic, not replies.
    established: bool,
}

impl Attempt {
    fn new(isn: u32, ts: Nanos) -> Self {
        Attempt {
            isns: [isn, 0, 0, 0],
            n_isns: 1,
            first_syn: ts,
            last_syn: ts,
            last_seen: ts,
            established: false,
        }
    }

    fn has_isn(&self, isn: u32) -> bool {
        self.isns[..usize::from(self.n_isns)].contains(&isn)
    }

    fn add_isn(&mut self, isn: u32) {
        if !self.has_isn(isn) && usize::from(self.n_isns) < MAX_ISNS {
            self.isns[usize::from(self.n_isns)] = isn;
            self.n_isns += 1;
        }
    }

    fn deadline(&self, timeout: Nanos) -> Nanos {
        self.last_syn.max(self.last_seen).saturating_add(timeout)
    }
}

/// What answered an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidenceKind {
    SynAck,
    SplitSyn,
    Reset,
    Icmp { v6: bool, icmp_type: u8, code: u8 },
}

impl EvidenceKind {
    /// Precedence: SYN-ACK > RST > ICMP (> silence, which has no evidence).
    fn rank(self) -> u8 {
        match self {
            EvidenceKind::SynAck | EvidenceKind::SplitSyn => 3,
            EvidenceKind::Reset => 2,
            EvidenceKind::Icmp { .. } => 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evidence {
    pub kind: EvidenceKind,
    /// Source address of the deciding packet.
    pub responder: IpAddr,
    pub ttl: u8,
    pub ip_id: Option<u16>,
    /// When the reply arrived.
    pub at: Nanos,
    /// From the first SYN of the attempt it answered.
    pub rtt: Nanos,
}

#[derive(Debug)]
struct Group {
    live_attempts: u32,
    attempts: u32,
    probes: u32,
    first_syn: Nanos,
    last_syn: Nanos,
    evidence: Option<Evidence>,
    ttls: verdict::TtlSet,
}

impl Group {
    fn record(&mut self, ev: Evidence) {
        self.ttls.insert(ev.ttl);
        let better = match &self.evidence {
            None => true,
            Some(cur) => ev.kind.rank() > cur.kind.rank(),
        };
        if better {
            self.evidence = Some(ev);
        }
    }
}

/// The probe table. Feed it packets in capture order with
/// [`Tracker::observe`]; take decided verdicts with [`Tracker::take_decided`]
/// as you go and the rest with [`Tracker::finish`] at the end.
#[derive(Debug)]
pub struct Tracker {
    cfg: Config,
    now: Nanos,
    attempts: FxHashMap<FlowKey, Attempt>,
    groups: FxHashMap<Triple, Group>,
    /// Attempts in the order they were opened, with the deadline they had
    /// when queued (re-queued if it moved).
    expiry: VecDeque<(Nanos, FlowKey)>,
    decided: Vec<Verdict>,
    stats: Stats,
}

impl Tracker {
    pub fn new(cfg: Config) -> Self {
        Tracker {
            cfg,
            now: 0,
            attempts: FxHashMap::default(),
            groups: FxHashMap::default(),
            expiry: VecDeque::new(),
            decided: Vec::new(),
            stats: Stats::default(),
        }
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Live attempts in the table (for tests and memory checks).
    pub fn live_attempts(&self) -> usize {
        self.attempts.len()
    }

    /// Hands one decoded packet, captured at `ts`, to the table.
    pub fn observe(&mut self, ts: Nanos, pkt: &Packet) {
        // The clock never goes back, even if timestamps do.
        self.now = self.now.max(ts);
        self.expire(false);
        let ts = self.now;
        match &pkt.body {
            Body::Tcp(tcp) => self.tcp(ts, pkt, tcp),
            Body::IcmpError(icmp) => {
                let q = &icmp.quoted;
                let key = FlowKey {
                    client: q.src,
                    sport: q.sport,
                    target: q.dst,
                    dport: q.dport,
                };
                let kind = EvidenceKind::Icmp {
                    v6: icmp.v6,
                    icmp_type: icmp.icmp_type,
                    code: icmp.code,
                };
                match self.attempts.get(&key) {
                    Some(a) if a.established => self.stats.other_tcp += 1,
                    Some(a) if q.seq.is_none_or(|s| a.has_isn(s)) => {
                        self.answer(key, kind, ts, pkt)
                    }
                    _ => self.stats.unsolicited += 1,
                }
            }
        }
        if self.attempts.len() > self.cfg.max_attempts {
            self.expire(true);
        }
    }

    fn tcp(&mut self, ts: Nanos, pkt: &Packet, tcp: &Tcp) {
        let fwd = FlowKey {
            client: pkt.src,
            sport: tcp.sport,
            target: pkt.dst,
            dport: tcp.dport,
        };
        let rev = FlowKey {
            client: pkt.dst,
            sport: tcp.dport,
            target: pkt.src,
            dport: tcp.sport,
        };
        let syn = tcp.flags & flags::SYN != 0;
        let ack = tcp.flags & flags::ACK != 0;
        let rst = tcp.flags & flags::RST != 0;
        if syn && !ack && !rst {
            if rev != fwd && self.attempts.contains_key(&rev) {
                // The "server" sends a bare SYN back: a split handshake.
                self.answer(rev, EvidenceKind::SplitSyn, ts, pkt);
            } else {
                self.syn(fwd, tcp.seq, ts);
            }
        } else if syn && ack {
            match self.attempts.get(&rev) {
                Some(a) if a.has_isn(tcp.ack.wrapping_sub(1)) => {
                    self.answer(rev, EvidenceKind::SynAck, ts, pkt)
                }
                Some(a) if a.established => self.stats.other_tcp += 1,
                _ => self.stats.unsolicited += 1,
            }
        } else if rst {
            if let Some(a) = self.attempts.get_mut(&fwd) {
                // The client's own RST (e.g. a scanner closing a half-open
                // connection after the SYN-ACK).
                a.last_seen = ts;
                self.stats.other_tcp += 1;
                return;
            }
            match self.attempts.get(&rev) {
                Some(a) if a.established => {
                    self.stats.other_tcp += 1;
                }
                Some(a) if a.has_isn(tcp.ack.wrapping_sub(1)) || a.has_isn(tcp.ack) => {
                    self.answer(rev, EvidenceKind::Reset, ts, pkt)
                }
                _ => self.stats.unsolicited += 1,
            }
        } else {
            self.stats.other_tcp += 1;
            if let Some(a) = self.attempts.get_mut(&fwd) {
                a.last_seen = ts;
            } else if let Some(a) = self.attempts.get_mut(&rev) {
                a.last_seen = ts;
            }
        }
    }

    fn syn(&mut self, key: FlowKey, isn: u32, ts: Nanos) {
        self.stats.syns += 1;
        let triple = key.triple();
        let new_attempt = match self.attempts.entry(key) {
            Entry::Occupied(mut e) => {
                self.stats.retransmissions += 1;
                let a = e.get_mut();
                a.add_isn(isn);
                a.last_syn = ts;
                false
            }
            Entry::Vacant(e) => {
                e.insert(Attempt::new(isn, ts));
                self.expiry
                    .push_back((ts.saturating_add(self.cfg.timeout), key));
                true
            }
        };
        let g = self.groups.entry(triple).or_insert_with(|| Group {
            live_attempts: 0,
            attempts: 0,
            probes: 0,
            first_syn: ts,
            last_syn: ts,
            evidence: None,
            ttls: verdict::TtlSet::default(),
        });
        g.probes = g.probes.saturating_add(1);
        g.last_syn = ts;
        if new_attempt {
            g.live_attempts = g.live_attempts.saturating_add(1);
            g.attempts = g.attempts.saturating_add(1);
        }
    }

    fn answer(&mut self, key: FlowKey, kind: EvidenceKind, ts: Nanos, pkt: &Packet) {
        let timeout = self.cfg.timeout;
        let Some(a) = self.attempts.get_mut(&key) else {
            self.stats.unsolicited += 1;
            return;
        };
        // Expiry is lazy (an attempt may linger in the table a little past
        // its deadline), so the deadline is checked here, exactly.
        if ts > a.deadline(timeout) {
            self.stats.unsolicited += 1;
            return;
        }
        self.stats.replies += 1;
        if matches!(kind, EvidenceKind::SynAck | EvidenceKind::SplitSyn) {
            // A connection: keep it while it carries traffic.
            a.established = true;
            a.last_seen = ts;
        }
        let ev = Evidence {
            kind,
            responder: pkt.src,
            ttl: pkt.ttl,
            ip_id: pkt.ip_id,
            at: ts,
            rtt: ts.saturating_sub(a.first_syn),
        };
        if let Some(g) = self.groups.get_mut(&key.triple()) {
            g.record(ev);
        }
    }

    /// Retires attempts whose deadline the clock has passed; with `force`,
    /// retires the oldest until the table is within its cap.
    fn expire(&mut self, force: bool) {
        while let Some(&(deadline, key)) = self.expiry.front() {
            let over_cap = force && self.attempts.len() > self.cfg.max_attempts;
            if deadline >= self.now && !over_cap {
                break;
            }
            self.expiry.pop_front();
            let Some(a) = self.attempts.get(&key) else {
                continue;
            };
            let real = a.deadline(self.cfg.timeout);
            if real >= self.now && !over_cap {
                // Its deadline moved (retransmission, traffic): queue again.
                self.expiry.push_back((real, key));
                continue;
            }
            if over_cap {
                self.stats.evicted += 1;
            }
            self.attempts.remove(&key);
            self.retire_attempt(key.triple());
        }
    }

    fn retire_attempt(&mut self, triple: Triple) {
        let done = match self.groups.get_mut(&triple) {
            Some(g) => {
                g.live_attempts = g.live_attempts.saturating_sub(1);
                g.live_attempts == 0
            }
            None => false,
        };
        if done && let Some(g) = self.groups.remove(&triple) {
            self.decided.push(verdict::decide(triple, &g));
        }
    }

    /// Verdicts decided so far (their timeout has passed), in no set order.
    pub fn take_decided(&mut self) -> Vec<Verdict> {
        std::mem::take(&mut self.decided)
    }

    /// The end of the capture: every open triple is decided with what was
    /// seen (no answer → filtered).
    pub fn finish(mut self) -> (Vec<Verdict>, Stats) {
        let mut out = std::mem::take(&mut self.decided);
        for (triple, g) in self.groups.drain() {
            out.push(verdict::decide(triple, &g));
        }
        (out, self.stats)
    }
}

#[cfg(test)]
mod tests;
