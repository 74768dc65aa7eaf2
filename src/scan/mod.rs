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
pub mod privs;
pub mod probe;
pub mod route;
pub mod send;
pub mod targets;
pub mod trace;

use crate::error::Error;
use crate::model::ScanInfo;
use crate::model::{Analysis, InputSummary};
use crate::model::{NANOS_PER_SEC, Reason, State, Verdict};
use crate::select::PortSet;
use crate::source::{LiveSource, PcapWriter};
use crate::track::{self, Tracker};
use crate::wire::{self, Body, flags};
use engine::{Engine, EngineConfig, EngineStats};
use probe::{IsnKey, SYN_LEN, build_syn};
use rand::{RngExt, SeedableRng, seq::SliceRandom};
use rustc_hash::{FxHashMap, FxHashSet};
use send::{ProbeSink, RawSender};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub targets: Vec<IpAddr>,
    pub ports: PortSet,
    pub engine: EngineConfig,
    /// How long to keep listening after the last probe is answered or given
    /// up (a router's host-unreachable comes ~3 s after ARP starts).
    pub wait: Duration,
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
            wait: Duration::from_secs(3),
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

/// Shard `i` of `n` (1-based) of a probe list: the list is put in a fixed
/// order first (address, then port), then every n-th probe from the i-th
/// on is kept. The shards of 1..=n are disjoint and together the whole
/// list, with no coordinator.
/// How long an interrupted scan still listens for answers in flight.
const INTERRUPT_DRAIN: Duration = Duration::from_millis(100);

