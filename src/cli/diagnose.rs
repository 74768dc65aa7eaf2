//! `synscope diagnose`: why HOST:PORT is refused or hanging, and which part
//! is at fault.

use super::args::{DiagnoseArgs, Format};
use super::exit::{EXIT_RUNTIME, diagnose_code};
use super::output::{Report, deliver, output};
use crate::diagnose::Diagnosis;
use crate::diagnose::run::DiagnoseOptions;
use crate::model::Analysis;
use crate::report::{render_diagnosis_html, render_diagnosis_markdown, write_diagnosis_json};
use std::io::{self, Write};
use std::path::Path;

/// Runs the command; its exit code.
pub fn run(args: &DiagnoseArgs) -> u8 {
    let opts = match DiagnoseOptions::try_from(args) {
        Ok(o) => o,
        Err(e) => return super::exit::input_error(&e),
    };
    if super::output::check_outputs(&[args.report.as_deref()]).is_err() {
        return EXIT_RUNTIME;
    }
    // Those formats carry the evidence verdicts, not the findings: said,
    // not dropped without a word.
    if matches!(args.format, Format::Csv | Format::Jsonl | Format::NmapXml) {
        eprintln!(
            "synscope: note: -o csv, jsonl and nmap-xml carry the evidence (a verdict a port); the findings are in the table (Markdown), JSON and --report"
        );
    }
    let d = match crate::diagnose::run::run(&opts) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("synscope: {e}");
            return EXIT_RUNTIME;
        }
    };
    if let Some(s) = &d.scan {
        for w in &s.warnings {
            eprintln!("synscope: warning: {w}");
        }
    }
    if let Some(path) = &args.report {
        let text = if is_html(path) {
            render_diagnosis_html(&d)
        } else {
            render_diagnosis_markdown(&d)
        };
        if deliver(Some(path), |w| w.write_all(text.as_bytes())).is_err() {
            return EXIT_RUNTIME;
        }
    }
    if output(&Diagnosed::new(&d), args.format, &[], None).is_err() {
        return EXIT_RUNTIME;
    }
    diagnose_code(&d)
}

/// `--report FILE.html` (or .htm, any case) is a web page; any other name
/// is Markdown.
pub(super) fn is_html(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"))
}

/// The diagnosis: Markdown as the table, the whole diagnosis as JSON, and
/// the evidence of every address (one verdict a port) in the other formats.
struct Diagnosed<'a> {
    d: &'a Diagnosis,
    verdicts: Analysis,
}

impl<'a> Diagnosed<'a> {
    fn new(d: &'a Diagnosis) -> Self {
        let results = d
            .addresses
            .iter()
            .flat_map(|a| a.results.iter().cloned())
            .collect();
        Diagnosed {
            d,
            verdicts: Analysis::from_parts(results, Vec::new()),
        }
    }
}

impl Report for Diagnosed<'_> {
    fn verdicts(&self) -> &Analysis {
        &self.verdicts
    }

    fn table(&self, _boxes: bool) -> String {
        render_diagnosis_markdown(self.d)
    }

    fn json(&self, w: &mut dyn Write) -> io::Result<()> {
        write_diagnosis_json(self.d, w)
    }
}
