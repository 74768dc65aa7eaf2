//! Findings across hosts: the same finding (kind, port, sender) on many
//! hosts said once, with the hosts ("port 5432 dropped on 37 hosts"), so a
//! /24's findings read in a few lines. Pure: findings in, groups out.

use super::findings::{Finding, Kind};
use crate::model::Reason;
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::net::IpAddr;

/// The same finding on this many hosts or more is said once.
pub const GROUP_FROM: usize = 3;

/// Hosts named in a group's text line before "and N more".
const LIST_HOSTS: usize = 5;

/// One finding shared by several hosts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingGroup {
    pub kind: Kind,
    /// The port; none for a finding about the whole host (unreachable, no
    /// answer at all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Who answered, when it was not each host itself (a router, a
    /// proxy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub responder: Option<IpAddr>,
    /// One sentence for all of them.
    pub summary: String,
    /// The hosts, in the order their findings came.
    pub targets: Vec<IpAddr>,
}

/// What makes two hosts' findings the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    kind: Kind,
    port: Option<u16>,
    /// The sender, when not the target itself.
    responder: Option<IpAddr>,
    reason: Reason,
    icmp: Option<(u8, u8)>,
    /// For a forged reset: the distance it came from.
    hops: Option<u8>,
}

fn whole_host(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::HostUnreachable | Kind::NetworkUnreachable | Kind::NoAnswerAtAll
    )
}

fn key(f: &Finding) -> Key {
    let e = f.evidence.first();
    let responder = e.and_then(|e| e.responder).filter(|r| *r != f.target);
    Key {
        kind: f.kind,
        port: (!whole_host(f.kind)).then_some(f.port),
        responder,
        reason: e.map_or(Reason::NoResponse, |e| e.reason),
        icmp: e.and_then(|e| Some((e.icmp_type?, e.icmp_code?))),
        hops: e
            .and_then(|e| e.hops)
            .filter(|_| f.kind == Kind::MiddleboxReset),
    }
}

/// Groups the findings shared by at least [`GROUP_FROM`] hosts; returns
/// the groups and the findings left alone (in their order).
pub fn group(findings: &[Finding]) -> (Vec<FindingGroup>, Vec<&Finding>) {
    let mut order: Vec<(Key, Vec<usize>)> = Vec::new();
    let mut at: FxHashMap<Key, usize> = FxHashMap::default();
    for (i, f) in findings.iter().enumerate() {
        let k = key(f);
        let slot = *at.entry(k).or_insert_with(|| {
            order.push((k, Vec::new()));
            order.len() - 1
        });
        order[slot].1.push(i);
    }
    let mut groups = Vec::new();
    let mut alone = vec![true; findings.len()];
    for (k, members) in &order {
        let mut targets: Vec<IpAddr> = Vec::new();
        for &i in members {
            if !targets.contains(&findings[i].target) {
                targets.push(findings[i].target);
            }
        }
        if targets.len() < GROUP_FROM {
            continue;
        }
        for &i in members {
            alone[i] = false;
        }
        groups.push(FindingGroup {
            kind: k.kind,
            port: k.port,
            responder: k.responder,
            summary: summary(k, targets.len()),
            targets,
        });
    }
    let rest = findings
        .iter()
        .zip(alone)
        .filter_map(|(f, a)| a.then_some(f))
        .collect();
    (groups, rest)
}

/// "ICMP admin-prohibited (type 3, code 13)".
fn icmp(k: &Key) -> String {
    let (t, c) = k.icmp.unwrap_or((0, 0));
    format!("ICMP {} (type {t}, code {c})", k.reason.as_str())
}

