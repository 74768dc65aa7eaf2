//! A network in memory for tests: scripted hosts answer the SYNs the run
//! loop sends (open, closed, dropped, an ICMP error from a router or the
//! host, loss of the first sends, forged replies, a capture that loses
//! packets), on a clock of its own that moves only when the loop waits.
//! Whole scans run in milliseconds, the same every time, without root and
//! without a packet leaving the process.

use super::net::{Network, Outgoing};
use crate::error::Error;
use crate::fixture::{self, Seg};
use crate::model::{CaptureStats, NANOS_PER_SEC, Nanos};
use crate::source::{PacketSource, RawPacket};
use crate::wire::{LinkType, flags};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How a host (or the path to it) treats a SYN to one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// SYN-ACK.
    Open,
    /// RST-ACK from the host.
    Closed,
    /// Nothing.
    Drop,
    /// An ICMP error quoting the SYN, from `from` (a router, or the host),
    /// with TTL `ttl`, `delay` after the host's round trip (a router's
    /// host-unreachable comes ~3 s after its ARP starts).
    Icmp {
        from: IpAddr,
        ttl: u8,
        icmp_type: u8,
        code: u8,
        delay: Duration,
    },
    /// An IPv4 router's error for a destination on an unreachable or
    /// prohibit route (the kernel's ip_error): charged twice against the
    /// router's allowance for us, once by ip_error's own limit (a burst of
    /// 5 s, 1 s an error) and once by icmp_send's (6 s, 1 s), on the same
    /// tokens: 2 errors in a burst, then none while probes come faster
    /// than one every 2 s. With no limit set, always sent.
    RouteError {
        from: IpAddr,
        ttl: u8,
        icmp_type: u8,
        code: u8,
    },
    /// A RST in the host's name, forged on the path: it arrives with TTL
    /// `ttl` (a middlebox nearer than the host).
    ForgedReset { ttl: u8 },
    /// No such host: the router before it (`from`) tries to resolve its
    /// link address for [`ARP_FAILS_AFTER`] from the packet that started
    /// the attempt, queueing every packet for it meanwhile, then tells of
    /// each queued one at once (host unreachable; IPv6 address
    /// unreachable), each against its ICMP budget, as Linux does.
    Absent { from: IpAddr },
}

/// How long a router's ARP (IPv6 neighbour discovery) tries before it
/// gives up on a host: Linux's 3 solicitations a second apart, and the
/// few milliseconds it was seen to take beyond them.
pub const ARP_FAILS_AFTER: Duration = Duration::from_millis(3070);

/// A scripted host.
#[derive(Debug, Clone)]
pub struct FakeHost {
    pub addr: IpAddr,
    /// The TTL its packets arrive with (63: two hops away).
    pub ttl: u8,
    pub rtt: Duration,
    /// What it does on ports not in `ports`.
    pub default: Behaviour,
    pub ports: HashMap<u16, Behaviour>,
    /// Sends to this port lost on the way before one gets through.
    pub lose_first: HashMap<u16, u32>,
    /// The routers before it, nearest first: a SYN whose TTL runs out at
    /// router k gets a time-exceeded from it.
    pub path: Vec<IpAddr>,
    /// It says nothing at all before this time (it comes up, a rule is
    /// lifted).
    pub up_after: Duration,
    /// A slow lossy link in front of it.
    pub link: Option<Link>,
    /// A limit on the resets it sends, (burst, resets a second): FreeBSD
    /// and macOS answer at most 200 closed-port probes a second by default
    /// (`net.inet.icmp.icmplim`); the rest get no answer. None: no limit.
    pub reset_limit: Option<(f64, f64)>,
    /// A limit on the SYNs that reach it, (burst, SYNs a second): a SYN
    /// limit in front of a server (iptables `hashlimit`, a DDoS filter);
    /// SYNs beyond it are dropped, whatever their port.
    pub syn_limit: Option<(f64, f64)>,
}

/// A bottleneck: one packet every `per_packet` (4 Mbit/s: about 150 µs for
/// a SYN), a queue that holds `queue` of waiting before it drops (tbf's
/// latency), and random loss each way.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    pub per_packet: Duration,
    pub queue: Duration,
    pub loss: f64,
}

