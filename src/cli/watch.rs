//! `synscope watch`: options in, a line per verdict as it is decided (or
//! a JSON line), the report at the end.

use super::args::{ProgramsFrom, WatchArgs, WatchFormat};
use super::exit::{EXIT_OK, EXIT_RUNTIME};
use crate::model::{DnsEvent, State, Verdict};
use crate::report::{TableOptions, render_table, write_watch_json};
use crate::watch::patterns::{self, Seen};
use crate::watch::{ProgramsFrom as Names, Sink, WatchOptions, watch};
use std::io::Write;
use std::time::Duration;

/// "14:03:22.123", UTC, from nanoseconds since the epoch.
fn clock(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    let ms = (ns / 1_000_000) % 1000;
    format!(
        "{:02}:{:02}:{:02}.{ms:03}",
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60
    )
}

fn ep(a: std::net::IpAddr, port: u16) -> String {
    match a {
        std::net::IpAddr::V6(_) => format!("[{a}]:{port}"),
        std::net::IpAddr::V4(_) => format!("{a}:{port}"),
    }
}

/// One verdict as a line: when, who to whom, and what answered.
pub fn verdict_line(v: &Verdict) -> String {
    let when = clock(v.decided_ns.unwrap_or(v.first_probe_ns));
    let from = match (v.responder, v.ttl, v.hops) {
        (Some(r), Some(t), Some(h)) => format!(" from {r} ({t}/{h})"),
        (Some(r), _, _) => format!(" from {r}"),
        _ => String::new(),
    };
    let reason = match (v.icmp_type, v.icmp_code) {
        (Some(t), Some(c)) => format!("{} ({t}/{c})", v.reason.as_str()),
        _ => v.reason.as_str().to_string(),
    };
    let after = match (v.state, v.rtt_ms) {
        (State::Filtered, _) => {
            format!(", {} SYN{}", v.probes, if v.probes == 1 { "" } else { "s" })
        }
        (_, Some(ms)) => format!(" in {ms:.3} ms"),
        _ => String::new(),
    };
    let who = who(v.process.as_ref());
    format!(
        "{when}  {who}{} → {}  {} {reason}{from}{after}",
        ep(v.client, 0).trim_end_matches(":0"),
        ep(v.target, v.port),
        v.state.as_str()
    )
}

fn who(p: Option<&crate::model::Process>) -> String {
    p.map(|p| format!("{} (pid {}) ", p.command, p.pid))
        .unwrap_or_default()
}

/// A failing DNS answer as a line: when, which program, the name and what
/// the resolver said.
pub fn dns_line(d: &DnsEvent) -> String {
    let how = if d.answered {
        format!("answer from {} to {}", d.server, d.client)
    } else {
        format!("query from {} to {}", d.client, d.server)
    };
    format!(
        "{}  {}DNS  {}: {} ({how})",
        clock(d.ts_ns),
        who(d.process.as_ref()),
        d.name,
        patterns::dns_what(d),
    )
}

/// The lines told as they happen, and what the report at the end needs.
struct Lines {
    format: WatchFormat,
    seen: Vec<Seen>,
    tally: patterns::Tally,
    /// Summaries on a terminal: how often, and when the next is due.
    every: Option<u64>,
    next: u64,
    /// The lines of this pass, written at its end in one go (a flood of
    /// attempts is not a write per line).
    out: String,
}

impl Lines {
    fn line(&mut self, text: &str) {
        self.out.push_str(text);
        self.out.push('\n');
    }

    /// Writes what this pass told; a reader that went away is no error
    /// (the watch ends at its time or Ctrl-C all the same).
    fn flush(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(self.out.as_bytes()).and_then(|_| o.flush());
        self.out.clear();
    }
}

impl Sink for Lines {
    fn verdict(&mut self, v: &Verdict) {
        let s = Seen::of(v);
        self.tally.add(&s);
        if self.seen.len() < patterns::KEEP {
            self.seen.push(s);
        }
        match self.format {
            WatchFormat::Table => self.line(&verdict_line(v)),
            WatchFormat::Jsonl => {
                let j = serde_json::to_string(v).unwrap_or_default();
                self.line(&j)
            }
            WatchFormat::Json => {}
        }
    }

