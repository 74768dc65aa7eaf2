//! Findings from a capture: the same findings the live diagnosis gives,
//! where the packets hold the evidence (resets by TTL, ICMP senders), and
//! what the capture's DNS answers explain before any SYN.

use super::findings::{self, Finding, Kind};
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

/// Past this many ports of one host refused by the host itself, they are
/// counted in one line rather than listed (a port scan has thousands).
const LIST_REFUSED_UP_TO: usize = 10;

pub struct OfflineFindings {
    pub findings: Vec<Finding>,
    /// Names the capture's DNS answers gave to addresses.
    pub names_of: BTreeMap<IpAddr, String>,
    /// (target, count) of refused-by-host findings left out of the list.
    pub refused_counts: Vec<(IpAddr, usize)>,
    pub names: Vec<NameFinding>,
}

pub fn offline_findings(a: &Analysis) -> OfflineFindings {
    let mut by_target: BTreeMap<IpAddr, Vec<crate::model::Verdict>> = BTreeMap::new();
    for v in &a.results {
        by_target.entry(v.target).or_default().push(v.clone());
    }
    let mut out = Vec::new();
    let mut refused_counts = Vec::new();
    for (t, vs) in &by_target {
        let mut fs: Vec<Finding> = vs
            .iter()
            .filter(|v| v.state != crate::model::State::Open)
            .filter_map(|v| findings::finding(*t, v.port, vs))
            .collect();
        let refused = fs.iter().filter(|f| f.kind == Kind::RefusedByHost).count();
        if refused > LIST_REFUSED_UP_TO {
            fs.retain(|f| f.kind != Kind::RefusedByHost);
            refused_counts.push((*t, refused));
        }
        out.extend(fs);
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
    OfflineFindings {
        findings: out,
        names_of,
        refused_counts,
        names,
    }
}
