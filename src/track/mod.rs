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
//! plus the timeout, and its verdict goes out then; [`Merger`] folds the
//! verdicts of one triple's attempts together. A hard cap on live attempts
//! decides the oldest early (counted).
//!
//! Layout, for speed on captures of millions of packets: attempts sit in a
//! ring in the order they were opened (expiry walks it front to back, in
//! memory order), and a hash map finds them by 4-tuple; a reply, which
//! usually comes right after its SYN, is one lookup in warm cache.

mod merge;
mod verdict;

pub use merge::Merger;
pub use verdict::{Reason, State, Verdict, hops_from_ttl, merge_into};

use crate::wire::{Body, Packet, Tcp, flags};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::VecDeque;
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

/// An address as one integer (IPv4 in the low 32 bits) plus its family:
/// cheap to hash and compare, and exact (no v4-mapped confusion).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Addr {
    bits: u128,
    v6: bool,
}

impl From<IpAddr> for Addr {
    fn from(a: IpAddr) -> Self {
        match a {
            IpAddr::V4(a) => Addr {
                bits: u128::from(u32::from(a)),
                v6: false,
            },
            IpAddr::V6(a) => Addr {
                bits: u128::from(a),
                v6: true,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey {
    client: Addr,
    target: Addr,
    sport: u16,
    dport: u16,
}

impl Addr {
    fn ip(self) -> IpAddr {
        if self.v6 {
            IpAddr::from(std::net::Ipv6Addr::from(self.bits))
        } else {
            // IPv4 keys only ever hold 32 bits.
            IpAddr::from(std::net::Ipv4Addr::from(self.bits as u32))
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

/// One attempt: a SYN's 4-tuple, its retransmissions and what answered it.
#[derive(Debug)]
struct Attempt {
    key: FlowKey,
    isns: [u32; MAX_ISNS],
    n_isns: u8,
    /// A SYN-ACK (or split-handshake SYN) was matched: later segments are
    /// the connection's own traffic, not replies.
    established: bool,
    probes: u32,
    first_syn: Nanos,
    last_syn: Nanos,
    last_seen: Nanos,
    /// The deadline it had when it took its place in the ring.
    queued_deadline: Nanos,
    evidence: Option<Evidence>,
    ttls: verdict::TtlSet,
}

impl Attempt {
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

    /// Records a matched reply, unless it came after the deadline (expiry
    /// is lazy, so the deadline is checked here, exactly).
    fn answer(
        &mut self,
        stats: &mut Stats,
        timeout: Nanos,
        kind: EvidenceKind,
        ts: Nanos,
        pkt: &Packet,
    ) {
        if ts > self.deadline(timeout) {
            stats.unsolicited += 1;
            return;
        }
        stats.replies += 1;
        if matches!(kind, EvidenceKind::SynAck | EvidenceKind::SplitSyn) {
            // A connection: keep it while it carries traffic.
            self.established = true;
            self.last_seen = ts;
        }
        self.ttls.insert(pkt.ttl);
        if self
            .evidence
            .is_none_or(|cur| kind.rank() > cur.kind.rank())
        {
            self.evidence = Some(Evidence {
                kind,
                responder: pkt.src,
                ttl: pkt.ttl,
                ip_id: pkt.ip_id,
                at: ts,
                rtt: ts.saturating_sub(self.first_syn),
            });
        }
    }
}

/// The probe table. Feed it packets in capture order with
/// [`Tracker::observe`]; take decided verdicts with [`Tracker::take_decided`]
/// as you go and the rest with [`Tracker::finish`] at the end. Verdicts are
/// per attempt: fold them per triple with [`Merger`].
#[derive(Debug)]
pub struct Tracker {
    cfg: Config,
    now: Nanos,
    /// Live attempts in the order they were opened (or re-queued).
    ring: VecDeque<Attempt>,
    /// Sequence number of `ring[0]`.
    base: u64,
    /// 4-tuple → sequence number in the ring.
    index: FxHashMap<FlowKey, u64>,
    decided: Vec<Verdict>,
    stats: Stats,
}

impl Tracker {
    pub fn new(cfg: Config) -> Self {
        Tracker {
            cfg,
            now: 0,
            ring: VecDeque::new(),
            base: 0,
            index: FxHashMap::default(),
            decided: Vec::new(),
            stats: Stats::default(),
        }
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Live attempts in the table (for tests and memory checks).
    pub fn live_attempts(&self) -> usize {
        self.index.len()
    }

    fn slot(&mut self, key: &FlowKey) -> Option<&mut Attempt> {
        let seq = *self.index.get(key)?;
        let i = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        self.ring.get_mut(i)
    }

    /// Hands one decoded packet, captured at `ts`, to the table.
    pub fn observe(&mut self, ts: Nanos, pkt: &Packet) {
        // The clock never goes back, even if timestamps do.
        self.now = self.now.max(ts);
        self.expire(false);
        let ts = self.now;
        let timeout = self.cfg.timeout;
        match &pkt.body {
            Body::Tcp(tcp) => self.tcp(ts, pkt, tcp),
            Body::IcmpError(icmp) => {
                let q = &icmp.quoted;
                let key = FlowKey {
                    client: q.src.into(),
                    target: q.dst.into(),
                    sport: q.sport,
                    dport: q.dport,
                };
                let kind = EvidenceKind::Icmp {
                    v6: icmp.v6,
                    icmp_type: icmp.icmp_type,
                    code: icmp.code,
                };
                let mut stats = self.stats;
                match self.slot(&key) {
                    Some(a) if a.established => stats.other_tcp += 1,
                    Some(a) if q.seq.is_none_or(|s| a.has_isn(s)) => {
                        a.answer(&mut stats, timeout, kind, ts, pkt)
                    }
                    _ => stats.unsolicited += 1,
                }
                self.stats = stats;
            }
        }
        if self.index.len() > self.cfg.max_attempts {
            self.expire(true);
        }
    }

    fn tcp(&mut self, ts: Nanos, pkt: &Packet, tcp: &Tcp) {
        let (src, dst): (Addr, Addr) = (pkt.src.into(), pkt.dst.into());
        let fwd = FlowKey {
            client: src,
            target: dst,
            sport: tcp.sport,
            dport: tcp.dport,
        };
        let rev = FlowKey {
            client: dst,
            target: src,
            sport: tcp.dport,
            dport: tcp.sport,
        };
        let syn = tcp.flags & flags::SYN != 0;
        let ack = tcp.flags & flags::ACK != 0;
        let rst = tcp.flags & flags::RST != 0;
        let timeout = self.cfg.timeout;
        let mut stats = self.stats;
        if syn && !ack && !rst {
            match self.slot(&rev) {
                // The "server" sends a bare SYN back: a split handshake.
                Some(a) if rev != fwd => {
                    a.answer(&mut stats, timeout, EvidenceKind::SplitSyn, ts, pkt);
                    self.stats = stats;
                }
                _ => self.syn(fwd, tcp.seq, ts),
            }
            return;
        }
        match self.slot(&rev) {
            Some(a) if a.established => {
                a.last_seen = ts;
                stats.other_tcp += 1;
            }
            Some(a) if syn && ack && a.has_isn(tcp.ack.wrapping_sub(1)) => {
                a.answer(&mut stats, timeout, EvidenceKind::SynAck, ts, pkt)
            }
            Some(a) if rst && (a.has_isn(tcp.ack.wrapping_sub(1)) || a.has_isn(tcp.ack)) => {
                a.answer(&mut stats, timeout, EvidenceKind::Reset, ts, pkt)
            }
            Some(_) if syn || rst => stats.unsolicited += 1,
            Some(a) => {
                a.last_seen = ts;
                stats.other_tcp += 1;
            }
            None => match self.slot(&fwd) {
                // The client's own segments: its RST closing a half-open
                // connection after the SYN-ACK, its ACKs and data.
                Some(a) => {
                    a.last_seen = ts;
                    stats.other_tcp += 1;
                }
                None if syn || rst => stats.unsolicited += 1,
                None => stats.other_tcp += 1,
            },
        }
        self.stats = stats;
    }

    fn syn(&mut self, key: FlowKey, isn: u32, ts: Nanos) {
        self.stats.syns += 1;
        if let Some(a) = self.slot(&key) {
            a.add_isn(isn);
            a.last_syn = ts;
            a.probes = a.probes.saturating_add(1);
            self.stats.retransmissions += 1;
            return;
        }
        let seq = self.base + self.ring.len() as u64;
        self.index.insert(key, seq);
        self.ring.push_back(Attempt {
            key,
            isns: [isn, 0, 0, 0],
            n_isns: 1,
            established: false,
            probes: 1,
            first_syn: ts,
            last_syn: ts,
            last_seen: ts,
            queued_deadline: ts.saturating_add(self.cfg.timeout),
            evidence: None,
            ttls: verdict::TtlSet::default(),
        });
    }

    /// Retires attempts whose deadline the clock has passed, oldest first;
    /// with `force`, also the oldest live ones until the table is within
    /// its cap.
    fn expire(&mut self, force: bool) {
        let timeout = self.cfg.timeout;
        while let Some(front) = self.ring.front() {
            let over_cap = force && self.index.len() > self.cfg.max_attempts;
            let deadline = front.deadline(timeout);
            if deadline >= self.now && !over_cap {
                if deadline <= front.queued_deadline {
                    // The oldest attempt is still waiting: so are the rest.
                    break;
                }
                // Its deadline moved (retransmission, traffic): it goes to
                // the back of the ring, under a new sequence number.
                if let Some(mut a) = self.ring.pop_front() {
                    self.base += 1;
                    a.queued_deadline = deadline;
                    let seq = self.base + self.ring.len() as u64;
                    self.index.insert(a.key, seq);
                    self.ring.push_back(a);
                }
                continue;
            }
            if over_cap {
                self.stats.evicted += 1;
            }
            if let Some(a) = self.ring.pop_front() {
                self.base += 1;
                self.index.remove(&a.key);
                self.decided.push(verdict::decide(&a));
            }
        }
    }

    /// Verdicts decided so far (their timeout has passed), one per attempt.
    pub fn take_decided(&mut self) -> Vec<Verdict> {
        std::mem::take(&mut self.decided)
    }

    /// Moves the verdicts decided so far into `out`.
    pub fn drain_decided_into(&mut self, out: &mut Merger) {
        for v in self.decided.drain(..) {
            out.add(v);
        }
    }

    /// The end of the capture: every live attempt is decided with what was
    /// seen (no answer → filtered).
    pub fn finish(mut self) -> (Vec<Verdict>, Stats) {
        let mut out = std::mem::take(&mut self.decided);
        out.extend(self.ring.iter().map(verdict::decide));
        (out, self.stats)
    }
}

#[cfg(test)]
mod tests;
