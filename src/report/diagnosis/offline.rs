//! A capture's findings as text, for the terminal before the tables.

use crate::diagnose::Kind;
use crate::diagnose::groups::{self, GROUP_FROM, list_hosts};
use crate::diagnose::offline::{Counted, OfflineFindings};
use std::net::IpAddr;

/// The findings as text for the terminal, before the tables.
pub fn render_findings(f: &OfflineFindings) -> String {
    let mut s = String::new();
    if f.findings.is_empty() && f.names.is_empty() && f.counted.is_empty() {
        return s;
    }
    s.push_str("Findings:\n");
    for n in &f.names {
        s.push_str(&format!("- {}: {}\n", n.name, n.summary));
    }
    // The same finding on many hosts once, then the others one by one.
    let (shared, rest) = groups::group(&f.findings);
    for g in &shared {
        s.push_str(&format!(
            "- {} Hosts: {}.\n",
            g.summary,
            list_hosts(&g.targets)
        ));
    }
    for x in rest {
        let app = x
            .application_error
            .as_ref()
            .map(|a| format!(" ({a})"))
            .unwrap_or_default();
        let target = match x.target {
            IpAddr::V6(_) => format!("[{}]", x.target),
            IpAddr::V4(_) => x.target.to_string(),
        };
        let name = f
            .names_of
            .get(&x.target)
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        s.push_str(&format!(
            "- {target}:{}{name} — {}{app}\n",
            x.port, x.summary
        ));
    }
    // Counted kinds: the same kind counted on many hosts is one line too.
    let mut kinds: Vec<Kind> = Vec::new();
    for c in &f.counted {
        if !kinds.contains(&c.kind) {
            kinds.push(c.kind);
        }
    }
    for k in kinds {
        let of: Vec<&Counted> = f.counted.iter().filter(|c| c.kind == k).collect();
        if of.len() >= GROUP_FROM {
            let hosts: Vec<IpAddr> = of.iter().map(|c| c.target).collect();
            let ports: usize = of.iter().map(|c| c.ports).sum();
            s.push_str(&format!(
                "- {} hosts, {} ports in all: {}. Hosts: {}.\n",
                hosts.len(),
                crate::report::thousands(ports as u64),
                kind_words(k),
                list_hosts(&hosts)
            ));
        } else {
            for c in of {
                s.push_str(&format!("- {}: {}\n", c.target, c.summary));
            }
        }
    }
    s.push('\n');
    s
}

/// What a kind means, for a line over many hosts.
fn kind_words(k: Kind) -> &'static str {
    match k {
        Kind::Open => "open, answered by a proxy or load balancer on the path",
        Kind::RefusedByHost => "refused by the hosts themselves (nothing listens there)",
        Kind::MiddleboxReset => "reset by a device on the path, not by the hosts",
        Kind::RejectedByHost => "rejected by the hosts' own firewalls or stacks with ICMP errors",
        Kind::RejectedOnPath => "rejected on the path with ICMP errors",
        Kind::HostUnreachable => "host unreachable (the last router could not reach them)",
        Kind::NetworkUnreachable => "network unreachable (no route to them)",
        Kind::DroppedHostUp => "dropped silently while the hosts answer on other ports",
        Kind::NoAnswerAtAll => "no answer at all, and no router reported an error",
        Kind::AcceptsThenResets => "accepted, then reset",
        Kind::AcceptsThenCloses => "accepted, then closed without a byte",
        Kind::AnsweredOnBehalf => "answered SYN-ACK by a device on the hosts' behalf",
    }
}
