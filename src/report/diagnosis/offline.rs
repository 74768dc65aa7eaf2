//! A capture's findings as text, for the terminal before the tables.

use crate::diagnose::offline::OfflineFindings;
use std::net::IpAddr;

/// The findings as text for the terminal, before the tables.
pub fn render_findings(f: &OfflineFindings) -> String {
    let mut s = String::new();
    if f.findings.is_empty() && f.names.is_empty() && f.refused_counts.is_empty() {
        return s;
    }
    s.push_str("Findings:\n");
    for n in &f.names {
        s.push_str(&format!("- {}: {}\n", n.name, n.summary));
    }
    for x in &f.findings {
        let app = x
            .application_error
            .as_ref()
            .map(|a| format!(" ({a})"))
            .unwrap_or_default();
        let target = match x.target {
            IpAddr::V6(_) => format!("[{}]", x.target),
            IpAddr::V4(_) => x.target.to_string(),
        };
        let name = f
            .names_of
            .get(&x.target)
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        s.push_str(&format!(
            "- {target}:{}{name} — {}{app}\n",
            x.port, x.summary
        ));
    }
    for (t, n) in &f.refused_counts {
        s.push_str(&format!(
            "- {t}: {n} ports refused by the host itself (nothing listens there)\n"
        ));
    }
    s.push('\n');
    s
}
