//! TTL-limited SYNs (the tcptraceroute / firewalk method): for each port,
//! one SYN per TTL from 1 up; routers answer the expired ones with ICMP
//! time-exceeded, and the last router that still answers for a silent port,
//! against how far an answering port's probes get, shows where the drop is.

use super::probe::{IsnKey, SYN_LEN, build_syn};
use super::send::{ProbeSink, RawSender};
use super::{pick_source_port, route};
use crate::error::Error;
use crate::model::Reason;
use crate::model::{Hop, HopKind, PortTrace};
use crate::source::LiveSource;
use crate::wire::{self, Body, flags};
use std::net::IpAddr;
use std::time::{Duration, Instant};

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
    let max_ttl = opts.max_ttl.clamp(1, 30);
    let n_ports = opts.ports.len().min(4);
    let span = n_ports * usize::from(max_ttl);
    let mut rng = rand::rng();
    // One source port per (port, TTL): the answer's port says which probe.
    let base = loop {
        let b = pick_source_port(&mut rng);
        if usize::from(b) + span <= 65535 {
            break b;
        }
    };
    let r = route::routes(&[opts.target])?;
    let Some(r) = r.into_iter().next() else {
        return Err(Error::Usage(format!("{}: no route", opts.target)));
    };
    let last = base as usize + span - 1;
    let filter = format!(
        "host {} and ((tcp portrange {base}-{last}) or icmp or icmp6)",
        r.source
    );
    let mut cap = LiveSource::open(&r.device, &filter)?;
    let sender = RawSender::open(opts.target.is_ipv4(), opts.target.is_ipv6(), None)
        .map_err(|e| Error::socket("", e))?;
    let mut sender = sender;
    let key = IsnKey::new();
    let sport_of =
        |pi: usize, ttl: u8| base + (pi * usize::from(max_ttl) + usize::from(ttl) - 1) as u16;
    let mut traces: Vec<PortTrace> = opts.ports[..n_ports]
        .iter()
        .map(|&p| PortTrace {
            port: p,
            hops: Vec::new(),
        })
        .collect();

    let record = |traces: &mut Vec<PortTrace>, sport: u16, hop_from: IpAddr, kind: HopKind| {
        let off = usize::from(sport.wrapping_sub(base));
        if off >= span {
            return;
        }
        let (pi, ttl) = (
            off / usize::from(max_ttl),
            (off % usize::from(max_ttl) + 1) as u8,
        );
        let t = &mut traces[pi];
        if !t.hops.iter().any(|h| h.ttl == ttl) {
            t.hops.push(Hop {
                ttl,
                from: hop_from,
                kind,
            });
        }
    };
    for _ in 0..opts.rounds.max(1) {
        for ttl in 1..=max_ttl {
            sender
                .set_ttl(ttl)
                .map_err(|e| Error::socket(&format!("cannot set TTL {ttl}: "), e))?;
            let mut segs = Vec::new();
            for (pi, &port) in opts.ports[..n_ports].iter().enumerate() {
                let sport = sport_of(pi, ttl);
                let isn = key.isn(r.source, sport, opts.target, port);
                let mut seg = [0u8; SYN_LEN];
                if build_syn(&mut seg, r.source, sport, opts.target, port, isn, 0).is_some() {
                    segs.push(seg);
                }
            }
            let batch: Vec<(IpAddr, &[u8])> = segs.iter().map(|s| (opts.target, &s[..])).collect();
            sender.send(&batch).map_err(|e| Error::Send {
                op: "sending trace probes".into(),
                reason: e.to_string(),
            })?;
        }
        let until = Instant::now() + opts.wait;
        let link = cap.link_type();
        loop {
            while let Some(p) = cap.try_next()? {
                let Ok(pkt) = wire::parse(link, p.data) else {
                    continue;
                };
                match &pkt.body {
                    Body::IcmpError(e)
                        if e.quoted.src == r.source && e.quoted.dst == opts.target =>
                    {
                        let q = &e.quoted;
                        let isn = key.isn(q.src, q.sport, q.dst, q.dport);
                        if q.seq.is_some_and(|s| s != isn) {
                            continue;
                        }
                        let exceeded = (!e.v6 && e.icmp_type == 11) || (e.v6 && e.icmp_type == 3);
                        let kind = if exceeded {
                            HopKind::TimeExceeded
                        } else {
                            HopKind::Rejected {
                                reason: Reason::from_icmp(e.v6, e.icmp_type, e.code),
                            }
                        };
                        record(&mut traces, q.sport, pkt.src, kind);
                    }
                    Body::Tcp(t)
                        if pkt.src == opts.target && t.flags & (flags::SYN | flags::RST) != 0 =>
                    {
                        let isn = key.isn(r.source, t.dport, opts.target, t.sport);
                        let ok = t.ack.wrapping_sub(1) == isn
                            || (t.flags & flags::RST != 0 && t.ack == isn);
                        if ok {
                            let reason = if t.flags & flags::RST != 0 {
                                Reason::Reset
                            } else {
                                Reason::SynAck
                            };
                            record(&mut traces, t.dport, pkt.src, HopKind::Reached { reason });
                        }
                    }
                    _ => {}
                }
            }
            let now = Instant::now();
            if now >= until {
                break;
            }
            let mut fds = [libc::pollfd {
                fd: cap.fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            let ms = (until - now).as_millis().min(50) as libc::c_int;
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
        }
    }
    for t in &mut traces {
        t.hops.sort_by_key(|h| h.ttl);
    }
    Ok(traces)
}