impl FakeHost {
    pub fn new(addr: &str, default: Behaviour) -> FakeHost {
        FakeHost {
            addr: fixture::addr(addr),
            ttl: 63,
            rtt: Duration::from_millis(2),
            default,
            ports: HashMap::new(),
            lose_first: HashMap::new(),
            path: Vec::new(),
            up_after: Duration::ZERO,
            link: None,
            reset_limit: None,
            syn_limit: None,
        }
    }

    /// Lets at most `per_sec` SYNs a second reach it, `burst` at once.
    pub fn limit_syns(mut self, burst: f64, per_sec: f64) -> FakeHost {
        self.syn_limit = Some((burst, per_sec));
        self
    }

    /// Sends at most `per_sec` resets a second, `burst` at once.
    pub fn limit_resets(mut self, burst: f64, per_sec: f64) -> FakeHost {
        self.reset_limit = Some((burst, per_sec));
        self
    }

    /// Behind a slow lossy link.
    pub fn slow(mut self, link: Link) -> FakeHost {
        self.link = Some(link);
        self
    }

    /// Silent before `after`.
    pub fn up_after(mut self, after: Duration) -> FakeHost {
        self.up_after = after;
        self
    }

    /// The routers before the host, nearest first.
    pub fn behind(mut self, routers: &[&str]) -> FakeHost {
        self.path = routers.iter().map(|r| fixture::addr(r)).collect();
        self
    }

    pub fn port(mut self, port: u16, b: Behaviour) -> FakeHost {
        self.ports.insert(port, b);
        self
    }

    pub fn lossy(mut self, port: u16, lost: u32) -> FakeHost {
        self.lose_first.insert(port, lost);
        self
    }
}

/// What a test can look at after the run.
#[derive(Debug, Default, Clone)]
pub struct Sent {
    /// SYNs sent per (target, port), retransmissions included.
    pub syns: HashMap<(IpAddr, u16), u32>,
    /// TTLs the SYNs were sent with.
    pub ttls: Vec<Option<u8>>,
    /// Waits the loop made, and of those how many a frame ended early.
    pub waits: u64,
    pub woken: u64,
}

pub struct FakeNetwork {
    source_v4: IpAddr,
    source_v6: IpAddr,
    hosts: Vec<FakeHost>,
    base: Instant,
    /// Capture time of the clock's zero.
    epoch: Nanos,
    clock: Duration,
    /// Frames on their way: (arrival, order, bytes).
    pending: BinaryHeap<Reverse<(Duration, u64, Vec<u8>)>>,
    order: u64,
    capture: FakeCapture,
    interrupt_at: Option<Duration>,
    /// Drops the kernel would report.
    pub reported_drops: u64,
    /// (target, port) whose outgoing SYNs the capture never sees.
    pub unseen_syns: HashSet<(IpAddr, u16)>,
    pub sent: Sent,
    /// ICMP rate limit of every responder, as Linux keeps it per peer:
    /// (burst, errors a second). None: no limit.
    pub icmp_limit: Option<(f64, f64)>,
    /// Each responder's bucket: (tokens, when last refilled).
    buckets: HashMap<IpAddr, (f64, Duration)>,
    last_ts: Nanos,
    /// When each slow link is free again.
    busy: HashMap<IpAddr, Duration>,
    /// Random loss: a xorshift generator with a fixed seed (the same loss
    /// every run).
    rng: u64,
    /// Packets the slow links lost or dropped.
    pub link_drops: u64,
    /// When a router's resolution of an absent host, under way, fails.
    resolving: HashMap<IpAddr, Duration>,
    /// Each host's reset and SYN buckets ([`FakeHost::reset_limit`],
    /// [`FakeHost::syn_limit`]; true: the SYNs'): (tokens, when last
    /// refilled).
    limit_buckets: HashMap<(IpAddr, bool), (f64, Duration)>,
    /// Resets and SYNs a host's limit kept back.
    pub resets_limited: u64,
    pub syns_limited: u64,
}

