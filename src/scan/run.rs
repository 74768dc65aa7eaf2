//! The run loop, for scans, traces and diagnose's slow re-probes alike:
//! send what the scheduler says is due, read what the captures saw
//! through the one reading stage into the tracker, tell the scheduler
//! which probes the tracker found answered, wait; then listen for late
//! answers. Every packet decision is the tracker's; every timing decision
//! is the engine's; the network is a trait, so all of it runs against a
//! fake in tests.

use super::engine::{Engine, EngineConfig};
use super::net::{Network, Outgoing};
use super::plan::Plan;
use super::probe::{IsnKey, SYN_LEN, build_syn};
use crate::error::Error;
use crate::model::{EngineStats, InputSummary};
use crate::source::{PcapWriter, Reader};
use crate::track::{self, Answer, EvidenceKind, Tracker};
use rustc_hash::{FxHashMap, FxHashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How an interrupted run still listens for answers in flight.
const INTERRUPT_DRAIN: Duration = Duration::from_millis(100);
/// Frames read from one capture before the loop sends again.
const DRAIN_LIMIT: usize = 65536;
/// Batches in a row whose every send failed before the run gives up.
const FAILED_BATCHES: u32 = 20;
/// How long after a host's first probe a router's host-unreachable may
/// still come: Linux tries ARP / neighbour discovery 3 times, 1 s apart.
pub const ARP_WAIT: Duration = Duration::from_millis(3500);
/// How often the captures' drop counters are read (a loss signal).
const DROPS_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy)]
pub struct RunConfig {
    pub engine: EngineConfig,
    pub track: track::Config,
    /// How long to keep listening once every probe is answered or given up.
    /// None: only while something can still answer: a few round trips, and
    /// for a target that never answered, until [`ARP_WAIT`] after its first
    /// probe (a router whose ARP or neighbour discovery for it fails says
    /// so only then).
    pub wait: Option<Duration>,
    /// Keep DNS answers (they are counted either way).
    pub keep_dns: bool,
    /// Keep each attempt's verdict as it is decided (for streaming).
    pub stream: bool,
}

/// What the loop tells its caller as it goes. Every method has a default
/// that does nothing.
pub trait Observer {
    /// A captured packet answered an attempt (of this run or not: check
    /// with [`Plan::index_of`]).
    fn answered(&mut self, _a: &Answer) {}
    /// The captures were read; `tracker` holds what was decided so far.
    fn drained(&mut self, _tracker: &mut Tracker, _engine: &EngineStats) {}
}

/// An observer that wants nothing.
pub struct Quiet;
impl Observer for Quiet {}

/// What the runs of one scan share: the one tracker every captured packet
/// goes into, the reading stage of each capture, and the `--write` tee. A
/// scan's later passes (re-probes) run on the same session, so its
/// verdicts are those of one tracker over every packet, as `analyze` of
/// the written capture finds them.
pub struct Session<'w> {
    tracker: Tracker,
    readers: Vec<Reader>,
    tee: Option<&'w mut PcapWriter>,
    /// When the last probe of any run went out.
    last_send: Option<Instant>,
}

