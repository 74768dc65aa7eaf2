//! The finishing step of a scan: the verdicts of the scan's own probes
//! from the one tracker, with what the first run could not back said on
//! each, the streamed verdicts, and the scan's own account.

use super::plan::Plan;
use super::{ScanOptions, ScanOutcome, run};
use crate::model::{
    Analysis, CaptureStats, EngineStats, InputSummary, ScanInfo, State, Stats, Verdict,
};
use crate::track::{self, Tracker};
use rustc_hash::FxHashSet;
use std::net::IpAddr;

/// Hands the attempts decided so far to `on_verdict`, once per (target,
/// port) of this scan's own probes, and moves the progress bar; the bar is
/// lifted while lines are printed, so a terminal shows lines, not torn
/// bars.
pub(super) struct Streamer<'a> {
    pub(super) plan: &'a Plan,
    pub(super) streamed: FxHashSet<(IpAddr, u16)>,
    pub(super) on_verdict: &'a mut dyn FnMut(&Verdict),
    pub(super) bar: &'a indicatif::ProgressBar,
}

/// Whether `v` is about one of `plan`'s probes (other traffic of this host
/// may be in the capture).
fn ours(plan: &Plan, v: &Verdict) -> bool {
    plan.probes
        .first()
        .is_some_and(|p| plan.contains(v.client, p.sport, v.target, v.port))
}

impl run::Observer for Streamer<'_> {
    fn drained(&mut self, tracker: &mut Tracker, engine: &EngineStats) {
        let fresh: Vec<Verdict> = tracker
            .take_streamed()
            .into_iter()
            .filter(|v| ours(self.plan, v) && self.streamed.insert((v.target, v.port)))
            .collect();
        if !fresh.is_empty() {
            let f = &mut *self.on_verdict;
            self.bar.suspend(|| fresh.iter().for_each(f));
        }
        self.bar.set_position(engine.answered + engine.unanswered);
    }
}

/// What the first run of a scan said of itself, kept while later passes
/// run: how it ended, what it could not back, its warnings.
pub(super) struct FirstRun {
    pub(super) partial: bool,
    stopped: Option<String>,
    engine: EngineStats,
    send_errors: u64,
    captures: Vec<(String, CaptureStats)>,
    /// Probes sent that the capture never saw (a verdict nothing backs).
    not_captured: Vec<usize>,
    /// The captures lost packets: every silence is doubtful.
    lost: bool,
    pub(super) warnings: Vec<String>,
}

impl FirstRun {
    /// `seen`: the verdicts of `plan`'s probes the tracker has (see
    /// [`own_verdicts`]).
    pub(super) fn new(
        ran: &run::Ran,
        plan: &Plan,
        seen: &[Verdict],
        captures: Vec<(String, CaptureStats)>,
    ) -> FirstRun {
        let mut warnings = Vec::new();
        if ran.interrupted {
            warnings.push(
                "interrupted: these are the verdicts so far (partial); probes still waiting were not given their full time and show as filtered".to_string(),
            );
        }
        if let Some(e) = &ran.stopped {
            warnings.push(format!(
                "the scan stopped early ({e}): these are the verdicts so far (partial); probes after that were not sent or their answers not seen, so ports shown filtered are not certain"
            ));
        }
        let partial = ran.interrupted || ran.stopped.is_some();
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
        // Probes sent that the capture never saw; never sent (an
        // interrupted scan): no verdict at all. (A plan probes each target
        // port once: when the capture saw as many as were sent, it saw
        // them all.)
        let sent = (0..plan.probes.len())
            .filter(|&i| ran.engine.was_sent(i as u32))
            .count();
        let not_captured: Vec<usize> = if seen.len() >= sent {
            Vec::new()
        } else {
            let seen: FxHashSet<(IpAddr, u16)> = seen.iter().map(|v| (v.target, v.port)).collect();
            (0..plan.probes.len())
                .filter(|&i| {
                    let p = &plan.probes[i];
                    ran.engine.was_sent(i as u32) && !seen.contains(&(p.target, p.port))
                })
                .collect()
        };
        if !not_captured.is_empty() && partial {
            warnings.push(format!(
                "{} probes sent (or tried) were never seen by the capture; the scan stopped early, so they are left out",
                not_captured.len()
            ));
        } else if !not_captured.is_empty() {
            warnings.push(format!(
                "{} probes were sent (or tried) but never seen by the capture; they are shown filtered, which the capture cannot confirm",
                not_captured.len()
            ));
        }
        if ran.send_errors > 0 {
            warnings.push(format!(
                "{} sends failed (and were retried)",
                ran.send_errors
            ));
        }
        if let Some(w) = paced_note(&ran.paced) {
            warnings.push(w);
        }
        let lost = captures.iter().any(|(_, s)| s.dropped + s.if_dropped > 0);
        FirstRun {
            partial,
            stopped: ran.stopped.clone(),
            engine: ran.engine.stats(),
            send_errors: ran.send_errors,
            captures,
            not_captured,
            lost,
            warnings,
        }
    }