impl FakeNetwork {
    /// A network whose host sends from 192.0.2.1 / 2001:db8::1 (documentation
    /// addresses: nothing here is ever sent anywhere).
    pub fn new(hosts: Vec<FakeHost>) -> FakeNetwork {
        FakeNetwork {
            source_v4: fixture::addr("192.0.2.1"),
            source_v6: fixture::addr("2001:db8::1"),
            hosts,
            base: Instant::now(),
            epoch: 1_800_000_000 * NANOS_PER_SEC,
            clock: Duration::ZERO,
            pending: BinaryHeap::new(),
            order: 0,
            capture: FakeCapture::default(),
            interrupt_at: None,
            reported_drops: 0,
            unseen_syns: HashSet::new(),
            sent: Sent::default(),
            icmp_limit: None,
            buckets: HashMap::new(),
            last_ts: 0,
            busy: HashMap::new(),
            rng: 0x9e37_79b9_7f4a_7c15,
            link_drops: 0,
            resolving: HashMap::new(),
            limit_buckets: HashMap::new(),
            resets_limited: 0,
            syns_limited: 0,
        }
    }

    /// Linux's default: a burst of 6 errors, then one a second, per peer.
    pub fn linux_icmp_limits(mut self) -> FakeNetwork {
        self.icmp_limit = Some((6.0, 1.0));
        self
    }

    /// Whether `from` may send an ICMP error at `at` (its bucket allows).
    fn icmp_allowed(&mut self, from: IpAddr, at: Duration) -> bool {
        let Some((burst, per_sec)) = self.icmp_limit else {
            return true;
        };
        let (tokens, last) = self.buckets.entry(from).or_insert((burst, at));
        *tokens = (*tokens + at.saturating_sub(*last).as_secs_f64() * per_sec).min(burst);
        *last = (*last).max(at);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether host `h`'s reset limit (`syn`: its SYN limit) lets one
    /// more through at `at`.
    fn limit_allows(&mut self, h: &FakeHost, syn: bool, at: Duration) -> bool {
        let limit = if syn { h.syn_limit } else { h.reset_limit };
        let Some((burst, per_sec)) = limit else {
            return true;
        };
        let (tokens, last) = self
            .limit_buckets
            .entry((h.addr, syn))
            .or_insert((burst, at));
        *tokens = (*tokens + at.saturating_sub(*last).as_secs_f64() * per_sec).min(burst);
        *last = (*last).max(at);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            return true;
        }
        if syn {
            self.syns_limited += 1;
        } else {
            self.resets_limited += 1;
        }
        false
    }

    /// Whether `from` may send a route error at `at` ([`Behaviour::RouteError`]):
    /// both limits take a token; the first may take one the second then
    /// finds missing, as the kernel's do.
    fn route_error_allowed(&mut self, from: IpAddr, at: Duration) -> bool {
        let Some((burst, per_sec)) = self.icmp_limit else {
            return true;
        };
        // ip_error's burst is a second below icmp_send's.
        let own_burst = (burst - 1.0).max(1.0);
        let (tokens, last) = self.buckets.entry(from).or_insert((own_burst, at));
        *tokens = (*tokens + at.saturating_sub(*last).as_secs_f64() * per_sec).min(own_burst);
        *last = (*last).max(at);
        if *tokens < 1.0 {
            return false;
        }
        *tokens -= 1.0;
        self.icmp_allowed(from, at)
    }

    /// The local address probes to `target` leave from.
    pub fn source_of(&self, target: IpAddr) -> IpAddr {
        if target.is_ipv4() {
            self.source_v4
        } else {
            self.source_v6
        }
    }

    /// Ctrl-C arrives `after` the start.
    pub fn interrupt_after(&mut self, after: Duration) {
        self.interrupt_at = Some(after);
    }

    /// A frame (raw IP) arrives at the capture `at` after the start, as is:
    /// forged or stray traffic.
    pub fn inject(&mut self, at: Duration, frame: Vec<u8>) {
        self.schedule(at, frame);
    }

    /// How long the run took on the fake clock.
    pub fn elapsed(&self) -> Duration {
        self.clock
    }

    fn schedule(&mut self, at: Duration, frame: Vec<u8>) {
        self.order += 1;
        self.pending.push(Reverse((at, self.order, frame)));
    }

