//! Unreachable: a router that cannot deliver to the host or its network.

use super::{Case, Kind, Said, application_error, describe_hops};

/// Why a router said host-unreachable, by when it said it: Linux gives up
/// on ARP (neighbour discovery) about 3 s after the first packet for the
/// host, while a router without a route answers each SYN at once.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Why {
    /// The address resolution failed: the error came seconds after the
    /// first SYN, and not right after a retransmission (or at ARP's time).
    Arp,
    /// It came too soon for that: within a second of the first SYN, or at
    /// once after a retransmission (`after_ms` after it).
    NoRoute { after_ms: f64 },
    /// No timing (an inferred verdict).
    Unknown,
}

/// Within this long of a SYN, an error answers that SYN.
const AT_ONCE_MS: f64 = 250.0;

/// The timing of `c`'s error: its own, or for an inferred verdict, that of
/// the same router's error on a port told by a packet of its own.
fn timing(c: &Case) -> Option<(f64, Option<f64>)> {
    match (c.v.rtt_ms, c.host.unreach_timing) {
        (Some(first), _) => Some((first, c.v.rtt_last_ms)),
        (None, Some((router, first, last))) if c.v.responder == Some(router) => Some((first, last)),
        _ => None,
    }
}

fn why(timing: Option<(f64, Option<f64>)>) -> Why {
    let Some((first, last)) = timing else {
        return Why::Unknown;
    };
    let last = last.unwrap_or(first);
    if first < 1000.0 {
        Why::NoRoute { after_ms: first }
    } else if last >= AT_ONCE_MS || (2800.0..=3400.0).contains(&first) {
        Why::Arp
    } else {
        Why::NoRoute { after_ms: last }
    }
}

/// The host-unreachable finding's first detail when the router's ARP failed.
const ARP: &str = "Its address resolution (ARP / neighbour discovery) got no answer: nothing uses that address on the router's network, or the host is down or unplugged.";
/// ... and the start of it when the router has no route.
const NO_ROUTE: &str = "The router has no way to";

/// For a router's host-unreachable verdict `v`, by its own timing: its
/// ARP (neighbour discovery) failed (true), it has no route (false), or
/// no timing to tell (None).
pub fn arp_failed(v: &crate::model::Verdict) -> Option<bool> {
    match why(v.rtt_ms.map(|first| (first, v.rtt_last_ms))) {
        Why::Arp => Some(true),
        Why::NoRoute { .. } => Some(false),
        Why::Unknown => None,
    }
}

/// What a host-unreachable finding `f` blames, for its picture: the
/// router's ARP (true), its routes (false), or it cannot tell (None).
pub fn blames_arp(f: &super::Finding) -> Option<bool> {
    match f.details.first() {
        Some(d) if d == ARP => Some(true),
        Some(d) if d.starts_with(NO_ROUTE) => Some(false),
        _ => None,
    }
}

/// Host unreachable from a router: its ARP / neighbour discovery failed,
/// or it has no route to the host (told apart by the error's timing).
pub(super) fn host(c: &Case) -> Said {
    let (target, v, responder) = (c.target, c.v, &c.responder);
    let summary = format!(
        "Host unreachable: the router {responder}, {}, could not reach {target}.",
        describe_hops(v.hops)
    );
    let t = timing(c);
    // Said of the error that answered another port, where this one's was
    // inferred from it.
    let which = if v.rtt_ms.is_some() {
        "The error"
    } else {
        "Its error for the ports told by a packet of their own"
    };
    let details = match why(t) {
        Why::Arp => {
            let mut d = vec![ARP.to_string()];
            if let Some((ms, _)) = t {
                d.push(format!(
                    "{which} came {:.1} s after the first SYN, the time a router spends on ARP before giving up.",
                    ms / 1000.0
                ));
            }
            d
        }
        Why::NoRoute { after_ms } => vec![
            format!(
                "{NO_ROUTE} {target}: an `unreachable` route for it, or routing that leads nowhere. {which} came {} after {}, too soon for a failed ARP (about 3 s): the router did not look for the host on a network of its own.",
                soon(after_ms),
                if t.is_some_and(|(first, last)| last.is_some() && after_ms < first) {
                    "a retransmitted SYN"
                } else {
                    "the SYN"
                }
            ),
            format!("Check the routes to {target} on {responder} (`ip route get {target}` there)."),
        ],
        Why::Unknown => vec![format!(
            "Either its address resolution (ARP / neighbour discovery) for {target} got no answer (the host is down or absent), or it has no route to it; no error of its came with a time to tell which."
        )],
    };
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

/// How soon an error came: to the microsecond below a millisecond (a
/// router next door answers in tens of them: "0.0 ms" said nothing).
fn soon(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.3} ms")
    } else {
        format!("{ms:.1} ms")
    }
}
