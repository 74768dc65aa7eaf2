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
//! plus the timeout, and what it found is folded into its triple's
//! [`Merger`] record. A hard cap on live attempts decides the oldest early
//! (counted).
//!
//! Layout, for speed on captures of millions of packets: attempts sit in a
//! ring in the order they were opened, so expiry walks memory in order; the
//! 4-tuple index (`index.rs`: open addressing, 8 bytes a slot, a tag of the
//! hash and a ring sequence number) can be asked to prefetch a packet's
//! slot ahead of its lookup (analyze does, 8 packets ahead: the index of
//! 75,000 live attempts does not fit the cache), and a reply, which usually
//! comes right after its SYN, finds its attempt still warm.

mod index;
pub mod infer;
mod merge;
mod verdict;

use crate::model::{NANOS_PER_SEC, Nanos, Stats, Verdict};
pub use merge::Merger;
pub use verdict::{Outcome, decide};

use crate::wire::{Body, Packet, Seq, SynAnswer, Tcp};
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::net::IpAddr;

/// The hasher of the probe table and the merger: hashbrown's default
/// (foldhash), seeded at random per table, so a capture crafted to make
/// keys collide cannot turn lookups quadratic.
type Hasher = hashbrown::DefaultHashBuilder;

/// How long an attempt waits for an answer after its last SYN, by default:
/// 3.5 s. A Linux router whose ARP (IPv6: neighbour discovery) for a host
/// fails sends its host-unreachable 3.07 s after the packet that started
/// the resolution (3 solicitations a second apart); a 3 s window counted
/// those errors as unsolicited and left the port `filtered` whenever the
/// client sent one SYN (masscan, zmap, `nmap --max-retries 0`).
pub const DEFAULT_TIMEOUT: Nanos = 3 * NANOS_PER_SEC + NANOS_PER_SEC / 2;

#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// How long after its last SYN an attempt waits for an answer.
    pub timeout: Nanos,
    /// Live attempts at most; past it the oldest are decided early.
    pub max_attempts: usize,
    /// Distinct (client, target, port) kept in the verdicts at most (0: no
    /// limit); past it attempts are counted, not kept.
    pub max_triples: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeout: DEFAULT_TIMEOUT,
            max_attempts: 1 << 18,
            max_triples: 0,
        }
    }
}

/// An address in two words; the family lives in the key that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Addr {
    hi: u64,
    lo: u64,
}

impl Addr {
    fn of(a: IpAddr) -> (Addr, bool) {
        match a {
            IpAddr::V4(a) => (
                Addr {
                    hi: 0,
                    lo: u64::from(u32::from(a)),
                },
                false,
            ),
            IpAddr::V6(a) => {
                let b = u128::from(a);
                (
                    Addr {
                        hi: (b >> 64) as u64,
                        lo: b as u64,
                    },
                    true,
                )
            }
        }
    }

    /// The address as (high, low) words: in the order of the address.
    pub(super) fn words(self) -> (u64, u64) {
        (self.hi, self.lo)
    }

    fn ip(self, v6: bool) -> IpAddr {
        if v6 {
            IpAddr::from(std::net::Ipv6Addr::from(
                (u128::from(self.hi) << 64) | u128::from(self.lo),
            ))
        } else {
            // IPv4 keys only ever hold 32 bits.
            IpAddr::from(std::net::Ipv4Addr::from(self.lo as u32))
        }
    }
}

/// The two ends of a TCP flow, in a canonical order (the lower address,
/// then port, first) so that a packet and its answer have the same key and
/// one lookup serves either direction. 40 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FlowKey {
    a: Addr,
    b: Addr,
    /// Port of `a` (bits 0-15), port of `b` (16-31), IPv6 (bit 32): one
    /// word, written and read whole (no store-forwarding stall on hashing).
    ports: u64,
}

impl std::hash::Hash for FlowKey {
    /// Five words: this runs for every packet.
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u64(self.a.hi);
        h.write_u64(self.a.lo);
        h.write_u64(self.b.hi);
        h.write_u64(self.b.lo);
        h.write_u64(self.ports);
    }
}

