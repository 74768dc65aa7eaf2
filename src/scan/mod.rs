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
pub mod net;
pub mod plan;
pub mod privs;
pub mod probe;
pub mod route;
pub mod run;
pub mod send;
pub mod targets;
pub mod trace;

pub use plan::shard;

use crate::error::Error;
use crate::model::{Analysis, EngineStats, InputSummary, NANOS_PER_SEC, ScanInfo, State, Verdict};
use crate::select::PortSet;
use crate::source::PcapWriter;
use crate::track::{self, Tracker};
use engine::EngineConfig;
use net::{Network, RawNetwork};
use plan::Plan;
use probe::IsnKey;
use rand::{RngExt, SeedableRng, seq::SliceRandom};
use rustc_hash::FxHashSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub targets: Vec<IpAddr>,
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
    track::infer::rate_limited_errors(&mut results);
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
    if opts.unprivileged {
        let out = run_unprivileged(opts)?;
        for v in &out.analysis.results {
            on_verdict(v);
        }
        return Ok(out);
    }
    run_raw(opts, on_verdict, stream)
}

/// A host that started answering only partway through (it came up, a
/// rule was lifted) leaves its earlier ports looking filtered: those are
/// probed once more, on the same network, before they are called so.
fn probe_late_starters(
    net: &mut dyn Network,
    out: &mut ScanOutcome,
    opts: &ScanOptions,
    sport: u16,
    on_verdict: &mut dyn FnMut(&Verdict),
    stream: bool,
) -> Result<(), Error> {
    if out.info.partial {
        return Ok(());
    }
    for (target, ports) in silent_before_first_answer(&out.analysis.results, NANOS_PER_SEC) {
        let mut again = opts.clone();
        again.targets = vec![target];
        again.ports = PortSet::from_ports(&ports);
        // These ports are this shard's already.
        again.shard = None;
        let source = out
            .analysis
            .results
            .iter()
            .find(|v| v.target == target)
            .map(|v| v.client);
        let (plan, _) = Plan::scan(
            &again.targets,
            &again.ports,
            None,
            None,
            Some(sport),
            again.ttl,
            |_| source,
        );
        let second = scan_on(net, &plan, &again, None, on_verdict, stream)?;
        let changed = take_answers(&mut out.analysis.results, second.analysis.results).len();
        out.info.warnings.push(format!(
            "{target} answered nothing until partway through the scan; the {} ports silent before that were probed again: {changed} answered this time{}",
            ports.len(),
            if out.info.warnings.is_empty() || opts.write.is_none() {
                ""
            } else {
                " (the --write capture holds the first pass only)"
            }
        ));
    }
    let mut results = std::mem::take(&mut out.analysis.results);
    track::infer::rate_limited_errors(&mut results);
    let inputs = std::mem::take(&mut out.analysis.inputs);
    out.analysis = Analysis::from_parts(results, inputs);
    Ok(())
}

/// What a second pass found replaces the first pass's silence (the
/// probes of both add up); the targets of the verdicts it replaced, one
/// entry each.
fn take_answers(results: &mut [Verdict], second: Vec<Verdict>) -> Vec<IpAddr> {
    let mut changed = Vec::new();
    for nv in second {
        if nv.state == State::Filtered {
            continue;
        }
        if let Some(v) = results
            .iter_mut()
            .find(|v| v.target == nv.target && v.port == nv.port)
        {
            let probes = v.probes.saturating_add(nv.probes);
            changed.push(nv.target);
            *v = nv;
            v.probes = probes;
        }
    }
    changed
}

/// The pace of an IPv4 slow re-probe (see [`reprobe_rate_limited`]).
const V4_REPROBE_GAP: Duration = Duration::from_millis(2500);

/// Silent ports of a live host at most, for all of them to be probed
/// again slowly when a responder was seen rate-limiting.
const REPROBE_AT_MOST: usize = 16;

