//! The terminal report: one table per target host, nmap-style summary lines.

use super::thousands;
use crate::model::Analysis;
use crate::model::{Reason, State, Verdict};
use comfy_table::{Cell, CellAlignment, Color, ContentArrangement, Table, presets};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy)]
pub struct TableOptions {
    /// Show every port, even when one kind of answer covers most of them.
    pub all: bool,
    /// Box lines around the columns (a terminal); else plain columns,
    /// aligned with spaces, for grep, awk and cut.
    pub boxes: bool,
}

/// Past this many ports with the same answer from the same responder, a
/// host's table leaves them out and says so (as nmap's "Not shown").
const COLLAPSE_OVER: usize = 25;

pub fn render_table(a: &Analysis, opts: TableOptions) -> String {
    let mut out = String::new();
    if a.results.is_empty() && a.unselected > 0 {
        let _ = writeln!(
            out,
            "No connection attempt matches the selection (--target, --client, -p, --state, --open): the inputs have attempts to {} other target port{} (drop the selection to see them).",
            thousands(a.unselected),
            if a.unselected == 1 { "" } else { "s" }
        );
    } else if a.results.is_empty() {
        out.push_str("No TCP connection attempts found.\n");
    }
    let mut by_target: BTreeMap<IpAddr, Vec<&Verdict>> = BTreeMap::new();
    for v in &a.results {
        by_target.entry(v.target).or_default().push(v);
    }
    let mut silent_hosts = 0usize;
    for (target, rows) in &by_target {
        // Among several hosts, one silent on every port it was probed on:
        // its one line says all there is (a /24 scan is mostly such hosts).
        let silent = rows
            .iter()
            .all(|v| v.state == State::Filtered && !v.uncertain && v.inferred.is_none());
        if silent && !opts.all && by_target.len() > 1 {
            silent_hosts += 1;
            let _ = writeln!(
                out,
                "{}: {} port{}: silent on every one (filtered, no-response)",
                host_label(*target, rows),
                thousands(rows.len() as u64),
                if rows.len() == 1 { "" } else { "s" }
            );
            continue;
        }
        // Among several hosts, one a router could not reach on every port
        // (an absent host: its ARP failed; a network without a route):
        // one line too, with the router.
        if let Some(line) =
            unreachable_line(*target, rows).filter(|_| !opts.all && by_target.len() > 1)
        {
            silent_hosts += 1;
            let _ = writeln!(out, "{line}");
            continue;
        }
        if silent_hosts > 0 {
            out.push('\n');
            silent_hosts = 0;
        }
        render_host(&mut out, *target, rows, opts);
        out.push('\n');
    }
    if silent_hosts > 0 {
        out.push('\n');
    }
    if by_target.len() > 1 {
        let silent = by_target
            .values()
            .filter(|rows| rows.iter().all(|v| v.state == State::Filtered))
            .count();
        let _ = writeln!(
            out,
            "{} hosts: {} with some answer (their own or a router's), {} silent on every port probed.",
            thousands(by_target.len() as u64),
            thousands((by_target.len() - silent) as u64),
            thousands(silent as u64)
        );
    }
    let s = &a.summary;
    let _ = write!(
        out,
        "{} packets read, {} skipped",
        thousands(s.packets_read),
        thousands(s.skipped)
    );
    let mut reasons: BTreeMap<&str, u64> = BTreeMap::new();
    for i in &a.inputs {
        for (k, n) in &i.skipped_by_reason {
            *reasons.entry(k).or_default() += n;
        }
    }
    if !reasons.is_empty() {
        let parts: Vec<String> = reasons
            .iter()
            .map(|(k, n)| format!("{k} {}", thousands(*n)))
            .collect();
        let _ = write!(out, " ({})", parts.join(", "));
    }
    let _ = writeln!(
        out,
        ", {} SYNs ({} retransmitted), {} unsolicited {}.",
        thousands(s.syns),
        thousands(s.retransmissions),
        thousands(s.unsolicited),
        if s.unsolicited == 1 {
            "reply"
        } else {
            "replies"
        }
    );
    if let Some(&n) = reasons.get("truncated") {
        let _ = writeln!(
            out,
            "Warning: {} packets were cut by the capture's snap length before the headers synscope reads; an answer among them (often an ICMP error, whose quoted packet is long) is missing from the verdicts. Capture with tcpdump -s 0, or a snap length of 128 bytes or more.",
            thousands(n)
        );
    }
    if s.evicted > 0 {
        let _ = writeln!(
            out,
            "Warning: {} attempts were decided before their timeout because the probe table was full.",
            thousands(s.evicted)
        );
    }
    out
}

