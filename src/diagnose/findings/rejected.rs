//! ICMP rejections: a filter (REJECT) on the host or on a router.

use super::{Case, Kind, Said, application_error, describe_hops};

/// An ICMP error sent from the target's own address.
pub(super) fn by_host(c: &Case) -> Said {
    let (target, port, v) = (c.target, c.port, c.v);
    let summary = format!(
        "Rejected by the host's own firewall or stack: {target} answered port {port} with ICMP {} (type {}, code {}).",
        v.reason.as_str(),
        v.icmp_type.unwrap_or(0),
        v.icmp_code.unwrap_or(0)
    );
    Said {
        kind: Kind::RejectedByHost,
        summary,
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
    let summary = format!(
        "Rejected on the path: the router {responder}, {}, answered port {port} with ICMP {} (type {}, code {}).",
        describe_hops(v.hops),
        v.reason.as_str(),
        v.icmp_type.unwrap_or(0),
        v.icmp_code.unwrap_or(0)
    );
    Said {
        kind: Kind::RejectedOnPath,
        summary,
        details: vec![format!(
            "A filter on {responder} refuses this traffic before it reaches {target}."
        )],
        application_error: application_error(v),
    }
}