/// The silent ports to probe again slowly: when some responder was seen
/// rate-limiting its ICMP errors (a host-level error inferred for silent
/// ports, or one that would be but for its shape), a router may have
/// spent its budget on other hosts' errors, so the few silent ports of a
/// host that answers (a rule for one port, a REJECT among RSTs) are probed
/// again at about the pace the limiters refill (one a second): silence
/// that stays silence is a drop.
pub fn rate_limit_candidates(results: &[Verdict]) -> Vec<(IpAddr, Vec<u16>)> {
    let mut by_target: std::collections::BTreeMap<IpAddr, Vec<&Verdict>> = Default::default();
    for v in results {
        by_target.entry(v.target).or_default().push(v);
    }
    let unconfirmed = track::infer::unconfirmed(results);
    let limited = results.iter().any(|v| v.inferred.is_some()) || !unconfirmed.is_empty();
    if !limited {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (t, vs) in by_target {
        let silent: Vec<u16> = vs
            .iter()
            .filter(|v| v.state == State::Filtered && !v.uncertain)
            .map(|v| v.port)
            .collect();
        let answers = vs.iter().any(|v| v.state != State::Filtered);
        if answers && !silent.is_empty() && silent.len() <= REPROBE_AT_MOST {
            out.push((t, silent));
        } else if unconfirmed.contains(&t) || (!answers && !silent.is_empty()) {
            // An unconfirmed error, or a host that said nothing at all
            // while a limiter was at work (its router's budget may have
            // gone to other hosts' errors): a sample.
            // A sample, spread over the ports.
            let step = (silent.len() / SAMPLE).max(1);
            out.push((t, silent.into_iter().step_by(step).take(SAMPLE).collect()));
        }
    }
    out
}

/// Silent ports probed again on a host whose error is not yet confirmed
/// host-wide.
const SAMPLE: usize = 4;

/// Probes [`rate_limit_candidates`] again, slowly (IPv6 two a second, three
/// tries; IPv4 one every 2.5 s, two tries); what answers replaces the
/// silence (the inference runs again).
fn reprobe_rate_limited(
    net: &mut dyn Network,
    out: &mut ScanOutcome,
    opts: &ScanOptions,
    sport: u16,
    on_verdict: &mut dyn FnMut(&Verdict),
    stream: bool,
) -> Result<(), Error> {
    if out.info.partial {
        return Ok(());
    }
    let candidates = rate_limit_candidates(&out.analysis.results);
    if candidates.is_empty() {
        return Ok(());
    }
    let sources: Vec<(IpAddr, IpAddr)> = out
        .analysis
        .results
        .iter()
        .map(|v| (v.target, v.client))
        .collect();
    let probes: Vec<plan::Probe> = candidates
        .iter()
        .flat_map(|(t, ports)| ports.iter().map(move |p| (*t, *p)))
        .filter_map(|(target, port)| {
            let source = sources.iter().find(|(t, _)| *t == target)?.1;
            Some(plan::Probe {
                source,
                sport,
                target,
                port,
                ttl: opts.ttl,
            })
        })
        .collect();
    let n = probes.len();
    let mut confirm = Vec::new();
    // IPv6 limiters refill fast (Linux: 10 a second per peer): two a second,
    // three tries. IPv4 route errors (unreachable and prohibit routes) are
    // charged twice against a router's one-a-second allowance, shared by
    // every error it sends us: one probe every 2.5 s, two tries.
    let (v6, v4): (Vec<plan::Probe>, Vec<plan::Probe>) =
        probes.into_iter().partition(|p| p.target.is_ipv6());
    for (family, pace) in [
        (
            v6,
            EngineConfig::fixed(2, 2, Duration::from_secs(1), REPROBE_AT_MOST),
        ),
        (
            v4,
            EngineConfig {
                gap: Some(V4_REPROBE_GAP),
                ..EngineConfig::fixed(1, 1, V4_REPROBE_GAP, REPROBE_AT_MOST)
            },
        ),
    ] {
        if family.is_empty() {
            continue;
        }
        let mut again = opts.clone();
        again.engine = pace;
        again.wait = Some(Duration::from_secs(1));
        again.shard = None;
        let second = scan_on(net, &Plan::new(family, 0), &again, None, on_verdict, stream)?;
        confirm.extend(take_answers(
            &mut out.analysis.results,
            second.analysis.results,
        ));
    }
    let changed = confirm.len();
    out.info.warnings.push(format!(
        "ICMP errors were rate-limited; {n} silent ports (of hosts that answer, and samples of hosts the limiter left unconfirmed or silent) were probed again slowly: {changed} answered{}",
        if opts.write.is_some() {
            " (the --write capture holds the first pass only)"
        } else {
            ""
        }
    ));
    let mut results = std::mem::take(&mut out.analysis.results);
    track::infer::rate_limited_errors(&mut results);
    // Two sampled ports that answered with the host's one error confirm
    // it host-wide (the inference still checks that nothing contradicts).
    confirm.sort_unstable();
    for t in confirm
        .chunk_by(|a, b| a == b)
        .filter(|c| c.len() >= 2)
        .map(|c| c[0])
    {
        track::infer::confirmed(&mut results, t);
    }
    let inputs = std::mem::take(&mut out.analysis.inputs);
    out.analysis = Analysis::from_parts(results, inputs);
    Ok(())
}

/// Per target: when the target said nothing for at least `gap` from its
/// first probe, then answered, and no port probed after its first answer is
/// silent (the pattern of a host that came up mid-scan, not of a
/// firewall), the filtered ports probed before that first answer.
fn silent_before_first_answer(results: &[Verdict], gap: u64) -> Vec<(IpAddr, Vec<u16>)> {
    let mut out = Vec::new();
    let mut targets: Vec<IpAddr> = results.iter().map(|v| v.target).collect();
    targets.sort_unstable();
    targets.dedup();
    for t in targets {
        let vs: Vec<&Verdict> = results.iter().filter(|v| v.target == t).collect();
        let (Some(first_answer), Some(first_probe)) = (
            vs.iter().filter_map(|v| v.decided_ns).min(),
            vs.iter().map(|v| v.first_probe_ns).min(),
        ) else {
            continue;
        };
        if first_answer < first_probe.saturating_add(gap) {
            continue;
        }
        let silent_early: Vec<u16> = vs
            .iter()
            .filter(|v| v.state == State::Filtered && v.first_probe_ns < first_answer)
            .map(|v| v.port)
            .collect();
        let silent_late = vs
            .iter()
            .any(|v| v.state == State::Filtered && v.first_probe_ns > first_answer);
        if silent_early.len() >= 2 && !silent_late {
            out.push((t, silent_early));
        }
    }
    out
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
        .unwrap_or(crate::source::live_default_buffer());
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
    probe_late_starters(&mut net, &mut out, opts, sport, on_verdict, stream)?;
    reprobe_rate_limited(&mut net, &mut out, opts, sport, on_verdict, stream)?;
    out.info.source_port = sport;
    out.info.duration_s = started.elapsed().as_secs_f64();
    Ok(out)
}

/// The scan of `plan` on any network (the raw one, or a fake in tests):
/// the run loop, then the finishing step.
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
            "{spinner} {pos}/{len} probes decided {wide_bar} {per_sec} ETA {eta}",
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut obs = Streamer {
        plan,
        streamed: FxHashSet::default(),
        on_verdict,
        bar: &bar,
    };
    let key = IsnKey::new();
    let done = run::run(net, plan, &key, &cfg, writer, &mut obs)?;
    bar.finish_and_clear();
    let captures = net.capture_stats();
    Ok(finish(done, plan, opts, captures, obs))
}

