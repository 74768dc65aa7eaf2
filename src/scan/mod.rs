//! Live SYN probing: craft with pnet, send in batches on raw sockets, capture every answer with
//! libpcap, and give each (target, port) its verdict from the same track
//! core the offline path uses, fed with the captured packets and their
//! capture timestamps. The capture can be written (`--write`) and analysed
//! again offline with the same result.
//!
//! The kernel does not know our half-open connections, so it answers each
//! SYN-ACK with a RST; nmap's SYN scan does the same. Those RSTs are the
//! client's own traffic to the tracker.

pub mod connect;
pub mod engine;
pub mod fake;
mod finish;
pub mod handshake;
pub mod net;
mod pace;
mod passes;
pub mod plan;
pub mod privs;
pub mod probe;
pub mod route;
pub mod run;
pub mod send;
pub mod targets;
pub mod trace;

use finish::{FirstRun, Streamer, stream_rest};
pub use passes::{Candidate, rate_limit_candidates, slow_reprobe_pace};
pub use plan::shard;

use crate::error::Error;
use crate::model::{Analysis, EngineStats, InputSummary, ScanInfo, State, Verdict};
use crate::select::PortSet;
use crate::source::PcapWriter;
use crate::track;
use engine::EngineConfig;
use net::{Network, RawNetwork};
use plan::Plan;
use rand::{RngExt, SeedableRng, seq::SliceRandom};
use rustc_hash::FxHashSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub targets: Vec<IpAddr>,
    /// The host name each target address came from, where one did: kept
    /// on its verdicts (`name`).
    pub names: Vec<(IpAddr, String)>,
    /// Target names that gave no address (each with why): the others are
    /// scanned, and the command says so and exits non-zero.
    pub unresolved: Vec<String>,
    pub ports: PortSet,
    pub engine: EngineConfig,
    /// How long to keep listening after the last probe is answered or given
    /// up; None: only while something can still answer (see
    /// [`run::RunConfig::wait`]).
    pub wait: Option<Duration>,
    /// TTL / hop limit of the probes.
    pub ttl: Option<u8>,
    /// Probe order seed (random order by default).
    pub seed: Option<u64>,
    /// Save every probe and captured packet here (pcap).
    pub write: Option<PathBuf>,
    /// Source port of the probes (random outside the ephemeral range by
    /// default).
    pub source_port: Option<u16>,
    /// connect() probes with the ICMP error queue instead of raw SYNs (no
    /// privileges needed; no TTLs seen).
    pub unprivileged: bool,
    /// Drop root to this user once the handles are open (default: the sudo
    /// caller).
    pub user: Option<String>,
    /// Stop on SIGINT/SIGTERM and report what was found, marked partial.
    pub catch_signals: bool,
    /// Kernel capture buffer in bytes (default 64 MiB).
    pub capture_buffer: Option<i32>,
    /// `(i, n)`: probe only shard `i` of `n` (1-based) of the target × port
    /// space; `n` machines given 1..=n cover it exactly once.
    pub shard: Option<(u32, u32)>,
    /// Draw a progress bar (rate, ETA) on stderr; the caller decides (only
    /// on a terminal, not with -q).
    pub progress: bool,
    pub track: track::Config,
}

impl Default for ScanOptions {
    /// No target and no port yet; the scan defaults otherwise (the ones
    /// `synscope scan` has without flags), and no Ctrl-C handling, no
    /// progress bar, no privilege drop.
    fn default() -> Self {
        ScanOptions {
            targets: Vec::new(),
            names: Vec::new(),
            unresolved: Vec::new(),
            ports: PortSet::all(),
            engine: EngineConfig::default(),
            wait: None,
            ttl: None,
            seed: None,
            write: None,
            source_port: None,
            unprivileged: false,
            user: None,
            catch_signals: false,
            capture_buffer: None,
            shard: None,
            progress: false,
            track: track::Config::default(),
        }
    }
}

/// What a scan found, and how the scan itself went.
#[derive(Debug)]
pub struct ScanOutcome {
    pub analysis: Analysis,
    pub info: ScanInfo,
}

/// The source port: one per scan, outside the kernel's ephemeral range (so
/// no local connection can collide with it), as nmap does.
pub(crate) fn pick_source_port(rng: &mut impl rand::Rng) -> u16 {
    let (lo, hi) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|x| x.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999));
    loop {
        let p: u16 = rng.random_range(1024..=65535);
        if p < lo || p > hi {
            return p;
        }
    }
}

