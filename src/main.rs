use clap::Parser;
use std::io::Write;
use std::process::ExitCode;
use synscope::analyze::{Analyzer, Options};
use synscope::cli::exit::{
    EXIT_INPUT, EXIT_OK, EXIT_RUNTIME, analyze_code, diagnose_code, scan_code,
};
use synscope::cli::{AnalyzeArgs, Cli, Command, DiagnoseArgs, Format, ScanArgs};
use synscope::diagnose::run::DiagnoseOptions;
use synscope::model::ScanInfo;
use synscope::report::{TableOptions, render_table, write_json};
use synscope::scan::ScanOptions;

/// The command line, for the nmap-xml `args` attribute.
fn cli_args() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// Inputs this large (in all) get a progress bar.
const PROGRESS_BYTES: u64 = 16 << 20;

/// The bar of an analysis: bytes of the inputs read.
fn analyze_bar(total: u64) -> indicatif::ProgressBar {
    synscope::report::progress_bar(
        total,
        "{spinner} reading {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
    )
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Analyze(args) => analyze(args),
        Command::Scan(args) => scan(args),
        Command::Diagnose(args) => diagnose(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "synscope", &mut std::io::stdout());
            ExitCode::from(EXIT_OK)
        }
        Command::Man => {
            use clap::CommandFactory;
            let man = clap_mangen::Man::new(Cli::command());
            match man.render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::from(EXIT_OK),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(EXIT_OK),
                Err(e) => {
                    eprintln!("synscope: cannot write the man page: {e}");
                    ExitCode::from(EXIT_RUNTIME)
                }
            }
        }
    }
}