    /// The verdicts of `plan`'s probes as `tracker` has them now, with
    /// what the first run could not back said on each, and the rate-limit
    /// inference over them (as `analyze` of the written capture does it);
    /// sorted by target, port, client. The second value: silent ports left
    /// out of a partial scan.
    pub(super) fn verdicts(
        &self,
        tracker: &Tracker,
        plan: &Plan,
        opts: &ScanOptions,
    ) -> (Vec<Verdict>, usize) {
        self.verdicts_from(own_verdicts(tracker, plan), tracker.clock(), plan, opts)
    }

    /// [`FirstRun::verdicts`] from `results` ([`own_verdicts`]) taken at
    /// capture time `clock`.
    pub(super) fn verdicts_from(
        &self,
        mut results: Vec<Verdict>,
        clock: crate::model::Nanos,
        plan: &Plan,
        opts: &ScanOptions,
    ) -> (Vec<Verdict>, usize) {
        let mut cut = 0;
        if self.partial {
            // Silence not yet given its full time is no verdict.
            let before = results.len();
            results.retain(|v| {
                v.state != State::Filtered
                    || v.first_probe_ns.saturating_add(opts.track.timeout) <= clock
            });
            cut = before - results.len();
        } else {
            // Probes the capture never saw (unless a later pass's were).
            let have: FxHashSet<(IpAddr, u16)> =
                results.iter().map(|v| (v.target, v.port)).collect();
            for &i in &self.not_captured {
                let p = &plan.probes[i];
                if have.contains(&(p.target, p.port)) {
                    continue;
                }
                let mut v = Verdict::silent(p.source, p.target, p.port);
                v.uncertain = true;
                results.push(v);
            }
        }
        // Lost packets make every silence doubtful: say so on each.
        if self.lost {
            for v in results.iter_mut().filter(|v| v.state == State::Filtered) {
                v.uncertain = true;
            }
        }
        if !self.not_captured.is_empty() {
            results.sort_by_key(|v| (v.target, v.port, v.client));
        }
        track::infer::annotate(&mut results);
        (results, cut)
    }

    /// The scan's outcome: `results`, the captures' summaries with the
    /// tracker's counters, and the account.
    pub(super) fn outcome(
        self,
        results: Vec<Verdict>,
        mut inputs: Vec<InputSummary>,
        stats: Stats,
        plan: &Plan,
    ) -> ScanOutcome {
        for (i, inp) in inputs.iter_mut().enumerate() {
            inp.stats = if i == 0 { stats } else { Default::default() };
        }
        ScanOutcome {
            analysis: Analysis::from_parts(results, inputs),
            info: ScanInfo {
                partial: self.partial,
                capture_error: self.stopped,
                // SAFETY: geteuid has no preconditions.
                ran_as_uid: unsafe { libc::geteuid() },
                engine: self.engine,
                captures: self.captures,
                not_captured: self.not_captured.len() as u64,
                send_errors: self.send_errors,
                seed: plan.seed,
                source_port: plan.probes.first().map_or(0, |p| p.sport),
                duration_s: 0.0,
                warnings: self.warnings,
            },
        }
    }
}