impl FlowKey {
    /// The key of a packet sent from `src:sport` to `dst:dport`, and
    /// whether the sender is end `a`. (Mixed families cannot occur in one IP
    /// header; should they, the key is still exact for the bytes given.)
    fn of(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> (FlowKey, bool) {
        let (s, v6) = Addr::of(src);
        let (d, _) = Addr::of(dst);
        let v6 = u64::from(v6) << 32;
        if (s.hi, s.lo, sport) <= (d.hi, d.lo, dport) {
            let ports = u64::from(sport) | (u64::from(dport) << 16) | v6;
            (FlowKey { a: s, b: d, ports }, true)
        } else {
            let ports = u64::from(dport) | (u64::from(sport) << 16) | v6;
            (FlowKey { a: d, b: s, ports }, false)
        }
    }

    fn port_a(&self) -> u16 {
        self.ports as u16
    }

    fn port_b(&self) -> u16 {
        (self.ports >> 16) as u16
    }

    fn v6(&self) -> bool {
        self.ports >> 32 != 0
    }
}

/// A TCP packet's key, which end sent it, and the key's hash: made once
/// per packet.
#[derive(Debug, Clone, Copy)]
struct Keyed {
    key: FlowKey,
    sender_is_a: bool,
    hash: u64,
}

impl Keyed {
    fn of(p: &Packet, t: &Tcp, hasher: &Hasher) -> Keyed {
        let (key, sender_is_a) = FlowKey::of(p.src, t.sport, p.dst, t.dport);
        Keyed {
            key,
            sender_is_a,
            hash: hasher.hash_one(key),
        }
    }
}

/// Which of `n` partitions tracks this packet. All packets of one attempt
/// (its SYNs, the answers, the ICMP errors quoting it) share one
/// direction-free key, and nothing else links attempts, so trackers that
/// each see one partition decide what one tracker would. DNS answers go to
/// partition 0 (they are not tracked).
pub fn partition(pkt: &Packet, n: usize) -> usize {
    use std::hash::{Hash, Hasher as _};
    if n <= 1 {
        return 0;
    }
    let key = match &pkt.body {
        Body::Tcp(t) => FlowKey::of(pkt.src, t.sport, pkt.dst, t.dport).0,
        Body::IcmpError(e) => {
            let q = &e.quoted;
            FlowKey::of(q.src, q.sport, q.dst, q.dport).0
        }
        Body::Dns(_) => return 0,
    };
    // A fixed hash (every thread and run agrees), its high bits spread
    // over n.
    let mut h = rustc_hash::FxHasher::default();
    key.hash(&mut h);
    ((u128::from(h.finish()) * n as u128) >> 64) as usize
}

/// Up to this many distinct initial sequence numbers are kept per attempt
/// (a client may re-use a 4-tuple with a new ISN); more are ignored.
const MAX_ISNS: usize = 4;

/// A packet that answered an attempt: which one (its 4-tuple, from the
/// client's side), how, and who sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub client: IpAddr,
    pub sport: u16,
    pub target: IpAddr,
    pub port: u16,
    pub kind: EvidenceKind,
    /// The source of the answering packet (for an ICMP error, the router).
    pub responder: IpAddr,
    pub ttl: u8,
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
    /// From the attempt's last SYN before it (`rtt` when no
    /// retransmission came first), in microseconds, saturating: 4 bytes
    /// keep an attempt at 160 (75,000 of them are live in a big capture).
    pub since_syn_us: u32,
}

impl Evidence {
    /// Whether this evidence beats `other`: stronger kind, or as strong and
    /// earlier.
    fn beats(&self, other: &Evidence) -> bool {
        let (a, b) = (self.kind.rank(), other.kind.rank());
        // On an exact tie in class and time, a fixed order of the rest, so
        // the result does not depend on the order attempts are merged in.
        a > b
            || (a == b
                && (
                    self.at,
                    self.responder,
                    self.ttl,
                    self.rtt,
                    self.since_syn_us,
                ) < (
                    other.at,
                    other.responder,
                    other.ttl,
                    other.rtt,
                    other.since_syn_us,
                ))
    }
}