/// "203.0.113.3: 2 ports: unreachable on every one (host-unreach from the
/// router 198.51.100.1, 1 hop)": a host that one router could not reach
/// on any port, every verdict backed by its own error.
fn unreachable_line(target: IpAddr, rows: &[&Verdict]) -> Option<String> {
    let first = rows.first()?;
    let whole_host = |v: &Verdict| {
        v.state == State::Unreachable
            && matches!(
                v.reason,
                Reason::HostUnreach | Reason::NetUnreach | Reason::NoRoute
            )
            && v.inferred.is_none()
            && !v.uncertain
            && v.responder.is_some_and(|r| r != target)
    };
    let like_first = rows.iter().all(|v| {
        whole_host(v)
            && (v.reason, v.responder, v.hops) == (first.reason, first.responder, first.hops)
    });
    if !like_first {
        return None;
    }
    let hops = first
        .hops
        .map(|h| format!(", {h} hop{}", if h == 1 { "" } else { "s" }))
        .unwrap_or_default();
    Some(format!(
        "{}: {} port{}: unreachable on every one ({} from the router {}{hops})",
        host_label(target, rows),
        thousands(rows.len() as u64),
        if rows.len() == 1 { "" } else { "s" },
        first.reason.as_str(),
        first.responder.map(|r| r.to_string()).unwrap_or_default()
    ))
}

