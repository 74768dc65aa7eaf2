//! Each command's options from its flags: [`analyze::Options`],
//! [`ScanOptions`] and [`DiagnoseOptions`]. A conversion that can fail
//! says why in a message the command prints as `synscope: MESSAGE` before
//! exiting 2 (usage or input error).

use super::args::{AnalyzeArgs, DiagnoseArgs, ScanArgs};
use crate::analyze;
use crate::diagnose::run::{DiagnoseOptions, split_host_port};
use crate::model::NANOS_PER_SEC;
use crate::scan::ScanOptions;
use crate::scan::engine::EngineConfig;
use crate::scan::targets::{self, Family};
use crate::select::{PortSet, Selection};
use crate::track;
use std::time::Duration;

/// Probes in one scan without --large.
pub const MAX_PROBES: u64 = 1 << 20;

/// The address family of `-4` / `-6` (clap lets at most one be given).
pub fn family(ipv4: bool, ipv6: bool) -> Family {
    if ipv4 {
        Family::V4
    } else if ipv6 {
        Family::V6
    } else {
        Family::Any
    }
}

/// Tracking that gives an unanswered attempt `--timeout` seconds.
fn tracking(timeout_s: f64) -> track::Config {
    track::Config {
        timeout: (timeout_s * NANOS_PER_SEC as f64) as u64,
        ..track::Config::default()
    }
}

/// Whether to draw a progress bar: on a terminal, and not with `-q`.
pub(super) fn progress(quiet: bool) -> bool {
    !quiet && std::io::IsTerminal::is_terminal(&std::io::stderr())
}

impl From<&AnalyzeArgs> for analyze::Options {
    fn from(args: &AnalyzeArgs) -> Self {
        analyze::Options {
            track: tracking(args.timeout),
            selection: Selection {
                clients: args.client.clone(),
                targets: args.target.clone(),
                ports: args.ports.clone(),
            },
            filter: args.filter.clone(),
            keep_dns: args.findings,
        }
    }
}

impl AnalyzeArgs {
    /// `-j`, or half the CPUs (at least 1): as many threads track as
    /// decode, each side about half the work.
    pub fn jobs(&self) -> usize {
        self.jobs.map(usize::from).unwrap_or_else(|| {
            (std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get) / 2).max(1)
        })
    }
}

impl TryFrom<&ScanArgs> for ScanOptions {
    type Error = String;

    /// Resolves the targets (names through DNS) and checks the size of the
    /// scan before anything is sent.
    fn try_from(args: &ScanArgs) -> Result<Self, String> {
        let mut specs = args.targets.clone();
        if let Some(f) = &args.input_list {
            specs.extend(read_list(f)?);
        }
        // HOST:PORT (as diagnose takes it): the port joins the ports.
        let mut spec_ports = Vec::new();
        for s in &mut specs {
            let (host, port) = crate::diagnose::run::split_host_port(s);
            if let Some(p) = port {
                spec_ports.push(p);
                *s = host;
            }
        }
        let fam = family(args.ipv4, args.ipv6);
        let resolved =
            targets::resolve_named(&specs, fam, args.force, true).map_err(|e| e.to_string())?;
        let mut excluded_specs = args.exclude.clone();
        if let Some(f) = &args.excludefile {
            excluded_specs.extend(read_list(f)?);
        }
        let mut targets = resolved.addresses;
        if !excluded_specs.is_empty() {
            // Blocks by containment (however large); addresses and names
            // by their addresses.
            let (nets, others): (Vec<String>, Vec<String>) = excluded_specs
                .into_iter()
                .partition(|s| s.contains('/') && s.parse::<ipnet::IpNet>().is_ok());
            let nets: Vec<ipnet::IpNet> = nets.iter().filter_map(|s| s.parse().ok()).collect();
            let addrs: std::collections::HashSet<std::net::IpAddr> = if others.is_empty() {
                Default::default()
            } else {
                targets::resolve(&others, Family::Any, true)
                    .map_err(|e| format!("--exclude: {e}"))?
                    .into_iter()
                    .collect()
            };
            targets.retain(|t| !addrs.contains(t) && !nets.iter().any(|n| n.contains(t)));
            if targets.is_empty() {
                return Err(
                    "every target is excluded (--exclude, --excludefile): nothing to scan".into(),
                );
            }
        }
        let ports = match (&args.ports, args.top_ports) {
            (Some(p), _) => {
                let mut all: Vec<u16> = p.iter().collect();
                all.extend(&spec_ports);
                PortSet::from_ports(&all)
            }
            (None, Some(n)) => {
                let mut all: Vec<u16> = PortSet::top(n)?.iter().collect();
                all.extend(&spec_ports);
                PortSet::from_ports(&all)
            }
            (None, None) if !spec_ports.is_empty() => PortSet::from_ports(&spec_ports),
            (None, None) => {
                return Err(
                    "which ports? give -p PORTS, --top-ports N, or targets as HOST:PORT".into(),
                );
            }
        };
        let probes = targets.len() as u64 * ports.len() as u64;
        if probes > MAX_PROBES && !args.large {
            return Err(format!(
                "{probes} probes ({} targets × {} ports) is more than {MAX_PROBES}; add --large if that is what you mean",
                targets.len(),
                ports.len()
            ));
        }
        Ok(ScanOptions {
            targets,
            names: resolved.names,
            unresolved: resolved.unresolved,
            ports,
            engine: EngineConfig {
                rate: args.rate.unwrap_or(0),
                max_retries: args.max_retries,
                ..EngineConfig::default()
            },
            wait: args.wait.map(Duration::from_secs_f64),
            ttl: args.ttl,
            seed: args.seed,
            write: args.write.clone(),
            source_port: args.source_port,
            unprivileged: args.unprivileged,
            user: args.user.clone(),
            catch_signals: true,
            capture_buffer: args.capture_buffer.map(|k| (k as i32).saturating_mul(1024)),
            shard: args.shard,
            progress: progress(args.quiet),
            track: tracking(args.timeout),
        })
    }
}