pub fn shard(mut probes: Vec<(IpAddr, u16)>, i: u32, n: u32) -> Vec<(IpAddr, u16)> {
    if n <= 1 {
        return probes;
    }
    probes.sort_unstable();
    probes.dedup();
    probes
        .into_iter()
        .enumerate()
        .filter(|(k, _)| (*k as u64) % u64::from(n) == u64::from(i.saturating_sub(1)))
        .map(|(_, p)| p)
        .collect()
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
    let mut probes: Vec<(IpAddr, u16)> = Vec::with_capacity(opts.targets.len() * opts.ports.len());
    for t in &opts.targets {
        for p in opts.ports.iter() {
            probes.push((*t, p));
        }
    }
    if let Some((i, n)) = opts.shard {
        probes = shard(probes, i, n);
    }
    probes.shuffle(&mut rng);
    let timeout = Duration::from_nanos(opts.track.timeout).max(Duration::from_millis(100));
    let results = connect::connect_scan(&probes, timeout)?;
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
    let mut out = run_once(opts, on_verdict, stream)?;
    if out.info.partial {
        return Ok(out);
    }
    // A host that started answering only partway through (it came up, a
    // rule was lifted) leaves its earlier ports looking filtered: probe
    // those once more before calling them so.
    for (target, ports) in silent_before_first_answer(&out.analysis.results, NANOS_PER_SEC) {
        let portset = PortSet::from_ports(&ports);
        let mut again = opts.clone();
        again.targets = vec![target];
        again.ports = portset;
        again.write = None;
        again.seed = None;
        // These ports are this shard's already.
        again.shard = None;
        let second = run_once(&again, on_verdict, stream)?;
        let mut changed = 0;
        for nv in second.analysis.results {
            if nv.state == State::Filtered {
                continue;
            }
            if let Some(v) = out
                .analysis
                .results
                .iter_mut()
                .find(|v| v.target == nv.target && v.port == nv.port)
            {
                let probes = v.probes.saturating_add(nv.probes);
                *v = nv;
                v.probes = probes;
                changed += 1;
            }
        }
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
    let results = std::mem::take(&mut out.analysis.results);
    let inputs = std::mem::take(&mut out.analysis.inputs);
    out.analysis = Analysis::from_parts(results, inputs);
    Ok(out)
}

/// Hands the attempts decided since the last call to `on_verdict`, once per
/// (target, port) of this scan's own probes; the progress bar is lifted
/// while they are printed, so a terminal shows lines, not torn bars.
fn flush_streamed(
    tracker: &mut Tracker,
    sources: &FxHashSet<IpAddr>,
    index: &FxHashMap<(IpAddr, u16), u32>,
    streamed: &mut FxHashSet<(IpAddr, u16)>,
    on_verdict: &mut dyn FnMut(&Verdict),
    bar: &indicatif::ProgressBar,
) {
    let fresh: Vec<Verdict> = tracker
        .take_streamed()
        .into_iter()
        .filter(|v| {
            sources.contains(&v.client)
                && index.contains_key(&(v.target, v.port))
                && streamed.insert((v.target, v.port))
        })
        .collect();
    if !fresh.is_empty() {
        bar.suspend(|| fresh.iter().for_each(&mut *on_verdict));
    }
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

fn run_once(
    opts: &ScanOptions,
    on_verdict: &mut dyn FnMut(&Verdict),
    stream: bool,
) -> Result<ScanOutcome, Error> {
    let started = Instant::now();
    if opts.targets.is_empty() || opts.ports.is_empty() {
        return Err(Error::NothingToScan);
    }
    let seed = opts.seed.unwrap_or_else(|| rand::rng().random());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let sport = opts
        .source_port
        .unwrap_or_else(|| pick_source_port(&mut rng));

    // Where each target's packets leave from.
    let routes = route::routes(&opts.targets)?;
    let sources: FxHashSet<IpAddr> = routes.iter().map(|r| r.source).collect();

    // Captures first, so the first probe is already seen.
    let mut by_device: Vec<(String, Vec<IpAddr>)> = Vec::new();
    for r in &routes {
        match by_device.iter_mut().find(|(d, _)| *d == r.device) {
            Some((_, srcs)) => {
                if !srcs.contains(&r.source) {
                    srcs.push(r.source);
                }
            }
            None => by_device.push((r.device.clone(), vec![r.source])),
        }
    }
    let mut captures = Vec::new();
    for (device, srcs) in &by_device {
        let hosts: Vec<String> = srcs.iter().map(|s| format!("host {s}")).collect();
        let filter = format!(
            "({}) and ((tcp port {sport}) or icmp or icmp6)",
            hosts.join(" or ")
        );
        let buffer = opts
            .capture_buffer
            .unwrap_or(crate::source::live_default_buffer());
        let cap = LiveSource::open_with_buffer(device, &filter, buffer)?;
        captures.push(cap);
    }
    let mut writer = match &opts.write {
        Some(path) => {
            let link = captures[0].link_type();
            if captures.iter().any(|c| c.link_type() != link) {
                return Err(Error::Write {
                    path: path.clone(),
                    reason: "the scan captures on interfaces of different link types; scan IPv4 and IPv6 targets separately to write them".into(),
                });
            }
            Some(PcapWriter::create(path, link)?)
        }
        None => None,
    };

    let need_v4 = opts.targets.iter().any(|t| t.is_ipv4());
    let need_v6 = opts.targets.iter().any(|t| t.is_ipv6());
    let mut sender =
        RawSender::open(need_v4, need_v6, opts.ttl).map_err(|e| Error::socket("", e))?;

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

    // The probes, in random (or seeded) order.
    let mut probes: Vec<(IpAddr, u16)> = Vec::with_capacity(opts.targets.len() * opts.ports.len());
    for t in &opts.targets {
        for p in opts.ports.iter() {
            probes.push((*t, p));
        }
    }
    if let Some((i, n)) = opts.shard {
        probes = shard(probes, i, n);
    }
    probes.shuffle(&mut rng);
    let index: FxHashMap<(IpAddr, u16), u32> = probes
        .iter()
        .enumerate()
        .map(|(i, k)| (*k, i as u32))
        .collect();
    let source_of: FxHashMap<IpAddr, IpAddr> =
        routes.iter().map(|r| (r.target, r.source)).collect();

    let key = IsnKey::new();
    let mut engine = Engine::new(probes.len(), opts.engine, Instant::now());
    let mut tracker = Tracker::new(opts.track);
    // Each attempt's verdict as it is decided, only for a caller that
    // streams them (it costs a verdict per attempt).
    if stream {
        tracker.stream_verdicts();
    }
    let mut streamed: FxHashSet<(IpAddr, u16)> = FxHashSet::default();
    let mut inputs: Vec<InputSummary> = captures
        .iter()
        .map(|c| InputSummary {
            file: format!("live:{}", c.device()),
            link_type: c.link_type().name(),
            ..Default::default()
        })
        .collect();
    let mut skipped = vec![[0u64; wire::Skip::ALL.len()]; captures.len()];
    let mut send_errors = 0u64;
    let mut due = Vec::new();
    let mut segs: Vec<(IpAddr, [u8; SYN_LEN])> = Vec::new();
    let mut fatal: Option<Error> = None;

    let mut drain = |captures: &mut Vec<LiveSource>,
                     engine: &mut Engine,
                     tracker: &mut Tracker,
                     inputs: &mut Vec<InputSummary>,
                     writer: &mut Option<PcapWriter>|
     -> Result<(), Error> {
        for (ci, cap) in captures.iter_mut().enumerate() {
            let link = cap.link_type();
            // Bounded per call, so sending never starves.
            for _ in 0..65536 {
                let Some(p) = cap.try_next()? else {
                    break;
                };
                inputs[ci].packets_read += 1;
                if let Some(w) = writer.as_mut() {
                    w.write(p.ts, p.len, p.data);
                }
                let pkt = match wire::parse(link, p.data) {
                    Ok(pkt) => pkt,
                    Err(s) => {
                        skipped[ci][s.index()] += 1;
                        continue;
                    }
                };
                tracker.observe(p.ts, &pkt);
                // Tell the scheduler about valid answers (stateless check).
                let answer = match &pkt.body {
                    Body::Tcp(t)
                        if t.dport == sport && t.flags & (flags::SYN | flags::RST) != 0 =>
                    {
                        let isn = key.isn(pkt.dst, sport, pkt.src, t.sport);
                        let ok = if t.flags & flags::RST != 0 {
                            t.ack.wrapping_sub(1) == isn || t.ack == isn
                        } else {
                            t.flags & flags::ACK != 0 && t.ack.wrapping_sub(1) == isn
                        };
                        ok.then_some((pkt.src, t.sport))
                    }
                    Body::IcmpError(e) if e.quoted.sport == sport => {
                        let q = &e.quoted;
                        let isn = key.isn(q.src, sport, q.dst, q.dport);
                        q.seq.is_none_or(|s| s == isn).then_some((q.dst, q.dport))
                    }
                    _ => None,
                };
                if let Some(k) = answer
                    && let Some(&i) = index.get(&k)
                {
                    engine.answered(i, Instant::now());
                }
            }
        }
        Ok(())
    };

    let fds: Vec<libc::pollfd> = captures
        .iter()
        .map(|c| libc::pollfd {
            fd: c.fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let poll = |fds: &[libc::pollfd], wait: Duration| {
        let mut fds = fds.to_vec();
        let ms = wait.as_millis().min(50) as libc::c_int;
        // SAFETY: fds is a valid array of pollfd of the given length.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    };

    let mut warnings_early: Vec<String> = Vec::new();
    let mut cap_failed: Option<String> = None;
    let mut failed_batches = 0u32;
    let scan_start = Instant::now();
    let bar = if opts.progress {
        crate::report::progress_bar(
            probes.len() as u64,
            "{spinner} {pos}/{len} probes decided {wide_bar} {per_sec} ETA {eta}",
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    loop {
        let now = Instant::now();
        due.clear();
        engine.due(now, &mut due);
        segs.clear();
        let tsval = scan_start.elapsed().as_millis() as u32;
        for &i in &due {
            let (target, port) = probes[i as usize];
            let Some(&src) = source_of.get(&target) else {
                continue;
            };
            let isn = key.isn(src, sport, target, port);
            let mut seg = [0u8; SYN_LEN];
            if build_syn(&mut seg, src, sport, target, port, isn, tsval).is_some() {
                segs.push((target, seg));
            }
        }
        if !segs.is_empty() {
            let batch: Vec<(IpAddr, &[u8])> = segs.iter().map(|(t, s)| (*t, &s[..])).collect();
            match sender.send(&batch) {
                Ok(n) => {
                    send_errors += (batch.len() - n) as u64;
                    failed_batches = 0;
                }
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    fatal = Some(Error::NotPermitted {
                        op: "sending probes".into(),
                    });
                }
                // The interface is gone: nothing more can be sent or seen.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENETDOWN) | Some(libc::ENODEV) | Some(libc::ENXIO)
                    ) =>
                {
                    send_errors += batch.len() as u64;
                    cap_failed = Some(format!("sending failed: {e}; did the interface go down?"));
                }
                Err(e) => {
                    send_errors += batch.len() as u64;
                    failed_batches += 1;
                    // Every send refused, batch after batch: the route or
                    // the interface is gone (e.g. "Network is unreachable"
                    // once a link is down).
                    if failed_batches >= 20 {
                        cap_failed = Some(format!(
                            "sending failed {failed_batches} times in a row: {e}; is the interface down or the route gone?"
                        ));
                    }
                }
            }
        }
        if fatal.is_some() || cap_failed.is_some() {
            break;
        }
        if let Err(e) = drain(
            &mut captures,
            &mut engine,
            &mut tracker,
            &mut inputs,
            &mut writer,
        ) {
            cap_failed = Some(e.to_string());
            break;
        }
        flush_streamed(
            &mut tracker,
            &sources,
            &index,
            &mut streamed,
            on_verdict,
            &bar,
        );
        let st = engine.stats();
        bar.set_position(st.answered + st.unanswered);
        if engine.finished() || privs::interrupted() {
            break;
        }
        let now = Instant::now();
        let wake = engine
            .next_event(now)
            .unwrap_or(now + Duration::from_millis(10));
        if wake > now {
            poll(&fds, wake - now);
        }
    }
    if let Some(e) = fatal {
        return Err(e);
    }
    // Late answers: ICMP from a router whose ARP failed, slow hosts.
    // Interrupted: no more probes, but the answers already on their way
    // (a tenth of a second at most) still go into the verdicts and the
    // --write file, so both say the same of the last probes sent.
    let mut listen_until = if cap_failed.is_some() {
        Instant::now()
    } else {
        Instant::now() + opts.wait
    };
    let mut draining = false;
    while cap_failed.is_none() {
        if let Err(e) = drain(
            &mut captures,
            &mut engine,
            &mut tracker,
            &mut inputs,
            &mut writer,
        ) {
            cap_failed = Some(e.to_string());
            break;
        }
        flush_streamed(
            &mut tracker,
            &sources,
            &index,
            &mut streamed,
            on_verdict,
            &bar,
        );
        let now = Instant::now();
        if privs::interrupted() && !draining {
            draining = true;
            listen_until = listen_until.min(now + INTERRUPT_DRAIN);
        }
        if now >= listen_until {
            break;
        }
        poll(&fds, listen_until - now);
    }
    bar.finish_and_clear();
    if privs::interrupted() {
        warnings_early.push(
            "interrupted: these are the verdicts so far (partial); probes still waiting were not given their full time and show as filtered".to_string(),
        );
    }
    if cap_failed.is_none()
        && let Err(e) = drain(
            &mut captures,
            &mut engine,
            &mut tracker,
            &mut inputs,
            &mut writer,
        )
    {
        cap_failed = Some(e.to_string());
    }
    if let Some(e) = &cap_failed {
        warnings_early.push(format!(
            "the scan stopped early ({e}): these are the verdicts so far (partial); probes after that were not sent or their answers not seen, so ports shown filtered are not certain"
        ));
    }
    let partial = privs::interrupted() || cap_failed.is_some();

    let mut warnings = warnings_early;
    let mut cap_stats = Vec::new();
    for c in captures.iter_mut() {
        let s = c.stats();
        if s.dropped > 0 || s.if_dropped > 0 {
            warnings.push(format!(
                "capture on {} lost {} packets (kernel buffer full: {}, interface: {}); replies may be missing and ports shown filtered wrongly: scan again with a lower --rate",
                c.device(),
                s.dropped + s.if_dropped,
                s.dropped,
                s.if_dropped
            ));
        }
        cap_stats.push((c.device().to_string(), s));
    }
    if let Some(w) = writer {
        w.finish()?;
    }

    let clock = tracker.clock();
    let (merged, stats) = tracker.finish();
    // Only our own probes: other traffic of this host may be in the capture.
    let mut results: Vec<Verdict> = merged
        .into_verdicts()
        .into_iter()
        .filter(|v| sources.contains(&v.client) && index.contains_key(&(v.target, v.port)))
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
    for (i, (target, port)) in probes.iter().enumerate() {
        // Never sent (an interrupted scan): no verdict at all.
        if !engine.was_sent(i as u32) {
            continue;
        }
        if !seen.contains(&(*target, *port)) {
            not_captured += 1;
            // A scan that stopped early gives no verdict it cannot back.
            if partial {
                continue;
            }
            results.push(Verdict {
                client: source_of.get(target).copied().unwrap_or(*target),
                target: *target,
                port: *port,
                state: State::Filtered,
                reason: Reason::NoResponse,
                icmp_type: None,
                icmp_code: None,
                responder: None,
                ttl: None,
                hops: None,
                rtt_ms: None,
                probes: 0,
                attempts: 0,
                ttls: Vec::new(),
                ip_id: None,
                first_probe_ns: 0,
                decided_ns: None,
                uncertain: true,
            });
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
    let lost: u64 = cap_stats
        .iter()
        .map(|(_, s)| s.dropped + s.if_dropped)
        .sum();
    if lost > 0 {
        for v in results.iter_mut().filter(|v| v.state == State::Filtered) {
            v.uncertain = true;
        }
    }
    results.sort_by_key(|v| (v.target, v.port, v.client));
    // Whatever was not streamed yet (decided at the end) goes out now.
    for v in &results {
        // Marked uncertain only now (the capture lost packets): again.
        if streamed.insert((v.target, v.port)) || v.uncertain {
            on_verdict(v);
        }
    }
    for (i, inp) in inputs.iter_mut().enumerate() {
        inp.stats = if i == 0 { stats } else { Default::default() };
        for (k, n) in skipped[i].iter().enumerate() {
            if *n > 0 {
                inp.skipped += n;
                inp.skipped_by_reason
                    .insert(wire::Skip::ALL[k].as_str(), *n);
            }
        }
    }
    Ok(ScanOutcome {
        analysis: Analysis::from_parts(results, inputs),
        info: ScanInfo {
            partial,
            capture_error: cap_failed,
            // SAFETY: geteuid has no preconditions.
            ran_as_uid: unsafe { libc::geteuid() },
            engine: engine.stats(),
            captures: cap_stats,
            not_captured,
            send_errors,
            seed,
            source_port: sport,
            duration_s: started.elapsed().as_secs_f64(),
            warnings,
        },
    })
}

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
