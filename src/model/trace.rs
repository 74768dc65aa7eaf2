//! What TTL-limited probes found: per port, who answered at each TTL.

use super::Reason;
use serde::Serialize;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum HopKind {
    /// A router's ICMP time-exceeded: the probe got this far.
    TimeExceeded,
    /// The target itself answered (SYN-ACK or RST).
    Reached { reason: Reason },
    /// An ICMP destination-unreachable at this TTL.
    Rejected { reason: Reason },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Hop {
    pub ttl: u8,
    pub from: IpAddr,
    #[serde(flatten)]
    pub kind: HopKind,
}

/// What came back for one port, one entry per TTL that got an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortTrace {
    pub port: u16,
    pub hops: Vec<Hop>,
}

impl PortTrace {
    /// The TTL at which the target itself answered.
    pub fn reached_at(&self) -> Option<u8> {
        self.hops
            .iter()
            .filter(|h| matches!(h.kind, HopKind::Reached { .. }))
            .map(|h| h.ttl)
            .min()
    }

    /// The farthest router that answered time-exceeded.
    pub fn last_router(&self) -> Option<&Hop> {
        self.hops
            .iter()
            .filter(|h| h.kind == HopKind::TimeExceeded)
            .max_by_key(|h| h.ttl)
    }

    pub fn router_at(&self, ttl: u8) -> Option<IpAddr> {
        self.hops
            .iter()
            .find(|h| h.ttl == ttl && h.kind == HopKind::TimeExceeded)
            .map(|h| h.from)
    }
}
