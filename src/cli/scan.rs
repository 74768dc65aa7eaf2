//! `synscope scan`: SYN probes sent, and a verdict for every (target, port).

use super::analyze::{ScanFindings, Verdicts};
use super::args::{Format, ScanArgs};
use super::exit::{EXIT_RUNTIME, scan_code};
use super::output::output;
use crate::model::Verdict;
use crate::scan::{self, ScanOptions};
use std::io::Write;

/// Runs the command; its exit code.
pub fn run(args: &ScanArgs) -> u8 {
    if let Err(e) = super::analyze::findings_format(args.findings, args.report.format)
        .and_then(|_| args.report.check_fields())
    {
        return super::exit::input_error(&e);
    }
    let opts = match ScanOptions::try_from(args) {
        Ok(o) => o,
        Err(e) => return super::exit::input_error(&e),
    };
    if super::output::check_outputs(&[args.report.output.as_deref()]).is_err() {
        return EXIT_RUNTIME;
    }
    // A name that gave no address: said, and the others scanned.
    for u in &opts.unresolved {
        eprintln!("synscope: warning: {u}; the other targets are scanned");
    }
    // JSON Lines to stdout: each verdict printed as it is decided, and
    // nothing more at the end.
    let stream = matches!(args.report.format, Format::Jsonl) && args.report.output.is_none();
    let shown = args.report.shown_states();
    let result = if stream {
        scan::run_streaming(&opts, &mut |v: &Verdict| {
            if shown.as_ref().is_some_and(|s| !s.contains(&v.state)) {
                return;
            }
            let mut out = std::io::stdout().lock();
            let line = serde_json::to_string(v).unwrap_or_default();
            // A closed pipe is not an error, as for a report written whole.
            let _ = writeln!(out, "{line}").and_then(|_| out.flush());
        })
    } else {
        scan::run(&opts)
    };
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            eprintln!("synscope: {e}");
            return EXIT_RUNTIME;
        }
    };
    let info = &outcome.info;
    for w in &info.warnings {
        eprintln!("synscope: warning: {w}");
    }
    let code = scan_code(info, &outcome.analysis.results);
    let only;
    let analysis = match &shown {
        Some(states) => {
            only = outcome.analysis.only_states(states);
            &only
        }
        None => &outcome.analysis,
    };
    if !stream {
        let (format, file) = (args.report.format, args.report.output.as_deref());
        let written = if args.findings {
            let findings = crate::diagnose::offline::offline_findings(analysis);
            let report = ScanFindings {
                analysis,
                findings: &findings,
                all: args.report.all,
                scan: info,
            };
            output(&report, format, &args.report.fields, file)
        } else {
            let report = Verdicts {
                analysis,
                all: args.report.all,
                scan: Some(info),
            };
            output(&report, format, &args.report.fields, file)
        };
        if written.is_err() {
            return EXIT_RUNTIME;
        }
    }
    if opts.unresolved.is_empty() {
        code
    } else {
        super::exit::EXIT_INPUT
    }
}