    fn dns(&mut self, d: &DnsEvent) {
        self.tally.dns += 1;
        if self.format == WatchFormat::Table {
            self.line(&dns_line(d));
        }
    }

    fn note(&mut self, n: &str) {
        eprintln!("synscope: note: {n}");
    }

    fn tick(&mut self, now: u64) {
        if let Some(every) = self.every {
            if self.next == 0 {
                self.next = now + every;
            } else if now >= self.next {
                self.next = now + every;
                let sum = format!("── {} {}", clock(now), self.tally.line());
                self.line(&sum);
            }
        }
        self.flush();
    }
}

/// The sections of the final report, each a heading and its lines.
fn sections(w: &crate::watch::Watched, seen: &[Seen]) -> Vec<(String, Vec<String>)> {
    let mut how = Vec::new();
    let n = &w.naming;
    how.push(match n.source {
        "tracepoint" => format!(
            "Programs named by the kernel's tracepoint sock:inet_sock_set_state{}.",
            if n.dns {
                ", DNS questions by the route lookups (fib, fib6)"
            } else {
                " (DNS questions not named)"
            }
        ),
        "socket-table" => "Programs named from the socket table (sock_diag and /proc), best effort: sockets closed before it was read (fast refusals, short connections) are not named, nor DNS questions.".into(),
        _ => "Programs were not named.".into(),
    });
    if n.unnamed > 0 {
        how.push(format!(
            "{} attempt{} from this host had no program found{}.",
            n.unnamed,
            if n.unnamed == 1 { "" } else { "s" },
            if n.source == "socket-table" {
                ": their sockets were gone when the table was read"
            } else {
                " (raw-socket probes, such as nmap's or synscope scan's, have no socket)"
            }
        ));
    }
    if n.samples_lost > 0 {
        how.push(format!(
            "The tracepoint lost {} samples (its ring was full): some attempts are unnamed.",
            n.samples_lost
        ));
    }
    let lost = w.capture.dropped + w.capture.if_dropped;
    how.push(format!(
        "The capture: {} packets received, {lost} dropped by the kernel.",
        w.capture.received
    ));
    if w.not_kept > 0 {
        how.push(format!(
            "{} attempts to more than {} destinations were told as lines but are not in this report (its limit).",
            w.not_kept,
            crate::watch::REPORT_TRIPLES
        ));
    }
    vec![
        (
            "By program".into(),
            patterns::by_program(seen, &w.dns_failures),
        ),
        ("Repeated attempts".into(), patterns::repeated(seen)),
        (
            "Names that did not resolve".into(),
            patterns::unresolved(&w.dns_failures, seen),
        ),
        ("How this was seen".into(), how),
    ]
}

#[derive(serde::Serialize)]
struct WatchJson<'a> {
    naming: &'a crate::watch::Naming,
    capture: &'a crate::model::CaptureStats,
    not_kept: u64,
    interrupted: bool,
    dns_failures: &'a [DnsEvent],
    by_program: Vec<String>,
    repeated: Vec<String>,
    unresolved: Vec<String>,
}

