//! `synscope watch`: a live, passive capture through the same reading
//! stage and tracker as `analyze`: every TCP connection attempt the
//! interface sees gets its verdict the moment it is decided (its answer,
//! or its timeout), and failing DNS answers are told as they come. It
//! never sends a packet; root is dropped once the capture is open.

pub mod patterns;
pub mod procs;
pub mod sockets;

use crate::error::Error;
use crate::model::{Analysis, CaptureStats, DnsEvent, Nanos, Reason, State, Verdict};
use crate::source::{LiveSource, PacketSource, Reader};
use crate::track::{self, Tracker};
use crate::wire::Body;
use procs::{Names, Reading, Tracer, Tuple};
use rustc_hash::{FxHashMap, FxHashSet};
use sockets::SocketTable;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the capture keeps: TCP, ICMP errors, DNS queries and answers.
const BASE_FILTER: &str = "tcp or icmp or icmp6 or (udp and port 53)";
/// A DNS query with no answer after this long is told as one.
const DNS_WAIT: Nanos = 5_000_000_000;
/// Frames read before the loop looks at the clock again.
const DRAIN_LIMIT: usize = 65536;
/// How long one wait for packets lasts, at most (decisions by timeout
/// come this late at worst).
const TICK: Duration = Duration::from_millis(100);
/// The kernel hands the capture over a block at a time, when full or after
/// this long: an answer is told this late at worst, and a flood costs a
/// wake-up per block rather than per packet.
const BLOCK_MS: i32 = 20;
/// A pass lasts at least this long: under a flood, packets are read in
/// batches, not a poll per packet (an answer is told this late at worst).
const MIN_PASS: Duration = Duration::from_millis(10);
/// The kernel's capture buffer: 8 MiB holds about 160 ms of a
/// 400,000-packet-a-second flood (small frames: 256-byte snaplen). Not
/// larger: the kernel writes it in the sender's context, and a ring that
/// does not stay in cache slows every sender on the machine (measured: a
/// loopback flood 7 % slower with 16 MiB than with tcpdump's 2 MiB; 2 MiB
/// dropped packets under that flood; benches/watch.rs).
const BUFFER_BYTES: i32 = 8 << 20;
/// Distinct (client, target, port) kept for the report at the end, at
/// most; attempts to others are told as lines and counted, not kept.
pub const REPORT_TRIPLES: usize = 1 << 18;
/// Distinct failing DNS answers kept for the report, at most.
pub const REPORT_DNS: usize = 4096;

/// Where the programs' names come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramsFrom {
    /// The tracepoint, else the socket table (said once).
    Auto,
    Tracepoint,
    SocketTable,
    /// No names (nothing opened for them).
    Nothing,
}

#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// The interface (`any`: every one, as `tcpdump -i any`).
    pub device: String,
    /// A tcpdump filter narrowing what is watched (ICMP errors quoting
    /// what it selects are kept).
    pub filter: Option<String>,
    /// Stop after this long (None: at Ctrl-C).
    pub duration: Option<Duration>,
    /// How long an attempt waits for an answer before it is `filtered`.
    pub timeout: Duration,
    /// Whom to become once the capture is open (None: the sudo caller,
    /// else `nobody`).
    pub user: Option<String>,
    /// Only the attempts of this process (`--pid`) or of programs of this
    /// name (`--command`, /proc/PID/comm).
    pub pid: Option<u32>,
    pub command: Option<String>,
    pub programs_from: ProgramsFrom,
}

impl WatchOptions {
    /// Whether a program is one of those asked for (all, when no program
    /// was asked for; none unnamed, when one was).
    fn wanted_process(&self, p: Option<&procs::Process>) -> bool {
        if self.pid.is_none() && self.command.is_none() {
            return true;
        }
        p.is_some_and(|p| {
            self.pid.is_none_or(|x| x == p.pid)
                && self.command.as_deref().is_none_or(|c| c == p.command)
        })
    }

    fn wanted(&self, v: &Verdict) -> bool {
        self.wanted_process(v.process.as_ref())
    }
}