/// Hands the attempts decided so far to `on_verdict`, once per (target,
/// port) of this scan's own probes, and moves the progress bar; the bar is
/// lifted while lines are printed, so a terminal shows lines, not torn
/// bars.
struct Streamer<'a> {
    plan: &'a Plan,
    streamed: FxHashSet<(IpAddr, u16)>,
    on_verdict: &'a mut dyn FnMut(&Verdict),
    bar: &'a indicatif::ProgressBar,
}

impl Streamer<'_> {
    fn ours(&self, v: &Verdict) -> bool {
        self.plan
            .probes
            .first()
            .is_some_and(|p| self.plan.contains(v.client, p.sport, v.target, v.port))
    }
}

impl run::Observer for Streamer<'_> {
    fn drained(&mut self, tracker: &mut Tracker, engine: &EngineStats) {
        let fresh: Vec<Verdict> = tracker
            .take_streamed()
            .into_iter()
            .filter(|v| self.ours(v) && self.streamed.insert((v.target, v.port)))
            .collect();
        if !fresh.is_empty() {
            let f = &mut *self.on_verdict;
            self.bar.suspend(|| fresh.iter().for_each(f));
        }
        self.bar.set_position(engine.answered + engine.unanswered);
    }
}

/// The finishing step: the verdicts of this scan's own probes, with what
/// the run could not back said on each (probes the capture never saw,
/// silence while the capture lost packets, an interrupted or failed run),
/// and the scan's own account.
fn finish(
    done: run::Finished,
    plan: &Plan,
    opts: &ScanOptions,
    captures: Vec<(String, crate::model::CaptureStats)>,
    mut obs: Streamer<'_>,
) -> ScanOutcome {
    let run::Finished {
        tracker,
        engine,
        mut inputs,
        send_errors,
        stopped,
        interrupted,
    } = done;
    let mut warnings = Vec::new();
    if interrupted {
        warnings.push(
            "interrupted: these are the verdicts so far (partial); probes still waiting were not given their full time and show as filtered".to_string(),
        );
    }
    if let Some(e) = &stopped {
        warnings.push(format!(
            "the scan stopped early ({e}): these are the verdicts so far (partial); probes after that were not sent or their answers not seen, so ports shown filtered are not certain"
        ));
    }
    let partial = interrupted || stopped.is_some();
    for (device, s) in &captures {
        if s.dropped > 0 || s.if_dropped > 0 {
            warnings.push(format!(
                "capture on {device} lost {} packets (kernel buffer full: {}, interface: {}); replies may be missing and ports shown filtered wrongly: scan again with a lower --rate",
                s.dropped + s.if_dropped,
                s.dropped,
                s.if_dropped
            ));
        }
    }
    let clock = tracker.clock();
    let (merged, stats) = tracker.finish();
    // Only our own probes: other traffic of this host may be in the capture.
    let mut results: Vec<Verdict> = merged
        .into_verdicts()
        .into_iter()
        .filter(|v| obs.ours(v))
        .collect();
    let seen: FxHashSet<(IpAddr, u16)> = results.iter().map(|v| (v.target, v.port)).collect();
    if partial {
        // Silence not yet given its full time is no verdict.
        let before = results.len();
        results.retain(|v| {
            v.state != State::Filtered
                || v.first_probe_ns.saturating_add(opts.track.timeout) <= clock
        });
        let cut = before - results.len();
        if cut > 0 {
            warnings.push(format!(
                "{cut} ports still waiting for an answer when the scan stopped are left out"
            ));
        }
    }
    let mut not_captured = 0u64;
    for (i, p) in plan.probes.iter().enumerate() {
        // Never sent (an interrupted scan): no verdict at all.
        if !engine.was_sent(i as u32) || seen.contains(&(p.target, p.port)) {
            continue;
        }
        not_captured += 1;
        // A scan that stopped early gives no verdict it cannot back.
        if !partial {
            let mut v = Verdict::silent(p.source, p.target, p.port);
            v.uncertain = true;
            results.push(v);
        }
    }
    if not_captured > 0 && partial {
        warnings.push(format!(
            "{not_captured} probes sent (or tried) were never seen by the capture; the scan stopped early, so they are left out"
        ));
    } else if not_captured > 0 {
        warnings.push(format!(
            "{not_captured} probes were sent (or tried) but never seen by the capture; they are shown filtered, which the capture cannot confirm"
        ));
    }
    if send_errors > 0 {
        warnings.push(format!("{send_errors} sends failed (and were retried)"));
    }
    // Lost packets make every silence doubtful: say so on each.
    let lost: u64 = captures.iter().map(|(_, s)| s.dropped + s.if_dropped).sum();
    if lost > 0 {
        for v in results.iter_mut().filter(|v| v.state == State::Filtered) {
            v.uncertain = true;
        }
    }
    results.sort_by_key(|v| (v.target, v.port, v.client));
    track::infer::rate_limited_errors(&mut results);
    // Whatever was not streamed yet (decided at the end) goes out now.
    for v in &results {
        // Marked uncertain or inferred only now: again.
        if obs.streamed.insert((v.target, v.port)) || v.uncertain || v.inferred.is_some() {
            (obs.on_verdict)(v);
        }
    }
    for (i, inp) in inputs.iter_mut().enumerate() {
        inp.stats = if i == 0 { stats } else { Default::default() };
    }
    ScanOutcome {
        analysis: Analysis::from_parts(results, inputs),
        info: ScanInfo {
            partial,
            capture_error: stopped,
            // SAFETY: geteuid has no preconditions.
            ran_as_uid: unsafe { libc::geteuid() },
            engine: engine.stats(),
            captures,
            not_captured,
            send_errors,
            seed: plan.seed,
            source_port: plan.probes.first().map_or(0, |p| p.sport),
            duration_s: 0.0,
            warnings,
        },
    }
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
