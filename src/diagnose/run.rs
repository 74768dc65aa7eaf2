//! `synscope diagnose`: resolve, route, probe the port and reference ports,
//! and turn the verdicts into findings.

use super::diagnosis::{AddressDiagnosis, Diagnosis, Route};
use super::findings::{self, Finding, Kind};
use crate::error::Error;
use crate::model::AfterHandshake;
use crate::model::{State, Verdict};
use crate::resolve::{self, Family};
use crate::scan::handshake::{Connector, SystemConnector, connect_all};
use crate::scan::trace::{self, TraceOptions};
use crate::scan::{self, ScanOptions};
use crate::select::PortSet;
use std::net::IpAddr;

/// Reference ports probed besides the one asked about: the first of
/// synscope's common-service list, to learn what the host's own replies
/// look like and what is open nearby.
pub const REFERENCE_PORTS: usize = 20;

#[derive(Debug, Clone)]
pub struct DiagnoseOptions {
    pub host: String,
    pub port: u16,
    pub family: Family,
    /// After a SYN-ACK, how long a real connection to each open port is
    /// held to see what the server does (zero: not done).
    pub hold: std::time::Duration,
    /// Extra reference ports the user named.
    pub reference: Vec<u16>,
    /// Scan settings (targets and ports are filled in here).
    pub scan: ScanOptions,
    /// Told each stage as it starts (resolving, probing, re-probing,
    /// tracing), for a terminal's stderr; None: quiet.
    pub stages: Option<fn(&str)>,
}

/// Splits `HOST[:PORT]`: `example.org:443`, `[2001:db8::1]:443`,
/// `203.0.113.2:80`, or a bare host / IPv6 address (port then from -p).
pub fn split_host_port(s: &str) -> (String, Option<u16>) {
    if let Some(rest) = s.strip_prefix('[')
        && let Some((h, p)) = rest.split_once(']')
    {
        return (
            h.to_string(),
            p.strip_prefix(':').and_then(|p| p.parse().ok()),
        );
    }
    if s.matches(':').count() == 1
        && let Some((h, p)) = s.split_once(':')
        && let Ok(port) = p.parse::<u16>()
    {
        return (h.to_string(), Some(port));
    }
    (s.to_string(), None)
}

/// Probes one port again slowly ([`scan::slow_reprobe_pace`]: IPv4 3
/// probes 2.5 s apart, IPv6 4 a second apart), to tell a rate limit from
/// a drop. Returns the verdict if something answered.
fn reprobe_slowly(
    base: &ScanOptions,
    target: IpAddr,
    port: u16,
) -> Result<(Option<Verdict>, u32), Error> {
    let (gap, probes) = scan::slow_reprobe_pace(target);
    let mut o = base.clone();
    o.targets = vec![target];
    o.ports = PortSet::from_ports(&[port]);
    o.write = None;
    o.engine = crate::scan::engine::EngineConfig {
        gap: Some(gap),
        ..crate::scan::engine::EngineConfig::fixed(1, probes - 1, gap, 1)
    };
    o.wait = Some(std::time::Duration::from_secs(1));
    let out = scan::run(&o)?;
    let probes = (out.info.engine.sent + out.info.engine.retransmitted) as u32;
    let v = out
        .analysis
        .results
        .into_iter()
        .find(|v| v.port == port && v.state != State::Filtered);
    Ok((v, probes))
}

/// Now, UTC, as RFC 3339 (`2026-12-01T12:20:03Z`), from the C library's
/// calendar (gmtime_r).
pub fn utc_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let t = libc::time_t::try_from(now).unwrap_or(0);
    // SAFETY: an all-zero tm is a valid value for gmtime_r to fill; both
    // pointers are valid for the call.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::gmtime_r(&t, &mut tm);
        tm
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// This machine's host name ("unknown" if it has none).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Open ports a completed handshake is tried on, at most (the asked one
/// first).
const HANDSHAKE_PORTS: usize = 32;

pub fn run(opts: &DiagnoseOptions) -> Result<Diagnosis, Error> {
    run_with(opts, &SystemConnector)
}

