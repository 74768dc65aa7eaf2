//! Unreachable: a router that cannot deliver to the host or its network.

use super::{Case, Kind, Said, application_error, describe_hops};

/// Host unreachable from a router: its ARP / neighbour discovery failed.
pub(super) fn host(c: &Case) -> Said {
    let (target, v, responder) = (c.target, c.v, &c.responder);
    let summary = format!(
        "Host unreachable: the router {responder}, {}, could not reach {target}.",
        describe_hops(v.hops)
    );
    let mut details = vec![
        "Its address resolution (ARP / neighbour discovery) got no answer: nothing uses that address on the router's network, or the host is down or unplugged."
            .to_string(),
    ];
    if let Some(ms) = v.rtt_ms
        && ms > 1000.0
    {
        details.push(format!(
            "The error came {:.1} s after the first SYN, the time a router spends on ARP before giving up.",
            ms / 1000.0
        ));
    }
    Said {
        kind: Kind::HostUnreachable,
        summary,
        details,
        application_error: application_error(v),
    }
}

/// Network unreachable (or no route): a router has no route to the host.
pub(super) fn network(c: &Case) -> Said {
    let (target, v, responder) = (c.target, c.v, &c.responder);
    let summary = format!(
        "Network unreachable: the router {responder}, {}, has no route to {target}.",
        describe_hops(v.hops)
    );
    Said {
        kind: Kind::NetworkUnreachable,
        summary,
        details: vec!["Check the routing tables on the path, or the address.".into()],
        application_error: application_error(v),
    }
}
