//! Verdicts that survive rate-limited ICMP. Routers and hosts answer only
//! so many probes with ICMP errors (Linux: a burst of 6, then one a second
//! per peer), so a host whose firewall rejects every port, or a router
//! that cannot reach a host, answers a few probes and leaves the rest
//! silent. Where the errors concern the whole host and the evidence says
//! rate limit (not a rule for a few ports), the silent ports get the same
//! verdict, marked inferred with the evidence. Pure: verdicts in, verdicts
//! out, so a scan and `analyze` of its `--write` capture agree.

use crate::model::{Inferred, Reason, State, Verdict};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Errors that concern a host (or its whole network), not one port.
pub fn host_level(r: Reason) -> bool {
    matches!(
        r,
        Reason::HostUnreach
            | Reason::NetUnreach
            | Reason::HostProhibited
            | Reason::NetProhibited
            | Reason::AdminProhibited
            | Reason::NoRoute
            | Reason::RejectRoute
            | Reason::BeyondScope
    )
}

/// Ports listed in [`Inferred::from_ports`] at most.
const LISTED: usize = 16;

/// Extends each host's host-level ICMP error to its silent ports, where:
/// - every error of the host is the same one (responder, type, code), and
///   at least two ports got it;
/// - nothing contradicts it: no RST from the host, no other ICMP error;
/// - it has a rate limit's shape: the host's earliest probes that were not
///   answered open (up to three) all got it (a limiter's bucket starts
///   full; a rule for a few ports would not catch the first probes of a
///   random order); or a slow re-probe confirmed it (see
///   [`reprobe_confirms`]); or it is a routing failure (host or network
///   unreachable, no route) from a router for a host that never answered
///   itself, where one port's error is enough: the router cannot reach the
///   host on any port.
///
/// `results` is sorted or not; each (client, target) is judged alone.
pub fn rate_limited_errors(results: &mut [Verdict]) {
    let by_host = hosts(results);
    extend(results, &by_host);
}

/// What the verdicts say beyond each one's own packet, the same for a
/// scan and `analyze` of its capture: the rate-limit inference
/// ([`rate_limited_errors`]), then replies in a host's name from another
/// distance than its own ([`foreign_distances`]).
pub fn annotate(results: &mut [Verdict]) {
    // One grouping for both steps: neither changes a verdict's host.
    let by_host = hosts(results);
    extend(results, &by_host);
    mark_distances(results, &by_host);
}

/// Marks each reply that came in a host's name (responder = target) from
/// another distance than the host's own with that distance
/// ([`Verdict::host_hops`]): a reset forged one hop nearer by a middlebox
/// looks like the host's but for its TTL. The host's own distance is the
/// most common one of its SYN-ACKs (a forger resets; it seldom accepts),
/// or of all its replies when none accepted; at least two replies must
/// agree on it, and more than sent the odd one out.
pub fn foreign_distances(results: &mut [Verdict]) {
    let by_host = hosts(results);
    mark_distances(results, &by_host);
}

fn mark_distances(results: &mut [Verdict], by_host: &Hosts) {
    for idx in by_host.values() {
        let own =
            |v: &Verdict| v.responder == Some(v.target) && v.inferred.is_none() && v.hops.is_some();
        let mode = |accepts: bool| -> Option<(u8, usize, usize)> {
            // A count per distance (0-255): no map.
            let mut n = [0usize; 256];
            for &i in idx {
                let v = &results[i];
                if own(v) && (!accepts || v.state == State::Open) {
                    n[usize::from(v.hops.unwrap_or(0))] += 1;
                }
            }
            // The most common; the nearest of equals.
            let (h, c) = (0..=255u8)
                .map(|h| (h, n[usize::from(h)]))
                .filter(|&(_, c)| c > 0)
                .max_by_key(|&(h, c)| (c, std::cmp::Reverse(h)))?;
            let rest = n.iter().sum::<usize>() - c;
            Some((h, c, rest))
        };
        // From two SYN-ACKs or more; else from a majority of every reply.
        let host = match mode(true).filter(|m| m.1 >= 2) {
            Some((h, _, _)) => h,
            None => match mode(false) {
                Some((h, count, rest)) if count >= 2 && count > rest => h,
                _ => continue,
            },
        };
        for &i in idx {
            let v = &mut results[i];
            if own(v) && v.hops != Some(host) {
                v.host_hops = Some(host);
            }
        }
    }
}

