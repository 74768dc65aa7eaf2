//! Findings: verdicts turned into the answer to "why is my connection
//! refused (or hanging), and which part is at fault?", in plain language,
//! each with the packets that show it. Pure: verdicts in, findings out.

use crate::model::{Reason, State, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Something accepts connections.
    Open,
    /// The host itself reset the connection: nothing listens there.
    RefusedByHost,
    /// A reset that came from nearer (or farther) than the host's own
    /// replies: a device on the path forged it.
    MiddleboxReset,
    /// An ICMP error from the host's own firewall or stack.
    RejectedByHost,
    /// An ICMP error from a router on the path.
    RejectedOnPath,
    /// The last router could not reach the host (ARP / neighbour
    /// discovery failed).
    HostUnreachable,
    /// A router has no route to the network.
    NetworkUnreachable,
    /// Silence, while the host answers on other ports.
    DroppedHostUp,
    /// Silence on every probed port.
    NoAnswerAtAll,
}

/// One packet that shows a finding: who sent it and what it was.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvidencePacket {
    pub port: u16,
    pub state: State,
    pub reason: Reason,
    pub responder: Option<IpAddr>,
    pub ttl: Option<u8>,
    pub hops: Option<u8>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    pub rtt_ms: Option<f64>,
    pub probes: u32,
}

