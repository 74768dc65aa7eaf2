//! The finishing step of a run: the verdicts of the scan's own probes,
//! with what the run could not back said on each, the streamed verdicts,
//! and the scan's own account.

use super::plan::Plan;
use super::{ScanOptions, ScanOutcome, run};
use crate::model::{Analysis, CaptureStats, EngineStats, ScanInfo, State, Verdict};
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
pub(super) fn finish(
    done: run::Finished,
    plan: &Plan,
    opts: &ScanOptions,
    captures: Vec<(String, CaptureStats)>,
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