fn summary(k: &Key, n: usize) -> String {
    let port = k.port.unwrap_or(0);
    let by = k
        .responder
        .map_or_else(|| "an unknown sender".to_string(), |r| r.to_string());
    match k.kind {
        Kind::Open => format!(
            "Port {port} is open on {n} hosts, but the SYN-ACK came from {by}: a proxy or load balancer on the path answers for them."
        ),
        Kind::RefusedByHost => {
            format!("Refused by the hosts themselves: nothing listens on port {port} of {n} hosts.")
        }
        Kind::MiddleboxReset => format!(
            "Reset by a device on the path, not by the hosts: the RST for port {port} of {n} hosts came from {}{}, not from the hosts' own distance.",
            k.responder
                .map_or_else(|| "their addresses".to_string(), |r| r.to_string()),
            k.hops.map(|h| format!(" at hop {h}")).unwrap_or_default()
        ),
        Kind::RejectedByHost => format!(
            "Rejected by the hosts' own firewalls or stacks: {n} hosts answered port {port} with {}.",
            icmp(k)
        ),
        Kind::RejectedOnPath => format!(
            "Rejected on the path: the router {by} answered port {port} of {n} hosts with {}.",
            icmp(k)
        ),
        Kind::HostUnreachable => {
            format!("Host unreachable: the router {by} could not reach {n} hosts.")
        }
        Kind::NetworkUnreachable => {
            format!("Network unreachable: the router {by} has no route to {n} hosts.")
        }
        Kind::DroppedHostUp => format!(
            "Dropped silently: port {port} got no answer on {n} hosts that answer on other ports (a DROP rule on them or on the path)."
        ),
        Kind::NoAnswerAtAll => format!(
            "No answer at all: {n} hosts answered none of the probed ports, and no router reported an error."
        ),
        Kind::AcceptsThenResets => format!(
            "Accepted, then reset: port {port} of {n} hosts completes the handshake, then resets the connection."
        ),
        Kind::AcceptsThenCloses => format!(
            "Accepted, then closed: port {port} of {n} hosts completes the handshake, then closes without a byte."
        ),
        Kind::AnsweredOnBehalf => format!(
            "A device answers SYN-ACK on behalf of {n} hosts: most of their ports answer the SYN, few are served."
        ),
    }
}

/// "203.0.113.5, 203.0.113.9, ... and 32 more".
pub fn list_hosts(targets: &[IpAddr]) -> String {
    let shown: Vec<String> = targets
        .iter()
        .take(LIST_HOSTS)
        .map(|t| t.to_string())
        .collect();
    let more = targets.len().saturating_sub(LIST_HOSTS);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::findings::EvidencePacket;
    use crate::model::State;

    fn f(target: &str, port: u16, kind: Kind, responder: Option<&str>) -> Finding {
        let target: IpAddr = target.parse().unwrap();
        Finding {
            target,
            port,
            kind,
            summary: format!("one of {target}"),
            details: Vec::new(),
            application_error: None,
            evidence: vec![EvidencePacket {
                port,
                state: State::Filtered,
                reason: Reason::NoResponse,
                responder: responder.map(|r| r.parse().unwrap()),
                ttl: None,
                hops: None,
                icmp_type: None,
                icmp_code: None,
                rtt_ms: None,
                probes: 2,
            }],
        }
    }

    #[test]
    fn the_same_finding_on_three_hosts_is_said_once() {
        let mut fs: Vec<Finding> = (1..=37)
            .map(|i| f(&format!("198.51.100.{i}"), 5432, Kind::DroppedHostUp, None))
            .collect();
        // Two hosts share another: below the threshold, each keeps its own.
        fs.push(f(
            "198.51.100.1",
            22,
            Kind::RefusedByHost,
            Some("198.51.100.1"),
        ));
        fs.push(f(
            "198.51.100.2",
            22,
            Kind::RefusedByHost,
            Some("198.51.100.2"),
        ));
        // A router's host-unreachable, every port of 3 hosts: one group,
        // each host once.
        for h in [200, 201, 202] {
            for p in [80, 443] {
                fs.push(f(
                    &format!("198.51.100.{h}"),
                    p,
                    Kind::HostUnreachable,
                    Some("198.51.100.254"),
                ));
            }
        }
        let (groups, rest) = group(&fs);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].port, Some(5432));
        assert_eq!(groups[0].targets.len(), 37);
        assert!(
            groups[0]
                .summary
                .contains("port 5432 got no answer on 37 hosts")
        );
        assert_eq!(groups[1].port, None);
        assert_eq!(groups[1].targets.len(), 3);
        assert_eq!(
            groups[1].summary,
            "Host unreachable: the router 198.51.100.254 could not reach 3 hosts."
        );
        assert_eq!(rest.len(), 2);
        assert!(rest.iter().all(|r| r.port == 22));
        assert_eq!(
            list_hosts(&groups[0].targets),
            "198.51.100.1, 198.51.100.2, 198.51.100.3, 198.51.100.4, 198.51.100.5 and 32 more"
        );
    }

    #[test]
    fn different_senders_or_ports_are_different_findings() {
        let fs = vec![
            f("192.0.2.1", 80, Kind::RejectedOnPath, Some("192.0.2.254")),
            f("192.0.2.2", 80, Kind::RejectedOnPath, Some("192.0.2.253")),
            f("192.0.2.3", 80, Kind::RejectedOnPath, Some("192.0.2.254")),
            f("192.0.2.4", 81, Kind::RejectedOnPath, Some("192.0.2.254")),
        ];
        let (groups, rest) = group(&fs);
        assert!(groups.is_empty());
        assert_eq!(rest.len(), 4);
    }
}