/// The hosts whose errors would extend but for the rate limit's shape (a
/// budget spent on other hosts' errors before their first probes): a
/// sample of their silent ports probed again slowly tells.
pub fn unconfirmed(results: &[Verdict]) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for idx in hosts(results).values() {
        if evidence(results, idx, false).is_some() && evidence(results, idx, true).is_none() {
            out.push(results[idx[0]].target);
        }
    }
    out
}

/// Each (client, target)'s verdicts, by index.
type Hosts = BTreeMap<(IpAddr, IpAddr), Vec<usize>>;

fn hosts(results: &[Verdict]) -> Hosts {
    let mut by_host: Hosts = BTreeMap::new();
    // Verdicts come sorted by target: a run of one host's is looked up
    // once (a lookup per verdict was a third of the time of annotating
    // a 65,535-port report).
    let mut run: Option<((IpAddr, IpAddr), Vec<usize>)> = None;
    for (i, v) in results.iter().enumerate() {
        let key = (v.client, v.target);
        match &mut run {
            Some((k, idx)) if *k == key => idx.push(i),
            _ => {
                if let Some((k, idx)) = run.replace((key, vec![i])) {
                    by_host.entry(k).or_default().extend(idx);
                }
            }
        }
    }
    if let Some((k, idx)) = run {
        by_host.entry(k).or_default().extend(idx);
    }
    by_host
}

fn extend(results: &mut [Verdict], by_host: &Hosts) {
    for idx in by_host.values() {
        let Some(model) = evidence(results, idx, true) else {
            continue;
        };
        let mut ports: Vec<u16> = idx
            .iter()
            .map(|&i| &results[i])
            .filter(|v| v.state == State::Unreachable && v.inferred.is_none())
            .map(|v| v.port)
            .collect();
        ports.sort_unstable();
        let inferred = Inferred {
            errors: ports.len() as u32,
            from_ports: ports.into_iter().take(LISTED).collect(),
        };
        for &i in idx {
            let v = &mut results[i];
            if v.state == State::Filtered && !v.uncertain {
                v.state = State::Unreachable;
                v.reason = model.reason;
                v.icmp_type = model.icmp_type;
                v.icmp_code = model.icmp_code;
                v.responder = model.responder;
                v.ttl = model.ttl;
                v.hops = model.hops;
                v.inferred = Some(inferred.clone());
            }
        }
    }
}

/// The error to extend to the host's silent ports, if the evidence holds
/// (with `shape`, the rate limit's shape too).
fn evidence(results: &[Verdict], idx: &[usize], shape: bool) -> Option<Verdict> {
    let vs: Vec<&Verdict> = idx.iter().map(|&i| &results[i]).collect();
    if !vs
        .iter()
        .any(|v| v.state == State::Filtered && !v.uncertain)
    {
        return None;
    }
    if vs.iter().any(|v| v.state == State::Refused) {
        return None;
    }
    let errors: Vec<&&Verdict> = vs
        .iter()
        .filter(|v| v.state == State::Unreachable && v.inferred.is_none())
        .collect();
    let first = errors.first()?;
    let same = |v: &Verdict| {
        (v.responder, v.reason, v.icmp_type, v.icmp_code)
            == (
                first.responder,
                first.reason,
                first.icmp_type,
                first.icmp_code,
            )
    };
    // Two ports with the error; one suffices for a routing failure (below)
    // and for a host whose sample is then probed again (the sample must
    // confirm it).
    let routing_failure = matches!(
        first.reason,
        Reason::HostUnreach | Reason::NetUnreach | Reason::NoRoute
    ) && first.responder != Some(first.target);
    let least = if shape && !routing_failure { 2 } else { 1 };
    if errors.len() < least || !host_level(first.reason) || !errors.iter().all(|v| same(v)) {
        return None;
    }
    if !shape {
        return Some((**first).clone());
    }
    // A routing failure (host or network unreachable, no route) reported
    // by a router for a host that itself never answered: the router cannot
    // reach the host at all, whatever the port; no shape needed.
    let routing = matches!(
        first.reason,
        Reason::HostUnreach | Reason::NetUnreach | Reason::NoRoute
    );
    if routing
        && first.responder != Some(first.target)
        && !vs.iter().any(|v| v.state == State::Open)
    {
        return Some((**first).clone());
    }
    if reprobe_confirms(&vs, same) {
        return Some((**first).clone());
    }
    // The earliest probes that were not answered open.
    let mut early: Vec<&&Verdict> = vs.iter().filter(|v| v.state != State::Open).collect();
    early.sort_by_key(|v| (v.first_probe_ns, v.port));
    let k = errors.len().min(3);
    if !early
        .iter()
        .take(k)
        .all(|v| v.state == State::Unreachable && same(v))
    {
        return None;
    }
    Some((**first).clone())
}

