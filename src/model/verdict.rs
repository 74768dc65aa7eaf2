//! Verdicts: what one (client, target, port) came to, and why.

use super::Nanos;
use serde::Serialize;
use std::net::IpAddr;

/// (client, target, port): what a verdict is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Triple {
    pub client: IpAddr,
    pub target: IpAddr,
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// SYN-ACK (or a split-handshake SYN): something accepts connections.
    Open,
    /// RST: the connection was refused.
    Refused,
    /// Silence: nothing came back within the timeout.
    Filtered,
    /// An ICMP destination-unreachable or time-exceeded error.
    Unreachable,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Refused => "refused",
            State::Filtered => "filtered",
            State::Unreachable => "unreachable",
        }
    }

    pub const ALL: [State; 4] = [
        State::Open,
        State::Refused,
        State::Filtered,
        State::Unreachable,
    ];
}

/// Why, in nmap's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    SynAck,
    SplitHandshakeSyn,
    Reset,
    NoResponse,
    NetUnreach,
    HostUnreach,
    ProtoUnreach,
    PortUnreach,
    NetProhibited,
    HostProhibited,
    AdminProhibited,
    TimeExceeded,
    DestUnreach,
    NoRoute,
    BeyondScope,
    RejectRoute,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::SynAck => "syn-ack",
            Reason::SplitHandshakeSyn => "split-handshake-syn",
            Reason::Reset => "reset",
            Reason::NoResponse => "no-response",
            Reason::NetUnreach => "net-unreach",
            Reason::HostUnreach => "host-unreach",
            Reason::ProtoUnreach => "proto-unreach",
            Reason::PortUnreach => "port-unreach",
            Reason::NetProhibited => "net-prohibited",
            Reason::HostProhibited => "host-prohibited",
            Reason::AdminProhibited => "admin-prohibited",
            Reason::TimeExceeded => "time-exceeded",
            Reason::DestUnreach => "dest-unreach",
            Reason::NoRoute => "no-route",
            Reason::BeyondScope => "beyond-scope",
            Reason::RejectRoute => "reject-route",
        }
    }

    /// The reason an ICMP error of this family, type and code gives.
    pub fn from_icmp(v6: bool, icmp_type: u8, code: u8) -> Reason {
        match (v6, icmp_type, code) {
            (false, 11, _) | (true, 3, _) => Reason::TimeExceeded,
            (false, 3, 0) => Reason::NetUnreach,
            (false, 3, 1) => Reason::HostUnreach,
            (false, 3, 2) => Reason::ProtoUnreach,
            (false, 3, 3) => Reason::PortUnreach,
            (false, 3, 9) => Reason::NetProhibited,
            (false, 3, 10) => Reason::HostProhibited,
            (false, 3, 13) => Reason::AdminProhibited,
            (true, 1, 0) => Reason::NoRoute,
            (true, 1, 1) => Reason::AdminProhibited,
            (true, 1, 2) => Reason::BeyondScope,
            (true, 1, 3) => Reason::HostUnreach,
            (true, 1, 4) => Reason::PortUnreach,
            (true, 1, 6) => Reason::RejectRoute,
            _ => Reason::DestUnreach,
        }
    }
}

/// The verdict for one (client, target, port). Its JSON form is the
/// contract documented in docs/JSON.md.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub client: IpAddr,
    pub target: IpAddr,
    pub port: u16,
    pub state: State,
    pub reason: Reason,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    /// Source address of the deciding packet.
    pub responder: Option<IpAddr>,
    /// TTL / hop limit of the deciding packet.
    pub ttl: Option<u8>,
    /// Distance to the responder, 1 = same link (nmap's convention).
    pub hops: Option<u8>,
    /// From the first SYN of the answered attempt to the deciding reply.
    pub rtt_ms: Option<f64>,
    /// From the attempt's last SYN before the deciding reply, where a
    /// retransmission came before it (else it is `rtt_ms`). Only present
    /// then: an error that answered a retransmission at once came from a
    /// router without a route, one 3 s after the first SYN from a failed
    /// ARP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_last_ms: Option<f64>,
    /// SYNs sent, retransmissions included.
    pub probes: u32,
    /// Attempts (distinct source ports or reopenings).
    pub attempts: u32,
    /// Distinct TTLs of all matching replies, when more than one was seen.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ttls: Vec<u8>,
    /// IPv4 identification of the deciding packet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_id: Option<u16>,
    /// Capture time of the first SYN, nanoseconds since the Unix epoch.
    pub first_probe_ns: Nanos,
    /// Capture time of the deciding reply.
    pub decided_ns: Option<Nanos>,
    /// Silence that cannot be trusted: the capture lost packets, or never
    /// saw this probe. Only present (true) then.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub uncertain: bool,
    /// Not backed by a packet of its own: inferred from the errors other
    /// ports of the same host got (a responder that rate-limits its ICMP
    /// errors answers only some probes). Only present then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inferred: Option<Inferred>,
    /// The host's own distance in hops, when this reply came in its name
    /// (responder = target) from another distance (`hops`): something on
    /// the path sent it (a middlebox's forged reset). Only present then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_hops: Option<u8>,
    /// The host name the target address came from (a scan's command
    /// line, or a DNS answer in the capture). Only present then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `watch` only: the local program that made the attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
}

/// A program, as the kernel and /proc name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Process {
    pub pid: u32,
    /// /proc/PID/comm when the attempt was seen ("?" if it was gone).
    pub command: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// The user's name, from the password database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The process's cgroup (v2 path), where it is not the root one: a
    /// container or a systemd unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
}

/// The evidence an inferred verdict stands on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inferred {
    /// How many ports of the host got the error themselves.
    pub errors: u32,
    /// The first of those ports (at most 16), ascending.
    pub from_ports: Vec<u16>,
}

impl Verdict {
    /// Silence: `filtered`, no response, nothing seen yet.
    pub fn silent(client: IpAddr, target: IpAddr, port: u16) -> Verdict {
        Verdict {
            client,
            target,
            port,
            state: State::Filtered,
            reason: Reason::NoResponse,
            icmp_type: None,
            icmp_code: None,
            responder: None,
            ttl: None,
            hops: None,
            rtt_ms: None,
            rtt_last_ms: None,
            probes: 0,
            attempts: 0,
            ttls: Vec::new(),
            ip_id: None,
            first_probe_ns: 0,
            decided_ns: None,
            uncertain: false,
            inferred: None,
            host_hops: None,
            name: None,
            process: None,
        }
    }

    pub fn triple(&self) -> Triple {
        Triple {
            client: self.client,
            target: self.target,
            port: self.port,
        }
    }
}

/// The first of the usual initial TTLs (32, 64, 128, 255) at or above
/// `ttl`, and the distance in hops from it: 1 = the sender is on our link.
pub fn hops_from_ttl(ttl: u8) -> u8 {
    let initial: u16 = [32u16, 64, 128, 255]
        .into_iter()
        .find(|&i| i >= u16::from(ttl))
        .unwrap_or(255);
    // initial >= ttl, so this cannot underflow; +1 fits since initial <= 255.
    u8::try_from(initial - u16::from(ttl) + 1).unwrap_or(u8::MAX)
}
