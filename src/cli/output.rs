//! The one output step of every command: the report in the chosen format,
//! written to `--output FILE` atomically (whole, or not at all) or to
//! stdout, where a reader that went away (`| head`) is not an error: the
//! command ends as if the report had been written.

use super::args::Format;
use crate::model::Analysis;
use crate::report::{write_atomic, write_csv, write_jsonl, write_nmap_xml};
use std::io::{self, Write};
use std::path::Path;

/// A report as each format writes it. csv, jsonl and nmap-xml are the
/// verdicts alone; table and json are each command's own.
pub trait Report {
    /// The verdicts (csv, jsonl, nmap-xml).
    fn verdicts(&self) -> &Analysis;
    /// The text of `--format table`; `boxes`: drawn with box lines (a
    /// terminal), else plain aligned columns (a pipe or a file: grep, awk
    /// and cut read them).
    fn table(&self, boxes: bool) -> String;
    /// `--format json`, its newline included.
    fn json(&self, w: &mut dyn Write) -> io::Result<()>;
}

/// The report could not be written, and stderr has said why: the command
/// exits [`super::exit::EXIT_RUNTIME`].
#[derive(Debug, PartialEq, Eq)]
pub struct Unwritten;

/// Writes `report` in `format` (CSV: the columns `fields`, or all) to
/// `file`, or to stdout without one.
pub fn output(
    report: &dyn Report,
    format: Format,
    fields: &[String],
    file: Option<&Path>,
) -> Result<(), Unwritten> {
    let boxes = file.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout());
    deliver(file, |w| match format {
        Format::Table => w.write_all(report.table(boxes).as_bytes()),
        Format::Json => report.json(w),
        Format::Csv => write_csv(report.verdicts(), fields, w),
        Format::Jsonl => write_jsonl(&report.verdicts().results, w),
        Format::NmapXml => write_nmap_xml(report.verdicts(), &command_line(), w),
    })
}

/// Writes what `write` writes to `file` atomically, or to stdout without
/// one (a closed pipe counts as written); says on stderr what failed.
pub fn deliver(
    file: Option<&Path>,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), Unwritten> {
    match file {
        Some(path) => {
            let mut buf = Vec::new();
            write(&mut buf)
                .and_then(|_| write_atomic(path, &buf))
                .map_err(|e| {
                    eprintln!("synscope: {}: cannot write the report: {e}", path.display());
                    Unwritten
                })
        }
        None => to_stdout(write).map_err(|e| {
            eprintln!("synscope: cannot write the report to stdout: {e}");
            Unwritten
        }),
    }
}

/// Checks, before any work, that each of `files` (`--output`, `--report`)
/// can be written; says on stderr which cannot, and why.
pub fn check_outputs(files: &[Option<&Path>]) -> Result<(), Unwritten> {
    for path in files.iter().flatten() {
        if let Err(e) = crate::report::check_writable(path) {
            eprintln!(
                "synscope: {}: cannot write the report there: {e}; nothing was done (choose another file)",
                path.display()
            );
            return Err(Unwritten);
        }
    }
    Ok(())
}

/// Writes to stdout (buffered, then flushed). A reader that went away
/// (`| head`, BrokenPipe) is not an error: there is nothing more to say.
pub fn to_stdout(write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    match write(&mut out).and_then(|_| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        written => written,
    }
}

/// The command line, for the nmap-xml `args` attribute.
fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}