/// Targets listed in a file (`-` for stdin): whitespace-separated, `#`
/// to the end of a line is a comment.
fn read_list(path: &std::path::Path) -> Result<Vec<String>, String> {
    let text = if path == std::path::Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| format!("-: cannot read the target list: {e}"))?;
        s
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read the target list: {e}", path.display()))?
    };
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.split_whitespace().map(str::to_string))
        .collect())
}

/// One stage of a diagnosis, on stderr.
fn say_stage(what: &str) {
    eprintln!("synscope: {what}...");
}

impl TryFrom<&DiagnoseArgs> for DiagnoseOptions {
    type Error = String;

    /// The port from HOST:PORT or -p.
    fn try_from(args: &DiagnoseArgs) -> Result<Self, String> {
        let (host, port) = split_host_port(&args.target);
        if let (Some(a), Some(b)) = (port, args.port)
            && a != b
        {
            return Err(format!(
                "{}: port {a} in the target and -p {b}: give one of them",
                args.target
            ));
        }
        let Some(port) = port.or(args.port) else {
            return Err(format!(
                "{}: which port? give HOST:PORT or -p PORT",
                args.target
            ));
        };
        if port == 0 {
            return Err("port 0 cannot be probed; give 1-65535".to_string());
        }
        // Checked here, before any resolver is asked: a range or a block
        // is no host, and a typo'd address would go out as a DNS query.
        if crate::resolve::literal(&host).is_none()
            && let Some(why) = crate::resolve::name_problem(&host)
        {
            // A range or a block scan would take (no lookup: the resolver
            // refuses what is no name).
            let n = targets::resolve(std::slice::from_ref(&host), Family::Any, true)
                .map_or(0, |a| a.len());
            return Err(if n > 0 {
                format!(
                    "{host} is {n} addresses; diagnose takes one host, an address or a name (scan takes ranges and blocks)"
                )
            } else {
                format!(
                    "{why}; diagnose takes one host, an address or a name (scan takes ranges and blocks)"
                )
            });
        }
        Ok(DiagnoseOptions {
            host,
            port,
            family: family(args.ipv4, args.ipv6),
            hold: std::time::Duration::from_secs_f64(args.hold),
            reference: args
                .ref_ports
                .as_ref()
                .map(|p| p.iter().collect())
                .unwrap_or_default(),
            // Each stage on stderr as it starts, on a terminal only (never
            // into a pipe or a file).
            stages: std::io::IsTerminal::is_terminal(&std::io::stderr())
                .then_some(say_stage as fn(&str)),
            scan: ScanOptions {
                engine: EngineConfig {
                    rate: args.rate,
                    ..EngineConfig::default()
                },
                wait: args.wait.map(Duration::from_secs_f64),
                unprivileged: args.unprivileged,
                // diagnose opens more handles as it goes (traces): it keeps
                // its privileges (no user to drop to), and Ctrl-C ends it at
                // once (no signals caught): the defaults.
                ..ScanOptions::default()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn command(line: &[&str]) -> Command {
        let line = std::iter::once("synscope").chain(line.iter().copied());
        Cli::try_parse_from(line).unwrap().command
    }

    #[test]
    fn every_command_waits_the_trackers_default_timeout() {
        // One default for scan, analyze and watch, so a scan's --write file
        // re-analysed decides the same.
        let Command::Analyze(a) = command(&["analyze", "x.pcap"]) else {
            panic!("not analyze");
        };
        assert_eq!(
            analyze::Options::from(&a).track.timeout,
            track::DEFAULT_TIMEOUT
        );
        let Command::Scan(s) = command(&["scan", "10.0.0.1", "-p", "22"]) else {
            panic!("not scan");
        };
        let o = ScanOptions::try_from(&s).unwrap();
        assert_eq!(o.track.timeout, track::DEFAULT_TIMEOUT);
        let Command::Watch(w) = command(&["watch"]) else {
            panic!("not watch");
        };
        assert_eq!(tracking(w.timeout).timeout, track::DEFAULT_TIMEOUT);
    }

    #[test]
    fn dash_4_and_dash_6_choose_the_family() {
        assert_eq!(family(false, false), Family::Any);
        assert_eq!(family(true, false), Family::V4);
        assert_eq!(family(false, true), Family::V6);
    }

    #[test]
    fn diagnose_takes_the_port_from_the_target_or_p() {
        let Command::Diagnose(args) = command(&["diagnose", "db:5432", "-6"]) else {
            panic!("not diagnose");
        };
        let o = DiagnoseOptions::try_from(&args).unwrap();
        assert_eq!(
            (o.host.as_str(), o.port, o.family),
            ("db", 5432, Family::V6)
        );
        assert_eq!(o.scan.engine.rate, 1000);
        assert!(!o.scan.catch_signals && o.scan.user.is_none());
        let Command::Diagnose(args) = command(&["diagnose", "db"]) else {
            panic!("not diagnose");
        };
        assert_eq!(
            DiagnoseOptions::try_from(&args).unwrap_err(),
            "db: which port? give HOST:PORT or -p PORT"
        );
    }

    #[test]
    fn a_target_that_is_no_name_is_refused_before_any_lookup() {
        for (line, says) in [
            (
                &["diagnose", "10.0.0.1-5", "-p", "22"][..],
                "10.0.0.1-5 is 5 addresses",
            ),
            (
                &["diagnose", "10.0.0.0/24", "-p", "22"][..],
                "is 256 addresses",
            ),
            (
                &["diagnose", "10.0.0.300:22"][..],
                "not a valid IPv4 address",
            ),
        ] {
            let Command::Diagnose(args) = command(line) else {
                panic!("not diagnose");
            };
            let e = DiagnoseOptions::try_from(&args).unwrap_err();
            assert!(
                e.contains(says) && e.contains("diagnose takes one host"),
                "{e}"
            );
        }
        for (spec, says) in [
            ("10.0.0.0/33", "not a valid address block"),
            ("2001:db8::/129", "not a valid address block"),
            ("10.0.0.1.5", "not a valid IPv4 address"),
        ] {
            let Command::Scan(args) = command(&["scan", spec, "-p", "22"]) else {
                panic!("not scan");
            };
            let e = ScanOptions::try_from(&args).unwrap_err();
            assert!(e.starts_with(spec) && e.contains(says), "{e}");
        }
        // --exclude's names go through the same gate (its list splits at
        // commas, so "5" is a spec of its own here).
        let Command::Scan(args) =
            command(&["scan", "127.0.0.1", "-p", "22", "--exclude", "10.0.0.1,5"])
        else {
            panic!("not scan");
        };
        let e = ScanOptions::try_from(&args).unwrap_err();
        assert!(
            e.starts_with("--exclude: 5 is not a valid IPv4 address"),
            "{e}"
        );
    }

    #[test]
    fn a_scan_larger_than_a_million_probes_asks_for_large() {
        let Command::Scan(args) = command(&["scan", "10.0.0.0/27", "-p", "1-65535"]) else {
            panic!("not scan");
        };
        let e = ScanOptions::try_from(&args).unwrap_err();
        assert!(e.ends_with("add --large if that is what you mean"), "{e}");
        let Command::Scan(args) = command(&[
            "scan",
            "127.0.0.1",
            "-p",
            "80",
            "--shard",
            "2/3",
            "-t",
            "1.5",
        ]) else {
            panic!("not scan");
        };
        let o = ScanOptions::try_from(&args).unwrap();
        assert_eq!(o.targets.len(), 1);
        assert_eq!(o.shard, Some((2, 3)));
        assert_eq!(o.track.timeout, 1_500_000_000);
        assert!(o.catch_signals);
    }
}
