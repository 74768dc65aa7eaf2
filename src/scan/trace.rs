//! TTL-limited SYNs (the tcptraceroute / firewalk method): for each port,
//! one SYN per TTL from 1 up; routers answer the expired ones with ICMP
//! time-exceeded, and the last router that still answers for a silent port,
//! against how far an answering port's probes get, shows where the drop is.

use super::engine::EngineConfig;
use super::net::{Network, RawNetwork};
use super::plan::{Plan, Probe};
use super::run::{self, Observer, RunConfig};
use super::{pick_source_port, route};
use crate::error::Error;
use crate::model::{Hop, HopKind, PortTrace, Reason};
use crate::track::{self, Answer, EvidenceKind};
use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct TraceOptions {
    pub target: IpAddr,
    pub ports: Vec<u16>,
    pub max_ttl: u8,
    /// Rounds of probes (a router may drop an ICMP error now and then).
    pub rounds: u8,
    pub wait: Duration,
}

pub fn trace(opts: &TraceOptions) -> Result<Vec<PortTrace>, Error> {
    let r = route::routes(&[opts.target])?;
    let Some(r) = r.into_iter().next() else {
        return Err(Error::Usage(format!("{}: no route", opts.target)));
    };
    let (plan, base) = plan(opts, r.source);
    let last = usize::from(base) + plan.len().saturating_sub(1);
    let filter = format!("(tcp portrange {base}-{last}) or icmp or icmp6");
    let mut net = RawNetwork::open(&[r], &filter, crate::source::live_buffer_for(plan.len()))?;
    trace_on(&mut net, opts, &plan, base)
}

/// The probes: one per (port, TTL), TTL by TTL, each from a source port of
/// its own (`base` on), so the answer's port says which probe it answers.
fn plan(opts: &TraceOptions, source: IpAddr) -> (Plan, u16) {
    let max_ttl = opts.max_ttl.clamp(1, 30);
    let ports = &opts.ports[..opts.ports.len().min(4)];
    let span = ports.len() * usize::from(max_ttl);
    let mut rng = rand::rng();
    let base = loop {
        let b = pick_source_port(&mut rng);
        if usize::from(b) + span <= 65535 {
            break b;
        }
    };
    let mut probes = Vec::with_capacity(span);
    for ttl in 1..=max_ttl {
        for (pi, &port) in ports.iter().enumerate() {
            probes.push(Probe {
                source,
                sport: base + (pi * usize::from(max_ttl) + usize::from(ttl) - 1) as u16,
                target: opts.target,
                port,
                ttl: Some(ttl),
            });
        }
    }
    (Plan::new(probes, 0), base)
}

/// The trace of `plan` (from [`plan`]) on any network: the run loop with
/// every probe sent `rounds` times at most, `wait` apart, and what each
/// TTL's answer says.
fn trace_on(
    net: &mut dyn Network,
    opts: &TraceOptions,
    plan: &Plan,
    base: u16,
) -> Result<Vec<PortTrace>, Error> {
    let max_ttl = opts.max_ttl.clamp(1, 30);
    let wait = opts.wait;
    let cfg = RunConfig {
        engine: EngineConfig::fixed(0, opts.rounds.max(1) - 1, wait, plan.len().max(1)),
        track: track::Config::default(),
        wait: Some(Duration::ZERO),
        keep_dns: false,
        stream: false,
    };
    let mut hops = Hops {
        plan,
        base,
        max_ttl,
        traces: opts.ports[..opts.ports.len().min(4)]
            .iter()
            .map(|&p| PortTrace {
                port: p,
                hops: Vec::new(),
            })
            .collect(),
    };
    let mut session = run::Session::new(net, &cfg, None);
    let done = run::run(net, plan, &mut session, &cfg, &mut hops)?;
    if let Some(reason) = done.stopped {
        return Err(Error::Capture {
            device: net.device(0).to_string(),
            reason,
        });
    }
    let mut traces = hops.traces;
    for t in &mut traces {
        t.hops.sort_by_key(|h| h.ttl);
    }
    Ok(traces)
}

/// Records, per port and TTL, the first answer: a router's time-exceeded,
/// another ICMP error, or the target itself.
struct Hops<'a> {
    plan: &'a Plan,
    base: u16,
    max_ttl: u8,
    traces: Vec<PortTrace>,
}

impl Observer for Hops<'_> {
    fn answered(&mut self, a: &Answer) {
        if self.plan.index_of(a).is_none() {
            return;
        }
        let kind = match a.kind {
            EvidenceKind::Icmp {
                v6,
                icmp_type,
                code,
            } => {
                let exceeded = (!v6 && icmp_type == 11) || (v6 && icmp_type == 3);
                if exceeded {
                    HopKind::TimeExceeded
                } else {
                    HopKind::Rejected {
                        reason: Reason::from_icmp(v6, icmp_type, code),
                    }
                }
            }
            EvidenceKind::SynAck => HopKind::Reached {
                reason: Reason::SynAck,
            },
            EvidenceKind::SplitSyn => HopKind::Reached {
                reason: Reason::SplitHandshakeSyn,
            },
            EvidenceKind::Reset => HopKind::Reached {
                reason: Reason::Reset,
            },
        };
        let off = usize::from(a.sport.wrapping_sub(self.base));
        let per_port = usize::from(self.max_ttl);
        let (pi, ttl) = (off / per_port, (off % per_port + 1) as u8);
        if let Some(t) = self.traces.get_mut(pi)
            && !t.hops.iter().any(|h| h.ttl == ttl)
        {
            t.hops.push(Hop {
                ttl,
                from: a.responder,
                kind,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::addr;
    use crate::scan::fake::{Behaviour, FakeHost, FakeNetwork};

    #[test]
    fn ttl_limited_probes_find_where_a_drop_is() {
        let host = FakeHost::new("203.0.113.2", Behaviour::Drop)
            .port(22, Behaviour::Open)
            .behind(&["198.51.100.1"]);
        let mut net = FakeNetwork::new(vec![host]);
        let opts = TraceOptions {
            target: addr("203.0.113.2"),
            ports: vec![9004, 22],
            max_ttl: 3,
            rounds: 2,
            wait: Duration::from_millis(800),
        };
        let (plan, base) = plan(&opts, net.source_of(opts.target));
        let t = trace_on(&mut net, &opts, &plan, base).unwrap();
        let router = Hop {
            ttl: 1,
            from: addr("198.51.100.1"),
            kind: HopKind::TimeExceeded,
        };
        assert_eq!(t[0].port, 9004);
        assert_eq!(t[0].hops, vec![router], "the drop is after hop 1");
        let reached = |ttl| Hop {
            ttl,
            from: addr("203.0.113.2"),
            kind: HopKind::Reached {
                reason: Reason::SynAck,
            },
        };
        assert_eq!(t[1].hops, vec![router, reached(2), reached(3)]);
        assert_eq!(t[1].reached_at(), Some(2));
        // Silent probes were sent once more (two rounds); answered ones once.
        assert_eq!(net.sent.syns[&(opts.target, 9004)], 1 + 2 * 2);
        assert_eq!(net.sent.syns[&(opts.target, 22)], 3);
        assert!(
            net.elapsed() <= Duration::from_millis(1700),
            "{:?}",
            net.elapsed()
        );
    }
}
