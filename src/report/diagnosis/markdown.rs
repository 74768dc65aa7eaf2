//! The diagnosis as Markdown: what the terminal shows, and a
//! self-contained file for a ticket.

use super::{EVIDENCE_COLUMNS, PathRow, Step, evidence_rows, path_rows, picture, picture_text};
use crate::diagnose::{AddressDiagnosis, Diagnosis};
use crate::report::thousands;
use std::fmt::Write;

fn evidence(out: &mut String, a: &AddressDiagnosis, port: u16) {
    let _ = writeln!(out, "| {} |", EVIDENCE_COLUMNS.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(EVIDENCE_COLUMNS.len()));
    for r in evidence_rows(a, port) {
        let _ = writeln!(
            out,
            "| {}{} | {} | {} | {} | {} | {} | {} |",
            r.port,
            if r.asked { " (asked)" } else { "" },
            r.state,
            r.reason,
            r.responder,
            r.ttl_hops,
            r.rtt,
            thousands(u64::from(r.probes))
        );
    }
}

/// The path as a row of hops, and where the asked port's probes stop.
fn path(out: &mut String, target: std::net::IpAddr, rows: &[PathRow]) {
    let _ = writeln!(out, "### The path\n");
    for p in rows {
        let mut row = vec!["you".to_string()];
        row.extend(p.steps.iter().map(|s| match *s {
            Step::Router { ttl, from } => format!("hop {ttl} {from}"),
            Step::Reached { ttl, from, reason } => format!("hop {ttl} {from} ({reason})"),
            Step::Rejects { ttl, from, reason } => format!("hop {ttl} {from} rejects ({reason})"),
            Step::Unknown { ttl } => format!("hop {ttl} ?"),
        }));
        if let Some(max) = p.stops_after {
            row.push(format!(
                "✗ no answer beyond hop {max} ({target} port {})",
                p.port
            ));
        }
        let _ = writeln!(out, "- port {} ({}): {}", p.port, p.label, row.join(" → "));
    }
    out.push('\n');
}

/// The report as Markdown (also what the terminal shows).
pub fn render_diagnosis_markdown(d: &Diagnosis) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Why {}:{}?\n", d.host, d.port);
    let _ = writeln!(
        out,
        "_Probed from {} at {}._\n",
        d.generated_on, d.generated_at
    );
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
            let after = a.after_handshake.iter().find(|h| h.port == f.port);
            let _ = writeln!(
                out,
                "- Picture: {}",
                picture_text(&picture(f, a.host.hops, after))
            );
            out.push('\n');
        }
        let open = if a.host.open.is_empty() {
            "none".to_string()
        } else {
            a.host
                .open
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match a.host.hops {
            Some(h) => {
                let _ = writeln!(
                    out,
                    "The host's own replies come from {h} hop{} away; open ports seen: {open}.\n",
                    if h == 1 { "" } else { "s" },
                );
            }
            // Answers without a distance: connect() probes see no TTL.
            None if !a.host.open.is_empty() => {
                let _ = writeln!(
                    out,
                    "The host answered (open ports seen: {open}); its distance is not known (no TTLs are seen in this mode).\n",
                );
            }
            None => {
                let _ = writeln!(out, "The host itself sent nothing on any probed port.\n");
            }
        }
        if let Some(t) = &a.trace {
            path(&mut out, a.address, &path_rows(t, d.port));
        }
        let _ = writeln!(out, "### Evidence\n");
        evidence(&mut out, a, d.port);
        out.push('\n');
    }
    // The verdict again at the end, where a terminal leaves the eye.
    for a in &d.addresses {
        if let Some(f) = a.findings.first() {
            let _ = writeln!(
                out,
                "**In short: {} port {}: {}**\n",
                a.address, d.port, f.summary
            );
        }
    }
    if d.addresses.is_empty() {
        let _ = writeln!(out, "**In short: {}**\n", d.resolution_summary);
    }
    if let Some(s) = &d.scan {
        let e = s.engine;
        // The connections held after the probes take their own time (the
        // whole run's, most often): said, so the time is the run's.
        let held: Vec<f64> = d
            .addresses
            .iter()
            .flat_map(|a| a.after_handshake.iter().map(|h| h.waited_ms))
            .collect();
        let held = match held.iter().copied().reduce(f64::max) {
            Some(ms) => format!(
                ", then {} connection{} held up to {:.1} s",
                held.len(),
                if held.len() == 1 { "" } else { "s" },
                ms / 1000.0
            ),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "_{} probes ({} retransmitted) in {:.1} s{held}, from port {}; synscope {}._",
            e.sent,
            e.retransmitted,
            s.duration_s,
            s.source_port,
            env!("CARGO_PKG_VERSION")
        );
    }
    out
}
