//! The second passes of a raw scan, on the same network and the same
//! session (one tracker, one `--write` capture): hosts that came up partway
//! through are probed again, and, when ICMP errors were seen rate-limited,
//! the few silent ports of answering hosts and samples of unconfirmed or
//! silent hosts are probed again slowly. The verdicts are then those of
//! the one tracker over every packet, so `analyze` of the written capture
//! finds the same.

use super::ScanOptions;
use super::engine::EngineConfig;
use super::finish::FirstRun;
use super::net::Network;
use super::plan::{self, Plan};
use super::run::{self, RunConfig, Session};
use crate::error::Error;
use crate::model::{NANOS_PER_SEC, State, Verdict};
use crate::track::{self, Tracker};
use rustc_hash::FxHashMap;
use std::net::IpAddr;
use std::time::Duration;

/// The later passes of one scan, and the verdicts as they stand.
pub(super) struct Passes<'a, 'w> {
    pub(super) net: &'a mut dyn Network,
    pub(super) session: &'a mut Session<'w>,
    /// The scan's own plan: its probes are the ones reported.
    pub(super) plan: &'a Plan,
    pub(super) opts: &'a ScanOptions,
    pub(super) first: &'a FirstRun,
    pub(super) cfg: RunConfig,
    pub(super) on_verdict: &'a mut dyn FnMut(&Verdict),
    pub(super) results: Vec<Verdict>,
    pub(super) warnings: Vec<String>,
}

/// An observer that drops the per-attempt verdicts a streaming tracker
/// keeps (a pass hands over merged verdicts, once it is over).
struct Discard;

impl run::Observer for Discard {
    fn drained(&mut self, tracker: &mut Tracker, _: &crate::model::EngineStats) {
        tracker.take_streamed();
    }
}

impl Passes<'_, '_> {
    /// Runs `probes` on the session, then takes the verdicts again and
    /// hands over those that changed; false if the pass could not finish
    /// (Ctrl-C, the capture failed), which is said.
    fn pass(
        &mut self,
        probes: Vec<plan::Probe>,
        engine: EngineConfig,
        wait: Option<Duration>,
    ) -> Result<bool, Error> {
        let cfg = RunConfig {
            engine,
            wait,
            ..self.cfg
        };
        let ran = run::run(
            self.net,
            &Plan::new(probes, 0),
            self.session,
            &cfg,
            &mut Discard,
        )?;
        self.refresh();
        if let Some(e) = &ran.stopped {
            self.warnings.push(format!(
                "a second pass stopped early ({e}); its ports keep what the first pass found"
            ));
        }
        Ok(ran.stopped.is_none() && !ran.interrupted)
    }

    /// The verdicts from the tracker again; those that changed are handed
    /// over (the later verdict supersedes).
    fn refresh(&mut self) {
        let (new, _) = self
            .first
            .verdicts(self.session.tracker(), self.plan, self.opts);
        let old: FxHashMap<(IpAddr, u16, IpAddr), &Verdict> = self
            .results
            .iter()
            .map(|v| ((v.target, v.port, v.client), v))
            .collect();
        for v in &new {
            if old.get(&(v.target, v.port, v.client)) != Some(&v) {
                (self.on_verdict)(v);
            }
        }
        self.results = new;
    }

    /// How many of `ports` of `target` are answered now.
    fn answered(&self, target: IpAddr, ports: &[u16]) -> usize {
        let ports: rustc_hash::FxHashSet<u16> = ports.iter().copied().collect();
        self.results
            .iter()
            .filter(|v| v.target == target && v.state != State::Filtered && ports.contains(&v.port))
            .count()
    }

    fn sport(&self) -> u16 {
        self.plan.probes.first().map_or(0, |p| p.sport)
    }

