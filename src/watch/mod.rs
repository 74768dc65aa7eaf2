//! `synscope watch`: a live, passive capture through the same reading
//! stage and tracker as `analyze`: every TCP connection attempt the
//! interface sees gets its verdict the moment it is decided (its answer,
//! or its timeout), and failing DNS answers are told as they come. It
//! never sends a packet; root is dropped once the capture is open.

pub mod patterns;
pub mod procs;

use crate::error::Error;
use crate::model::{Analysis, CaptureStats, DnsEvent, Nanos, Process, Reason, State, Verdict};
use crate::source::{LiveSource, PacketSource, Reader};
use crate::track::{self, Tracker};
use rustc_hash::FxHashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the capture keeps: TCP, ICMP errors, DNS answers.
const BASE_FILTER: &str = "tcp or icmp or icmp6 or (udp and src port 53)";
/// Frames read before the loop looks at the clock again.
const DRAIN_LIMIT: usize = 65536;
/// How long one wait for packets lasts, at most (decisions by timeout
/// come this late at worst).
const TICK: Duration = Duration::from_millis(100);

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
    /// Whom to become once the capture is open (None: the sudo caller).
    pub user: Option<String>,
    /// Only the attempts of this process (`--pid`) or of programs of this
    /// name (`--command`, /proc/PID/comm).
    pub pid: Option<u32>,
    pub command: Option<String>,
}

impl WatchOptions {
    /// Whether a verdict is one of the programs asked for (all, when no
    /// program was asked for; none unnamed, when one was).
    fn wanted(&self, v: &Verdict) -> bool {
        if self.pid.is_none() && self.command.is_none() {
            return true;
        }
        v.process.as_ref().is_some_and(|p| {
            self.pid.is_none_or(|x| x == p.pid)
                && self.command.as_deref().is_none_or(|c| c == p.command)
        })
    }
}

/// What a watch saw, at its end.
pub struct Watched {
    pub analysis: Analysis,
    pub capture: CaptureStats,
    pub interrupted: bool,
}

/// Told once at the start, when programs cannot be named.
pub type Note = String;

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

/// Watches until `opts.duration` or Ctrl-C; each verdict to `on_verdict`
/// as it is decided, each failing DNS answer to `on_dns` as it comes.
pub fn watch(
    opts: &WatchOptions,
    on_verdict: &mut dyn FnMut(&Verdict),
    on_dns: &mut dyn FnMut(&DnsEvent),
    on_note: &mut dyn FnMut(&Note),
) -> Result<Watched, Error> {
    let mut src = LiveSource::open_selecting(&opts.device, BASE_FILTER, opts.filter.as_deref())?;
    // Which program: the tracepoint, opened while still root.
    let mut tracer = match procs::Tracer::open() {
        Ok(t) => Some(t),
        Err(e) => {
            on_note(&format!(
                "programs are not named: {e} (run as root, or with CAP_PERFMON and tracefs readable)"
            ));
            None
        }
    };
    crate::scan::privs::catch_interrupts();
    if let Some(id) = crate::scan::privs::target_identity(opts.user.as_deref())? {
        crate::scan::privs::drop_to(id)?;
    }
    let mut reader = Reader::new(format!("live:{}", opts.device), src.link_type(), true);
    let mut tracker = Tracker::new(track::Config {
        timeout: opts.timeout.as_nanos() as Nanos,
        ..track::Config::default()
    });
    tracker.stream_verdicts();
    let start = Instant::now();
    let mut dns_seen = 0;
    // Attempts already told at their answer, and how: told again at their
    // timeout only if that changed (bounded: an entry leaves at the
    // timeout).
    // An attempt is (client, target, port, its first SYN's time).
    let mut told: FxHashMap<(IpAddr, IpAddr, u16, Nanos), (State, Reason)> = FxHashMap::default();
    // The program of each (client, target, port) told, for the report at
    // the end (its verdicts are merged per triple); bounded as `told`.
    let mut programs: FxHashMap<(IpAddr, IpAddr, u16), Process> = FxHashMap::default();
    let fd = src.fd();
    loop {
        if crate::scan::privs::interrupted() || opts.duration.is_some_and(|d| start.elapsed() >= d)
        {
            break;
        }
        let mut answered: Vec<(Verdict, u16)> = Vec::new();
        reader.pump(&mut src, DRAIN_LIMIT, None, None, |ts, pkt| {
            if let Some(a) = tracker.observe(ts, &pkt)
                && let Some(v) = tracker.verdict_of(&a)
            {
                answered.push((v, a.sport));
            }
            true
        })?;
        // The tracepoint's samples after the packets: a socket entered
        // SYN_SENT before its SYN went out, so every SYN just read has its
        // sample in the rings by now.
        if let Some(t) = tracer.as_mut() {
            t.read();
        }
        let who = |v: &mut Verdict, sport: Option<u16>| {
            if let Some(t) = tracer.as_ref() {
                let p = sport
                    .and_then(|s| t.who(&(v.client, s, v.target, v.port)))
                    .or_else(|| t.latest(v.client, v.target, v.port));
                v.process = p.cloned();
            }
        };
        let mut tell = |v: &Verdict| {
            if let Some(p) = &v.process
                && programs.len() < procs::REMEMBER
            {
                programs.insert((v.client, v.target, v.port), p.clone());
            }
            if opts.wanted(v) {
                on_verdict(v);
            }
        };
        for (mut v, sport) in answered {
            let k = (v.client, v.target, v.port, v.first_probe_ns);
            if told.get(&k) != Some(&(v.state, v.reason)) {
                told.insert(k, (v.state, v.reason));
                who(&mut v, Some(sport));
                tell(&v);
            }
        }
        tracker.advance(now_ns());
        for mut v in tracker.take_streamed() {
            match told.remove(&(v.client, v.target, v.port, v.first_probe_ns)) {
                Some(said) if said == (v.state, v.reason) => {}
                _ => {
                    who(&mut v, None);
                    tell(&v);
                }
            }
        }
        for d in reader.dns_events().iter().skip(dns_seen) {
            if dns_failure(d) {
                on_dns(d);
            }
        }
        dns_seen = reader.dns_events().len();
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
    let mut results = merged.into_verdicts();
    track::infer::annotate(&mut results);
    for v in &mut results {
        v.process = programs.get(&(v.client, v.target, v.port)).cloned();
    }
    results.retain(|v| opts.wanted(v));
    let (mut sum, dns) = reader.finish();
    sum.stats = stats;
    let mut analysis = Analysis::from_parts(results, vec![sum]);
    analysis.dns = dns;
    Ok(Watched {
        analysis,
        capture,
        interrupted,
    })
}
