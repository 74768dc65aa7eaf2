//! `synscope analyze`: verdicts (and with `--findings`, explanations) from
//! capture files.

use super::args::{AnalyzeArgs, Format};
use super::exit::{EXIT_INPUT, EXIT_RUNTIME, analyze_code};
use super::output::{Report, output};
use crate::analyze::{Analyzer, Options};
use crate::diagnose::groups::FindingGroup;
use crate::diagnose::offline::{self, Counted, NameFinding, OfflineFindings};
use crate::model::{Analysis, DnsEvent, ScanInfo};
use crate::report::{TableOptions, render_table, write_json};
use crate::source::inputs::{self, Inputs};
use std::io::{self, Write};
use std::path::PathBuf;

/// Inputs this large (in all) get a progress bar.
const PROGRESS_BYTES: u64 = 16 << 20;

/// Runs the command; its exit code.
/// `--findings` goes with the table and JSON: the other formats carry
/// verdicts only, and dropping the findings there would be silent.
pub(super) fn findings_format(findings: bool, format: Format) -> Result<(), String> {
    if findings && !matches!(format, Format::Table | Format::Json) {
        return Err(
            "--findings is shown in the table and JSON formats only (csv, jsonl and nmap-xml carry verdicts): drop one of them".into(),
        );
    }
    Ok(())
}

pub fn run(args: &AnalyzeArgs) -> u8 {
    if let Err(e) =
        findings_format(args.findings, args.report.format).and_then(|_| args.report.check_fields())
    {
        return super::exit::input_error(&e);
    }
    // A filter that cannot parse is said once, not once per file.
    if let Some(f) = &args.filter
        && let Err(e) = crate::source::check_filter(f)
    {
        return super::exit::input_error(&e);
    }
    if super::output::check_outputs(&[
        args.report.output.as_deref(),
        args.findings_report.as_deref(),
    ])
    .is_err()
    {
        return EXIT_RUNTIME;
    }
    let opts = Options::from(args);
    let inputs = inputs::expand(&args.files);
    say_left_out(&inputs);
    let mut analyzer = Analyzer::new(opts).with_jobs(args.jobs());
    if let Some(bar) = progress_bar(args.quiet, &inputs.files) {
        analyzer = analyzer.with_progress(bar);
    }
    analyzer.add_files(&inputs.files);
    let mut analysis = analyzer.finish();
    // Arguments that named no file take their place among the inputs, so
    // the error lines (and JSON `inputs`) follow the command line's order.
    analysis.inputs = inputs.in_argument_order(std::mem::take(&mut analysis.inputs));
    let mut input_errors = false;
    for i in analysis.errors() {
        eprintln!(
            "synscope: {}: {}",
            i.file,
            i.error.as_deref().unwrap_or("unreadable")
        );
        input_errors = true;
    }
    let code = analyze_code(input_errors, args.ports.as_ref(), &analysis.results);
    if inputs.files.is_empty() {
        return EXIT_INPUT;
    }
    // Nothing to show but errors: the error lines alone say it.
    let all_failed =
        analysis.results.is_empty() && analysis.inputs.iter().all(|i| i.error.is_some());
    if all_failed {
        return code;
    }
    if let Some(states) = args.report.shown_states() {
        analysis = analysis.only_states(&states);
    }
    let (format, all, file) = (
        args.report.format,
        args.report.all,
        args.report.output.as_deref(),
    );
    if let Some(path) = &args.findings_report {
        let findings = offline::offline_findings(&analysis);
        let inputs: Vec<&str> = analysis.inputs.iter().map(|i| i.file.as_str()).collect();
        let inputs = inputs.join(", ");
        let text = if super::diagnose::is_html(path) {
            crate::report::render_findings_html(&findings, &inputs)
        } else {
            format!(
                "# Findings from {inputs}\n\n{}",
                crate::report::render_findings(&findings)
            )
        };
        if super::output::deliver(Some(path), |w| w.write_all(text.as_bytes())).is_err() {
            return EXIT_RUNTIME;
        }
    }
    let written = if args.findings {
        let findings = offline::offline_findings(&analysis);
        let report = Findings {
            analysis: &analysis,
            findings: &findings,
            all,
        };
        output(&report, format, &args.report.fields, file)
    } else {
        let report = Verdicts {
            analysis: &analysis,
            all,
            scan: None,
        };
        output(&report, format, &args.report.fields, file)
    };
    if written.is_err() { EXIT_RUNTIME } else { code }
}