    /// A host that started answering only partway through (it came up, a
    /// rule was lifted) leaves its earlier ports looking filtered: those
    /// are probed once more before they are called so.
    pub(super) fn late_starters(&mut self) -> Result<bool, Error> {
        for (target, ports) in silent_before_first_answer(&self.results, NANOS_PER_SEC) {
            let source = self
                .results
                .iter()
                .find(|v| v.target == target)
                .map(|v| v.client);
            let (plan, _) = Plan::scan(
                &[target],
                &crate::select::PortSet::from_ports(&ports),
                None,
                None,
                Some(self.sport()),
                self.opts.ttl,
                |_| source,
            );
            let finished = self.pass(plan.probes, self.opts.engine, self.opts.wait)?;
            let changed = self.answered(target, &ports);
            self.warnings.push(format!(
                "{target} answered nothing until partway through the scan; the {} ports silent before that were probed again: {changed} answered this time",
                ports.len(),
            ));
            if !finished {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Probes [`rate_limit_candidates`] again, slowly (IPv6 two a second,
    /// three tries; IPv4 one every 2.5 s, two tries for a port that decides
    /// alone, one for a host's samples, whose every port tells the same;
    /// likely absent hosts of either family one a second, two SYNs each),
    /// each in a new attempt
    /// (after the tracker's timeout since the port's last probe), so the
    /// packets themselves show an error that came on a later attempt: the
    /// inference reads its confirmation off them.
    pub(super) fn rate_limited(&mut self) -> Result<(), Error> {
        if rate_limit_candidates(&self.results).is_empty() {
            return Ok(());
        }
        // The ports' first attempts run out first, and what came in the
        // meantime counts: a router's errors for a host whose ARP failed
        // come 3 s after its last probes, and were samples' worth of time
        // spent on a host that then had its answers.
        if let Some(last) = self.session.last_send() {
            let until =
                last + Duration::from_nanos(self.opts.track.timeout) + Duration::from_millis(20);
            let now = self.net.now();
            if until > now {
                run::listen(self.net, self.session, &self.cfg, until - now)?;
                self.refresh();
            }
        }
        let (candidates, left) = rate_limit_candidates_within(&self.results, SILENT_PROBES_AT_MOST);
        if candidates.is_empty() {
            return Ok(());
        }
        let sources: FxHashMap<IpAddr, IpAddr> =
            self.results.iter().map(|v| (v.target, v.client)).collect();
        let (sport, ttl) = (self.sport(), self.opts.ttl);
        let probes: Vec<(plan::Probe, Pace)> = candidates
            .iter()
            .flat_map(|c| c.ports.iter().map(move |p| (c.target, *p, c.pace)))
            .filter_map(|(target, port, pace)| {
                let probe = plan::Probe {
                    source: *sources.get(&target)?,
                    sport,
                    target,
                    port,
                    ttl,
                };
                Some((probe, pace))
            })
            .collect();
        let n = probes.len();
        // IPv6 limiters refill fast (Linux: 10 a second per peer): two a
        // second, three tries (the last 2 s after the first: a router's
        // error for a neighbour it cannot find comes about 3 s after the
        // first). IPv4 route errors (unreachable and prohibit routes) are
        // charged twice against a router's one-a-second allowance, shared
        // by every error it sends us: one probe every 2.5 s; two tries for
        // a port of a host that answers (it decides alone), one for each
        // of a host's samples (at that pace every one of them gets its
        // error if the host has one: a second try each added 2.5 s a
        // sample, 20 s to the real-world lab's scan). A host that said
        // nothing at all, among neighbours its router told of only once its
        // ARP failed (about 3.07 s after the first SYN: within the
        // tracker's default 3.5 s, past a `--timeout` of 3), is likely
        // absent too: a second SYN 0.55 s after the first keeps its
        // attempt open for that under a shorter timeout too, and the next host
        // comes 1.1 s later. Both SYNs wait in the router's queue for the
        // same ARP and either error answers the attempt, so one token is
        // enough (a limiter refuses without spending): a host a second.
        let v4_pace = |retries| EngineConfig {
            gap: Some(V4_REPROBE_GAP),
            ..EngineConfig::fixed(1, retries, V4_REPROBE_GAP, REPROBE_AT_MOST)
        };
        let absent_pace = EngineConfig {
            gap: Some(ABSENT_GAP),
            ..EngineConfig::fixed(1, 1, ABSENT_GAP, 1)
        };
        let (v6, v4): (Vec<_>, Vec<_>) = probes.into_iter().partition(|(p, _)| p.target.is_ipv6());
        let of = |v: &[(plan::Probe, Pace)], pace: Pace| -> Vec<plan::Probe> {
            v.iter()
                .filter(|(_, p)| *p == pace)
                .map(|(probe, _)| *probe)
                .collect()
        };
        let v6_present: Vec<plan::Probe> = v6
            .iter()
            .filter(|(_, p)| *p != Pace::Absent)
            .map(|(probe, _)| *probe)
            .collect();
        let mut absent = of(&v4, Pace::Absent);
        absent.extend(of(&v6, Pace::Absent));
        let second = Duration::from_secs(1);
        for (family, pace, wait) in [
            (
                v6_present,
                EngineConfig::fixed(2, 2, second, REPROBE_AT_MOST),
                second,
            ),
            (of(&v4, Pace::Port), v4_pace(1), second),
            (of(&v4, Pace::Sample), v4_pace(0), second),
            // Likely absent hosts (IPv6 too: a neighbour discovery fails
            // as an ARP does, 3 s). The last one's router gives up on it
            // 3.07 s after its first SYN, after its probe is given up (two
            // gaps).
            (
                absent,
                absent_pace,
                ARP_FAILS.saturating_sub(2 * ABSENT_GAP),
            ),
        ] {
            if family.is_empty() {
                continue;
            }
            if !self.pass(family, pace, Some(wait))? {
                break;
            }
        }
        let changed: usize = candidates
            .iter()
            .map(|c| self.answered(c.target, &c.ports))
            .sum();
        self.warnings.push(format!(
            "ICMP errors were rate-limited; {n} silent ports (of hosts that answer, and samples of hosts the limiter left unconfirmed or silent) were probed again slowly: {changed} answered"
        ));
        if left > 0 {
            self.warnings.push(format!(
                "{left} more hosts said nothing at all and were not probed again (at the limiters' pace of about one error a second, each costs seconds): their ports stay filtered; scan fewer of them at a time to look"
            ));
        }
        Ok(())
    }
}

/// The pace of an IPv4 slow re-probe (see [`Passes::rate_limited`]): a
/// Linux router charges each route error (an unreachable or prohibit
/// route) twice against its allowance of one a second for us, so probes
/// a second apart never get one once the allowance is spent; 2.5 s apart,
/// each does.
const V4_REPROBE_GAP: Duration = Duration::from_millis(2500);

/// How far apart, and how many, probes of one silent port are sent to tell
/// a rate limit from a drop (diagnose's re-probe): IPv4 at the slow pass's
/// pace, 3 probes; IPv6 (limiters refill in a quarter second) a second
/// apart, 4 probes.
pub fn slow_reprobe_pace(target: IpAddr) -> (Duration, u8) {
    if target.is_ipv6() {
        (Duration::from_secs(1), 4)
    } else {
        (V4_REPROBE_GAP, 3)
    }
}

/// How long after a SYN to an absent host its router tells so at the
/// latest, about: Linux gives up on ARP (3 requests a second apart) and
/// sends host-unreachable about 3.07 s after the first packet; a margin.
const ARP_FAILS: Duration = Duration::from_millis(3600);

/// The gap between the two SYNs of a likely absent host's sample, and
/// between one sample's second SYN and the next sample's first.
const ABSENT_GAP: Duration = Duration::from_millis(550);

/// Silent ports of a live host at most, for all of them to be probed
/// again slowly when a responder was seen rate-limiting.
const REPROBE_AT_MOST: usize = 16;

/// Silent ports of one target to probe again slowly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub target: IpAddr,
    pub ports: Vec<u16>,
    pub pace: Pace,
}

/// How a [`Candidate`]'s ports are probed again (IPv6 has one pace for
/// `Port` and `Sample`, see [`Passes::rate_limited`]; `Absent` is both
/// families').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// The few silent ports of a host that answers: each decides alone.
    Port,
    /// A sample of a host's silent ports: each would tell of the host.
    Sample,
    /// A sample of a host that said nothing at all, whose neighbours' router
    /// told of them only once its ARP failed: absent hosts, most likely.
    Absent,
}

/// The silent ports to probe again slowly: when some responder was seen
/// rate-limiting its ICMP errors (a host-level error inferred for silent
/// ports, or one that would be but for its shape), a router may have
/// spent its budget on other hosts' errors, so the few silent ports of a
/// host that answers (a rule for one port, a REJECT among RSTs) are probed
/// again at about the pace the limiters refill (one a second): silence
/// that stays silence is a drop.
pub fn rate_limit_candidates(results: &[Verdict]) -> Vec<Candidate> {
    rate_limit_candidates_within(results, usize::MAX).0
}

/// [`rate_limit_candidates`] with at most `silent_probes` ports of the
/// hosts that said nothing at all (those nearest a router's error for a
/// neighbour first, then in address order, each host whole), and how many
/// such hosts were left out.
pub fn rate_limit_candidates_within(
    results: &[Verdict],
    silent_probes: usize,
) -> (Vec<Candidate>, usize) {
    let mut by_target: std::collections::BTreeMap<IpAddr, Vec<&Verdict>> = Default::default();
    for v in results {
        by_target.entry(v.target).or_default().push(v);
    }
    let unconfirmed = track::infer::unconfirmed(results);
    let neighbours = unreachable_neighbours(results);
    let limited = results.iter().any(|v| v.inferred.is_some())
        || !unconfirmed.is_empty()
        || !neighbours.is_empty();
    if !limited {
        return (Vec::new(), 0);
    }
    let mut out = Vec::new();
    // Hosts that said nothing at all: (whether a router reported a host
    // of the same network unreachable, the host, its sample, its pace).
    let mut silent_hosts_found: Vec<(bool, IpAddr, Vec<u16>, Pace)> = Vec::new();
    for (t, vs) in by_target {
        let silent: Vec<u16> = vs
            .iter()
            .filter(|v| v.state == State::Filtered && !v.uncertain)
            .map(|v| v.port)
            .collect();
        let answers = vs.iter().any(|v| v.state != State::Filtered);
        if answers && !silent.is_empty() && silent.len() <= REPROBE_AT_MOST {
            out.push(Candidate {
                target: t,
                ports: silent,
                pace: Pace::Port,
            });
        } else if unconfirmed.contains(&t) {
            // An unconfirmed error: a sample, spread over the ports.
            out.push(Candidate {
                target: t,
                ports: spread(&silent, SAMPLE),
                pace: Pace::Sample,
            });
        } else if !answers && !silent.is_empty() {
            // A host that said nothing at all while a limiter was at work
            // (its router's budget may have gone to other hosts' errors):
            // a smaller sample. A router's host-level error for it would
            // tell of every port (a routing failure needs one sample, a
            // prohibition two: see track::infer), and silence on two at
            // the limiter's pace is a drop.
            //
            // Near neighbours whose router errors all came late (its ARP
            // for them failed), the pace of such errors; else a route's,
            // which suits both (two samples of one host 2.5 s apart wait
            // for the same ARP: the second's attempt is still open when
            // the router gives up on the host).
            let near: Vec<bool> = neighbours
                .iter()
                .filter(|(n, _)| same_network(*n, t))
                .map(|(_, late)| *late)
                .collect();
            let pace = if !near.is_empty() && near.iter().all(|late| *late) {
                Pace::Absent
            } else {
                Pace::Sample
            };
            // A likely absent host needs one: its router's host-unreach
            // tells of every port.
            let k = if pace == Pace::Absent {
                1
            } else {
                SILENT_SAMPLE
            };
            silent_hosts_found.push((!near.is_empty(), t, spread(&silent, k), pace));
        }
    }
    // Nearest a neighbour's error first (a /24 of absent hosts), then in
    // address order (the map's).
    silent_hosts_found.sort_by_key(|(near, ..)| !*near);
    let (mut budget, mut left) = (silent_probes, 0);
    for (_, target, ports, pace) in silent_hosts_found {
        if ports.len() > budget {
            left += 1;
            continue;
        }
        budget -= ports.len();
        out.push(Candidate {
            target,
            ports,
            pace,
        });
    }
    (out, left)
}

/// `k` ports spread over `ports`.
fn spread(ports: &[u16], k: usize) -> Vec<u16> {
    let step = (ports.len() / k).max(1);
    ports.iter().copied().step_by(step).take(k).collect()
}

/// The targets a router (not the target itself) reported unreachable or
/// prohibited on a packet of their own, and whether that error came late
/// (a second or more after the attempt's first SYN: the router's ARP for
/// the host failed, rather than a route's error at once): their
/// neighbours (the same /24, or /64) that said nothing may have met the
/// same router with its budget spent, as a scan of a network of absent
/// hosts does (the router's ARP fails for each, it tells of a burst of
/// them, then one a second).
fn unreachable_neighbours(results: &[Verdict]) -> Vec<(IpAddr, bool)> {
    let mut out: Vec<(IpAddr, bool)> = results
        .iter()
        .filter(|v| {
            v.state == State::Unreachable
                && v.inferred.is_none()
                && track::infer::host_level(v.reason)
                && v.responder.is_some_and(|r| r != v.target)
        })
        .map(|v| {
            let late = v
                .decided_ns
                .is_some_and(|d| d.saturating_sub(v.first_probe_ns) >= NANOS_PER_SEC);
            (v.target, late)
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    // Only where a neighbour said nothing at all.
    let silent: Vec<IpAddr> = wholly_silent(results);
    out.retain(|(n, _)| silent.iter().any(|s| s != n && same_network(*s, *n)));
    out
}

/// Targets none of whose ports answered.
fn wholly_silent(results: &[Verdict]) -> Vec<IpAddr> {
    let mut answered: rustc_hash::FxHashSet<IpAddr> = Default::default();
    let mut all: Vec<IpAddr> = Vec::new();
    for v in results {
        if v.state != State::Filtered {
            answered.insert(v.target);
        }
        all.push(v.target);
    }
    all.sort_unstable();
    all.dedup();
    all.retain(|t| !answered.contains(t));
    all
}

/// The same /24 (IPv4) or /64 (IPv6).
fn same_network(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => u32::from(a) >> 8 == u32::from(b) >> 8,
        (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(a) >> 64 == u128::from(b) >> 64,
        _ => false,
    }
}

/// Silent ports probed again on a host whose error is not yet confirmed
/// host-wide.
const SAMPLE: usize = 4;

/// Silent ports probed again on a host that said nothing at all.
const SILENT_SAMPLE: usize = 2;

/// Samples of hosts that said nothing at all probed again slowly, at
/// most (a /24 of absent hosts behind one router: each costs about a
/// second of its pace, 2.5 s where its errors are a route's).
const SILENT_PROBES_AT_MOST: usize = 16;

/// Per target: when the target said nothing for at least `gap` from its
/// first probe, then answered, and no port probed after its first answer is
/// silent (the pattern of a host that came up mid-scan, not of a
/// firewall), the filtered ports probed before that first answer.
pub(super) fn silent_before_first_answer(results: &[Verdict], gap: u64) -> Vec<(IpAddr, Vec<u16>)> {
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