/// [`run`], the handshakes through `connector`.
pub fn run_with(opts: &DiagnoseOptions, connector: &dyn Connector) -> Result<Diagnosis, Error> {
    let stage = |what: String| {
        if let Some(f) = &opts.stages {
            f(&what);
        }
    };
    stage(format!("resolving {}", opts.host));
    let resolution = resolve::resolve(&opts.host, opts.family);
    let summary = resolution.describe(&opts.host);
    let addresses = resolution.addresses().to_vec();
    let mut d = Diagnosis {
        schema_version: crate::model::SCHEMA_VERSION,
        generated_at: utc_now(),
        generated_on: host_name(),
        host: opts.host.clone(),
        port: opts.port,
        resolution,
        resolution_summary: summary,
        addresses: Vec::new(),
        scan: None,
    };
    if addresses.is_empty() {
        // Nothing to probe: the finding is the resolution itself.
        return Ok(d);
    }
    let mut ports = vec![opts.port];
    ports.extend(&opts.reference);
    // synscope's own list, whatever the machine has installed: the same
    // reference ports everywhere.
    if let Ok(top) = PortSet::top_in(REFERENCE_PORTS, None) {
        ports.extend(top.iter());
    }
    let ports = PortSet::from_ports(&ports);
    let mut sopts = opts.scan.clone();
    sopts.targets = addresses.clone();
    sopts.ports = ports;
    let routes = scan::route::routes(&addresses).unwrap_or_default();
    stage(format!(
        "probing port {} and {} reference ports of {}",
        opts.port,
        sopts.ports.len().saturating_sub(1),
        addresses
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let outcome = match scan::run(&sopts) {
        Ok(o) => o,
        // No raw sockets: fall back to connect() probes, and say so.
        Err(e) if e.is_permission() && !sopts.unprivileged => {
            sopts.unprivileged = true;
            let mut o = scan::run(&sopts)?;
            o.info.warnings.insert(
                0,
                format!("no raw sockets ({e}); falling back to connect() probes"),
            );
            o
        }
        Err(e) => return Err(e),
    };
    let unprivileged = sopts.unprivileged;
    for a in addresses {
        let mut results: Vec<Verdict> = outcome
            .analysis
            .results
            .iter()
            .filter(|v| v.target == a)
            .cloned()
            .collect();
        // Silence may be a rate limit (a REJECTing host or router that
        // answers some probes and not others): probe again, slowly, before
        // calling it filtered.
        let mut slow_note = None;
        let silent = results
            .iter()
            .any(|v| v.port == opts.port && v.state == State::Filtered);
        if silent && !unprivileged {
            let (gap, n) = scan::slow_reprobe_pace(a);
            stage(format!(
                "{a} port {} was silent: probing it again, {n} probes {} s apart",
                opts.port,
                gap.as_secs_f64()
            ));
            let (answered, probes) = reprobe_slowly(&sopts, a, opts.port)?;
            slow_note = Some(findings::slow_reprobe_note(
                probes,
                gap,
                answered.as_ref().map(|nv| nv.reason),
            ));
            if let Some(nv) = answered
                && let Some(v) = results.iter_mut().find(|v| v.port == opts.port)
            {
                let total = v.probes.saturating_add(nv.probes);
                *v = nv;
                v.probes = total;
            }
        }
        let mut found: Vec<Finding> = findings::finding(a, opts.port, &results)
            .into_iter()
            .collect();
        if let (Some(f), Some(n)) = (found.first_mut(), slow_note) {
            f.details.push(n);
        }
        let after = handshakes(opts, connector, a, &results, &stage);
        session_findings(&mut found, a, opts.port, &results, &after, unprivileged);
        let host = findings::profile(a, &results);
        let (mut trace_data, mut location) = (None, None);
        // A silent port on a host that answers elsewhere: find where the
        // packets stop, against a port that answers (open first).
        let reference = host.reference_port(opts.port);
        if unprivileged && let Some(f) = found.first_mut() {
            f.details
                .push(format!("Seen with {}.", scan::UNPRIVILEGED_NOTE));
            // Not located, so not known to be at the host: the full
            // accept queue is named as a possibility all the same.
            if f.kind == Kind::DroppedHostUp {
                f.details.push(findings::full_backlog_note(opts.port));
            }
        }
        if let (Some(f), Some(reference), Some(hops)) = (found.first_mut(), reference, host.hops)
            && f.kind == Kind::DroppedHostUp
            && !unprivileged
        {
            stage(format!(
                "tracing where port {}'s probes stop on the way to {a} (against port {reference})",
                opts.port
            ));
            let t = trace::trace(&TraceOptions {
                target: a,
                ports: vec![opts.port, reference],
                max_ttl: hops.saturating_add(1).min(30),
                rounds: 2,
                wait: std::time::Duration::from_millis(800),
            })?;
            if let [silent, refp] = t.as_slice()
                && let Some(l) = findings::locate_drop(a, silent, refp)
            {
                f.details.insert(0, l.text.clone());
                if l.at_host {
                    f.details.insert(1, findings::full_backlog_note(opts.port));
                }
                location = Some(l);
            }
            trace_data = Some(t);
        }
        d.addresses.push(AddressDiagnosis {
            address: a,
            route: routes.iter().find(|r| r.target == a).map(|r| Route {
                source: r.source,
                device: r.device.clone(),
            }),
            findings: found,
            host,
            results,
            after_handshake: after,
            trace: trace_data,
            drop_location: location,
        });
    }
    d.scan = Some(outcome.info);
    Ok(d)
}

/// Completes a handshake with each open port of `a` (the asked one first,
/// at most [`HANDSHAKE_PORTS`]) and holds it `opts.hold`, all at once.
fn handshakes(
    opts: &DiagnoseOptions,
    connector: &dyn Connector,
    a: IpAddr,
    results: &[Verdict],
    stage: &dyn Fn(String),
) -> Vec<AfterHandshake> {
    if opts.hold.is_zero() {
        return Vec::new();
    }
    let mut ports: Vec<u16> = results
        .iter()
        .filter(|v| v.state == State::Open)
        .map(|v| v.port)
        .collect();
    ports.sort_by_key(|p| (*p != opts.port, *p));
    ports.truncate(HANDSHAKE_PORTS);
    if ports.is_empty() {
        return Vec::new();
    }
    stage(format!(
        "connecting to {} open port{} of {a} and watching each for {:.1} s",
        ports.len(),
        if ports.len() == 1 { "" } else { "s" },
        opts.hold.as_secs_f64()
    ));
    let addrs: Vec<std::net::SocketAddr> = ports
        .iter()
        .map(|p| std::net::SocketAddr::new(a, *p))
        .collect();
    connect_all(connector, &addrs, opts.hold)
}

/// What the completed handshakes say: a device answering for the host
/// (most ports SYN-ACK, most of those reset), or what the asked port does
/// with a connection (resets or closes it: a new finding in place of
/// "open"; speaks first or waits: words for "open").
fn session_findings(
    found: &mut Vec<Finding>,
    a: IpAddr,
    port: u16,
    results: &[Verdict],
    after: &[AfterHandshake],
    unprivileged: bool,
) {
    use findings::session::{self, Said};
    let evidence = found
        .first()
        .map(|f| f.evidence.clone())
        .unwrap_or_default();
    let asked = after.iter().find(|h| h.port == port);
    if let Some(p) = session::proxied(results, after) {
        let served = p.2.contains(&port);
        let f = session::answered_on_behalf(a, port, p, evidence.clone());
        if served {
            found.push(f);
        } else {
            // The port is not really served: that is the finding.
            found.clear();
            found.push(f);
            return;
        }
    }
    let Some(h) = asked else {
        return;
    };
    match session::after_handshake(a, h, unprivileged) {
        Said::Fails {
            kind,
            summary,
            details,
            application_error,
        } => {
            found.retain(|f| f.kind != Kind::Open);
            found.insert(
                0,
                Finding {
                    target: a,
                    port,
                    kind,
                    summary,
                    details,
                    application_error: Some(application_error),
                    evidence,
                },
            );
        }
        Said::Works(sentence, details) => {
            if let Some(f) = found.iter_mut().find(|f| f.kind == Kind::Open) {
                if let Some(s) = sentence {
                    f.summary.push(' ');
                    f.summary.push_str(&s);
                }
                f.details.extend(details);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_host_port;

    #[test]
    fn host_port_forms() {
        assert_eq!(
            split_host_port("example.org:443"),
            ("example.org".into(), Some(443))
        );
        assert_eq!(
            split_host_port("[2001:db8::1]:80"),
            ("2001:db8::1".into(), Some(80))
        );
        assert_eq!(split_host_port("2001:db8::1"), ("2001:db8::1".into(), None));
        assert_eq!(
            split_host_port("203.0.113.2:8081"),
            ("203.0.113.2".into(), Some(8081))
        );
        assert_eq!(split_host_port("host"), ("host".into(), None));
    }
}