/// The verdicts of `plan`'s probes as `tracker` has them now (sorted by
/// target, port, client).
pub(super) fn own_verdicts(tracker: &Tracker, plan: &Plan) -> Vec<Verdict> {
    let mut v = tracker.snapshot();
    v.retain(|v| ours(plan, v));
    v
}

/// Hands over what was not streamed yet (decided at the end), and again
/// what is marked uncertain or inferred only now.
pub(super) fn stream_rest(results: &[Verdict], obs: &mut Streamer<'_>) {
    for v in results {
        if obs.streamed.insert((v.target, v.port)) || v.uncertain || v.inferred.is_some() {
            (obs.on_verdict)(v);
        }
    }
}

/// Targets named in the note on paced targets, at most.
const PACED_NAMED: usize = 4;

/// A paced target is noted when its probes take at least this long at its
/// pace (a slow link paced to its 6,700 a second for 3,000 ports is not
/// worth a word).
const PACED_NOTE_AFTER: f64 = 2.0;

/// The note on targets that answered only so many probes a second (see
/// `pace.rs`): why their ports took longer, and what such limits are.
/// `paced`: (target, slowest pace, probes).
pub(super) fn paced_note(paced: &[(IpAddr, f64, usize)]) -> Option<String> {
    let mut slow: Vec<(IpAddr, f64)> = paced
        .iter()
        .filter(|(_, rate, n)| *n as f64 / rate.max(1.0) >= PACED_NOTE_AFTER)
        .map(|&(t, rate, _)| (t, rate))
        .collect();
    slow.sort_by_key(|s| s.0);
    let why = "a host's limit on its resets, as FreeBSD and macOS keep at 200 a second by default; a SYN limit in front of it; or a link that carries no more";
    match slow.as_slice() {
        [] => None,
        [(t, rate)] => Some(format!(
            "{t} answered at most about {} probes a second ({why}): its probes were slowed to that pace, so its ports took longer",
            rate.round() as u64
        )),
        many => {
            let named: Vec<String> = many
                .iter()
                .take(PACED_NAMED)
                .map(|(t, rate)| format!("{t} (about {})", rate.round() as u64))
                .collect();
            let more = many.len().saturating_sub(PACED_NAMED);
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            Some(format!(
                "{} targets answered at most so many probes a second, {}{more} ({why}): their probes were slowed to that pace, so their ports took longer",
                many.len(),
                named.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod paced_note_tests {
    use super::paced_note;
    use crate::fixture::addr;

    #[test]
    fn names_the_targets_whose_pace_made_them_slow() {
        assert_eq!(paced_note(&[]), None);
        // 3,000 probes at 6,700 a second: under half a second, not noted.
        assert_eq!(paced_note(&[(addr("192.0.2.9"), 6700.0, 3000)]), None);
        let one = paced_note(&[
            (addr("192.0.2.7"), 199.4, 3000),
            (addr("192.0.2.9"), 6700.0, 3000),
        ])
        .unwrap();
        assert!(
            one.starts_with(
                "192.0.2.7 answered at most about 199 probes a second (a host's limit on its resets"
            ),
            "{one}"
        );
        assert!(!one.contains("192.0.2.9"), "{one}");
        let list: Vec<_> = (1..=6u8)
            .rev()
            .map(|k| (addr(&format!("192.0.2.{k}")), 50.0 * f64::from(k), 1000))
            .collect();
        let many = paced_note(&list).unwrap();
        assert!(
            many.starts_with(
                "6 targets answered at most so many probes a second, 192.0.2.1 (about 50), 192.0.2.2 (about 100), 192.0.2.3 (about 150), 192.0.2.4 (about 200) and 2 more (a host's limit"
            ),
            "{many}"
        );
    }
}