/// Where a watch tells what it sees, as it sees it.
pub trait Sink {
    /// An attempt's verdict, the moment it is decided.
    fn verdict(&mut self, v: &Verdict);
    /// A failing DNS answer, as it comes.
    fn dns(&mut self, d: &DnsEvent);
    /// Something to say once (what cannot be named, and why).
    fn note(&mut self, n: &str);
    /// Called after each pass, with the time: for periodic summaries.
    fn tick(&mut self, _now_ns: Nanos) {}
}

/// How programs were named, and what that missed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Naming {
    /// "tracepoint", "socket-table" or "none".
    pub source: &'static str,
    /// Attempts from this host's addresses with no program found.
    pub unnamed: u64,
    /// Tracepoint samples the kernel could not write (its ring was full).
    pub samples_lost: u64,
    /// Whether DNS questions could be named.
    pub dns: bool,
}

/// What a watch saw, at its end.
pub struct Watched {
    pub analysis: Analysis,
    pub capture: CaptureStats,
    pub interrupted: bool,
    pub naming: Naming,
    /// Attempts told as lines but not kept for the report (past
    /// [`REPORT_TRIPLES`] destinations).
    pub not_kept: u64,
    /// The failing DNS answers, with their programs (at most
    /// [`REPORT_DNS`]).
    pub dns_failures: Vec<DnsEvent>,
}

fn now_ns() -> Nanos {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as Nanos)
}

/// A DNS answer that explains a failure before any SYN: no such name, a
/// server failure or refusal, or no address of the type asked.
pub fn dns_failure(d: &DnsEvent) -> bool {
    d.rcode != 0 || d.addresses.is_empty()
}

