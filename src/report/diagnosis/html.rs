//! The diagnosis as one self-contained HTML page (inline CSS, no scripts,
//! nothing fetched), to attach to a ticket or open in a browser.

use super::{EVIDENCE_COLUMNS, PathRow, Pic, Step, evidence_rows, path_rows, picture};
use crate::diagnose::offline::OfflineFindings;
use crate::diagnose::{AddressDiagnosis, Diagnosis, Finding, Kind};
use std::fmt::Write;
use std::net::IpAddr;

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn class(kind: Kind) -> &'static str {
    match kind {
        Kind::Open => "ok",
        Kind::RefusedByHost | Kind::RejectedByHost => "host",
        Kind::MiddleboxReset | Kind::RejectedOnPath | Kind::DroppedHostUp => "path",
        Kind::HostUnreachable | Kind::NetworkUnreachable | Kind::NoAnswerAtAll => "down",
        Kind::AcceptsThenResets | Kind::AcceptsThenCloses => "host",
        Kind::AnsweredOnBehalf => "path",
    }
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#1c1c1c}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
.finding{border-left:6px solid #888;background:#f6f6f6;padding:.6em 1em;margin:1em 0}
.finding.ok{border-color:#2a8a3a}.finding.host{border-color:#c77700}.finding.path{border-color:#b3261e}.finding.down{border-color:#5a5a9a}
.finding p.summary{font-weight:600;margin:.2em 0 .5em}
.path{display:flex;flex-wrap:wrap;align-items:center;gap:.4em;margin:.5em 0}
.hop{border:1px solid #999;border-radius:6px;padding:.3em .6em;background:#fff;font-family:ui-monospace,monospace;font-size:.9em}
.hop.host{border-color:#2a8a3a;background:#eef8ef}.hop.stop{border-color:#b3261e;background:#fdecea;color:#b3261e}
.hop.far{border-style:dashed;color:#777;background:#fafafa}
.arrow{color:#888}
table{border-collapse:collapse;font-family:ui-monospace,monospace;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}th{background:#eee}
tr.asked td{background:#fff7e0;font-weight:600}
footer{margin-top:2em;color:#666;font-size:.85em}";

fn path(o: &mut String, rows: &[PathRow]) {
    let _ = writeln!(o, "<h3>The path</h3>");
    for p in rows {
        let _ = write!(
            o,
            "<p>Port {} ({}):</p><div class=\"path\"><span class=\"hop\">you</span>",
            p.port, p.label
        );
        for s in &p.steps {
            let (cls, text) = match *s {
                Step::Router { ttl, from } => {
                    ("hop", format!("hop {ttl}<br>{}", esc(&from.to_string())))
                }
                Step::Reached { ttl, from, reason } => (
                    "hop host",
                    format!("hop {ttl}<br>{}<br>{reason}", esc(&from.to_string())),
                ),
                Step::Rejects { ttl, from, reason } => (
                    "hop stop",
                    format!(
                        "hop {ttl}<br>{}<br>rejects: {reason}",
                        esc(&from.to_string())
                    ),
                ),
                Step::Unknown { ttl } => ("hop", format!("hop {ttl}<br>?")),
            };
            let _ = write!(
                o,
                "<span class=\"arrow\">→</span><span class=\"{cls}\">{text}</span>"
            );
        }
        if let Some(max) = p.stops_after {
            let _ = write!(
                o,
                "<span class=\"arrow\">→</span><span class=\"hop stop\">✗ no answer<br>beyond hop {max}</span>"
            );
        }
        let _ = writeln!(o, "</div>");
    }
}

/// A finding's picture: boxes from "you" to where it happened.
pub(super) fn draw(o: &mut String, boxes: &[Pic]) {
    let _ = write!(o, "<div class=\"path picture\">");
    for (i, b) in boxes.iter().enumerate() {
        if i > 0 {
            let _ = write!(o, "<span class=\"arrow\">→</span>");
        }
        let lines: Vec<String> = b.lines.iter().map(|l| esc(l)).collect();
        let _ = write!(
            o,
            "<span class=\"{}\">{}</span>",
            b.class,
            lines.join("<br>")
        );
    }
    let _ = writeln!(o, "</div>");
}

fn evidence(o: &mut String, a: &AddressDiagnosis, port: u16) {
    let heads: String = EVIDENCE_COLUMNS
        .iter()
        .map(|c| format!("<th>{c}</th>"))
        .collect();
    let _ = writeln!(o, "<h3>Evidence</h3><table><tr>{heads}</tr>");
    for r in evidence_rows(a, port) {
        let _ = writeln!(
            o,
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if r.asked { " class=\"asked\"" } else { "" },
            r.port,
            r.state,
            esc(&r.reason),
            esc(&r.responder),
            r.ttl_hops,
            r.rtt,
            r.probes
        );
    }
    let _ = writeln!(o, "</table>");
}

/// A capture's findings (`analyze --findings --report FILE.html`) as one
/// page: the findings shared by many hosts once each, with the hosts and
/// the picture of the first; then each host's own, with its picture; then
/// the counted ones and what the DNS answers explain.
pub fn render_findings_html(f: &OfflineFindings, inputs: &str) -> String {
    render_page(&format!("Findings from {inputs}"), &[], f, None)
}

/// What `watch` saw as one page: its own sections (each a heading and its
/// lines) first, then the findings as [`render_findings_html`] draws them,
/// then the verdict table as text.
pub fn render_watch_html(
    title: &str,
    sections: &[(String, Vec<String>)],
    f: &OfflineFindings,
    table: &str,
) -> String {
    render_page(title, sections, f, Some(table))
}

fn render_page(
    title: &str,
    sections: &[(String, Vec<String>)],
    f: &OfflineFindings,
    table: Option<&str>,
) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        esc(title),
        esc(title)
    );
    for (heading, lines) in sections.iter().filter(|(_, l)| !l.is_empty()) {
        let _ = writeln!(o, "<h2>{}</h2><ul>", esc(heading));
        for l in lines {
            let _ = writeln!(o, "<li>{}</li>", esc(l));
        }
        let _ = writeln!(o, "</ul>");
    }
    let (shared, rest) = crate::diagnose::groups::group(&f.findings);
    let card = |o: &mut String, x: &Finding, summary: &str, more: &[String]| {
        let _ = write!(
            o,
            "<div class=\"finding {}\"><p class=\"summary\">{}</p><ul>",
            class(x.kind),
            esc(summary)
        );
        for line in more.iter().chain(&x.details) {
            let _ = write!(o, "<li>{}</li>", esc(line));
        }
        if let Some(app) = &x.application_error {
            let _ = write!(o, "<li>What an application sees: {}.</li>", esc(app));
        }
        let _ = writeln!(o, "</ul>");
        draw(o, &picture(x, f.hops_of.get(&x.target).copied(), None));
        let _ = writeln!(o, "</div>");
    };
    if !shared.is_empty() {
        let _ = writeln!(o, "<h2>Shared by many hosts</h2>");
    }
    for g in &shared {
        let first = f.findings.iter().find(|x| {
            x.kind == g.kind
                && g.targets.first() == Some(&x.target)
                && g.port.is_none_or(|p| p == x.port)
        });
        if let Some(x) = first {
            let hosts = format!(
                "{} hosts: {}.",
                g.targets.len(),
                g.targets
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let pictured = format!("The picture is {}'s; the others' are alike.", x.target);
            card(&mut o, x, &g.summary, &[hosts, pictured]);
        }
    }
    let mut host: Option<IpAddr> = None;
    for x in rest {
        if host != Some(x.target) {
            host = Some(x.target);
            let name = f
                .names_of
                .get(&x.target)
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            let _ = writeln!(o, "<h2>{}{}</h2>", esc(&x.target.to_string()), esc(&name));
        }
        card(&mut o, x, &format!("Port {}: {}", x.port, x.summary), &[]);
    }
    if !f.counted.is_empty() {
        let _ = writeln!(o, "<h2>Counted</h2><ul>");
        for c in &f.counted {
            let _ = writeln!(
                o,
                "<li>{}: {}</li>",
                esc(&c.target.to_string()),
                esc(&c.summary)
            );
        }
        let _ = writeln!(o, "</ul>");
    }
    if !f.names.is_empty() {
        let _ = writeln!(o, "<h2>Names</h2><ul>");
        for n in &f.names {
            let _ = writeln!(o, "<li>{}: {}</li>", esc(&n.name), esc(&n.summary));
        }
        let _ = writeln!(o, "</ul>");
    }
    if f.findings.is_empty() && f.counted.is_empty() && f.names.is_empty() {
        let _ = writeln!(o, "<p>No failures: every attempt was answered open.</p>");
    }
    if let Some(t) = table {
        let _ = writeln!(o, "<h2>Every destination</h2><pre>{}</pre>", esc(t));
    }
    let _ = writeln!(
        o,
        "<footer>synscope {} — findings from the packets of a capture.</footer></body></html>",
        env!("CARGO_PKG_VERSION")
    );
    o
}

/// The report as one HTML page.
pub fn render_diagnosis_html(d: &Diagnosis) -> String {
    let mut o = String::new();
    let title = format!("Why {}:{}?", d.host, d.port);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    let _ = writeln!(
        o,
        "<p><em>Probed from {} at {}.</em></p>",
        esc(&d.generated_on),
        esc(&d.generated_at)
    );
    let _ = writeln!(
        o,
        "<h2>Name resolution</h2><p>{}</p>",
        esc(&d.resolution_summary)
    );
    for a in &d.addresses {
        let _ = writeln!(
            o,
            "<h2>{} port {}</h2>",
            esc(&a.address.to_string()),
            d.port
        );
        if let Some(r) = &a.route {
            let _ = writeln!(
                o,
                "<p>Route: from {} via {}.</p>",
                esc(&r.source.to_string()),
                esc(&r.device)
            );
        }
        for f in &a.findings {
            let _ = write!(
                o,
                "<div class=\"finding {}\"><p class=\"summary\">{}</p><ul>",
                class(f.kind),
                esc(&f.summary)
            );
            for line in &f.details {
                let _ = write!(o, "<li>{}</li>", esc(line));
            }
            if let Some(app) = &f.application_error {
                let _ = write!(o, "<li>What an application sees: {}.</li>", esc(app));
            }
            let _ = writeln!(o, "</ul>");
            let after = a.after_handshake.iter().find(|h| h.port == f.port);
            draw(&mut o, &picture(f, a.host.hops, after));
            let _ = writeln!(o, "</div>");
        }
        if let Some(traces) = &a.trace {
            path(&mut o, &path_rows(traces, d.port));
        }
        evidence(&mut o, a, d.port);
    }
    let _ = writeln!(
        o,
        "<footer>synscope {} — verdicts from packets: SYN probes and what answered them.</footer></body></html>",
        env!("CARGO_PKG_VERSION")
    );
    o
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }
}