impl<'w> Session<'w> {
    /// A session on `net`'s captures; `cfg` says how to track (timeout,
    /// DNS kept, verdicts streamed); `tee` receives every captured frame.
    pub fn new(net: &mut dyn Network, cfg: &RunConfig, tee: Option<&'w mut PcapWriter>) -> Self {
        let mut tracker = Tracker::new(cfg.track);
        if cfg.stream {
            tracker.stream_verdicts();
        }
        let readers = (0..net.captures())
            .map(|i| {
                let link = net.capture(i).link_type();
                Reader::new(format!("live:{}", net.device(i)), link, cfg.keep_dns)
            })
            .collect();
        Session {
            tracker,
            readers,
            tee,
            last_send: None,
        }
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    pub fn tracker_mut(&mut self) -> &mut Tracker {
        &mut self.tracker
    }

    /// When the last probe went out, if any did.
    pub fn last_send(&self) -> Option<Instant> {
        self.last_send
    }

    /// The tracker with everything it saw, and each capture's summary
    /// (tracker counters not yet added).
    pub fn finish(self) -> (Tracker, Vec<InputSummary>) {
        let inputs = self.readers.into_iter().map(|r| r.finish().0).collect();
        (self.tracker, inputs)
    }
}

/// How a run went: the scheduler (which probes went out), and how it
/// ended.
pub struct Ran {
    pub engine: Engine,
    pub send_errors: u64,
    /// Why the run stopped before its end (capture failed, interface
    /// gone).
    pub stopped: Option<String>,
    /// Ctrl-C came.
    pub interrupted: bool,
    /// Targets paced to the rate their answers showed: the slowest pace
    /// each had (sends a second), and its number of probes.
    pub paced: Vec<(IpAddr, f64, usize)>,
}

/// Runs `plan` on `net`, every captured packet into `session`.
pub fn run(
    net: &mut dyn Network,
    plan: &Plan,
    session: &mut Session<'_>,
    cfg: &RunConfig,
    obs: &mut dyn Observer,
) -> Result<Ran, Error> {
    let start = net.now();
    // Each target its own round trips and window.
    let mut targets: FxHashMap<IpAddr, u32> = FxHashMap::default();
    let groups: Vec<u32> = plan
        .probes
        .iter()
        .map(|p| {
            let n = targets.len() as u32;
            *targets.entry(p.target).or_insert(n)
        })
        .collect();
    let mut engine = Engine::with_groups(groups, cfg.engine, start);
    // Each run its own ISNs: a reply to an earlier run's SYN answers
    // that SYN's attempt, not this one's.
    let key = IsnKey::new();
    let mut loop_ = Loop {
        plan,
        key: &key,
        engine: &mut engine,
        session,
        obs,
        send_errors: 0,
        failed_batches: 0,
        start,
        first_sent: FxHashMap::default(),
        heard: FxHashSet::default(),
        drops: 0,
        drops_read: start,
    };
    let mut stopped = loop_.probe(net)?;
    if stopped.is_none() {
        stopped = loop_.listen(net, cfg.wait);
    }
    let send_errors = loop_.send_errors;
    let interrupted = net.interrupted();
    let mut by_group: Vec<Option<IpAddr>> = vec![None; targets.len()];
    for (t, g) in &targets {
        if let Some(slot) = by_group.get_mut(*g as usize) {
            *slot = Some(*t);
        }
    }
    let paced = engine
        .paced()
        .into_iter()
        .filter_map(|(g, rate, n)| Some((by_group.get(g as usize).copied().flatten()?, rate, n)))
        .collect();
    Ok(Ran {
        engine,
        send_errors,
        stopped,
        interrupted,
        paced,
    })
}

/// Listens on `session` for `wait` without sending (answers to earlier
/// runs still go into the tracker and the tee).
pub fn listen(
    net: &mut dyn Network,
    session: &mut Session<'_>,
    cfg: &RunConfig,
    wait: Duration,
) -> Result<Ran, Error> {
    let cfg = RunConfig {
        wait: Some(wait),
        ..*cfg
    };
    run(net, &Plan::new(Vec::new(), 0), session, &cfg, &mut Quiet)
}

/// Whether an answer shows the target itself is there, so that no router's
/// host-unreachable for it (after a failed ARP) is still to come: a
/// SYN-ACK, an ICMP error from its own address, or a RST from farther than
/// one hop. A reset from one hop away may be the first router's, forged in
/// the name of a host that is absent (a tcp-reset rule for a whole
/// network); waiting for that router's word costs a short scan of a
/// neighbour at most [`ARP_WAIT`].
fn shows_the_host(a: &Answer) -> bool {
    match a.kind {
        EvidenceKind::SynAck | EvidenceKind::SplitSyn => true,
        EvidenceKind::Icmp { .. } => a.responder == a.target,
        EvidenceKind::Reset => crate::model::hops_from_ttl(a.ttl) > 1,
    }
}

struct Loop<'a, 'w> {
    plan: &'a Plan,
    key: &'a IsnKey,
    engine: &'a mut Engine,
    session: &'a mut Session<'w>,
    obs: &'a mut dyn Observer,
    send_errors: u64,
    failed_batches: u32,
    start: Instant,
    /// Each target's first probe, and the targets that answered anything.
    first_sent: FxHashMap<IpAddr, Instant>,
    heard: FxHashSet<IpAddr>,
    /// Packets the captures lost so far, and when that was last read.
    drops: u64,
    drops_read: Instant,
}

impl Loop<'_, '_> {
    /// Sends until every probe is answered or given up (or Ctrl-C); the
    /// reason if it had to stop early.
    fn probe(&mut self, net: &mut dyn Network) -> Result<Option<String>, Error> {
        let mut due = Vec::new();
        loop {
            due.clear();
            self.engine.due(net.now(), &mut due);
            if let Some(stop) = self.send(net, &due)? {
                return Ok(Some(stop));
            }
            if let Err(e) = self.drain(net) {
                return Ok(Some(e.to_string()));
            }
            if self.engine.finished() || net.interrupted() {
                return Ok(None);
            }
            let now = net.now();
            if now.saturating_duration_since(self.drops_read) >= DROPS_EVERY {
                self.drops_read = now;
                let drops: u64 = net
                    .capture_stats()
                    .iter()
                    .map(|(_, s)| s.dropped + s.if_dropped)
                    .sum();
                if drops > self.drops {
                    // The capture lost packets: sending slower helps it.
                    self.drops = drops;
                    self.engine.lost(now);
                }
            }
            let wake = self
                .engine
                .next_event(now)
                .unwrap_or(now + Duration::from_millis(10));
            if wake > now {
                net.wait(wake, self.engine.wake_on_answers());
                // What came meanwhile is read before anything is due: a
                // timer must not resend a probe whose answer waits in the
                // capture.
                if let Err(e) = self.drain(net) {
                    return Ok(Some(e.to_string()));
                }
            }
        }
    }

