//! Refused: a RST, sent by the host's own TCP stack or forged on the path.

use super::{Case, Kind, Said, describe_hops};

/// What connect() sees for a RST.
const ECONNREFUSED: &str = "connect() fails with ECONNREFUSED \"Connection refused\"";

/// Open ports worth naming next to a refused one: the nearest few by
/// number (a neighbour like 8080 for 8081 is the classic wrong port).
fn nearby_open(port: u16, open: &[u16]) -> Vec<u16> {
    let mut v: Vec<u16> = open.iter().copied().filter(|p| *p != port).collect();
    v.sort_by_key(|p| (p.abs_diff(port), *p));
    v.truncate(3);
    v
}

/// The RST came from the host's address and distance: nothing listens.
pub(super) fn by_host(c: &Case) -> Said {
    let (target, port, v) = (c.target, c.port, c.v);
    let mut details = Vec::new();
    let near = nearby_open(port, &c.host.open);
    let mut summary = if v.hops.is_some() {
        format!("Refused by the host itself: nothing listens on port {port} of {target}.")
    } else {
        format!(
            "Refused in {target}'s name: nothing listens on port {port}, or a device on the path refuses it for the host."
        )
    };
    if let Some(first) = near.first() {
        summary.push_str(&format!(" Port {first} is open: wrong port?"));
        details.push(format!(
            "Open ports found nearby: {}.",
            near.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    details.push(match v.hops {
        Some(_) => format!(
            "The RST came from {target}, {}, the same distance as the host's other replies: its own TCP stack answered.",
            describe_hops(v.hops)
        ),
        None => format!(
            "The connection was reset in {target}'s name (its distance is not known, so a device on the path cannot be ruled out)."
        ),
    });
    details.push(
        "A server that is down (or not started, or listening on another address) looks exactly like this."
            .into(),
    );
    Said {
        kind: Kind::RefusedByHost,
        summary,
        details,
        application_error: Some(ECONNREFUSED.to_string()),
    }
}

/// The RST came from another distance than the host's replies: forged.
pub(super) fn middlebox(c: &Case) -> Said {
    let (port, v) = (c.port, c.v);
    let summary = format!(
        "Reset by a device on the path, not by the host: the RST for port {port} came from {}, the host's own replies from {}.",
        describe_hops(v.hops),
        describe_hops(c.host.hops)
    );
    let details = vec![format!(
        "It carries {}'s address but its TTL ({}) says it was sent from {}: a firewall rejecting with tcp-reset, an IPS or a load balancer forged it.",
        c.responder,
        v.ttl.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
        describe_hops(v.hops)
    )];
    Said {
        kind: Kind::MiddleboxReset,
        summary,
        details,
        application_error: Some(ECONNREFUSED.to_string()),
    }
}