    /// Frames whose time has come go to the capture.
    fn deliver(&mut self) {
        while let Some(Reverse((at, _, _))) = self.pending.peek() {
            if *at > self.clock {
                break;
            }
            if let Some(Reverse((at, _, frame))) = self.pending.pop() {
                // Every frame its own capture time, as a real capture's
                // are: a nanosecond after the last at least.
                let ts = (self.epoch + at.as_nanos() as u64).max(self.last_ts + 1);
                self.last_ts = ts;
                self.capture.queue.push_back((ts, frame));
            }
        }
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }

    /// A SYN through `h`'s slow link: when its answer is back, or None if
    /// the link lost or dropped one of the two.
    fn through(&mut self, h: &FakeHost, l: Link) -> Option<Duration> {
        if self.chance(l.loss) {
            self.link_drops += 1;
            return None;
        }
        let free = self.busy.get(&h.addr).copied().unwrap_or(Duration::ZERO);
        let start = free.max(self.clock);
        if start - self.clock > l.queue {
            // The queue is full: tail drop.
            self.link_drops += 1;
            return None;
        }
        let done = start + l.per_packet;
        self.busy.insert(h.addr, done);
        if self.chance(l.loss) {
            self.link_drops += 1;
            return None;
        }
        Some(done + h.rtt)
    }

    fn host(&self, addr: IpAddr) -> Option<&FakeHost> {
        self.hosts.iter().find(|h| h.addr == addr)
    }