/// A slow re-probe's confirmation, read off the packets: of the host's
/// ports probed again after their first attempt had run out (a later
/// attempt: the scan's re-probe pass, a client's retry after its
/// timeout), at least two, and at least half, got the error on that later
/// attempt. Silence and then the error on the same port is a limiter's
/// mark; a sample of the silent ports answering so says the error is the
/// host's rule, not a few ports'. (A client that retries every silent port
/// and got the error on a few of them does not pass: the half is not
/// there.)
fn reprobe_confirms(vs: &[&Verdict], same: impl Fn(&Verdict) -> bool) -> bool {
    let again = vs
        .iter()
        .filter(|v| v.attempts >= 2 && v.state != State::Open && v.inferred.is_none())
        .count();
    let later = vs
        .iter()
        .filter(|v| {
            v.attempts >= 2
                && v.state == State::Unreachable
                && v.inferred.is_none()
                && same(v)
                && answered_later(v)
        })
        .count();
    later >= 2 && 2 * later >= again
}

/// Whether the attempt that decided `v` began after the port's first SYN
/// (the first attempt went unanswered).
fn answered_later(v: &Verdict) -> bool {
    let (Some(at), Some(rtt_ms)) = (v.decided_ns, v.rtt_ms) else {
        return false;
    };
    // rtt_ms is rounded to the microsecond: a millisecond's margin.
    let began = at.saturating_sub((rtt_ms * 1e6) as u64);
    began > v.first_probe_ns.saturating_add(NANOS_PER_MS)
}

