//! Patterns an application makes: repeated attempts of one program to one
//! destination, said once ("python3 (pid 4242) tried 203.0.113.2:8081 3
//! times, 2.0 s apart: refused each time by the host itself (nothing
//! listens there): retrying cannot help"); a name that never resolved and
//! no SYN after it; what each program met, by cause; the summary so far.
//! Pure: told verdicts and DNS failures in, lines out.

use crate::model::{DnsEvent, Reason, State, Verdict};
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
    /// The program's user, when known.
    pub user: Option<String>,
    pub client: IpAddr,
    pub target: IpAddr,
    pub port: u16,
    pub state: State,
    pub reason: Reason,
    pub responder: Option<IpAddr>,
    pub at_ns: u64,
    /// A router's host-unreachable: whether its ARP failed (by the
    /// error's timing; None: cannot tell, or not such an error).
    pub arp_failed: Option<bool>,
}

impl Seen {
    pub fn of(v: &Verdict) -> Seen {
        Seen {
            program: v.process.as_ref().map(|p| (p.command.clone(), p.pid)),
            user: v.process.as_ref().and_then(|p| p.user.clone()),
            client: v.client,
            target: v.target,
            port: v.port,
            state: v.state,
            reason: v.reason,
            responder: v.responder,
            at_ns: v.first_probe_ns,
            arp_failed: (v.reason == Reason::HostUnreach && v.responder != Some(v.target))
                .then(|| crate::diagnose::findings::arp_failed(v))
                .flatten(),
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
    // An unnamed program is told apart by its address.
    type Key = (Option<Program>, Option<IpAddr>, IpAddr, u16);
    let mut by: BTreeMap<Key, Vec<&Seen>> = BTreeMap::new();
    for s in seen {
        let client = s.program.is_none().then_some(s.client);
        by.entry((s.program.clone(), client, s.target, s.port))
            .or_default()
            .push(s);
    }
    let mut out = Vec::new();
    let mut more = 0usize;
    for ((program, client, target, port), mut tries) in by {
        if tries.len() < 2 {
            continue;
        }
        if out.len() >= LINES {
            more += 1;
            continue;
        }
        tries.sort_by_key(|s| s.at_ns);
        let who = match (&program, client) {
            (None, Some(c)) => format!("{c} (program unknown)"),
            _ => who(&program),
        };
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
    if more > 0 {
        out.push(format!(
            "and {more} more programs and destinations tried more than once (the first {LINES} are listed)"
        ));
    }
    out
}

/// Lines listed at most in each of the report's lists.
pub const LINES: usize = 50;

fn who(program: &Option<Program>) -> String {
    program.as_ref().map_or_else(
        || "an unknown program".to_string(),
        |(c, p)| format!("{c} (pid {p})"),
    )
}

/// What a DNS failure was.
pub fn dns_what(d: &DnsEvent) -> String {
    let qtype = match d.qtype {
        1 => "A".to_string(),
        28 => "AAAA".to_string(),
        n => format!("type {n}"),
    };
    if !d.answered {
        return format!(
            "no answer from the resolver {} within 5 s ({qtype} query)",
            d.server
        );
    }
    match d.rcode {
        3 => "no such name (NXDOMAIN)".to_string(),
        2 => "the resolver failed (SERVFAIL)".to_string(),
        5 => "the resolver refused (REFUSED)".to_string(),
        0 => format!("no {qtype} address (the name exists: another family only, or no address)"),
        n => format!("failed (rcode {n})"),
    }
}

/// The cause an attempt met, in words, and whether it is a failure.
fn cause(s: &Seen) -> (String, bool) {
    let by = s.responder.map(|r| r.to_string()).unwrap_or_default();
    match s.state {
        State::Open => ("open".into(), false),
        State::Refused if s.responder == Some(s.target) => {
            ("refused by the host (nothing listens)".into(), true)
        }
        State::Refused => (format!("reset by {by}, not the host"), true),
        State::Unreachable => {
            let why = match s.arp_failed {
                Some(true) => ": its ARP for the host failed",
                Some(false) => ": it has no route to the host",
                None => "",
            };
            (
                format!("rejected by {by} ({}{why})", s.reason.as_str()),
                true,
            )
        }
        State::Filtered => ("no answer (dropped)".into(), true),
    }
}

/// A name whose lookups a program saw fail, with no connection attempt
/// of that program after them: "python3 (pid 4242) looked up nosuch.lab:
/// no such name (NXDOMAIN); it made no connection attempt after that".
pub fn unresolved(dns: &[DnsEvent], seen: &[Seen]) -> Vec<String> {
    let mut by: BTreeMap<(Option<Program>, String), Vec<&DnsEvent>> = BTreeMap::new();
    for d in dns {
        let program = d.process.as_ref().map(|p| (p.command.clone(), p.pid));
        by.entry((program, d.name.clone())).or_default().push(d);
    }
    let mut out = Vec::new();
    let total = by.len();
    for ((program, name), answers) in by.into_iter().take(LINES) {
        let last = answers.iter().map(|d| d.ts_ns).max().unwrap_or(0);
        let mut whats: Vec<String> = answers.iter().map(|d| dns_what(d)).collect();
        whats.sort();
        whats.dedup();
        let after = if program.is_none() {
            String::new()
        } else if seen.iter().any(|s| s.program == program && s.at_ns >= last) {
            "; it connected somewhere after that".into()
        } else {
            "; it made no connection attempt after that: the name is wrong, or missing from DNS"
                .into()
        };
        out.push(format!(
            "{} looked up {name}: {}{after}",
            who(&program),
            whats.join("; ")
        ));
    }
    if total > LINES {
        out.push(format!("and {} more names", total - LINES));
    }
    out
}

/// Destinations listed at most per cause in [`by_program`].
const LISTED: usize = 5;

/// What each program met, by cause, with the destinations: "python3 (pid
/// 4242, user root): 4 attempts to 4 destinations: 1 open
/// (203.0.113.2:80); 2 refused by the host (nothing listens)
/// (203.0.113.2:8081, [2001:db8:2::2]:8081); ..."; its DNS failures too.
pub fn by_program(seen: &[Seen], dns: &[DnsEvent]) -> Vec<String> {
    // Per cause: how many attempts, and the destinations (sorted).
    type Causes = BTreeMap<(bool, String), (usize, std::collections::BTreeSet<(IpAddr, u16)>)>;
    let mut by: BTreeMap<Option<Program>, (Option<String>, usize, Causes)> = BTreeMap::new();
    for s in seen {
        let e = by.entry(s.program.clone()).or_default();
        if e.0.is_none() {
            e.0 = s.user.clone();
        }
        e.1 += 1;
        let (c, failed) = cause(s);
        let at = e.2.entry((!failed, c)).or_default();
        at.0 += 1;
        at.1.insert((s.target, s.port));
    }
    let mut dns_of: BTreeMap<Option<Program>, Vec<&DnsEvent>> = BTreeMap::new();
    for d in dns {
        dns_of
            .entry(d.process.as_ref().map(|p| (p.command.clone(), p.pid)))
            .or_default()
            .push(d);
    }
    for k in dns_of.keys() {
        by.entry(k.clone()).or_default();
    }
    let mut out = Vec::new();
    let total = by.len();
    for (program, (user, attempts, causes)) in by.into_iter().take(LINES) {
        let head = match (&program, &user) {
            (Some((c, p)), Some(u)) => format!("{c} (pid {p}, user {u})"),
            _ => who(&program),
        };
        let dests: std::collections::BTreeSet<(IpAddr, u16)> =
            causes.values().flat_map(|(_, d)| d).copied().collect();
        let mut parts: Vec<String> = Vec::new();
        // Failures first, then what worked.
        for ((_, c), (n, d)) in &causes {
            let mut list: Vec<String> = d.iter().take(LISTED).map(|(t, p)| ep(*t, *p)).collect();
            if d.len() > LISTED {
                list.push(format!("and {} more", d.len() - LISTED));
            }
            parts.push(format!("{n} {c} ({})", list.join(", ")));
        }
        if let Some(ds) = dns_of.get(&program) {
            let mut names: Vec<String> = ds
                .iter()
                .map(|d| format!("{}: {}", d.name, dns_what(d)))
                .collect();
            names.sort();
            names.dedup();
            parts.push(format!(
                "{} DNS failure{} ({})",
                ds.len(),
                if ds.len() == 1 { "" } else { "s" },
                names.join(", ")
            ));
        }
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        out.push(format!(
            "{head}: {} to {}: {}",
            plural(attempts, "attempt"),
            plural(dests.len(), "destination"),
            parts.join("; ")
        ));
    }
    if total > LINES {
        out.push(format!("and {} more programs", total - LINES));
    }
    out
}

/// What was told so far, counted (not kept: a watch left running for
/// days counts past [`KEEP`]).
#[derive(Debug, Default)]
pub struct Tally {
    attempts: u64,
    states: BTreeMap<&'static str, u64>,
    /// Distinct programs, at most [`KEEP`] remembered.
    programs: std::collections::HashSet<Option<Program>>,
    pub dns: u64,
}

impl Tally {
    pub fn add(&mut self, s: &Seen) {
        self.attempts += 1;
        *self.states.entry(s.state.as_str()).or_default() += 1;
        if self.programs.len() < KEEP {
            self.programs.insert(s.program.clone());
        }
    }

    /// One line: attempts, programs, by state, DNS failures.
    pub fn line(&self) -> String {
        let plural = |n: u64| if n == 1 { "" } else { "s" };
        let programs = self.programs.len() as u64;
        let parts: Vec<String> = self
            .states
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        format!(
            "so far: {} attempt{} by {programs} program{}{}{}; {} DNS failure{}",
            self.attempts,
            plural(self.attempts),
            plural(programs),
            if parts.is_empty() { "" } else { ": " },
            parts.join(", "),
            self.dns,
            plural(self.dns)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(port: u16, state: State, reason: Reason, at_s: f64) -> Seen {
        let t: IpAddr = "203.0.113.2".parse().unwrap();
        Seen {
            program: Some(("python3".into(), 4242)),
            user: None,
            client: "198.51.100.2".parse().unwrap(),
            target: t,
            port,
            state,
            reason,
            responder: (state != State::Filtered).then_some(t),
            at_ns: (at_s * 1e9) as u64,
            arp_failed: None,
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

    fn nx(name: &str, program: Option<(&str, u32)>, at_s: f64) -> DnsEvent {
        DnsEvent {
            ts_ns: (at_s * 1e9) as u64,
            server: "198.51.100.1".parse().unwrap(),
            client: "198.51.100.2".parse().unwrap(),
            name: name.into(),
            rcode: 3,
            addresses: vec![],
            qtype: 1,
            client_port: 40000,
            answered: true,
            process: program.map(|(c, pid)| crate::model::Process {
                pid,
                command: c.into(),
                uid: Some(0),
                user: Some("root".into()),
                cgroup: None,
            }),
        }
    }

    #[test]
    fn a_name_that_never_resolved_and_no_syn_after_it_is_said() {
        let seen = vec![s(80, State::Open, Reason::SynAck, 1.0)];
        let lines = unresolved(
            &[
                nx("nosuch.lab", Some(("python3", 4242)), 5.0),
                nx("nosuch.lab", Some(("python3", 4242)), 5.1),
                nx("typo.lab", Some(("python3", 4242)), 0.5),
            ],
            &seen,
        );
        assert_eq!(
            lines,
            vec![
                "python3 (pid 4242) looked up nosuch.lab: no such name (NXDOMAIN); it made no connection attempt after that: the name is wrong, or missing from DNS".to_string(),
                "python3 (pid 4242) looked up typo.lab: no such name (NXDOMAIN); it connected somewhere after that".to_string(),
            ]
        );
    }

    #[test]
    fn each_program_is_said_with_its_causes_and_destinations() {
        let mut seen = vec![
            s(8081, State::Refused, Reason::Reset, 0.0),
            s(8081, State::Refused, Reason::Reset, 2.0),
            s(9000, State::Filtered, Reason::NoResponse, 1.0),
            s(80, State::Open, Reason::SynAck, 1.0),
        ];
        let mut curl = s(9002, State::Unreachable, Reason::AdminProhibited, 1.0);
        curl.program = Some(("curl".into(), 7));
        curl.responder = Some("198.51.100.1".parse().unwrap());
        seen.push(curl);
        let lines = by_program(&seen, &[nx("nosuch.lab", Some(("python3", 4242)), 5.0)]);
        // A router's host-unreachable says what its timing tells.
        let mut v = Verdict::silent(
            "198.51.100.2".parse().unwrap(),
            "203.0.113.9".parse().unwrap(),
            22,
        );
        (v.state, v.reason, v.responder) = (
            State::Unreachable,
            Reason::HostUnreach,
            Some("198.51.100.1".parse().unwrap()),
        );
        let mut said = |rtt: f64| {
            v.rtt_ms = Some(rtt);
            cause(&Seen::of(&v)).0
        };
        assert_eq!(
            said(3070.0),
            "rejected by 198.51.100.1 (host-unreach: its ARP for the host failed)"
        );
        assert_eq!(
            said(0.2),
            "rejected by 198.51.100.1 (host-unreach: it has no route to the host)"
        );
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(
            lines[0],
            "curl (pid 7): 1 attempt to 1 destination: 1 rejected by 198.51.100.1 (admin-prohibited) (203.0.113.2:9002)"
        );
        assert_eq!(
            lines[1],
            "python3 (pid 4242): 4 attempts to 3 destinations: 1 no answer (dropped) (203.0.113.2:9000); 2 refused by the host (nothing listens) (203.0.113.2:8081); 1 open (203.0.113.2:80); 1 DNS failure (nosuch.lab: no such name (NXDOMAIN))"
        );
        let mut t = Tally::default();
        seen.iter().for_each(|s| t.add(s));
        t.dns = 1;
        assert_eq!(
            t.line(),
            "so far: 5 attempts by 2 programs: 1 filtered, 1 open, 2 refused, 1 unreachable; 1 DNS failure"
        );
    }
}
