//! The second passes of a raw scan, on the same network: hosts that came
//! up partway through are probed again, and, when ICMP errors were seen
//! rate-limited, the few silent ports of answering hosts and samples of
//! unconfirmed or silent hosts are probed again slowly.

use super::engine::EngineConfig;
use super::net::Network;
use super::plan::{self, Plan};
use super::{ScanOptions, ScanOutcome, scan_on};
use crate::error::Error;
use crate::model::{Analysis, NANOS_PER_SEC, State, Verdict};
use crate::select::PortSet;
use crate::track;
use std::net::IpAddr;
use std::time::Duration;

/// A host that started answering only partway through (it came up, a
/// rule was lifted) leaves its earlier ports looking filtered: those are
/// probed once more, on the same network, before they are called so.
pub(super) fn probe_late_starters(
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
pub(super) fn reprobe_rate_limited(
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