/// One line for each directory's files that are not captures.
fn say_left_out(inputs: &Inputs) {
    for (dir, names) in &inputs.left_out {
        let shown: Vec<&str> = names.iter().take(3).map(String::as_str).collect();
        eprintln!(
            "synscope: {dir}: {} file{} left out (not pcap/pcapng): {}{}",
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            shown.join(", "),
            if names.len() > 3 { ", ..." } else { "" }
        );
    }
}

/// The bar of an analysis, bytes of the inputs read: on a terminal, not
/// with `-q`, and for inputs of [`PROGRESS_BYTES`] or more.
fn progress_bar(quiet: bool, files: &[PathBuf]) -> Option<indicatif::ProgressBar> {
    if !super::options::progress(quiet) {
        return None;
    }
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    (total >= PROGRESS_BYTES).then(|| {
        crate::report::progress_bar(
            total,
            "{spinner} reading {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
    })
}

/// The verdict report of analyze and scan: the table (with a scan's
/// closing note), or JSON (with a scan's `scan` object).
pub struct Verdicts<'a> {
    pub analysis: &'a Analysis,
    /// Table: every port, none collapsed.
    pub all: bool,
    /// How the scan went (scan only).
    pub scan: Option<&'a ScanInfo>,
}

impl Report for Verdicts<'_> {
    fn verdicts(&self) -> &Analysis {
        self.analysis
    }

    fn table(&self, boxes: bool) -> String {
        let mut text = render_table(
            self.analysis,
            TableOptions {
                all: self.all,
                boxes,
            },
        );
        if let Some(info) = self.scan {
            text.push_str(&crate::report::scan_note(info));
        }
        text
    }

    fn json(&self, w: &mut dyn Write) -> io::Result<()> {
        write_json(self.analysis, self.scan, w)
    }
}

/// The findings, then the verdicts' table (`--findings` of analyze and
/// scan).
fn findings_table(f: &OfflineFindings, a: &Analysis, all: bool, boxes: bool) -> String {
    let mut text = crate::report::render_findings(f);
    text.push_str(&render_table(a, TableOptions { all, boxes }));
    text
}

/// `scan --findings`: the findings before the table (and the scan's
/// note after it), or in the JSON `scan` object beside how the scan went.
pub struct ScanFindings<'a> {
    pub analysis: &'a Analysis,
    pub findings: &'a OfflineFindings,
    pub all: bool,
    pub scan: &'a ScanInfo,
}

impl Report for ScanFindings<'_> {
    fn verdicts(&self) -> &Analysis {
        self.analysis
    }

    fn table(&self, boxes: bool) -> String {
        let mut text = findings_table(self.findings, self.analysis, self.all, boxes);
        text.push_str(&crate::report::scan_note(self.scan));
        text
    }

    fn json(&self, w: &mut dyn Write) -> io::Result<()> {
        #[derive(serde::Serialize)]
        struct Extra<'a> {
            #[serde(flatten)]
            scan: &'a ScanInfo,
            findings: &'a [crate::diagnose::Finding],
            groups: &'a [FindingGroup],
            counted: &'a [Counted],
        }
        let extra = Extra {
            scan: self.scan,
            findings: &self.findings.findings,
            groups: &self.findings.groups,
            counted: &self.findings.counted,
        };
        write_json(self.analysis, Some(&extra), w)
    }
}

/// `analyze --findings`: the findings before the table, or in the JSON
/// document beside the verdicts (with the names and DNS answers).
struct Findings<'a> {
    analysis: &'a Analysis,
    findings: &'a OfflineFindings,
    all: bool,
}

impl Report for Findings<'_> {
    fn verdicts(&self) -> &Analysis {
        self.analysis
    }

    fn table(&self, boxes: bool) -> String {
        findings_table(self.findings, self.analysis, self.all, boxes)
    }

    fn json(&self, w: &mut dyn Write) -> io::Result<()> {
        #[derive(serde::Serialize)]
        struct Extra<'a> {
            findings: &'a [crate::diagnose::Finding],
            groups: &'a [FindingGroup],
            counted: &'a [Counted],
            names: &'a [NameFinding],
            dns: &'a [DnsEvent],
        }
        let extra = Extra {
            findings: &self.findings.findings,
            groups: &self.findings.groups,
            counted: &self.findings.counted,
            names: &self.findings.names,
            dns: &self.analysis.dns,
        };
        write_json(self.analysis, Some(&extra), w)
    }
}