/// "7 refused (reset)", "2 unreachable (port-unreach 1, admin-prohibited 1)".
fn state_summary(rows: &[&Verdict]) -> String {
    let mut parts = Vec::new();
    for state in State::ALL {
        let mut reasons: BTreeMap<Reason, u64> = BTreeMap::new();
        for v in rows.iter().filter(|v| v.state == state) {
            *reasons.entry(v.reason).or_default() += 1;
        }
        let total: u64 = reasons.values().sum();
        if total == 0 {
            continue;
        }
        let detail = if reasons.len() == 1 {
            reasons
                .keys()
                .map(|r| r.as_str().to_string())
                .collect::<String>()
        } else {
            reasons
                .iter()
                .map(|(r, n)| format!("{} {}", r.as_str(), thousands(*n)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        parts.push(format!(
            "{} {} ({detail})",
            thousands(total),
            state.as_str()
        ));
    }
    parts.join(", ")
}

/// "203.0.113.2", or "203.0.113.2 (www.example.org)" when a name gave it.
fn host_label(target: IpAddr, rows: &[&Verdict]) -> String {
    match rows.iter().find_map(|v| v.name.as_deref()) {
        Some(n) => format!("{target} ({n})"),
        None => target.to_string(),
    }
}

fn render_host(out: &mut String, target: IpAddr, rows: &[&Verdict], opts: TableOptions) {
    let target = host_label(target, rows);
    let _ = writeln!(
        out,
        "{target}: {} port{}: {}",
        thousands(rows.len() as u64),
        if rows.len() == 1 { "" } else { "s" },
        state_summary(rows)
    );
    // The largest class of identical answers (the same state, reason,
    // responder and distance), collapsed when it is large; a reply marked
    // as from another distance than its host's is never folded away.
    type Class = (State, Reason, Option<IpAddr>, Option<u8>, bool);
    let class =
        |v: &Verdict| -> Class { (v.state, v.reason, v.responder, v.hops, v.inferred.is_some()) };
    let mut classes: BTreeMap<Class, usize> = BTreeMap::new();
    for v in rows.iter().filter(|v| v.host_hops.is_none()) {
        *classes.entry(class(v)).or_default() += 1;
    }
    let hidden = classes
        .iter()
        .max_by_key(|(_, n)| **n)
        .filter(|(_, n)| **n > COLLAPSE_OVER && !opts.all)
        .map(|(k, n)| (*k, *n));
    if let Some(((state, reason, responder, hops, inferred), n)) = hidden {
        let from = match (responder, hops) {
            (Some(r), Some(h)) => format!(" from {r}, {h} hop{}", if h == 1 { "" } else { "s" }),
            (Some(r), None) => format!(" from {r}"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "Not shown: {} {}{} ports ({}){from}; --all shows them",
            thousands(n as u64),
            state.as_str(),
            if inferred { "*" } else { "" },
            reason.as_str()
        );
    }
    let shown: Vec<&&Verdict> = rows
        .iter()
        .filter(|v| v.host_hops.is_some() || hidden.is_none_or(|(k, _)| class(v) != k))
        .collect();
    let foreign: Vec<&&Verdict> = rows.iter().filter(|v| v.host_hops.is_some()).collect();
    if let Some(f) = foreign.first() {
        let ports: Vec<String> = foreign
            .iter()
            .take(16)
            .map(|v| v.port.to_string())
            .collect();
        let _ = writeln!(
            out,
            "!: in the host's name but from {} hop{}, where its own replies come from {}: sent by something on the path (a middlebox's forged reset?), not the host: port{} {}{}",
            f.hops.unwrap_or(0),
            if f.hops == Some(1) { "" } else { "s" },
            f.host_hops.unwrap_or(0),
            if foreign.len() == 1 { "" } else { "s" },
            ports.join(", "),
            if foreign.len() > 16 { ", ..." } else { "" }
        );
    }
    if let Some(inf) = rows.iter().find_map(|v| v.inferred.as_ref()) {
        let listed: Vec<String> = inf.from_ports.iter().map(|p| p.to_string()).collect();
        let _ = writeln!(
            out,
            "*: inferred, no packet of its own: {} other port{} of this host got that error themselves ({}{}), and the responder rate-limits its ICMP errors",
            thousands(u64::from(inf.errors)),
            if inf.errors == 1 { "" } else { "s" },
            listed.join(", "),
            if inf.errors as usize > inf.from_ports.len() {
                ", ..."
            } else {
                ""
            }
        );
    }
    if shown.is_empty() {
        return;
    }
    let many_clients = rows.iter().any(|v| v.client != rows[0].client);
    let mut t = Table::new();
    t.load_style(if opts.boxes {
        presets::UTF8_FULL_CONDENSED
    } else {
        presets::NOTHING
    })
    .set_content_arrangement(ContentArrangement::Disabled);
    // Colour only on a terminal (comfy-table checks) and never with NO_COLOR
    // (https://no-color.org: set and not empty).
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        t.force_no_tty();
    }
    let services = super::services::Services::system();
    let mut header = vec![
        "PORT",
        "STATE",
        "SERVICE",
        "REASON",
        "RESPONDER",
        "TTL/HOPS",
        "RTT",
        "PROBES",
    ];
    if many_clients {
        header.push("CLIENT");
    }
    t.set_header(header);
    for v in shown {
        let reason = match (v.icmp_type, v.icmp_code) {
            (Some(ty), Some(code)) => format!("{} ({ty}/{code})", v.reason.as_str()),
            _ => v.reason.as_str().to_string(),
        };
        let ttl = match (v.ttl, v.hops) {
            (Some(t), Some(h)) if !v.ttls.is_empty() => {
                let all: Vec<String> = v.ttls.iter().map(|t| t.to_string()).collect();
                format!("{t}/{h} (seen {})", all.join(","))
            }
            (Some(t), Some(h)) => format!("{t}/{h}"),
            _ => "-".into(),
        };
        let ttl = if v.host_hops.is_some() {
            format!("{ttl}!")
        } else {
            ttl
        };
        let rtt = v
            .rtt_ms
            .map(|ms| format!("{ms:.3} ms"))
            .unwrap_or_else(|| "-".into());
        let mut row = vec![
            v.port.to_string(),
            if v.uncertain {
                format!("{}?", v.state.as_str())
            } else if v.inferred.is_some() {
                format!("{}*", v.state.as_str())
            } else {
                v.state.as_str().to_string()
            },
            services.tcp(v.port).unwrap_or("-").to_string(),
            reason,
            v.responder
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
            ttl,
            rtt,
            v.probes.to_string(),
        ];
        if many_clients {
            row.push(v.client.to_string());
        }
        let color = match v.state {
            State::Open => Color::Green,
            State::Refused => Color::Yellow,
            State::Filtered => Color::Red,
            State::Unreachable => Color::Magenta,
        };
        let cells: Vec<Cell> = row
            .into_iter()
            .enumerate()
            .map(|(i, text)| {
                let c = Cell::new(text);
                if i == 1 { c.fg(color) } else { c }
            })
            .collect();
        t.add_row(cells);
    }
    for i in [0usize, 5, 6, 7] {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let _ = writeln!(out, "{t}");
}