/// One attempt: a SYN's 4-tuple, its retransmissions and what answered it.
#[derive(Debug)]
struct Attempt {
    key: FlowKey,
    /// Whether the client (the SYN's sender) is end `a` of the key.
    client_is_a: bool,
    /// `key`'s hash in the index.
    hash: u64,
    isns: [Seq; MAX_ISNS],
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
    /// (client, target, target port) of the attempt.
    /// The client's source port.
    fn client_port(&self) -> u16 {
        if self.client_is_a {
            self.key.port_a()
        } else {
            self.key.port_b()
        }
    }

    fn ends(&self) -> (Addr, Addr, u16) {
        let k = &self.key;
        if self.client_is_a {
            (k.a, k.b, k.port_b())
        } else {
            (k.b, k.a, k.port_a())
        }
    }

    fn isns(&self) -> &[Seq] {
        &self.isns[..usize::from(self.n_isns)]
    }

    fn has_isn(&self, isn: Seq) -> bool {
        self.isns().contains(&isn)
    }

    /// How `tcp`, sent back by the target, answers one of the attempt's
    /// SYNs (the rule is [`Tcp::answer_to`]).
    fn answered_by(&self, tcp: &Tcp) -> Option<SynAnswer> {
        self.isns()
            .iter()
            .filter_map(|&isn| tcp.answer_to(isn))
            .min()
    }

    /// What answering this attempt looks like to the caller.
    fn answer_of(&self, kind: EvidenceKind, pkt: &Packet) -> Answer {
        let k = &self.key;
        let v6 = k.v6();
        let (client, sport, target, port) = if self.client_is_a {
            (k.a, k.port_a(), k.b, k.port_b())
        } else {
            (k.b, k.port_b(), k.a, k.port_a())
        };
        Answer {
            client: client.ip(v6),
            sport,
            target: target.ip(v6),
            port,
            kind,
            responder: pkt.src,
            ttl: pkt.ttl,
        }
    }

    fn add_isn(&mut self, isn: Seq) {
        if !self.has_isn(isn) && usize::from(self.n_isns) < MAX_ISNS {
            self.isns[usize::from(self.n_isns)] = isn;
            self.n_isns += 1;
        }
    }

    fn deadline(&self, timeout: Nanos) -> Nanos {
        self.last_syn.max(self.last_seen).saturating_add(timeout)
    }

    /// Records a matched reply, unless it came after the deadline (expiry
    /// is lazy, so the deadline is checked here, exactly); what it
    /// answered, if it counts.
    fn answer(
        &mut self,
        stats: &mut Stats,
        timeout: Nanos,
        kind: EvidenceKind,
        ts: Nanos,
        pkt: &Packet,
    ) -> Option<Answer> {
        if ts > self.deadline(timeout) {
            stats.unsolicited += 1;
            return None;
        }
        stats.replies += 1;
        if matches!(kind, EvidenceKind::SynAck | EvidenceKind::SplitSyn) {
            // A connection: keep it while it carries traffic.
            self.established = true;
            self.last_seen = ts;
        }
        self.ttls.insert(pkt.ttl);
        let ev = Evidence {
            kind,
            responder: pkt.src,
            ttl: pkt.ttl,
            ip_id: pkt.ip_id,
            at: ts,
            rtt: ts.saturating_sub(self.first_syn),
            since_syn_us: u32::try_from(ts.saturating_sub(self.last_syn) / 1_000)
                .unwrap_or(u32::MAX),
        };
        if self.evidence.is_none_or(|cur| ev.beats(&cur)) {
            self.evidence = Some(ev);
        }
        Some(self.answer_of(kind, pkt))
    }
}

/// The probe table. Feed it packets in capture order with
/// [`Tracker::observe`]; [`Tracker::finish`] at the end gives the merged
/// verdicts. One [`Merger`] can run through several trackers (files).
#[derive(Debug)]
pub struct Tracker {
    cfg: Config,
    now: Nanos,
    /// Live attempts in the order they were opened (or re-queued).
    ring: VecDeque<Attempt>,
    /// Sequence number of `ring[0]`.
    base: u64,
    /// 4-tuple → ring sequence number, truncated to 32 bits (the ring holds
    /// far fewer than 2^32 attempts, so the low bits are unambiguous).
    index: index::Index,
    hasher: Hasher,
    merged: Merger,
    decided: u64,
    /// Verdicts of attempts as they are decided, with the client's source
    /// port, when asked for.
    streamed: Option<Vec<(Verdict, u16)>>,
    stats: Stats,
}