const NANOS_PER_MS: u64 = 1_000_000;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::addr;

    fn v(port: u16, at: u64, state: State, reason: Reason) -> Verdict {
        let mut v = Verdict::silent(addr("198.51.100.2"), addr("203.0.113.5"), port);
        v.first_probe_ns = at;
        v.state = state;
        v.reason = reason;
        if state == State::Unreachable {
            v.responder = Some(addr("203.0.113.5"));
            v.icmp_type = Some(3);
            v.icmp_code = Some(10);
            v.ttl = Some(63);
            v.hops = Some(2);
        }
        v
    }

    fn firewalld() -> Vec<Verdict> {
        // Port 22 open; the first six rejections answered, then silence.
        let mut r = vec![v(22, 5, State::Open, Reason::SynAck)];
        for (k, port) in [
            (0u64, 1000u16),
            (1, 7),
            (2, 300),
            (3, 41),
            (4, 999),
            (6, 5000),
        ] {
            r.push(v(port, k, State::Unreachable, Reason::HostProhibited));
        }
        for port in 2000..2100 {
            r.push(v(
                port,
                10 + u64::from(port),
                State::Filtered,
                Reason::NoResponse,
            ));
        }
        r
    }

    #[test]
    fn a_host_that_rejects_everything_but_rate_limits_is_rejected_everywhere() {
        let mut r = firewalld();
        rate_limited_errors(&mut r);
        let silent: Vec<&Verdict> = r
            .iter()
            .filter(|v| (2000..2100).contains(&v.port))
            .collect();
        assert_eq!(silent.len(), 100);
        for s in silent {
            assert_eq!(
                (s.state, s.reason),
                (State::Unreachable, Reason::HostProhibited)
            );
            assert_eq!(s.responder, Some(addr("203.0.113.5")));
            let inf = s.inferred.as_ref().unwrap();
            assert_eq!(inf.errors, 6);
            assert_eq!(inf.from_ports, vec![7, 41, 300, 999, 1000, 5000]);
            assert_eq!(s.rtt_ms, None, "no packet of its own");
        }
        // The ports that had their own answer keep it, unmarked.
        assert!(
            r.iter()
                .filter(|v| v.port < 2000 || v.port == 5000)
                .all(|v| v.inferred.is_none())
        );
        // Run again: nothing changes (inferred verdicts are no evidence).
        let again = r.clone();
        rate_limited_errors(&mut r);
        assert_eq!(r, again);
    }

    #[test]
    fn no_inference_against_the_evidence() {
        // A RST from the host: the errors are a rule for some ports.
        let mut r = firewalld();
        r.push(v(81, 100, State::Refused, Reason::Reset));
        let before = r.clone();
        rate_limited_errors(&mut r);
        assert_eq!(r, before);
        // Port-unreachable is about one port, never the host.
        let mut r = firewalld();
        for x in r.iter_mut().filter(|v| v.state == State::Unreachable) {
            x.reason = Reason::PortUnreach;
            x.icmp_code = Some(3);
        }
        let before = r.clone();
        rate_limited_errors(&mut r);
        assert_eq!(r, before);
        // Two kinds of error: no single answer to extend.
        let mut r = firewalld();
        r[1].reason = Reason::AdminProhibited;
        r[1].icmp_code = Some(13);
        let before = r.clone();
        rate_limited_errors(&mut r);
        assert_eq!(r, before);
        // A router rejecting two ports of a host that drops the rest: the
        // first probes were silent, not rejected: no rate limit's shape.
        let mut r: Vec<Verdict> = (1..=100u16)
            .map(|p| v(p, u64::from(p), State::Filtered, Reason::NoResponse))
            .collect();
        for x in r.iter_mut().filter(|x| x.port == 50 || x.port == 70) {
            *x = v(
                x.port,
                x.first_probe_ns,
                State::Unreachable,
                Reason::AdminProhibited,
            );
        }
        let before = r.clone();
        rate_limited_errors(&mut r);
        assert_eq!(r, before);
        // One error alone is not enough (but for a routing failure, below).
        let mut r = firewalld();
        r.retain(|x| x.state != State::Unreachable || x.port == 1000);
        let before = r.clone();
        rate_limited_errors(&mut r);
        assert_eq!(r, before);
    }

    /// A host behind a router whose budget went to other hosts' errors:
    /// the first pass got the prohibit error on two late ports only (no
    /// shape); then `sampled` silent ports probed again in a later attempt,
    /// of which `answered` got the error.
    fn spent_budget(sampled: u16, answered: u16) -> Vec<Verdict> {
        let mut r: Vec<Verdict> = (1..=100u16)
            .map(|p| v(p, u64::from(p) * 1000, State::Filtered, Reason::NoResponse))
            .collect();
        for x in r.iter_mut().filter(|x| x.port == 60 || x.port == 90) {
            *x = v(
                x.port,
                x.first_probe_ns,
                State::Unreachable,
                Reason::AdminProhibited,
            );
            x.decided_ns = Some(x.first_probe_ns + 500);
            x.rtt_ms = Some(0.0);
            x.attempts = 1;
        }
        for (k, x) in r.iter_mut().filter(|x| x.port % 10 == 5).enumerate() {
            if k as u16 >= sampled {
                break;
            }
            x.attempts = 2;
            if (k as u16) < answered {
                let first = x.first_probe_ns;
                *x = v(x.port, first, State::Unreachable, Reason::AdminProhibited);
                x.attempts = 2;
                // The later attempt, 5 s on, answered in 1 ms.
                x.decided_ns = Some(first + 5_001_000_000);
                x.rtt_ms = Some(1.0);
            }
        }
        r
    }

    #[test]
    fn a_slow_reprobe_that_gets_the_error_on_half_its_sample_confirms_it() {
        // Before the re-probe: unconfirmed (the scan samples it).
        assert_eq!(unconfirmed(&spent_budget(0, 0)), vec![addr("203.0.113.5")]);
        let mut r = spent_budget(4, 2);
        assert!(unconfirmed(&r).is_empty());
        rate_limited_errors(&mut r);
        assert!(r.iter().all(|x| x.reason == Reason::AdminProhibited));
        let inf = r.iter().find_map(|x| x.inferred.clone()).unwrap();
        assert_eq!((inf.errors, inf.from_ports), (4, vec![5, 15, 60, 90]));
        // One of four: not the host's rule.
        let mut r = spent_budget(4, 1);
        let before = r.clone();
        rate_limited_errors(&mut r);
        assert_eq!(r, before);
        // A client that retried every silent port later and got the error
        // on a few: no half.
        let mut r = spent_budget(10, 3);
        let before = r.clone();
        rate_limited_errors(&mut r);
        assert_eq!(r, before);
        // The error on the port's first attempt is no confirmation.
        let mut r = spent_budget(4, 2);
        for x in r
            .iter_mut()
            .filter(|x| x.attempts == 2 && x.state == State::Unreachable)
        {
            x.decided_ns = Some(x.first_probe_ns + 1_000_000);
        }
        let before = r.clone();
        rate_limited_errors(&mut r);
        assert_eq!(r, before);
    }

    #[test]
    fn a_reset_in_the_hosts_name_from_nearer_is_marked_with_both_distances() {
        let target = addr("203.0.113.5");
        let reply = |port: u16, state: State, hops: u8| {
            let mut x = v(port, u64::from(port), state, Reason::Reset);
            x.responder = Some(target);
            x.hops = Some(hops);
            x.ttl = Some(65 - hops);
            if state == State::Open {
                x.reason = Reason::SynAck;
            }
            x
        };
        let mut r = vec![
            reply(22, State::Open, 2),
            reply(80, State::Open, 2),
            reply(81, State::Refused, 2),
            reply(9003, State::Refused, 1),
            v(9000, 1, State::Filtered, Reason::NoResponse),
        ];
        annotate(&mut r);
        let marked: Vec<(u16, Option<u8>)> = r
            .iter()
            .filter(|x| x.host_hops.is_some())
            .map(|x| (x.port, x.host_hops))
            .collect();
        assert_eq!(marked, vec![(9003, Some(2))]);
        // Every reset forged nearer, the SYN-ACKs still tell the host's
        // own distance.
        let mut r: Vec<Verdict> = (1..=50u16).map(|p| reply(p, State::Refused, 1)).collect();
        r.push(reply(443, State::Open, 2));
        r.push(reply(22, State::Open, 2));
        annotate(&mut r);
        assert_eq!(r.iter().filter(|x| x.host_hops == Some(2)).count(), 50);
        // One reply alone, or a split with nothing to go by: no mark.
        for mut r in [
            vec![reply(9003, State::Refused, 1)],
            vec![reply(1, State::Refused, 1), reply(2, State::Refused, 2)],
        ] {
            annotate(&mut r);
            assert!(r.iter().all(|x| x.host_hops.is_none()), "{r:?}");
        }
        // A router's error is not in the host's name: never marked.
        let mut r = vec![reply(22, State::Open, 2), reply(80, State::Open, 2)];
        let mut e = v(9002, 5, State::Unreachable, Reason::AdminProhibited);
        e.responder = Some(addr("198.51.100.1"));
        e.hops = Some(1);
        r.push(e);
        annotate(&mut r);
        assert!(r.iter().all(|x| x.host_hops.is_none()));
    }

    #[test]
    fn a_router_that_cannot_reach_a_host_says_so_for_every_port_once_is_enough() {
        // An unreachable route on a router whose route-error budget other
        // hosts spent: one port got host-unreach, from the router.
        let mut r: Vec<Verdict> = (1..=50u16)
            .map(|p| v(p, u64::from(p), State::Filtered, Reason::NoResponse))
            .collect();
        r[30].state = State::Unreachable;
        r[30].reason = Reason::HostUnreach;
        r[30].responder = Some(addr("198.51.100.1"));
        r[30].icmp_code = Some(1);
        rate_limited_errors(&mut r);
        assert!(r.iter().all(|x| x.reason == Reason::HostUnreach));
        assert_eq!(r.iter().filter(|x| x.inferred.is_some()).count(), 49);
        // Not when the host answered itself (a firewall's odd reject).
        let mut r2: Vec<Verdict> = (1..=50u16)
            .map(|p| v(p, u64::from(p), State::Filtered, Reason::NoResponse))
            .collect();
        r2[30] = r[30].clone();
        r2[30].inferred = None;
        r2[0].state = State::Open;
        r2[0].reason = Reason::SynAck;
        let before = r2.clone();
        rate_limited_errors(&mut r2);
        assert_eq!(r2, before);
    }
}