/// This host's addresses (every interface of its network namespace).
fn local_addresses() -> FxHashSet<IpAddr> {
    let mut out = FxHashSet::default();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we walk read-only and free once.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut at = head;
        while !at.is_null() {
            let a = (*at).ifa_addr;
            if !a.is_null() {
                match i32::from((*a).sa_family) {
                    libc::AF_INET => {
                        let s = &*(a as *const libc::sockaddr_in);
                        out.insert(IpAddr::from(u32::from_be(s.sin_addr.s_addr).to_be_bytes()));
                    }
                    libc::AF_INET6 => {
                        let s = &*(a as *const libc::sockaddr_in6);
                        out.insert(IpAddr::from(s.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            at = (*at).ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out
}

/// The source of the programs' names.
enum Namer {
    Trace(Reading),
    Sockets(SocketTable),
    Off,
}

impl Namer {
    fn open(from: ProgramsFrom, sink: &mut dyn Sink) -> Namer {
        let table = |sink: &mut dyn Sink, why: String| match SocketTable::open() {
            Ok(t) => {
                sink.note(&format!(
                    "{why}programs are named from the socket table (sock_diag and /proc): an attempt whose socket closed before it was read (a refusal within microseconds, a short connection) stays unnamed, and DNS questions are not named"
                ));
                Namer::Sockets(t)
            }
            Err(e) => {
                sink.note(&format!(
                    "{why}programs are not named: the socket table cannot be read either ({e})"
                ));
                Namer::Off
            }
        };
        match from {
            ProgramsFrom::Nothing => Namer::Off,
            ProgramsFrom::SocketTable => table(sink, String::new()),
            ProgramsFrom::Tracepoint | ProgramsFrom::Auto => match Tracer::open() {
                Ok(t) => {
                    if !t.names_dns() {
                        sink.note("DNS questions are not named: the route lookup tracepoints (fib, fib6) could not be opened");
                    }
                    Namer::Trace(Reading::start(t))
                }
                Err(e) if from == ProgramsFrom::Auto => table(
                    sink,
                    format!(
                        "the tracepoint cannot be read ({e}; it needs root, or CAP_PERFMON with tracefs readable): "
                    ),
                ),
                Err(e) => {
                    sink.note(&format!(
                        "programs are not named: {e} (run as root, or with CAP_PERFMON and tracefs readable)"
                    ));
                    Namer::Off
                }
            },
        }
    }

    fn source(&self) -> &'static str {
        match self {
            Namer::Trace(_) => "tracepoint",
            Namer::Sockets(_) => "socket-table",
            Namer::Off => "none",
        }
    }
}

/// Watches until `opts.duration` or Ctrl-C, telling `sink` each verdict
/// as it is decided and each failing DNS answer as it comes.
pub fn watch(opts: &WatchOptions, sink: &mut dyn Sink) -> Result<Watched, Error> {
    let mut src = LiveSource::open_selecting(
        &opts.device,
        BASE_FILTER,
        opts.filter.as_deref(),
        BUFFER_BYTES,
        Some(BLOCK_MS),
    )?;
    // Which program: the tracepoint, opened while still root.
    let mut namer = Namer::open(opts.programs_from, sink);
    crate::scan::privs::catch_interrupts();
    if let Some(id) = crate::scan::privs::watch_identity(opts.user.as_deref())? {
        match namer {
            // Other users' /proc/PID/fd need CAP_SYS_PTRACE.
            Namer::Sockets(_) => crate::scan::privs::drop_keeping_ptrace(id)?,
            _ => crate::scan::privs::drop_to(id)?,
        }
    }
    let local = local_addresses();
    let mut names = Names::default();
    let mut reader = Reader::new(format!("live:{}", opts.device), src.link_type(), true);
    reader.keep_queries();
    // Queries not answered yet, by (client, port, id): bounded.
    let mut pending: FxHashMap<(IpAddr, u16, u16), crate::source::DnsQuery> = FxHashMap::default();
    let mut tracker = Tracker::new(track::Config {
        timeout: opts.timeout.as_nanos() as Nanos,
        max_triples: REPORT_TRIPLES,
        ..track::Config::default()
    });
    tracker.stream_verdicts();
    let start = Instant::now();
    let mut dns_seen = 0;
    let mut dns_failures: Vec<DnsEvent> = Vec::new();
    // Attempts already told at their answer, and how: told again at their
    // timeout only if that changed (bounded: an entry leaves at the
    // timeout, and the tracker holds at most its cap of live attempts).
    // An attempt is (client, target, port, its first SYN's time), kept as
    // its 64-bit hash: 16 bytes an entry under a flood.
    let mut told: FxHashMap<u64, (State, Reason)> = FxHashMap::default();
    let key = |v: &Verdict| {
        use std::hash::BuildHasher;
        rustc_hash::FxBuildHasher.hash_one((v.client, v.target, v.port, v.first_probe_ns))
    };
    // The program of each (client, target, port) told, for the report at
    // the end (its verdicts are merged per triple); bounded.
    let mut programs: FxHashMap<(IpAddr, IpAddr, u16), procs::Process> = FxHashMap::default();
    let mut unnamed = 0u64;
    let fd = src.fd();
    loop {
        if crate::scan::privs::interrupted() || opts.duration.is_some_and(|d| start.elapsed() >= d)
        {
            break;
        }
        let pass = Instant::now();
        let mut answered: Vec<(Verdict, u16)> = Vec::new();
        // SYNs leaving this host's sockets, for the socket table.
        let mut syns: Vec<Tuple> = Vec::new();
        let want_syns = matches!(namer, Namer::Sockets(_));
        reader.pump(&mut src, DRAIN_LIMIT, None, None, |ts, pkt| {
            if want_syns
                && let Body::Tcp(t) = &pkt.body
                && t.syn()
                && !t.ack_flag()
                && local.contains(&pkt.src)
            {
                syns.push((pkt.src, t.sport, pkt.dst, t.dport));
            }
            if let Some(a) = tracker.observe(ts, &pkt)
                && let Some(v) = tracker.verdict_of(&a)
            {
                answered.push((v, a.sport));
            }
            true
        })?;
        // The programs after the packets: a socket entered SYN_SENT before
        // its SYN went out, so every SYN just read has its sample in the
        // rings by now (and its socket is in the table, unless it closed).
        match &mut namer {
            Namer::Trace(t) => t.drain(&mut names),
            Namer::Sockets(t) => {
                syns.sort_unstable();
                syns.dedup();
                t.name(&syns, &mut names);
            }
            Namer::Off => {}
        }
        let mut tell = |v: &mut Verdict, sport: Option<u16>, sink: &mut dyn Sink| {
            v.process = names.attempt(v.client, sport, v.target, v.port).cloned();
            match &v.process {
                Some(p) if programs.len() < REPORT_TRIPLES => {
                    programs.insert((v.client, v.target, v.port), p.clone());
                }
                Some(_) => {}
                None if local.contains(&v.client) => unnamed += 1,
                None => {}
            }
            if opts.wanted(v) {
                sink.verdict(v);
            }
        };
        for (mut v, sport) in answered {
            let k = key(&v);
            if told.get(&k) != Some(&(v.state, v.reason)) {
                told.insert(k, (v.state, v.reason));
                tell(&mut v, Some(sport), sink);
            }
        }
        tracker.advance(now_ns());
        for (mut v, sport) in tracker.take_streamed_with_ports() {
            match told.remove(&key(&v)) {
                Some(said) if said == (v.state, v.reason) => {}
                _ => tell(&mut v, Some(sport), sink),
            }
        }
        for d in reader.dns_events().iter().skip(dns_seen) {
            if dns_failure(d) {
                let mut d = d.clone();
                d.process = names.asker(d.client, d.client_port).cloned();
                if opts.wanted_process(d.process.as_ref()) {
                    sink.dns(&d);
                    if dns_failures.len() < REPORT_DNS {
                        dns_failures.push(d);
                    }
                }
            }
        }
        dns_seen = reader.dns_events().len();
        let (asked, answered) = reader.take_queries();
        for q in asked {
            if pending.len() < procs::REMEMBER {
                pending.insert((q.client, q.client_port, q.id), q);
            }
        }
        for k in answered {
            pending.remove(&k);
        }
        let now = now_ns();
        let mut silent: Vec<crate::source::DnsQuery> = Vec::new();
        pending.retain(|_, q| {
            let waiting = now.saturating_sub(q.ts_ns) < DNS_WAIT;
            if !waiting {
                silent.push(q.clone());
            }
            waiting
        });
        silent.sort_by_key(|q| q.ts_ns);
        for q in silent {
            let d = DnsEvent {
                ts_ns: q.ts_ns,
                server: q.server,
                client: q.client,
                name: q.name,
                rcode: 0,
                addresses: Vec::new(),
                qtype: q.qtype,
                client_port: q.client_port,
                answered: false,
                process: names.asker(q.client, q.client_port).cloned(),
            };
            if opts.wanted_process(d.process.as_ref()) {
                sink.dns(&d);
                if dns_failures.len() < REPORT_DNS {
                    dns_failures.push(d);
                }
            }
        }
        sink.tick(now);
        let wait = opts
            .duration
            .map_or(TICK, |d| d.saturating_sub(start.elapsed()).min(TICK));
        if let Some(fd) = fd {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd; a signal ends the wait early (EINTR).
            unsafe { libc::poll(&mut p, 1, wait.as_millis() as libc::c_int) };
        }
        let short = MIN_PASS.saturating_sub(pass.elapsed());
        if !short.is_zero() && !crate::scan::privs::interrupted() {
            std::thread::sleep(short);
        }
    }
    let interrupted = crate::scan::privs::interrupted();
    // What is still waiting is decided now, as analyze does at a file's end.
    let capture = src.stats();
    reader.pump(&mut src, DRAIN_LIMIT, None, None, |ts, pkt| {
        tracker.observe(ts, &pkt);
        true
    })?;
    let stats = tracker.stats();
    let (merged, _) = tracker.finish();
    let not_kept = merged.not_kept();
    let mut results = merged.into_verdicts();
    track::infer::annotate(&mut results);
    for v in &mut results {
        // Told ones as told; those still waiting at the end by their
        // (source, destination, port).
        v.process = programs
            .get(&(v.client, v.target, v.port))
            .or_else(|| names.attempt(v.client, None, v.target, v.port))
            .cloned();
    }
    results.retain(|v| opts.wanted(v));
    let (mut sum, dns) = reader.finish();
    sum.stats = stats;
    let mut analysis = Analysis::from_parts(results, vec![sum]);
    analysis.dns = dns;
    let naming = Naming {
        source: namer.source(),
        unnamed,
        samples_lost: match &namer {
            Namer::Trace(t) => t.lost(),
            _ => 0,
        },
        dns: matches!(&namer, Namer::Trace(t) if t.names_dns()),
    };
    Ok(Watched {
        analysis,
        capture,
        interrupted,
        naming,
        not_kept,
        dns_failures,
    })
}
