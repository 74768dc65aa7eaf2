//! What an analysis found: the verdicts, what each input held, the totals
//! (the JSON report's `results`, `inputs` and `summary`).

use super::{State, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;

/// Counters of what the tracker saw; all packets it was handed are in
/// exactly one of `syns`, `replies`, `unsolicited`, `other_tcp`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// SYNs without ACK sent by clients (first sends and retransmissions).
    pub syns: u64,
    /// Of those, retransmissions on an already open attempt.
    pub retransmissions: u64,
    /// SYN-ACKs, RSTs, SYNs and ICMP errors matched to an attempt.
    pub replies: u64,
    /// SYN-ACKs, RSTs and ICMP errors that matched no attempt (wrong
    /// addresses, ports or sequence numbers, or too late).
    pub unsolicited: u64,
    /// Other TCP segments (data, ACKs, FINs, the client's own RSTs).
    pub other_tcp: u64,
    /// Attempts decided before their timeout because the table was full.
    pub evicted: u64,
}

impl Stats {
    /// Both counts added (the partitions of one file).
    pub fn plus(&self, o: &Stats) -> Stats {
        Stats {
            syns: self.syns + o.syns,
            retransmissions: self.retransmissions + o.retransmissions,
            replies: self.replies + o.replies,
            unsolicited: self.unsolicited + o.unsolicited,
            other_tcp: self.other_tcp + o.other_tcp,
            evicted: self.evicted + o.evicted,
        }
    }

    /// What was counted after `before` was taken (counters only grow).
    pub fn since(&self, before: &Stats) -> Stats {
        Stats {
            syns: self.syns.saturating_sub(before.syns),
            retransmissions: self.retransmissions.saturating_sub(before.retransmissions),
            replies: self.replies.saturating_sub(before.replies),
            unsolicited: self.unsolicited.saturating_sub(before.unsolicited),
            other_tcp: self.other_tcp.saturating_sub(before.other_tcp),
            evicted: self.evicted.saturating_sub(before.evicted),
        }
    }
}

/// What happened to one input.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InputSummary {
    pub file: String,
    pub link_type: String,
    pub packets_read: u64,
    pub skipped: u64,
    pub skipped_by_reason: BTreeMap<&'static str, u64>,
    /// DNS responses seen (they go to `Analysis::dns`, not the tracker).
    pub dns: u64,
    #[serde(flatten)]
    pub stats: Stats,
    /// Why the input could not be read, or why reading stopped early.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Totals over all inputs and results: the JSON `summary`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub dns: u64,
    pub open: u64,
    pub refused: u64,
    pub filtered: u64,
    pub unreachable: u64,
    pub packets_read: u64,
    pub skipped: u64,
    pub unsolicited: u64,
    pub syns: u64,
    pub retransmissions: u64,
    pub replies: u64,
    pub other_tcp: u64,
    pub evicted: u64,
}

/// A DNS response seen in a capture.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DnsEvent {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The resolver that answered, and whom.
    pub server: std::net::IpAddr,
    pub client: std::net::IpAddr,
    pub name: String,
    /// 0 no error, 2 server failure, 3 NXDOMAIN, 5 refused, ...
    pub rcode: u8,
    pub addresses: Vec<std::net::IpAddr>,
    /// The question's type (1 A, 28 AAAA, ...).
    pub qtype: u16,
    /// The client's UDP port.
    pub client_port: u16,
    /// false: a query that got no answer at all (`watch`: within 5 s);
    /// rcode and addresses are then empty.
    pub answered: bool,
    /// `watch` only: the local program that asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<super::Process>,
}

#[derive(Debug, Clone, Default)]
pub struct Analysis {
    /// Sorted by target, port, client.
    pub results: Vec<Verdict>,
    /// DNS responses in the inputs, in capture order.
    pub dns: Vec<DnsEvent>,
    pub inputs: Vec<InputSummary>,
    pub summary: Summary,
    /// Verdicts the inputs held that a selection (`--target`, `--client`,
    /// `-p`) left out.
    pub unselected: u64,
}

impl Analysis {
    /// The same analysis showing only the verdicts in `states` (the others
    /// count as left out by the selection); the summary counts what is
    /// shown.
    pub fn only_states(&self, states: &[State]) -> Analysis {
        let results: Vec<Verdict> = self
            .results
            .iter()
            .filter(|v| states.contains(&v.state))
            .cloned()
            .collect();
        let left = (self.results.len() - results.len()) as u64;
        let mut a = Analysis::from_parts(results, self.inputs.clone());
        a.dns = self.dns.clone();
        a.unselected = self.unselected + left;
        a
    }

    /// An analysis of these results (sorted) from these inputs, with the
    /// summary computed from both.
    pub fn from_parts(results: Vec<Verdict>, inputs: Vec<InputSummary>) -> Analysis {
        let mut summary = Summary::default();
        for v in &results {
            match v.state {
                State::Open => summary.open += 1,
                State::Refused => summary.refused += 1,
                State::Filtered => summary.filtered += 1,
                State::Unreachable => summary.unreachable += 1,
            }
        }
        for i in &inputs {
            summary.packets_read += i.packets_read;
            summary.dns += i.dns;
            summary.skipped += i.skipped;
            summary.unsolicited += i.stats.unsolicited;
            summary.syns += i.stats.syns;
            summary.retransmissions += i.stats.retransmissions;
            summary.replies += i.stats.replies;
            summary.other_tcp += i.stats.other_tcp;
            summary.evicted += i.stats.evicted;
        }
        Analysis {
            results,
            dns: Vec::new(),
            unselected: 0,
            inputs,
            summary,
        }
    }

    /// Inputs that could not be read in full.
    pub fn errors(&self) -> impl Iterator<Item = &InputSummary> {
        self.inputs.iter().filter(|i| i.error.is_some())
    }
}
