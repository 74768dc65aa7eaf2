//! ICMP rejections: a filter (REJECT) on the host or on a router.

use super::{Case, Kind, Said, application_error, describe_hops};
use crate::model::Verdict;

/// "ICMP admin-prohibited (type 3, code 13)".
fn icmp(v: &Verdict) -> String {
    format!(
        "ICMP {} (type {}, code {})",
        v.reason.as_str(),
        v.icmp_type.unwrap_or(0),
        v.icmp_code.unwrap_or(0)
    )
}

/// An ICMP error sent from the target's own address.
pub(super) fn by_host(c: &Case) -> Said {
    let (target, port, v) = (c.target, c.port, c.v);
    Said {
        kind: Kind::RejectedByHost,
        summary: format!(
            "Rejected by the host's own firewall or stack: {target} answered port {port} with {}.",
            icmp(v)
        ),
        details: vec![
            "The host is up; a REJECT rule on it (iptables, nftables, firewalld) refuses this port."
                .into(),
        ],
        application_error: application_error(v),
    }
}

/// An ICMP error from a router before the host.
pub(super) fn on_path(c: &Case) -> Said {
    let (target, port, v, responder) = (c.target, c.port, c.v, &c.responder);
    Said {
        kind: Kind::RejectedOnPath,
        summary: format!(
            "Rejected on the path: the router {responder}, {}, answered port {port} with {}.",
            describe_hops(v.hops),
            icmp(v)
        ),
        details: vec![format!(
            "A filter on {responder} refuses this traffic before it reaches {target}."
        )],
        application_error: application_error(v),
    }
}
