//! nmap's XML output format (nmaprun / host / ports / port / state with
//! reason, reason_ttl, reason_ip), so tools that read nmap's output read
//! synscope's. It validates against nmap's DTD; the DTD allows no scanner
//! name but "nmap", so `scanner="nmap"` names the format, and `args` and a
//! comment name synscope.

use crate::model::Analysis;
use crate::model::{State, Verdict};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// nmap's words: refused is "closed", and an ICMP rejection is "filtered"
/// (the reason keeps what synscope saw).
fn nmap_state(v: &Verdict) -> &'static str {
    match v.state {
        State::Open => "open",
        State::Refused => "closed",
        State::Filtered | State::Unreachable => "filtered",
    }
}

pub fn write_nmap_xml<W: Write>(a: &Analysis, args: &str, mut w: W) -> std::io::Result<()> {
    let names = super::services::Services::system();
    let start = a
        .results
        .iter()
        .map(|v| v.first_probe_ns)
        .filter(|t| *t > 0)
        .min()
        .unwrap_or(0)
        / 1_000_000_000;
    let end = a
        .results
        .iter()
        .filter_map(|v| v.decided_ns.or(Some(v.first_probe_ns)))
        .max()
        .unwrap_or(0)
        / 1_000_000_000;
    let mut ports: Vec<u16> = a.results.iter().map(|v| v.port).collect();
    ports.sort_unstable();
    ports.dedup();
    let services = ports
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",");
    writeln!(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>")?;
    writeln!(w, "<!DOCTYPE nmaprun>")?;
    writeln!(
        w,
        "<!-- written by synscope {}: verdicts from packets -->",
        env!("CARGO_PKG_VERSION")
    )?;
    writeln!(
        w,
        "<nmaprun scanner=\"nmap\" args=\"{}\" start=\"{start}\" version=\"{}\" xmloutputversion=\"1.05\">",
        esc(args),
        env!("CARGO_PKG_VERSION")
    )?;
    writeln!(
        w,
        "<scaninfo type=\"syn\" protocol=\"tcp\" numservices=\"{}\" services=\"{}\"/>",
        ports.len(),
        esc(&services)
    )?;
    writeln!(w, "<verbose level=\"0\"/>\n<debugging level=\"0\"/>")?;
    let mut by_host: BTreeMap<IpAddr, Vec<&Verdict>> = BTreeMap::new();
    for v in &a.results {
        by_host.entry(v.target).or_default().push(v);
    }
    let mut up = 0;
    for (host, vs) in &by_host {
        // Up when anything answered from the host itself.
        let answer = vs.iter().find(|v| v.responder == Some(*host));
        let (state, reason, ttl) = match answer {
            Some(v) => ("up", v.reason.as_str(), v.ttl.unwrap_or(0)),
            None => ("unknown", "no-response", 0),
        };
        if answer.is_some() {
            up += 1;
        }
        writeln!(w, "<host>")?;
        writeln!(
            w,
            "<status state=\"{state}\" reason=\"{reason}\" reason_ttl=\"{ttl}\"/>"
        )?;
        let kind = if host.is_ipv6() { "ipv6" } else { "ipv4" };
        writeln!(w, "<address addr=\"{host}\" addrtype=\"{kind}\"/>")?;
        match vs.iter().find_map(|v| v.name.as_deref()) {
            Some(n) => writeln!(
                w,
                "<hostnames>\n<hostname name=\"{}\" type=\"user\"/>\n</hostnames>\n<ports>",
                esc(n)
            )?,
            None => writeln!(w, "<hostnames>\n</hostnames>\n<ports>")?,
        }
        for v in vs {
            let reason_ip = match v.responder {
                Some(r) if r != *host => format!(" reason_ip=\"{r}\""),
                _ => String::new(),
            };
            // The DTD's port holds state, then service, then scripts: the
            // service name from the system's database (nmap's
            // method="table"), and a reply from another distance than its
            // host's own as a script's output (no attribute of <state>
            // can carry it).
            let service = names
                .tcp(v.port)
                .map(|n| format!("<service name=\"{}\" method=\"table\" conf=\"3\"/>", esc(n)))
                .unwrap_or_default();
            let path = match (v.host_hops, v.hops) {
                (Some(own), Some(h)) => format!(
                    "<script id=\"synscope-path\" output=\"reply from {h} hop{}, the host's own replies from {own}: sent by something on the path (a forged reset?), not the host\"/>",
                    if h == 1 { "" } else { "s" }
                ),
                _ => String::new(),
            };
            writeln!(
                w,
                "<port protocol=\"tcp\" portid=\"{}\"><state state=\"{}\" reason=\"{}\" reason_ttl=\"{}\"{reason_ip}/>{service}{path}</port>",
                v.port,
                nmap_state(v),
                if v.inferred.is_some() {
                    format!("inferred-{}", v.reason.as_str())
                } else {
                    v.reason.as_str().to_string()
                },
                v.ttl.unwrap_or(0)
            )?;
        }
        writeln!(w, "</ports>\n</host>")?;
    }
    let total = by_host.len();
    writeln!(
        w,
        "<runstats><finished time=\"{end}\" elapsed=\"{}\" summary=\"synscope: {} ports on {total} hosts\" exit=\"success\"/><hosts up=\"{up}\" down=\"0\" total=\"{total}\"/></runstats>",
        end.saturating_sub(start),
        a.results.len()
    )?;
    writeln!(w, "</nmaprun>")?;
    w.flush()
}