/// What unprivileged mode cannot see, said with every such report.
pub const UNPRIVILEGED_NOTE: &str = "unprivileged mode: connect() probes, ICMP errors read from the socket's error queue; no TTLs or hop distances are seen, so a reset forged on the path looks like the host's own, and silent ports cannot be located";

/// The scan with connect() probes (see [`connect`]): no privileges needed.
pub fn run_unprivileged(opts: &ScanOptions) -> Result<ScanOutcome, Error> {
    let started = Instant::now();
    if opts.targets.is_empty() || opts.ports.is_empty() {
        return Err(Error::NothingToScan);
    }
    let seed = opts.seed.unwrap_or_else(|| rand::rng().random());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut probes = plan::pairs(&opts.targets, &opts.ports, opts.shard);
    probes.shuffle(&mut rng);
    let timeout = Duration::from_nanos(opts.track.timeout).max(Duration::from_millis(100));
    let mut results = connect::connect_scan(&probes, timeout)?;
    track::infer::annotate(&mut results);
    let answered = results
        .iter()
        .filter(|v| v.state != State::Filtered)
        .count() as u64;
    let engine = EngineStats {
        sent: probes.len() as u64,
        answered,
        unanswered: probes.len() as u64 - answered,
        ..Default::default()
    };
    let inputs = vec![InputSummary {
        file: "connect()".into(),
        link_type: "none (unprivileged)".into(),
        ..Default::default()
    }];
    Ok(ScanOutcome {
        analysis: Analysis::from_parts(results, inputs),
        info: ScanInfo {
            partial: false,
            capture_error: None,
            // SAFETY: geteuid has no preconditions.
            ran_as_uid: unsafe { libc::geteuid() },
            engine,
            captures: Vec::new(),
            not_captured: 0,
            send_errors: 0,
            seed,
            source_port: 0,
            duration_s: started.elapsed().as_secs_f64(),
            warnings: vec![UNPRIVILEGED_NOTE.to_string()],
        },
    })
}

pub fn run(opts: &ScanOptions) -> Result<ScanOutcome, Error> {
    run_inner(opts, &mut |_| {}, false)
}

/// [`run`], handing every verdict to `on_verdict` as soon as it is decided
/// (and the rest at the end), so a long scan can stream its results. A
/// port probed again later (see below) is handed over again: the later
/// verdict supersedes.
pub fn run_streaming(
    opts: &ScanOptions,
    on_verdict: &mut dyn FnMut(&Verdict),
) -> Result<ScanOutcome, Error> {
    run_inner(opts, on_verdict, true)
}

fn run_inner(
    opts: &ScanOptions,
    on_verdict: &mut dyn FnMut(&Verdict),
    stream: bool,
) -> Result<ScanOutcome, Error> {
    let names: rustc_hash::FxHashMap<IpAddr, &str> =
        opts.names.iter().map(|(a, n)| (*a, n.as_str())).collect();
    let name = |v: &Verdict| -> Verdict {
        let mut v = v.clone();
        v.name = names.get(&v.target).map(|n| n.to_string());
        v
    };
    let mut out = if opts.unprivileged {
        let out = run_unprivileged(opts)?;
        for v in &out.analysis.results {
            on_verdict(&name(v));
        }
        out
    } else if names.is_empty() {
        run_raw(opts, on_verdict, stream)?
    } else {
        run_raw(opts, &mut |v| on_verdict(&name(v)), stream)?
    };
    for v in &mut out.analysis.results {
        v.name = names.get(&v.target).map(|n| n.to_string());
    }
    Ok(out)
}