pub fn run(args: &WatchArgs) -> u8 {
    let filter = (!args.filter.is_empty()).then(|| args.filter.join(" "));
    if let Some(f) = &filter
        && let Err(e) = crate::source::check_filter(f)
    {
        return super::exit::input_error(&e);
    }
    if super::output::check_outputs(&[args.report.as_deref()]).is_err() {
        return super::exit::EXIT_INPUT;
    }
    // The report's file is opened now, while still root (the watch drops
    // it once the capture is open), as tcpdump -w does.
    let mut report_file = match &args.report {
        Some(p) => match std::fs::File::create(p) {
            Ok(f) => Some((p.clone(), f)),
            Err(e) => {
                eprintln!(
                    "synscope: {}: cannot write the report there: {e}; nothing was done (choose another file)",
                    p.display()
                );
                return super::exit::EXIT_INPUT;
            }
        },
        None => None,
    };
    let opts = WatchOptions {
        device: args.interface.clone(),
        filter,
        duration: args.duration.map(Duration::from_secs_f64),
        timeout: Duration::from_secs_f64(args.timeout),
        user: args.user.clone(),
        pid: args.pid,
        command: args.command.clone(),
        programs_from: match args.programs_from {
            ProgramsFrom::Auto => Names::Auto,
            ProgramsFrom::Tracepoint => Names::Tracepoint,
            ProgramsFrom::SocketTable => Names::SocketTable,
            ProgramsFrom::None => Names::Nothing,
        },
    };
    let format = args.format;
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut lines = Lines {
        format,
        seen: Vec::new(),
        tally: patterns::Tally::default(),
        every: (terminal && format == WatchFormat::Table && args.every > 0.0)
            .then_some((args.every * 1e9) as u64),
        next: 0,
        out: String::new(),
    };
    let started = crate::diagnose::run::utc_now();
    let w = match watch(&opts, &mut lines) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("synscope: {e}");
            if let Some((p, f)) = report_file.take() {
                drop(f);
                let _ = std::fs::remove_file(p);
            }
            return EXIT_RUNTIME;
        }
    };
    let lost = w.capture.dropped + w.capture.if_dropped;
    if lost > 0 {
        eprintln!(
            "synscope: warning: the capture lost {lost} packets (the kernel's buffer was full): some attempts are missing or wrongly filtered"
        );
    }
    lines.flush();
    let seen = lines.seen;
    let parts = sections(&w, &seen);
    let text_sections = || -> String {
        parts
            .iter()
            .filter(|(_, l)| !l.is_empty())
            .map(|(h, l)| {
                format!(
                    "\n{h}:\n{}",
                    l.iter().map(|x| format!("- {x}\n")).collect::<String>()
                )
            })
            .collect()
    };
    if let Some((path, mut f)) = report_file {
        let findings = crate::diagnose::offline::offline_findings(&w.analysis);
        let title = format!(
            "synscope watch on {}, from {started} to {}",
            opts.device,
            crate::diagnose::run::utc_now()
        );
        let table = render_table(
            &w.analysis,
            TableOptions {
                all: false,
                boxes: false,
            },
        );
        let page = if super::diagnose::is_html(&path) {
            crate::report::render_watch_html(&title, &parts, &findings, &table)
        } else {
            let mut md = format!("# {title}\n\n");
            for (h, l) in parts.iter().filter(|(_, l)| !l.is_empty()) {
                md.push_str(&format!("## {h}\n\n"));
                for x in l {
                    md.push_str(&format!("- {x}\n"));
                }
                md.push('\n');
            }
            format!(
                "{md}## Findings\n\n{}\n## Every destination\n\n```\n{table}```\n",
                crate::report::render_findings(&findings)
            )
        };
        if let Err(e) = f.write_all(page.as_bytes()) {
            eprintln!("synscope: {}: cannot write the report: {e}", path.display());
            return EXIT_RUNTIME;
        }
    }
    let written = match format {
        WatchFormat::Table => {
            let boxes = terminal;
            let text = format!(
                "{}\n{}",
                text_sections(),
                render_table(&w.analysis, TableOptions { all: false, boxes })
            );
            super::output::to_stdout(|o| o.write_all(text.as_bytes()))
        }
        WatchFormat::Json => {
            let j = WatchJson {
                naming: &w.naming,
                capture: &w.capture,
                not_kept: w.not_kept,
                interrupted: w.interrupted,
                dns_failures: &w.dns_failures,
                by_program: patterns::by_program(&seen, &w.dns_failures),
                repeated: patterns::repeated(&seen),
                unresolved: patterns::unresolved(&w.dns_failures, &seen),
            };
            super::output::to_stdout(|o| write_watch_json(&w.analysis, &j, o))
        }
        WatchFormat::Jsonl => Ok(()),
    };
    match written {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("synscope: cannot write the report to stdout: {e}");
            EXIT_RUNTIME
        }
    }
}