    /// Builds and sends the SYNs of probes `due`; the reason to stop, if
    /// sending cannot go on.
    fn send(&mut self, net: &mut dyn Network, due: &[u32]) -> Result<Option<String>, Error> {
        if due.is_empty() {
            return Ok(None);
        }
        let now = net.now();
        let tsval = now.saturating_duration_since(self.start).as_millis() as u32;
        let mut segs: Vec<([u8; SYN_LEN], usize)> = Vec::with_capacity(due.len());
        for &i in due {
            let Some(p) = self.plan.probes.get(i as usize) else {
                continue;
            };
            let isn = self.key.isn(p.source, p.sport, p.target, p.port);
            let mut seg = [0u8; SYN_LEN];
            if build_syn(&mut seg, p.source, p.sport, p.target, p.port, isn, tsval).is_some() {
                segs.push((seg, i as usize));
                self.first_sent.entry(p.target).or_insert(now);
            }
        }
        let batch: Vec<Outgoing<'_>> = segs
            .iter()
            .map(|(seg, i)| {
                let p = &self.plan.probes[*i];
                Outgoing {
                    source: p.source,
                    target: p.target,
                    segment: &seg[..],
                    ttl: p.ttl,
                }
            })
            .collect();
        match net.send(&batch) {
            Ok(n) => {
                self.session.last_send = Some(now);
                self.send_errors += (batch.len() - n) as u64;
                self.failed_batches = 0;
                Ok(None)
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                Err(Error::NotPermitted {
                    op: "sending probes".into(),
                })
            }
            // The interface is gone: nothing more can be sent or seen.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENETDOWN) | Some(libc::ENODEV) | Some(libc::ENXIO)
                ) =>
            {
                self.send_errors += batch.len() as u64;
                Ok(Some(format!(
                    "sending failed: {e}; did the interface go down?"
                )))
            }
            Err(e) => {
                self.send_errors += batch.len() as u64;
                self.failed_batches += 1;
                // Every send refused, batch after batch: the route or the
                // interface is gone (e.g. "Network is unreachable" once a
                // link is down).
                Ok((self.failed_batches >= FAILED_BATCHES).then(|| {
                    format!(
                        "sending failed {} times in a row: {e}; is the interface down or the route gone?",
                        self.failed_batches
                    )
                }))
            }
        }
    }

    /// Reads what every capture holds (a bounded amount each, so sending
    /// never starves) through the reading stage into the tracker; tells the
    /// scheduler what the tracker found answered.
    fn drain(&mut self, net: &mut dyn Network) -> Result<(), Error> {
        let now = net.now();
        let Session {
            tracker,
            readers,
            tee,
            ..
        } = &mut *self.session;
        let (plan, engine, obs, heard) = (
            self.plan,
            &mut *self.engine,
            &mut *self.obs,
            &mut self.heard,
        );
        for (i, reader) in readers.iter_mut().enumerate() {
            let src = net.capture(i);
            reader.pump(src, DRAIN_LIMIT, tee.as_deref_mut(), None, |ts, pkt| {
                if let Some(a) = tracker.observe(ts, &pkt) {
                    if let Some(i) = plan.index_of(&a) {
                        let tcp = !matches!(a.kind, EvidenceKind::Icmp { .. });
                        engine.answered_by(i, now, tcp);
                        if shows_the_host(&a) {
                            heard.insert(a.target);
                        }
                    }
                    obs.answered(&a);
                }
                true
            })?;
        }
        let stats = engine.stats();
        obs.drained(tracker, &stats);
        Ok(())
    }

    /// Listens for late answers (a router's host-unreachable after its ARP
    /// failed, slow hosts) for `wait`, or a tenth of a second once Ctrl-C
    /// came (the answers already on their way still go into the verdicts
    /// and the `--write` file, so both say the same of the last probes).
    fn listen(&mut self, net: &mut dyn Network, wait: Option<Duration>) -> Option<String> {
        let now = net.now();
        let mut until = match wait {
            Some(w) => now + w,
            None => self.can_still_answer(now),
        };
        let mut draining = false;
        loop {
            if let Err(e) = self.drain(net) {
                return Some(e.to_string());
            }
            let now = net.now();
            if net.interrupted() && !draining {
                draining = true;
                until = until.min(now + INTERRUPT_DRAIN);
            }
            if now >= until {
                break;
            }
            net.wait(until, true);
        }
        // What came in while the last wait ended.
        self.drain(net).err().map(|e| e.to_string())
    }

    /// Until when something can still answer, once every probe is answered
    /// or given up (each had its full timeout after its last send): a
    /// couple of round trips for stragglers, and ARP_WAIT after the first
    /// probe of each target that never answered.
    fn can_still_answer(&self, now: Instant) -> Instant {
        let margin = self.engine.srtt().map_or(Duration::from_millis(10), |s| {
            (2 * s).clamp(Duration::from_millis(5), Duration::from_millis(100))
        });
        self.first_sent
            .iter()
            .filter(|(t, _)| !self.heard.contains(*t))
            .map(|(_, first)| *first + ARP_WAIT)
            .fold(now + margin, Instant::max)
    }
}