impl Tracker {
    pub fn new(cfg: Config) -> Self {
        Tracker {
            cfg,
            now: 0,
            ring: VecDeque::new(),
            base: 0,
            index: index::Index::new(),
            hasher: Hasher::default(),
            merged: Merger::with_cap(cfg.max_triples),
            decided: 0,
            streamed: None,
            stats: Stats::default(),
        }
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Live attempts in the table (for tests and memory checks).
    pub fn live_attempts(&self) -> usize {
        self.ring.len()
    }

    /// Keep each attempt's verdict as it is decided, for
    /// [`Tracker::take_streamed`] (a live scan streams them as JSON lines).
    pub fn stream_verdicts(&mut self) {
        self.streamed.get_or_insert_with(Vec::new);
    }

    /// The attempts decided since the last call, one verdict each.
    pub fn take_streamed(&mut self) -> Vec<Verdict> {
        self.take_streamed_with_ports()
            .into_iter()
            .map(|(v, _)| v)
            .collect()
    }

    /// As [`Tracker::take_streamed`], each with the attempt's source port
    /// (`watch` names the program of the exact socket).
    pub fn take_streamed_with_ports(&mut self) -> Vec<(Verdict, u16)> {
        self.streamed
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Attempts decided so far (their timeout has passed).
    pub fn decided_attempts(&self) -> u64 {
        self.decided
    }

    /// Moves the clock to `now` when no packet did (a live capture that
    /// went quiet): the attempts whose timeout passed are decided.
    pub fn advance(&mut self, now: Nanos) {
        self.now = self.now.max(now);
        self.expire(false);
    }

    /// The capture's clock: the latest packet time seen.
    pub fn clock(&self) -> Nanos {
        self.now
    }

    /// The verdicts of the attempts decided so far, merged per triple.
    pub fn decided_verdicts(&self) -> Vec<Verdict> {
        self.merged.verdicts()
    }

    fn find(&self, key: &FlowKey) -> Option<usize> {
        self.find_hashed(key, self.hasher.hash_one(key))
    }

    fn find_hashed(&self, key: &FlowKey, h: u64) -> Option<usize> {
        let (ring, base) = (&self.ring, self.base as u32);
        let seq = self.index.find(h, |seq| {
            ring.get(seq.wrapping_sub(base) as usize)
                .is_some_and(|a| a.key == *key)
        })?;
        Some(seq.wrapping_sub(base) as usize)
    }

    fn slot(&mut self, key: &FlowKey) -> Option<&mut Attempt> {
        let i = self.find(key)?;
        self.ring.get_mut(i)
    }

    /// Hands one decoded packet, captured at `ts`, to the table. Returns
    /// the attempt it answered, if it answered one (a SYN-ACK, RST, split
    /// SYN or ICMP error that counts): the one decision, for every caller,
    /// of whether a packet answers a probe.
    pub fn observe(&mut self, ts: Nanos, pkt: &Packet) -> Option<Answer> {
        self.observe_keyed(ts, pkt, None)
    }

    /// Hands a run of packets to the table, each as [`Tracker::observe`]
    /// would (their answers are not needed: offline tracking counts them).
    /// Each TCP packet's key and hash are made once, a few packets ahead,
    /// where its index slot is asked for: the misses of a large index
    /// overlap instead of adding up.
    pub fn observe_all(&mut self, packets: &[(Nanos, Packet)]) {
        const AHEAD: usize = 8;
        let hasher = self.hasher.clone();
        let keyed = |p: &Packet| match &p.body {
            Body::Tcp(t) => Some(Keyed::of(p, t, &hasher)),
            _ => None,
        };
        let mut ahead: [Option<Keyed>; AHEAD] = [None; AHEAD];
        for (slot, (_, p)) in ahead.iter_mut().zip(packets) {
            *slot = keyed(p);
            if let Some(k) = slot {
                self.index.prefetch(k.hash);
            }
        }
        for (i, (ts, p)) in packets.iter().enumerate() {
            let Some(slot) = ahead.get_mut(i % AHEAD) else {
                break;
            };
            let k = slot.take();
            if let Some((_, next)) = packets.get(i + AHEAD) {
                *slot = keyed(next);
                if let Some(n) = slot {
                    self.index.prefetch(n.hash);
                }
            }
            self.observe_keyed(*ts, p, k);
        }
    }

    /// [`Tracker::observe`], with a TCP packet's key made already.
    #[inline]
    fn observe_keyed(&mut self, ts: Nanos, pkt: &Packet, keyed: Option<Keyed>) -> Option<Answer> {
        // The clock never goes back, even if timestamps do.
        self.now = self.now.max(ts);
        self.expire(false);
        let ts = self.now;
        let timeout = self.cfg.timeout;
        let answer = match &pkt.body {
            Body::Tcp(tcp) => {
                let k = keyed.unwrap_or_else(|| Keyed::of(pkt, tcp, &self.hasher));
                self.tcp(ts, pkt, tcp, k)
            }
            // Name resolution is not the probe table's business: callers
            // collect DNS answers themselves (it only moves the clock).
            Body::Dns(_) => None,
            Body::IcmpError(icmp) => {
                let q = &icmp.quoted;
                let (key, sender_is_a) = FlowKey::of(q.src, q.sport, q.dst, q.dport);
                let kind = EvidenceKind::Icmp {
                    v6: icmp.v6,
                    icmp_type: icmp.icmp_type,
                    code: icmp.code,
                };
                let mut stats = self.stats;
                let answer = match self.slot(&key) {
                    Some(a) if a.established => {
                        stats.other_tcp += 1;
                        None
                    }
                    // It must quote the client's own SYN.
                    Some(a)
                        if sender_is_a == a.client_is_a && q.seq.is_none_or(|s| a.has_isn(s)) =>
                    {
                        a.answer(&mut stats, timeout, kind, ts, pkt)
                    }
                    _ => {
                        stats.unsolicited += 1;
                        None
                    }
                };
                self.stats = stats;
                answer
            }
        };
        if self.ring.len() > self.cfg.max_attempts {
            self.expire(true);
        }
        answer
    }

    fn tcp(&mut self, ts: Nanos, pkt: &Packet, tcp: &Tcp, k: Keyed) -> Option<Answer> {
        let Keyed {
            key,
            sender_is_a,
            hash: h,
        } = k;
        let (syn, rst, bare_syn) = (tcp.syn(), tcp.rst(), tcp.bare_syn());
        let timeout = self.cfg.timeout;
        let Some(i) = self.find_hashed(&key, h) else {
            if bare_syn {
                self.new_attempt(key, h, sender_is_a, tcp.seq, ts);
            } else if syn || rst {
                self.stats.unsolicited += 1;
            } else {
                // Traffic of connections opened before the capture began.
                self.stats.other_tcp += 1;
            }
            return None;
        };
        let stats = &mut self.stats;
        let a = self.ring.get_mut(i)?;
        // A self-connection (both ends equal) counts as the client's.
        if sender_is_a == a.client_is_a || key.a == key.b && key.port_a() == key.port_b() {
            if bare_syn {
                stats.syns += 1;
                stats.retransmissions += 1;
                a.add_isn(tcp.seq);
                a.last_syn = ts;
                a.probes = a.probes.saturating_add(1);
                // The client asks again (a scanner's timing ping after it
                // reset the half-open connection): the next SYN-ACK or
                // RST answers this SYN, not an open connection.
                a.established = false;
            } else {
                // The client's own segments: its RST closing a half-open
                // connection after the SYN-ACK, its ACKs and data.
                a.last_seen = ts;
                stats.other_tcp += 1;
            }
            return None;
        }
        // The "server" sends a bare SYN back: a split handshake.
        if bare_syn {
            return a.answer(stats, timeout, EvidenceKind::SplitSyn, ts, pkt);
        }
        if a.established {
            a.last_seen = ts;
            stats.other_tcp += 1;
            return None;
        }
        match a.answered_by(tcp) {
            Some(SynAnswer::SynAck) => a.answer(stats, timeout, EvidenceKind::SynAck, ts, pkt),
            Some(SynAnswer::Reset) => a.answer(stats, timeout, EvidenceKind::Reset, ts, pkt),
            None if syn || rst => {
                stats.unsolicited += 1;
                None
            }
            None => {
                a.last_seen = ts;
                stats.other_tcp += 1;
                None
            }
        }
    }

    fn new_attempt(&mut self, key: FlowKey, h: u64, client_is_a: bool, isn: Seq, ts: Nanos) {
        self.stats.syns += 1;
        self.push(Attempt {
            key,
            client_is_a,
            hash: h,
            isns: [isn, Seq(0), Seq(0), Seq(0)],
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

    /// Puts an attempt at the back of the ring and in the index.
    fn push(&mut self, a: Attempt) {
        if self.index.full() {
            self.sweep_index();
        }
        let seq = (self.base + self.ring.len() as u64) as u32;
        let h = a.hash;
        self.ring.push_back(a);
        let (live, base) = (self.ring.len(), self.base as u32);
        self.index
            .insert(h, seq, |s| s.wrapping_sub(base) as usize >= live);
    }

    /// The index rebuilt from the ring, with room for as many again: its
    /// stale entries (attempts that left the ring) go.
    fn sweep_index(&mut self) {
        let (ring, base, index) = (&self.ring, self.base as u32, &mut self.index);
        index.rebuild(ring.len());
        for (i, a) in ring.iter().enumerate() {
            index.insert(a.hash, base.wrapping_add(i as u32), |_| false);
        }
    }

    /// Takes the front attempt out of the ring (its index entry goes stale).
    fn pop(&mut self) -> Option<Attempt> {
        let a = self.ring.pop_front()?;
        self.base += 1;
        Some(a)
    }

    /// Retires attempts whose deadline the clock has passed, oldest first;
    /// with `force`, also the oldest live ones until the table is within
    /// its cap.
    fn expire(&mut self, force: bool) {
        let timeout = self.cfg.timeout;
        while let Some(front) = self.ring.front() {
            let over_cap = force && self.ring.len() > self.cfg.max_attempts;
            let deadline = front.deadline(timeout);
            if deadline >= self.now && !over_cap {
                if deadline <= front.queued_deadline {
                    // The oldest attempt is still waiting: so are the rest.
                    break;
                }
                // Its deadline moved (retransmission, traffic): to the back
                // of the ring, under a new sequence number.
                if let Some(mut a) = self.pop() {
                    a.queued_deadline = deadline;
                    self.push(a);
                }
                continue;
            }
            if over_cap {
                self.stats.evicted += 1;
            }
            // Fold it in where it lies, then drop it (no copy out).
            if let Some(a) = self.ring.front() {
                self.merged.absorb(a);
                self.decided += 1;
                if let Some(out) = self.streamed.as_mut() {
                    out.push((verdict::build(&Merger::record_of(a)), a.client_port()));
                }
            }
            if self.ring.pop_front().is_some() {
                self.base += 1;
            }
        }
    }

    /// The verdict of the live attempt `a` answered, as it stands now
    /// (before its timeout: `watch` says an answer the moment it comes).
    pub fn verdict_of(&self, a: &Answer) -> Option<Verdict> {
        let (key, _) = FlowKey::of(a.client, a.sport, a.target, a.port);
        let i = self.find(&key)?;
        self.ring
            .get(i)
            .map(|at| verdict::build(&Merger::record_of(at)))
    }

    /// The verdicts as they stand, every live attempt counted with what it
    /// has seen so far (as [`Tracker::finish`] would), without ending the
    /// table: a scan decides its next pass on these and goes on feeding
    /// the same tracker.
    pub fn snapshot(&self) -> Vec<Verdict> {
        let mut m = self.merged.clone();
        m.reserve(self.ring.len());
        for a in &self.ring {
            m.absorb(a);
        }
        m.into_verdicts()
    }

    /// The end of the capture: every live attempt is decided with what was
    /// seen (no answer → filtered). Returns the merger holding every
    /// verdict (see [`Merger::into_verdicts`]) and the counters.
    pub fn finish(mut self) -> (Merger, Stats) {
        for a in &self.ring {
            self.merged.absorb(a);
        }
        (self.merged, self.stats)
    }
}

#[cfg(test)]
mod tests;