    /// One SYN on the wire: captured on the way out, answered as scripted.
    fn syn(&mut self, o: &Outgoing<'_>) {
        let src = self.source_of(o.target);
        let seg = o.segment;
        let (Some(sport), Some(dport), Some(isn)) = (be16(seg, 0), be16(seg, 2), be32(seg, 4))
        else {
            return;
        };
        let ip = ip_packet(src, o.target, o.ttl.unwrap_or(64), seg);
        let n = self.sent.syns.entry((o.target, dport)).or_insert(0);
        *n += 1;
        let nth = *n;
        self.sent.ttls.push(o.ttl);
        if !self.unseen_syns.contains(&(o.target, dport)) {
            self.schedule(self.clock, ip.clone());
        }
        let Some(h) = self.host(o.target).cloned() else {
            return;
        };
        if self.clock < h.up_after
            || h.lose_first.get(&dport).is_some_and(|&lost| nth <= lost)
            || !self.limit_allows(&h, true, self.clock)
        {
            return;
        }
        let syn = Seg {
            src,
            dst: o.target,
            sport,
            dport,
            seq: isn,
            ack: 0,
            flags: flags::SYN,
            ttl: 64,
        };
        let at = match h.link {
            Some(l) => match self.through(&h, l) {
                Some(at) => at,
                None => return,
            },
            None => self.clock + h.rtt,
        };
        if let Some(t) = o.ttl
            && let Some(&router) = h.path.get(usize::from(t).wrapping_sub(1))
        {
            // The TTL ran out at router t.
            let (ty, code) = if src.is_ipv4() { (11, 0) } else { (3, 0) };
            if self.icmp_allowed(router, at) {
                let frame = fixture::icmp_error_ip(router, src, 65 - t, ty, code, &ip, ip.len());
                self.schedule(at, frame);
            }
            return;
        }
        match h.ports.get(&dport).copied().unwrap_or(h.default) {
            Behaviour::Open => {
                let frame = fixture::tcp_ip(&syn.reply(flags::SYN | flags::ACK, h.ttl));
                self.schedule(at, frame);
            }
            Behaviour::Closed => {
                if self.limit_allows(&h, false, at) {
                    let frame = fixture::tcp_ip(&syn.reply(flags::RST | flags::ACK, h.ttl));
                    self.schedule(at, frame);
                }
            }
            Behaviour::Drop => {}
            Behaviour::Icmp {
                from,
                ttl,
                icmp_type,
                code,
                delay,
            } => {
                if self.icmp_allowed(from, at + delay) {
                    let frame =
                        fixture::icmp_error_ip(from, src, ttl, icmp_type, code, &ip, ip.len());
                    self.schedule(at + delay, frame);
                }
            }
            Behaviour::RouteError {
                from,
                ttl,
                icmp_type,
                code,
            } => {
                if self.route_error_allowed(from, at) {
                    let frame =
                        fixture::icmp_error_ip(from, src, ttl, icmp_type, code, &ip, ip.len());
                    self.schedule(at, frame);
                }
            }
            Behaviour::ForgedReset { ttl } => {
                let frame = fixture::tcp_ip(&syn.reply(flags::RST | flags::ACK, ttl));
                self.schedule(at, frame);
            }
            Behaviour::Absent { from } => {
                let fails = match self.resolving.get(&o.target) {
                    Some(&f) if f > at => f,
                    _ => {
                        self.resolving.insert(o.target, at + ARP_FAILS_AFTER);
                        at + ARP_FAILS_AFTER
                    }
                };
                let (ty, code) = if src.is_ipv4() { (3, 1) } else { (1, 3) };
                if self.icmp_allowed(from, fails) {
                    let frame = fixture::icmp_error_ip(from, src, 64, ty, code, &ip, ip.len());
                    self.schedule(fails, frame);
                }
            }
        }
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// The segment in the IP header the kernel would put around it.
fn ip_packet(src: IpAddr, dst: IpAddr, ttl: u8, seg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(60 + seg.len());
    let built = match (src, dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => etherparse::PacketBuilder::ipv4(
            a.octets(),
            b.octets(),
            ttl,
        )
        .write(&mut out, etherparse::IpNumber::TCP, seg),
        (IpAddr::V6(a), IpAddr::V6(b)) => etherparse::PacketBuilder::ipv6(
            a.octets(),
            b.octets(),
            ttl,
        )
        .write(&mut out, etherparse::IpNumber::TCP, seg),
        _ => return Vec::new(),
    };
    built.map(|_| out).unwrap_or_default()
}

impl Network for FakeNetwork {
    fn send(&mut self, batch: &[Outgoing<'_>]) -> io::Result<usize> {
        for o in batch {
            self.syn(o);
        }
        self.deliver();
        Ok(batch.len())
    }

    fn captures(&self) -> usize {
        1
    }

    fn capture(&mut self, _i: usize) -> &mut dyn PacketSource {
        self.deliver();
        &mut self.capture
    }

    fn device(&self, _i: usize) -> &str {
        "fake0"
    }

    fn capture_stats(&mut self) -> Vec<(String, CaptureStats)> {
        vec![(
            "fake0".into(),
            CaptureStats {
                received: self.capture.handed,
                dropped: self.reported_drops,
                if_dropped: 0,
            },
        )]
    }

    fn now(&self) -> Instant {
        self.base + self.clock
    }

    /// Time passes: to `until`, or (`answers`) to the next frame's arrival
    /// if sooner.
    fn wait(&mut self, until: Instant, answers: bool) {
        let mut until = until.saturating_duration_since(self.base);
        // A signal ends a wait early, as it ends ppoll.
        if let Some(t) = self.interrupt_at
            && t > self.clock
        {
            until = until.min(t);
        }
        let next = self
            .pending
            .peek()
            .map(|Reverse((at, _, _))| *at)
            .filter(|_| answers);
        self.sent.waits += 1;
        if next.is_some_and(|n| n < until) {
            self.sent.woken += 1;
        }
        let to = next.map_or(until, |n| n.min(until)).max(self.clock);
        // Never stand still: a wait always moves the clock a little.
        self.clock = to.max(self.clock + Duration::from_micros(1));
        self.deliver();
    }

    fn interrupted(&self) -> bool {
        self.interrupt_at.is_some_and(|t| self.clock >= t)
    }
}

/// The capture: frames in arrival order, raw IP.
#[derive(Default)]
struct FakeCapture {
    queue: VecDeque<(Nanos, Vec<u8>)>,
    current: Vec<u8>,
    handed: u64,
}

impl PacketSource for FakeCapture {
    fn link_type(&self) -> LinkType {
        LinkType::RAW
    }

    fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, Error> {
        let Some((ts, frame)) = self.queue.pop_front() else {
            return Ok(None);
        };
        self.handed += 1;
        self.current = frame;
        Ok(Some(RawPacket {
            ts,
            len: u32::try_from(self.current.len()).unwrap_or(u32::MAX),
            data: &self.current,
            link: self.link_type(),
        }))
    }
}