/// A raw scan: open the captures and sockets, drop root, run the loop,
/// finish the verdicts, and probe again the ports of hosts that came up
/// late.
fn run_raw(
    opts: &ScanOptions,
    on_verdict: &mut dyn FnMut(&Verdict),
    stream: bool,
) -> Result<ScanOutcome, Error> {
    let started = Instant::now();
    if opts.targets.is_empty() || opts.ports.is_empty() {
        return Err(Error::NothingToScan);
    }
    // Where each target's packets leave from.
    let routes = route::routes(&opts.targets)?;
    let (plan, sport) = Plan::scan(
        &opts.targets,
        &opts.ports,
        opts.shard,
        opts.seed,
        opts.source_port,
        opts.ttl,
        |t| routes.iter().find(|r| r.target == t).map(|r| r.source),
    );
    let buffer = opts
        .capture_buffer
        .unwrap_or(crate::source::live_buffer_for(plan.len()));
    let filter = format!("(tcp port {sport}) or icmp or icmp6");
    let mut net = RawNetwork::open(&routes, &filter, buffer)?;
    let mut writer = match &opts.write {
        Some(path) => {
            let Some(link) = net.link_type() else {
                return Err(Error::Write {
                    path: path.clone(),
                    reason: "the scan captures on interfaces of different link types; scan IPv4 and IPv6 targets separately to write them".into(),
                });
            };
            Some(PcapWriter::create(path, link)?)
        }
        None => None,
    };
    // Every privileged handle is open: drop root before the first packet
    // is read.
    if let Some(id) = privs::target_identity(opts.user.as_deref())? {
        if let Some(w) = writer.as_ref() {
            w.chown(id.uid, id.gid)?;
        }
        privs::drop_to(id)?;
    }
    if opts.catch_signals {
        privs::catch_interrupts();
    }
    let mut out = scan_on(&mut net, &plan, opts, writer.as_mut(), on_verdict, stream)?;
    if let Some(w) = writer {
        w.finish()?;
    }
    out.info.source_port = sport;
    out.info.duration_s = started.elapsed().as_secs_f64();
    Ok(out)
}

/// The scan of `plan` on any network (the raw one, or a fake in tests):
/// the first run, then the second passes (hosts that came up late, ports
/// whose ICMP errors a limiter held back), all on one session, and the
/// verdicts of its one tracker over every packet (those `analyze` of the
/// `writer` capture finds).
pub fn scan_on(
    net: &mut dyn Network,
    plan: &Plan,
    opts: &ScanOptions,
    writer: Option<&mut PcapWriter>,
    on_verdict: &mut dyn FnMut(&Verdict),
    stream: bool,
) -> Result<ScanOutcome, Error> {
    let cfg = run::RunConfig {
        engine: opts.engine,
        track: opts.track,
        wait: opts.wait,
        keep_dns: false,
        // Each attempt's verdict as it is decided, only for a caller that
        // streams them (it costs a verdict per attempt).
        stream,
    };
    let bar = if opts.progress {
        crate::report::progress_bar(
            plan.len() as u64,
            "{spinner} {pos}/{len} probes decided {wide_bar} {rate} ETA {eta}",
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut session = run::Session::new(net, &cfg, writer);
    let mut obs = Streamer {
        plan,
        streamed: FxHashSet::default(),
        on_verdict,
        bar: &bar,
    };
    let ran = run::run(net, plan, &mut session, &cfg, &mut obs)?;
    bar.finish_and_clear();
    let seen = finish::own_verdicts(session.tracker(), plan);
    let mut first = FirstRun::new(&ran, plan, &seen, net.capture_stats());
    let (results, cut) = first.verdicts_from(seen, session.tracker().clock(), plan, opts);
    if cut > 0 {
        first.warnings.push(format!(
            "{cut} ports still waiting for an answer when the scan stopped are left out"
        ));
    }
    stream_rest(&results, &mut obs);
    let Streamer { on_verdict, .. } = obs;
    let mut passes = passes::Passes {
        net,
        session: &mut session,
        plan,
        opts,
        first: &first,
        cfg,
        on_verdict,
        results,
        warnings: Vec::new(),
    };
    if !first.partial && passes.late_starters()? {
        passes.rate_limited()?;
    }
    let passes::Passes {
        results, warnings, ..
    } = passes;
    first.warnings.extend(warnings);
    let (tracker, inputs) = session.finish();
    Ok(first.outcome(results, inputs, tracker.stats(), plan))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod shard_tests {
    use super::shard;
    use std::net::IpAddr;

    #[test]
    fn shards_are_disjoint_and_cover_the_space() {
        let targets: Vec<IpAddr> = ["198.51.100.7", "2001:db8::1", "203.0.113.9"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let mut space = Vec::new();
        for t in &targets {
            for p in 1..=1000u16 {
                space.push((*t, p));
            }
        }
        for n in [1u32, 2, 3, 7, 16] {
            let mut all = std::collections::HashSet::new();
            let mut total = 0;
            for i in 1..=n {
                // Each machine may list targets in its own order.
                let mut mine = space.clone();
                mine.reverse();
                let part = shard(mine, i, n);
                total += part.len();
                for p in part {
                    assert!(all.insert(p), "{p:?} in two shards of {n}");
                }
            }
            assert_eq!(total, space.len(), "shards of {n} cover the space");
            assert_eq!(all.len(), space.len());
        }
    }
}
