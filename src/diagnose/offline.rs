//! Findings from a capture: the same findings the live diagnosis gives,
//! where the packets hold the evidence (resets by TTL, ICMP senders), and
//! what the capture's DNS answers explain before any SYN.

use super::findings::{self, Finding, Kind};
use super::groups::{self, FindingGroup};
use crate::model::Analysis;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// What a DNS answer in the capture says about a failure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NameFinding {
    pub name: String,
    pub server: IpAddr,
    pub client: IpAddr,
    pub rcode: u8,
    pub ts_ns: u64,
    pub summary: String,
}

/// Past this many ports of one host with findings of one kind, they are
/// counted in one line rather than listed (a port scan has thousands).
const LIST_UP_TO: usize = 10;

/// The findings of one kind on many ports of one host, counted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Counted {
    pub target: IpAddr,
    pub kind: Kind,
    pub ports: usize,
    /// One sentence for all of them.
    pub summary: String,
}

pub struct OfflineFindings {
    /// One per port, for hosts with at most [`LIST_UP_TO`] ports of a kind.
    pub findings: Vec<Finding>,
    /// The findings shared by several hosts, said once each.
    pub groups: Vec<FindingGroup>,
    /// The kinds found on more ports of a host than are listed.
    pub counted: Vec<Counted>,
    /// Names the capture's DNS answers gave to addresses.
    pub names_of: BTreeMap<IpAddr, String>,
    /// Each host's own distance (its replies' most common hop count).
    pub hops_of: BTreeMap<IpAddr, u8>,
    pub names: Vec<NameFinding>,
}

/// The sentence for `n` ports of `target` with findings of `kind`, `fs`
/// being them (the first one's evidence says who answered).
fn count_summary(target: IpAddr, kind: Kind, n: usize, fs: &[&Finding]) -> String {
    let by = fs
        .iter()
        .find_map(|f| f.evidence.first().and_then(|e| e.responder))
        .map_or_else(String::new, |r| r.to_string());
    let n = crate::model::thousands(n as u64);
    match kind {
        Kind::Open => format!(
            "{n} ports open, their SYN-ACKs from {by} rather than {target}: a proxy or load balancer on the path answers for it"
        ),
        Kind::RefusedByHost => {
            format!("{n} ports refused by the host itself (nothing listens there)")
        }
        Kind::MiddleboxReset => format!(
            "{n} ports reset by a device on the path, not by the host (RSTs in its name from another distance)"
        ),
        Kind::RejectedByHost => {
            format!("{n} ports rejected by the host's own firewall or stack with ICMP errors")
        }
        Kind::RejectedOnPath => {
            format!("{n} ports rejected on the path with ICMP errors (the router {by})")
        }
        Kind::HostUnreachable => {
            format!("host unreachable on {n} ports: the router {by} could not reach {target}")
        }
        Kind::NetworkUnreachable => {
            format!("network unreachable on {n} ports: the router {by} has no route to {target}")
        }
        Kind::DroppedHostUp => format!(
            "{n} ports dropped silently, while the host answers on others (a DROP rule on it or on the path)"
        ),
        Kind::NoAnswerAtAll => {
            format!("no answer at all on the {n} ports probed, and no router reported an error")
        }
        Kind::AcceptsThenResets => format!("{n} ports accept, then reset the connection"),
        Kind::AcceptsThenCloses => format!("{n} ports accept, then close without a byte"),
        Kind::AnsweredOnBehalf => {
            format!("{n} ports answered SYN-ACK by a device on the host's behalf")
        }
    }
}

pub fn offline_findings(a: &Analysis) -> OfflineFindings {
    let mut by_target: BTreeMap<IpAddr, Vec<crate::model::Verdict>> = BTreeMap::new();
    for v in &a.results {
        by_target.entry(v.target).or_default().push(v.clone());
    }
    let mut out = Vec::new();
    let mut counted = Vec::new();
    let mut hops_of = BTreeMap::new();
    for (t, vs) in &by_target {
        let host = findings::profile(*t, vs);
        if let Some(h) = host.hops {
            hops_of.insert(*t, h);
        }
        let fs: Vec<Finding> = vs
            .iter()
            .filter(|v| v.state != crate::model::State::Open)
            .map(|v| findings::finding_of(v, &host))
            .collect();
        // Kinds on more ports than are listed, in the order first found.
        let mut kinds: Vec<(Kind, usize)> = Vec::new();
        for f in &fs {
            match kinds.iter_mut().find(|(k, _)| *k == f.kind) {
                Some((_, n)) => *n += 1,
                None => kinds.push((f.kind, 1)),
            }
        }
        let many: Vec<Kind> = kinds
            .iter()
            .filter(|(_, n)| *n > LIST_UP_TO)
            .map(|(k, _)| *k)
            .collect();
        for k in &many {
            let of: Vec<&Finding> = fs.iter().filter(|f| f.kind == *k).collect();
            counted.push(Counted {
                target: *t,
                kind: *k,
                ports: of.len(),
                summary: count_summary(*t, *k, of.len(), &of),
            });
        }
        out.extend(fs.into_iter().filter(|f| !many.contains(&f.kind)));
    }
    let mut names = Vec::new();
    let mut named = std::collections::HashSet::new();
    for d in &a.dns {
        let what = match d.rcode {
            3 => Some(format!(
                "The resolver {} told {} that {} does not exist (NXDOMAIN): a connection to it failed before any SYN was sent.",
                d.server, d.client, d.name
            )),
            2 => Some(format!(
                "The resolver {} could not resolve {} for {} (SERVFAIL): no address, so no connection.",
                d.server, d.name, d.client
            )),
            5 => Some(format!(
                "The resolver {} refused to resolve {} for {} (REFUSED).",
                d.server, d.name, d.client
            )),
            0 if d.addresses.is_empty() => Some(format!(
                "{} exists but the resolver {} gave {} no address of the type asked (an A-only name asked for AAAA, or the reverse).",
                d.name, d.server, d.client
            )),
            _ => None,
        };
        if let Some(summary) = what
            && named.insert((&d.name, d.server, d.client, d.rcode))
        {
            names.push(NameFinding {
                name: d.name.clone(),
                server: d.server,
                client: d.client,
                rcode: d.rcode,
                ts_ns: d.ts_ns,
                summary,
            });
        }
    }
    let mut names_of = BTreeMap::new();
    for d in &a.dns {
        for addr in &d.addresses {
            names_of.entry(*addr).or_insert_with(|| d.name.clone());
        }
    }
    let groups = groups::group(&out).0;
    OfflineFindings {
        findings: out,
        groups,
        counted,
        names_of,
        hops_of,
        names,
    }
}
