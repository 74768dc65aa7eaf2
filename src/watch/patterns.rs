//! Patterns an application makes: repeated attempts of one program to one
//! destination, said once ("python3 (pid 4242) tried 203.0.113.2:8081 3
//! times, 2.0 s apart: refused each time by the host itself (nothing
//! listens there): retrying cannot help"). Pure: told verdicts in, lines
//! out.

use crate::model::{Reason, State, Verdict};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Attempts kept for the patterns, at most (memory stays bounded).
pub const KEEP: usize = 100_000;

/// A program: its command and pid.
pub type Program = (String, u32);

/// One told attempt, as the patterns need it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub program: Option<Program>,
    pub target: IpAddr,
    pub port: u16,
    pub state: State,
    pub reason: Reason,
    pub responder: Option<IpAddr>,
    pub at_ns: u64,
}

impl Seen {
    pub fn of(v: &Verdict) -> Seen {
        Seen {
            program: v.process.as_ref().map(|p| (p.command.clone(), p.pid)),
            target: v.target,
            port: v.port,
            state: v.state,
            reason: v.reason,
            responder: v.responder,
            at_ns: v.first_probe_ns,
        }
    }
}

fn ep(a: IpAddr, port: u16) -> String {
    match a {
        IpAddr::V6(_) => format!("[{a}]:{port}"),
        IpAddr::V4(_) => format!("{a}:{port}"),
    }
}

/// What the same answer every time means for a retry.
fn each_time(s: &Seen) -> String {
    let by = s.responder.map(|r| r.to_string()).unwrap_or_default();
    match s.state {
        State::Refused if s.responder == Some(s.target) => {
            "refused each time by the host itself (nothing listens there): retrying cannot help"
                .into()
        }
        State::Refused => format!("reset each time by {by}: retrying cannot help"),
        State::Unreachable => format!(
            "rejected each time by {by} ({}): retrying cannot help",
            s.reason.as_str()
        ),
        State::Filtered => {
            "no answer each time: the SYNs are dropped (a firewall, or a host that is down)".into()
        }
        State::Open => "open each time".into(),
    }
}

/// The lines for every (program, destination) tried more than once.
pub fn repeated(seen: &[Seen]) -> Vec<String> {
    type Key = (Option<Program>, IpAddr, u16);
    let mut by: BTreeMap<Key, Vec<&Seen>> = BTreeMap::new();
    for s in seen {
        by.entry((s.program.clone(), s.target, s.port))
            .or_default()
            .push(s);
    }
    let mut out = Vec::new();
    for ((program, target, port), mut tries) in by {
        if tries.len() < 2 {
            continue;
        }
        tries.sort_by_key(|s| s.at_ns);
        let who = program.as_ref().map_or_else(
            || "an unknown program".to_string(),
            |(c, p)| format!("{c} (pid {p})"),
        );
        let n = tries.len();
        let span = (tries[n - 1].at_ns - tries[0].at_ns) as f64 / 1e9;
        let apart = span / (n - 1) as f64;
        let same = tries.iter().all(|s| {
            (s.state, s.reason, s.responder)
                == (tries[0].state, tries[0].reason, tries[0].responder)
        });
        let how = if same {
            each_time(tries[0])
        } else {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for s in &tries {
                *counts.entry(s.state.as_str()).or_default() += 1;
            }
            let parts: Vec<String> = counts.iter().map(|(s, c)| format!("{c} {s}")).collect();
            format!("answered differently: {}", parts.join(", "))
        };
        out.push(format!(
            "{who} tried {} {n} times, {apart:.1} s apart ({span:.1} s in all): {how}",
            ep(target, port)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(port: u16, state: State, reason: Reason, at_s: f64) -> Seen {
        let t: IpAddr = "203.0.113.2".parse().unwrap();
        Seen {
            program: Some(("python3".into(), 4242)),
            target: t,
            port,
            state,
            reason,
            responder: (state != State::Filtered).then_some(t),
            at_ns: (at_s * 1e9) as u64,
        }
    }

    #[test]
    fn retries_are_said_once_with_what_they_mean() {
        let seen = vec![
            s(8081, State::Refused, Reason::Reset, 0.0),
            s(8081, State::Refused, Reason::Reset, 2.0),
            s(8081, State::Refused, Reason::Reset, 4.0),
            s(9000, State::Filtered, Reason::NoResponse, 1.0),
            s(80, State::Open, Reason::SynAck, 1.0),
        ];
        let lines = repeated(&seen);
        assert_eq!(
            lines,
            vec![
                "python3 (pid 4242) tried 203.0.113.2:8081 3 times, 2.0 s apart (4.0 s in all): refused each time by the host itself (nothing listens there): retrying cannot help"
                    .to_string()
            ]
        );
        let mut mixed = seen.clone();
        mixed.push(s(80, State::Refused, Reason::Reset, 3.0));
        let lines = repeated(&mixed);
        assert!(
            lines
                .iter()
                .any(|l| l.contains("tried 203.0.113.2:80 2 times")
                    && l.contains("answered differently: 1 open, 1 refused")),
            "{lines:?}"
        );
    }
}