fn diagnose(args: DiagnoseArgs) -> ExitCode {
    let opts = match DiagnoseOptions::try_from(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("synscope: {e}");
            return ExitCode::from(EXIT_INPUT);
        }
    };
    let d = match synscope::diagnose::run::run(&opts) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("synscope: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    if let Some(s) = &d.scan {
        for w in &s.warnings {
            eprintln!("synscope: warning: {w}");
        }
    }
    let md = synscope::diagnose::render::markdown(&d);
    let is_html = args.report.as_ref().is_some_and(|p| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"))
    });
    let file_text = if is_html {
        synscope::diagnose::html::html(&d)
    } else {
        md.clone()
    };
    if let Some(path) = &args.report
        && let Err(e) = synscope::report::write_atomic(path, file_text.as_bytes())
    {
        eprintln!("synscope: {}: cannot write the report: {e}", path.display());
        return ExitCode::from(EXIT_RUNTIME);
    }
    let text = match args.format {
        Format::Table => md,
        Format::Json => serde_json::to_string(&d).unwrap_or_default() + "\n",
        Format::NmapXml => {
            let results = d
                .addresses
                .iter()
                .flat_map(|a| a.results.iter().cloned())
                .collect();
            let a = synscope::model::Analysis::from_parts(results, Vec::new());
            let mut buf = Vec::new();
            let _ = synscope::report::write_nmap_xml(&a, &cli_args(), &mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        }
        Format::Jsonl => {
            let results: Vec<synscope::model::Verdict> = d
                .addresses
                .iter()
                .flat_map(|a| a.results.iter().cloned())
                .collect();
            let mut buf = Vec::new();
            let _ = synscope::report::write_jsonl(&results, &mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        }
        Format::Csv => {
            // The evidence of every address, one row per port.
            let results = d
                .addresses
                .iter()
                .flat_map(|a| a.results.iter().cloned())
                .collect();
            let a = synscope::model::Analysis::from_parts(results, Vec::new());
            let mut buf = Vec::new();
            let _ = synscope::report::write_csv(&a, &mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        }
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("synscope: cannot write the report to stdout: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
        _ => ExitCode::from(diagnose_code(&d)),
    }
}

fn scan(args: ScanArgs) -> ExitCode {
    let opts = match ScanOptions::try_from(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("synscope: {e}");
            return ExitCode::from(EXIT_INPUT);
        }
    };
    let stream = matches!(args.report.format, Format::Jsonl) && args.report.output.is_none();
    let mut print_line = |v: &synscope::model::Verdict| {
        if stream {
            let mut out = std::io::stdout().lock();
            let line = serde_json::to_string(v).unwrap_or_default();
            // A closed pipe is handled when the report is written.
            let _ = writeln!(out, "{line}").and_then(|_| out.flush());
        }
    };
    let result = if stream {
        synscope::scan::run_streaming(&opts, &mut print_line)
    } else {
        synscope::scan::run(&opts)
    };
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            eprintln!("synscope: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let info = &outcome.info;
    for w in &info.warnings {
        eprintln!("synscope: warning: {w}");
    }
    let note = synscope::report::scan_note(info);
    let code = emit(
        &outcome.analysis,
        args.report.format,
        args.report.all,
        Some(&note),
        Some(info),
        args.report.output.as_deref(),
    );
    if code != ExitCode::from(EXIT_OK) {
        return code;
    }
    ExitCode::from(scan_code(info, &outcome.analysis.results))
}

/// Prints the report; the exit code for what happened.
fn emit(
    analysis: &synscope::model::Analysis,
    format: Format,
    all: bool,
    note: Option<&str>,
    scan: Option<&ScanInfo>,
    output: Option<&std::path::Path>,
) -> ExitCode {
    if let Some(path) = output {
        let mut buf = Vec::new();
        let made = match format {
            Format::Table => {
                let mut text = render_table(analysis, TableOptions { all });
                if let Some(n) = note {
                    text.push_str(n);
                }
                buf.extend_from_slice(text.as_bytes());
                Ok(())
            }
            Format::Json => write_json(analysis, scan, &mut buf),
            Format::Csv => synscope::report::write_csv(analysis, &mut buf),
            Format::Jsonl => synscope::report::write_jsonl(&analysis.results, &mut buf),
            Format::NmapXml => synscope::report::write_nmap_xml(analysis, &cli_args(), &mut buf),
        };
        return match made.and_then(|_| synscope::report::write_atomic(path, &buf)) {
            Ok(()) => ExitCode::from(EXIT_OK),
            Err(e) => {
                eprintln!("synscope: {}: cannot write the report: {e}", path.display());
                ExitCode::from(EXIT_RUNTIME)
            }
        };
    }
    let out = std::io::stdout().lock();
    let written = match format {
        Format::Table => {
            let mut out = out;
            let mut text = render_table(analysis, TableOptions { all });
            if let Some(n) = note {
                text.push_str(n);
            }
            out.write_all(text.as_bytes()).and_then(|_| out.flush())
        }
        Format::Json => write_json(analysis, scan, std::io::BufWriter::new(out)),
        Format::Csv => synscope::report::write_csv(analysis, std::io::BufWriter::new(out)),
        // A scan has streamed its lines already.
        Format::Jsonl if scan.is_some() => Ok(()),
        Format::Jsonl => {
            synscope::report::write_jsonl(&analysis.results, std::io::BufWriter::new(out))
        }
        Format::NmapXml => {
            synscope::report::write_nmap_xml(analysis, &cli_args(), std::io::BufWriter::new(out))
        }
    };
    match written {
        // The reader went away (`| head`): nothing more to say.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(EXIT_OK),
        Err(e) => {
            eprintln!("synscope: cannot write the report to stdout: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
        Ok(()) => ExitCode::from(EXIT_OK),
    }
}

fn analyze(args: AnalyzeArgs) -> ExitCode {
    let opts = Options::from(&args);
    let inputs = synscope::source::inputs::expand(&args.files);
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
    let mut analyzer = Analyzer::new(opts).with_jobs(args.jobs());
    if !args.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let total: u64 = inputs
            .files
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum();
        if total >= PROGRESS_BYTES {
            analyzer = analyzer.with_progress(analyze_bar(total));
        }
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
    // Nothing to show but errors: the error lines alone say it.
    let all_failed =
        analysis.results.is_empty() && analysis.inputs.iter().all(|i| i.error.is_some());
    if inputs.files.is_empty() {
        return ExitCode::from(EXIT_INPUT);
    }
    if !all_failed {
        if args.findings {
            let f = synscope::diagnose::offline::offline_findings(&analysis);
            let mut buf: Vec<u8> = Vec::new();
            let made = match args.report.format {
                Format::Csv => synscope::report::write_csv(&analysis, &mut buf),
                Format::Jsonl => synscope::report::write_jsonl(&analysis.results, &mut buf),
                Format::NmapXml => {
                    synscope::report::write_nmap_xml(&analysis, &cli_args(), &mut buf)
                }
                Format::Table => {
                    let mut text = synscope::diagnose::offline::render(&f);
                    text.push_str(&render_table(
                        &analysis,
                        TableOptions {
                            all: args.report.all,
                        },
                    ));
                    buf.extend_from_slice(text.as_bytes());
                    Ok(())
                }
                Format::Json => {
                    #[derive(serde::Serialize)]
                    struct Extra<'a> {
                        findings: &'a [synscope::diagnose::Finding],
                        names: &'a [synscope::diagnose::offline::NameFinding],
                        dns: &'a [synscope::model::DnsEvent],
                    }
                    let extra = Extra {
                        findings: &f.findings,
                        names: &f.names,
                        dns: &analysis.dns,
                    };
                    write_json(&analysis, Some(&extra), &mut buf)
                }
            };
            if let Some(path) = &args.report.output {
                return match made.and_then(|_| synscope::report::write_atomic(path, &buf)) {
                    Ok(()) => ExitCode::from(code),
                    Err(e) => {
                        eprintln!("synscope: {}: cannot write the report: {e}", path.display());
                        ExitCode::from(EXIT_RUNTIME)
                    }
                };
            }
            let written = made.and_then(|_| {
                let mut out = std::io::stdout().lock();
                out.write_all(&buf).and_then(|_| out.flush())
            });
            return match written {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("synscope: cannot write the report to stdout: {e}");
                    ExitCode::from(EXIT_RUNTIME)
                }
                _ => ExitCode::from(code),
            };
        }
        let written = emit(
            &analysis,
            args.report.format,
            args.report.all,
            None,
            None,
            args.report.output.as_deref(),
        );
        if written != ExitCode::from(EXIT_OK) {
            return written;
        }
    }
    ExitCode::from(code)
}