impl From<&Verdict> for EvidencePacket {
    fn from(v: &Verdict) -> Self {
        EvidencePacket {
            port: v.port,
            state: v.state,
            reason: v.reason,
            responder: v.responder,
            ttl: v.ttl,
            hops: v.hops,
            icmp_type: v.icmp_type,
            icmp_code: v.icmp_code,
            rtt_ms: v.rtt_ms,
            probes: v.probes,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub target: IpAddr,
    pub port: u16,
    pub kind: Kind,
    /// One sentence: what happened and who did it.
    pub summary: String,
    /// What it means and what to check next.
    pub details: Vec<String>,
    /// What an application's connect() sees, when it fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_error: Option<String>,
    /// The deciding packets: the port's own, then the reference ports'.
    pub evidence: Vec<EvidencePacket>,
}

/// What the target's own replies look like, learnt from every probed port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostProfile {
    /// Hop distance of the replies sent from the target's address (the most
    /// common one), if any came.
    pub hops: Option<u8>,
    /// Ports that answered from the target's address.
    pub answering: Vec<u16>,
    pub open: Vec<u16>,
}

/// Learns the host's profile from all verdicts on one target.
pub fn profile(target: IpAddr, verdicts: &[Verdict]) -> HostProfile {
    let mut hops: BTreeMap<u8, usize> = BTreeMap::new();
    let mut p = HostProfile::default();
    for v in verdicts.iter().filter(|v| v.target == target) {
        if v.responder == Some(target) {
            p.answering.push(v.port);
            if let Some(h) = v.hops {
                *hops.entry(h).or_default() += 1;
            }
        }
        if v.state == State::Open {
            p.open.push(v.port);
        }
    }
    // The most common distance; on a tie, the farther (a forged reset from
    // a middlebox is nearer than the host).
    p.hops = hops.iter().max_by_key(|(h, n)| (**n, **h)).map(|(h, _)| *h);
    p.answering.sort_unstable();
    p.open.sort_unstable();
    p
}

/// What Linux's connect() returns for an ICMP destination-unreachable
/// during the handshake (net/ipv4/icmp.c icmp_err_convert,
/// net/ipv6/icmp.c tab_unreach).
pub fn application_error(v: &Verdict) -> Option<String> {
    let (errno, text) = match (v.target.is_ipv6(), v.icmp_type?, v.icmp_code?) {
        (false, 3, 0) | (false, 3, 6) | (false, 3, 9) | (false, 3, 11) => {
            ("ENETUNREACH", "Network is unreachable")
        }
        (false, 3, 2) => ("ENOPROTOOPT", "Protocol not available"),
        (false, 3, 3) => ("ECONNREFUSED", "Connection refused"),
        (false, 3, 4) => ("EMSGSIZE", "Message too long"),
        (false, 3, 7) => ("EHOSTDOWN", "Host is down"),
        (false, 3, _) => ("EHOSTUNREACH", "No route to host"),
        (true, 1, 0) => ("ENETUNREACH", "Network is unreachable"),
        (true, 1, 4) => ("ECONNREFUSED", "Connection refused"),
        (true, 1, 1) | (true, 1, 5) | (true, 1, 6) => ("EACCES", "Permission denied"),
        (true, 1, _) => ("EHOSTUNREACH", "No route to host"),
        // Time exceeded is a soft error: connect() retries, then times out.
        _ => ("ETIMEDOUT", "Connection timed out (after its retries)"),
    };
    Some(format!("connect() fails with {errno} \"{text}\""))
}

/// Open ports worth naming next to a refused one: the nearest few by
/// number (a neighbour like 8080 for 8081 is the classic wrong port).
fn nearby_open(port: u16, open: &[u16]) -> Vec<u16> {
    let mut v: Vec<u16> = open.iter().copied().filter(|p| *p != port).collect();
    v.sort_by_key(|p| (p.abs_diff(port), *p));
    v.truncate(3);
    v
}

fn describe_hops(h: Option<u8>) -> String {
    match h {
        Some(1) => "1 hop away, on your own network".into(),
        Some(n) => format!("{n} hops away"),
        None => "at an unknown distance".into(),
    }
}

/// The finding for one asked port, given every verdict on its target.
pub fn finding(target: IpAddr, port: u16, verdicts: &[Verdict]) -> Option<Finding> {
    let v = verdicts
        .iter()
        .find(|v| v.target == target && v.port == port)?;
    let host = profile(target, verdicts);
    let mut evidence = vec![EvidencePacket::from(v)];
    let refs: Vec<&Verdict> = verdicts
        .iter()
        .filter(|r| r.target == target && r.port != port && r.responder == Some(target))
        .take(3)
        .collect();
    let responder = v.responder.map(|r| r.to_string()).unwrap_or_default();
    let mut details = Vec::new();
    let (kind, summary, app) = match v.state {
        State::Open => {
            let mut s =
                format!("Port {port} is open: {responder} accepted the connection (SYN-ACK).");
            if v.responder == Some(target) && host.hops.is_some() && v.hops != host.hops {
                s = format!(
                    "Port {port} is open, but the SYN-ACK came from {} while the host's other replies come from {}: a proxy or load balancer on the path answers for it.",
                    describe_hops(v.hops),
                    describe_hops(host.hops)
                );
            }
            (Kind::Open, s, None)
        }
        State::Refused => {
            let from_host = v.responder == Some(target);
            let same_distance = host.hops.is_none_or(|h| v.hops == Some(h));
            if from_host && same_distance {
                let near = nearby_open(port, &host.open);
                let mut s = if v.hops.is_some() {
                    format!(
                        "Refused by the host itself: nothing listens on port {port} of {target}."
                    )
                } else {
                    format!(
                        "Refused in {target}'s name: nothing listens on port {port}, or a device on the path refuses it for the host."
                    )
                };
                if let Some(first) = near.first() {
                    s.push_str(&format!(" Port {first} is open: wrong port?"));
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
                (
                    Kind::RefusedByHost,
                    s,
                    Some("connect() fails with ECONNREFUSED \"Connection refused\"".to_string()),
                )
            } else {
                let s = format!(
                    "Reset by a device on the path, not by the host: the RST for port {port} came from {}, the host's own replies from {}.",
                    describe_hops(v.hops),
                    describe_hops(host.hops)
                );
                details.push(format!(
                    "It carries {}'s address but its TTL ({}) says it was sent from {}: a firewall rejecting with tcp-reset, an IPS or a load balancer forged it.",
                    responder,
                    v.ttl.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
                    describe_hops(v.hops)
                ));
                (
                    Kind::MiddleboxReset,
                    s,
                    Some("connect() fails with ECONNREFUSED \"Connection refused\"".to_string()),
                )
            }
        }
        State::Unreachable => {
            let app = application_error(v);
            let by_host = v.responder == Some(target);
            match v.reason {
                Reason::HostUnreach if !by_host => {
                    let s = format!(
                        "Host unreachable: the router {responder}, {}, could not reach {target}.",
                        describe_hops(v.hops)
                    );
                    details.push(
                        "Its address resolution (ARP / neighbour discovery) got no answer: nothing uses that address on the router's network, or the host is down or unplugged."
                            .into(),
                    );
                    if let Some(ms) = v.rtt_ms
                        && ms > 1000.0
                    {
                        details.push(format!(
                            "The error came {:.1} s after the first SYN, the time a router spends on ARP before giving up.",
                            ms / 1000.0
                        ));
                    }
                    (Kind::HostUnreachable, s, app)
                }
                Reason::NetUnreach | Reason::NoRoute => {
                    let s = format!(
                        "Network unreachable: the router {responder}, {}, has no route to {target}.",
                        describe_hops(v.hops)
                    );
                    details.push("Check the routing tables on the path, or the address.".into());
                    (Kind::NetworkUnreachable, s, app)
                }
                _ if by_host => {
                    let s = format!(
                        "Rejected by the host's own firewall or stack: {target} answered port {port} with ICMP {} (type {}, code {}).",
                        v.reason.as_str(),
                        v.icmp_type.unwrap_or(0),
                        v.icmp_code.unwrap_or(0)
                    );
                    details.push(
                        "The host is up; a REJECT rule on it (iptables, nftables, firewalld) refuses this port.".into(),
                    );
                    (Kind::RejectedByHost, s, app)
                }
                _ => {
                    let s = format!(
                        "Rejected on the path: the router {responder}, {}, answered port {port} with ICMP {} (type {}, code {}).",
                        describe_hops(v.hops),
                        v.reason.as_str(),
                        v.icmp_type.unwrap_or(0),
                        v.icmp_code.unwrap_or(0)
                    );
                    details.push(format!(
                        "A filter on {responder} refuses this traffic before it reaches {target}."
                    ));
                    (Kind::RejectedOnPath, s, app)
                }
            }
        }
        State::Filtered => {
            if host.answering.is_empty() {
                let s = format!(
                    "No answer at all: {target} answered none of the probed ports, and no router reported an error."
                );
                details.push(
                    "The host is down, or a firewall drops everything to it (or the answers on the way back)."
                        .into(),
                );
                (
                    Kind::NoAnswerAtAll,
                    s,
                    Some(
                        "connect() hangs, then fails with ETIMEDOUT \"Connection timed out\""
                            .into(),
                    ),
                )
            } else {
                let s = format!(
                    "Dropped silently: {} probes to port {port} got no answer, while {target} answers on other ports ({}).",
                    v.probes,
                    host.answering
                        .iter()
                        .take(5)
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                details.push(
                    "The host is up: a firewall on it or on the path drops this port without a word (DROP)."
                        .into(),
                );
                (
                    Kind::DroppedHostUp,
                    s,
                    Some(
                        "connect() hangs, then fails with ETIMEDOUT \"Connection timed out\""
                            .into(),
                    ),
                )
            }
        }
    };
    evidence.extend(refs.into_iter().map(EvidencePacket::from));
    Some(Finding {
        target,
        port,
        kind,
        summary,
        details,
        application_error: app,
        evidence,
    })
}

/// Where a silent port's packets stop, from TTL-limited probes of it and of
/// a port that answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DropLocation {
    /// The last hop that still answered for the silent port (0: none).
    pub last_hop: u8,
    pub last_router: Option<IpAddr>,
    /// The hop at which the answering port's probes reached the host.
    pub host_hop: Option<u8>,
    /// Dropped at the last hop: by the host or as the last router hands it over.
    pub at_host: bool,
    pub text: String,
}

/// Locates a drop (the firewalk method): the silent port's probes are
/// answered with time-exceeded up to some hop, the reference port's get
/// farther; the drop is at or just after the last hop that answered.
pub fn locate_drop(
    target: IpAddr,
    silent: &crate::model::PortTrace,
    reference: &crate::model::PortTrace,
) -> Option<DropLocation> {
    if silent.reached_at().is_some() {
        return Some(DropLocation {
            last_hop: 0,
            last_router: None,
            host_hop: reference.reached_at(),
            at_host: false,
            text: format!(
                "The trace's probes to port {} were answered by the host: the drop is intermittent (rate limiting, or a firewall state that changed).",
                silent.port
            ),
        });
    }
    let host_hop = reference.reached_at();
    let (last_hop, last_router) = match silent.last_router() {
        Some(h) => (h.ttl, Some(h.from)),
        None => (0, None),
    };
    let text = match host_hop {
        Some(hh) if last_hop + 1 >= hh => format!(
            "Located at the last hop: probes to port {} got as far as hop {} ({}), the last router before {target} (hop {hh}), and no farther: {target} itself drops them, or that router drops them as it hands them over.",
            silent.port,
            last_hop,
            last_router
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
        Some(hh) => {
            let next = reference
                .router_at(last_hop + 1)
                .map(|r| {
                    format!(
                        " (port {}'s probes were answered there by {r})",
                        reference.port
                    )
                })
                .unwrap_or_default();
            let at = if last_hop == 0 {
                "at or just after your own host, before the first router".to_string()
            } else {
                format!(
                    "at or just after hop {last_hop} ({})",
                    last_router
                        .map(|r| r.to_string())
                        .unwrap_or_else(|| "-".into())
                )
            };
            format!(
                "Located {at}: probes to port {} get no answer from hop {}{next} on, while port {}'s reach {target} at hop {hh}.",
                silent.port,
                last_hop + 1,
                reference.port
            )
        }
        None => return None,
    };
    Some(DropLocation {
        last_hop,
        last_router,
        host_hop,
        at_host: host_hop.is_some_and(|hh| last_hop + 1 >= hh),
        text,
    })
}
