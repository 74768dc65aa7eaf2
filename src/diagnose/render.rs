//! Diagnosis reports: the terminal (findings first, then the evidence) and
//! a self-contained Markdown file for a ticket.

use super::Diagnosis;
use crate::report::thousands;
use std::fmt::Write;

fn evidence_rows(out: &mut String, d: &super::AddressDiagnosis, port: u16) {
    let _ = writeln!(
        out,
        "| port | state | reason | responder | TTL/hops | RTT | probes |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let mut rows: Vec<&crate::model::Verdict> = d.results.iter().collect();
    // The asked port first, then the rest by port.
    rows.sort_by_key(|v| (v.port != port, v.port));
    for v in rows {
        let reason = match (v.icmp_type, v.icmp_code) {
            (Some(t), Some(c)) => format!("{} ({t}/{c})", v.reason.as_str()),
            _ => v.reason.as_str().to_string(),
        };
        let _ = writeln!(
            out,
            "| {}{} | {} | {} | {} | {} | {} | {} |",
            v.port,
            if v.port == port { " (asked)" } else { "" },
            v.state.as_str(),
            reason,
            v.responder
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
            match (v.ttl, v.hops) {
                (Some(t), Some(h)) => format!("{t}/{h}"),
                _ => "-".into(),
            },
            v.rtt_ms
                .map(|r| format!("{r:.3} ms"))
                .unwrap_or_else(|| "-".into()),
            thousands(u64::from(v.probes))
        );
    }
}

/// The path as a row of hops, and where the asked port's probes stop.
fn path(out: &mut String, target: std::net::IpAddr, port: u16, traces: &[crate::model::PortTrace]) {
    use crate::model::HopKind;
    let _ = writeln!(out, "### The path\n");
    for t in traces {
        let mut row = vec!["you".to_string()];
        // Up to where the host answered (later TTLs reach it too), or the
        // last hop that answered at all.
        let max = t
            .reached_at()
            .unwrap_or_else(|| t.hops.iter().map(|h| h.ttl).max().unwrap_or(0));
        for ttl in 1..=max {
            match t.hops.iter().find(|h| h.ttl == ttl) {
                Some(h) => match h.kind {
                    HopKind::TimeExceeded => row.push(format!("hop {ttl} {}", h.from)),
                    HopKind::Reached { reason } => {
                        row.push(format!("hop {ttl} {} ({})", h.from, reason.as_str()))
                    }
                    HopKind::Rejected { reason } => row.push(format!(
                        "hop {ttl} {} rejects ({})",
                        h.from,
                        reason.as_str()
                    )),
                },
                None => row.push(format!("hop {ttl} ?")),
            }
        }
        if t.reached_at().is_none() {
            row.push(format!(
                "✗ no answer beyond hop {max} ({target} port {})",
                t.port
            ));
        }
        let label = if t.port == port { "asked" } else { "reference" };
        let _ = writeln!(out, "- port {} ({label}): {}", t.port, row.join(" → "));
    }
    out.push('\n');
}

/// The report as Markdown (also what the terminal shows).
pub fn markdown(d: &Diagnosis) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Why {}:{}?\n", d.host, d.port);
    let _ = writeln!(out, "## Name resolution\n\n{}\n", d.resolution_summary);
    for a in &d.addresses {
        let _ = writeln!(out, "## {} port {}\n", a.address, d.port);
        if let Some(r) = &a.route {
            let _ = writeln!(out, "Route: from {} via {}.\n", r.source, r.device);
        }
        for f in &a.findings {
            let _ = writeln!(out, "**{}**\n", f.summary);
            for line in &f.details {
                let _ = writeln!(out, "- {line}");
            }
            if let Some(app) = &f.application_error {
                let _ = writeln!(out, "- What an application sees: {app}.");
            }
            out.push('\n');
        }
        match a.host.hops {
            Some(h) => {
                let _ = writeln!(
                    out,
                    "The host's own replies come from {h} hop{} away; open ports seen: {}.\n",
                    if h == 1 { "" } else { "s" },
                    if a.host.open.is_empty() {
                        "none".to_string()
                    } else {
                        a.host
                            .open
                            .iter()
                            .map(|p| p.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                );
            }
            None => {
                let _ = writeln!(out, "The host itself sent nothing on any probed port.\n");
            }
        }
        if let Some(t) = &a.trace {
            path(&mut out, a.address, d.port, t);
        }
        let _ = writeln!(out, "### Evidence\n");
        evidence_rows(&mut out, a, d.port);
        out.push('\n');
    }
    if let Some(s) = &d.scan {
        let e = s.engine;
        let _ = writeln!(
            out,
            "_{} probes ({} retransmitted), {:.1} s, from port {}; synscope {}._",
            e.sent,
            e.retransmitted,
            s.duration_s,
            s.source_port,
            env!("CARGO_PKG_VERSION")
        );
    }
    out
}
