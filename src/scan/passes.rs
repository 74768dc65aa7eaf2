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
    /// alone, one for a host's samples, whose every port tells the same),
    /// each in a new attempt
    /// (after the tracker's timeout since the port's last probe), so the
    /// packets themselves show an error that came on a later attempt: the
    /// inference reads its confirmation off them.
    pub(super) fn rate_limited(&mut self) -> Result<(), Error> {
        let candidates = rate_limit_candidates(&self.results);
        if candidates.is_empty() {
            return Ok(());
        }
        // The ports' first attempts run out first.
        if let Some(last) = self.session.last_send() {
            let until =
                last + Duration::from_nanos(self.opts.track.timeout) + Duration::from_millis(20);
            let now = self.net.now();
            if until > now {
                run::listen(self.net, self.session, &self.cfg, until - now)?;
            }
        }
        let sources: FxHashMap<IpAddr, IpAddr> =
            self.results.iter().map(|v| (v.target, v.client)).collect();
        let (sport, ttl) = (self.sport(), self.opts.ttl);
        let probes: Vec<(plan::Probe, bool)> = candidates
            .iter()
            .flat_map(|c| c.ports.iter().map(move |p| (c.target, *p, c.sample)))
            .filter_map(|(target, port, sample)| {
                let probe = plan::Probe {
                    source: *sources.get(&target)?,
                    sport,
                    target,
                    port,
                    ttl,
                };
                Some((probe, sample))
            })
            .collect();
        let n = probes.len();
        // IPv6 limiters refill fast (Linux: 10 a second per peer): two a
        // second, three tries. IPv4 route errors (unreachable and prohibit
        // routes) are charged twice against a router's one-a-second
        // allowance, shared by every error it sends us: one probe every
        // 2.5 s; two tries for a port of a host that answers (it decides
        // alone), one for each of a host's samples (at that pace every one
        // of them gets its error if the host has one: a second try each
        // added 2.5 s a sample, 20 s to the real-world lab's scan).
        let v4_pace = |retries| EngineConfig {
            gap: Some(V4_REPROBE_GAP),
            ..EngineConfig::fixed(1, retries, V4_REPROBE_GAP, REPROBE_AT_MOST)
        };
        let (v6, v4): (Vec<_>, Vec<_>) = probes.into_iter().partition(|(p, _)| p.target.is_ipv6());
        let (v4_samples, v4_ports): (Vec<_>, Vec<_>) = v4.into_iter().partition(|(_, s)| *s);
        let only = |v: Vec<(plan::Probe, bool)>| v.into_iter().map(|(p, _)| p).collect::<Vec<_>>();
        for (family, pace) in [
            (
                only(v6),
                EngineConfig::fixed(2, 2, Duration::from_secs(1), REPROBE_AT_MOST),
            ),
            (only(v4_ports), v4_pace(1)),
            (only(v4_samples), v4_pace(0)),
        ] {
            if family.is_empty() {
                continue;
            }
            if !self.pass(family, pace, Some(Duration::from_secs(1)))? {
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
        Ok(())
    }
}

/// The pace of an IPv4 slow re-probe (see [`reprobe_rate_limited`]).
const V4_REPROBE_GAP: Duration = Duration::from_millis(2500);

/// Silent ports of a live host at most, for all of them to be probed
/// again slowly when a responder was seen rate-limiting.
const REPROBE_AT_MOST: usize = 16;

/// Silent ports of one target to probe again slowly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub target: IpAddr,
    pub ports: Vec<u16>,
    /// A sample of a host's silent ports (each would tell of the host), not
    /// the few silent ports of a host that answers (each decides alone).
    pub sample: bool,
}

/// The silent ports to probe again slowly: when some responder was seen
/// rate-limiting its ICMP errors (a host-level error inferred for silent
/// ports, or one that would be but for its shape), a router may have
/// spent its budget on other hosts' errors, so the few silent ports of a
/// host that answers (a rule for one port, a REJECT among RSTs) are probed
/// again at about the pace the limiters refill (one a second): silence
/// that stays silence is a drop.
pub fn rate_limit_candidates(results: &[Verdict]) -> Vec<Candidate> {
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
            out.push(Candidate {
                target: t,
                ports: silent,
                sample: false,
            });
        } else if unconfirmed.contains(&t) || (!answers && !silent.is_empty()) {
            // An unconfirmed error, or a host that said nothing at all
            // while a limiter was at work (its router's budget may have
            // gone to other hosts' errors): a sample.
            // A sample, spread over the ports.
            let step = (silent.len() / SAMPLE).max(1);
            out.push(Candidate {
                target: t,
                ports: silent.into_iter().step_by(step).take(SAMPLE).collect(),
                sample: true,
            });
        }
    }
    out
}

/// Silent ports probed again on a host whose error is not yet confirmed
/// host-wide.
const SAMPLE: usize = 4;

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
