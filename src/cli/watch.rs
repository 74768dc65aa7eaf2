//! `synscope watch`: options in, a line per verdict as it is decided (or
//! a JSON line), the report at the end.

use super::args::{WatchArgs, WatchFormat};
use super::exit::{EXIT_OK, EXIT_RUNTIME};
use crate::model::{DnsEvent, State, Verdict};
use crate::report::{TableOptions, render_table, write_json};
use crate::watch::patterns::{self, Seen};
use crate::watch::{WatchOptions, watch};
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
    let who = v
        .process
        .as_ref()
        .map(|p| format!("{} (pid {}) ", p.command, p.pid))
        .unwrap_or_default();
    format!(
        "{when}  {who}{} → {}  {} {reason}{from}{after}",
        ep(v.client, 0).trim_end_matches(":0"),
        ep(v.target, v.port),
        v.state.as_str()
    )
}

fn dns_line(d: &DnsEvent) -> String {
    let what = match d.rcode {
        3 => "does not exist (NXDOMAIN)".to_string(),
        2 => "could not be resolved (SERVFAIL)".to_string(),
        5 => "was refused (REFUSED)".to_string(),
        0 => "has no address of the type asked".to_string(),
        n => format!("failed (rcode {n})"),
    };
    format!(
        "{}  DNS  {} {what}: answer from {} to {}",
        clock(d.ts_ns),
        d.name,
        d.server,
        d.client
    )
}

pub fn run(args: &WatchArgs) -> u8 {
    let filter = (!args.filter.is_empty()).then(|| args.filter.join(" "));
    if let Some(f) = &filter
        && let Err(e) = crate::source::check_filter(f)
    {
        return super::exit::input_error(&e);
    }
    let opts = WatchOptions {
        device: args.interface.clone(),
        filter,
        duration: args.duration.map(Duration::from_secs_f64),
        timeout: Duration::from_secs_f64(args.timeout),
        user: args.user.clone(),
        pid: args.pid,
        command: args.command.clone(),
    };
    let format = args.format;
    // Each line flushed as it is decided; a reader that went away is no
    // error (the watch ends at its time or Ctrl-C all the same).
    let line = |text: String| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}").and_then(|_| out.flush());
    };
    let mut seen: Vec<Seen> = Vec::new();
    let mut on_verdict = |v: &Verdict| {
        if seen.len() < patterns::KEEP {
            seen.push(Seen::of(v));
        }
        match format {
            WatchFormat::Table => line(verdict_line(v)),
            WatchFormat::Jsonl => line(serde_json::to_string(v).unwrap_or_default()),
            WatchFormat::Json => {}
        }
    };
    let mut on_dns = |d: &DnsEvent| {
        if format == WatchFormat::Table {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", dns_line(d)).and_then(|_| out.flush());
        }
    };
    let mut on_note = |n: &String| eprintln!("synscope: note: {n}");
    let w = match watch(&opts, &mut on_verdict, &mut on_dns, &mut on_note) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("synscope: {e}");
            return EXIT_RUNTIME;
        }
    };
    if w.capture.dropped + w.capture.if_dropped > 0 {
        eprintln!(
            "synscope: warning: the capture lost {} packets (the kernel's buffer was full): some attempts are missing or wrongly filtered",
            w.capture.dropped + w.capture.if_dropped
        );
    }
    let written = match format {
        WatchFormat::Table => {
            let boxes = std::io::IsTerminal::is_terminal(&std::io::stdout());
            let repeated = patterns::repeated(&seen);
            let said = if repeated.is_empty() {
                String::new()
            } else {
                format!(
                    "\nRepeated attempts:\n{}",
                    repeated
                        .iter()
                        .map(|l| format!("- {l}\n"))
                        .collect::<String>()
                )
            };
            let text = format!(
                "{said}\n{}",
                render_table(&w.analysis, TableOptions { all: false, boxes })
            );
            super::output::to_stdout(|o| o.write_all(text.as_bytes()))
        }
        WatchFormat::Json => super::output::to_stdout(|o| write_json(&w.analysis, None::<&()>, o)),
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
