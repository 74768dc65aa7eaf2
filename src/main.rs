use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use synscope::analyze::{Analyzer, Options};
use synscope::model::NANOS_PER_SEC;
use synscope::model::ScanInfo;
use synscope::report::{TableOptions, render_table, write_json};
use synscope::scan::ScanOptions;
use synscope::scan::engine::EngineConfig;
use synscope::scan::targets::{self, Family};
use synscope::select::{AddrSpec, PortSet, Selection};
use synscope::track::{self};

/// Exit codes (README, "Exit codes"): 0 = ran and every port asked about
/// (scan, diagnose, analyze -p) answered as open, 1 = ran and some port is
/// not open, 2 = usage or input error, 3 = runtime error, 130 = interrupted.
const EXIT_OK: u8 = 0;
const EXIT_NOT_OPEN: u8 = 1;
const EXIT_INPUT: u8 = 2;
const EXIT_RUNTIME: u8 = 3;
const EXIT_INTERRUPTED: u8 = 130;
/// Probes in one scan without --large.
const MAX_PROBES: u64 = 1 << 20;

#[derive(Parser)]
#[command(
    name = "synscope",
    version,
    about = "Why is the connection refused (or hanging)? TCP SYN verdicts from packets, not guesses."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Give every TCP connection attempt in captures (pcap / pcapng) a verdict.
    #[command(after_help = "Examples:
  synscope analyze captures/wrong-port.pcap
  synscope analyze --format json scan.pcapng | jq '.results[] | select(.state != \"open\")'
  synscope analyze --target 203.0.113.0/24 -p 80,443 --timeout 5 a.pcap b.pcap
  synscope analyze --filter 'host 203.0.113.2' big.pcap
  synscope analyze /var/tmp/ring/          (every capture in it: a tcpdump -C rotation reads as one)
  tcpdump -i eth0 -U -w - 'tcp or icmp or icmp6' | synscope analyze -   (verdicts when tcpdump stops)
  synscope analyze -p 443 'caps/*.pcap' && echo 'every attempt to 443 was answered open'")]
    Analyze(AnalyzeArgs),
    /// Send SYN probes and give every (target, port) a verdict (needs root or CAP_NET_RAW).
    #[command(after_help = "Examples:
  sudo synscope scan 127.0.0.1 -p 22,80,443
  sudo synscope scan 2001:db8::7 -p- --rate 20000 --write scan.pcap
  sudo synscope scan db.example.internal -4 -p 5432 --format json

The kernel answers the SYN-ACKs of these half-open probes with a RST, as it
does for nmap -sS. Re-analyse a --write capture with `synscope analyze`.")]
    Scan(ScanArgs),
    /// Why is HOST:PORT refused or hanging, and which part is at fault? (needs root or CAP_NET_RAW)
    #[command(after_help = "Examples:
  sudo synscope diagnose db.internal:5432
  sudo synscope diagnose 203.0.113.2:8081 --report ticket-4711.md
  sudo synscope diagnose '[2001:db8::7]:443' --format json

It resolves the name (every A and AAAA record), probes the port and reference
ports (the host's common services, and --ref-ports) and says in plain
language what answered, how, and from how far away.")]
    Diagnose(DiagnoseArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to stdout.
    #[command(
        after_help = "Example:\n  synscope completions bash > /etc/bash_completion.d/synscope"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout.
    #[command(after_help = "Example:\n  synscope man > /usr/local/share/man/man1/synscope.1")]
    Man,
}

#[derive(clap::Args)]
struct DiagnoseArgs {
    /// HOST:PORT, [IPv6]:PORT, or HOST with -p.
    #[arg(value_name = "HOST[:PORT]")]
    target: String,
    /// The port, when not given as HOST:PORT.
    #[arg(short = 'p', long, value_name = "PORT")]
    port: Option<u16>,
    /// More reference ports to probe (besides 20 common ones).
    #[arg(long, value_name = "PORTS")]
    ref_ports: Option<PortSet>,
    /// Only IPv4 addresses of the name.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,
    /// Only IPv6 addresses of the name.
    #[arg(short = '6')]
    ipv6: bool,
    /// Seconds to keep listening for late answers after the last probe.
    #[arg(long, default_value_t = 3.0, value_name = "SECONDS", value_parser = parse_timeout)]
    wait: f64,
    /// Probes per second at most.
    #[arg(long, default_value_t = 1000, value_name = "PPS")]
    rate: u32,
    /// connect() probes instead of raw SYNs (also the fallback, with a warning, without privileges).
    #[arg(long)]
    unprivileged: bool,
    /// Write the report to FILE as well: FILE.html for a web page, any other name for Markdown.
    #[arg(long, value_name = "FILE.md|FILE.html")]
    report: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("portspec").required(true).args(["ports", "top_ports"])))]
struct ScanArgs {
    /// Targets: addresses, CIDR blocks, host names (every A and AAAA record).
    #[arg(required = true, value_name = "TARGET")]
    targets: Vec<String>,
    /// Ports, nmap syntax: 22,80,8000-8100; `-p-` for all 65,535.
    #[arg(short = 'p', long, value_name = "PORTS", allow_hyphen_values = true)]
    ports: Option<PortSet>,
    /// The first N of synscope's list of common service ports (src/scan/top-ports.txt).
    #[arg(long, value_name = "N")]
    top_ports: Option<usize>,
    /// Only IPv4 addresses of the targets.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,
    /// Only IPv6 addresses of the targets.
    #[arg(short = '6')]
    ipv6: bool,
    /// Probes per second at most, retransmissions included (0: no cap).
    #[arg(long, default_value_t = 10_000, value_name = "PPS")]
    rate: u32,
    /// Sends after the first for an unanswered probe.
    #[arg(long, default_value_t = 6, value_name = "N")]
    max_retries: u8,
    /// Seconds to keep listening for late answers after the last probe.
    #[arg(long, default_value_t = 3.0, value_name = "SECONDS", value_parser = parse_timeout)]
    wait: f64,
    /// TTL / hop limit of the probes.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
    ttl: Option<u8>,
    /// Seed of the probe order (random by default; printed in JSON).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Save every probe and every captured answer to this pcap file.
    #[arg(short = 'w', long, value_name = "FILE")]
    write: Option<PathBuf>,
    /// connect() probes instead of raw SYNs: no privileges needed, ICMP errors still read (no TTLs).
    #[arg(long)]
    unprivileged: bool,
    /// Probe broadcast, multicast, unspecified and block network/broadcast addresses too.
    #[arg(long)]
    force: bool,
    /// Allow more than 1,048,576 probes (targets × ports) in one scan.
    #[arg(long)]
    large: bool,
    /// Once the sockets are open, drop root to this user (default: the sudo caller).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// No progress bar (it is drawn on stderr only when stderr is a terminal).
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Probe only part I of N of the target × port space (e.g. 2/4): N machines cover it exactly once.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<(u32, u32)>,
    /// Kernel capture buffer in KiB (default 65536), like tcpdump -B.
    #[arg(long, value_name = "KIB", value_parser = clap::value_parser!(u32).range(1..=4_194_304))]
    capture_buffer: Option<u32>,
    /// Source port of the probes (default: random, outside the kernel's ephemeral range).
    #[arg(short = 'g', long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    source_port: Option<u16>,
    /// Seconds after an attempt's last SYN with no answer before it counts as filtered.
    #[arg(short = 't', long, default_value_t = 3.0, value_name = "SECONDS", value_parser = parse_timeout)]
    timeout: f64,
    #[command(flatten)]
    report: ReportArgs,
}

/// How a verdict report is written (analyze and scan).
#[derive(clap::Args)]
struct ReportArgs {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Table: list every port instead of collapsing the most common answer.
    #[arg(long)]
    all: bool,
    /// Write the report to FILE (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(clap::Args)]
struct AnalyzeArgs {
    /// Capture files (pcap or pcapng), directories of them, quoted globs
    /// ('caps/*.pcap'), or - for standard input; verdicts are merged
    /// across them.
    #[arg(required = true, value_name = "FILE|DIR|GLOB")]
    files: Vec<PathBuf>,
    /// Threads that read and decode files (a file each), and as many that
    /// track (a share of the flows each); default: half the CPUs, at least 1;
    /// at most 256.
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    jobs: Option<u16>,
    /// No progress bar (drawn on stderr, only when it is a terminal and the
    /// inputs add up to 16 MiB or more).
    #[arg(short = 'q', long)]
    quiet: bool,
    /// BPF filter applied while reading (tcpdump syntax).
    #[arg(short = 'f', long, value_name = "BPF")]
    filter: Option<String>,
    /// Seconds after an attempt's last SYN with no answer before it counts as filtered.
    #[arg(short = 't', long, default_value_t = 3.0, value_name = "SECONDS", value_parser = parse_timeout)]
    timeout: f64,
    /// Only attempts from these clients (address or CIDR; repeat or comma-separate).
    #[arg(long, value_name = "ADDR[/LEN]", value_delimiter = ',')]
    client: Vec<AddrSpec>,
    /// Only attempts to these targets (address or CIDR; repeat or comma-separate).
    #[arg(long, value_name = "ADDR[/LEN]", value_delimiter = ',')]
    target: Vec<AddrSpec>,
    /// Only these target ports, nmap syntax: 22,80,8000-8100.
    #[arg(short = 'p', long, value_name = "PORTS")]
    ports: Option<PortSet>,
    #[command(flatten)]
    report: ReportArgs,
    /// Explain the failures in plain language (as `diagnose` does), from what the capture holds.
    #[arg(long)]
    findings: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
    /// One row per verdict, with a header (RFC 4180).
    Csv,
    /// JSON Lines: one verdict per line; a scan prints each as it is decided.
    Jsonl,
    /// nmap's XML format (validates against nmap.dtd), for tools that read nmap output.
    #[value(name = "nmap-xml")]
    NmapXml,
}

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

/// 0 when there is at least one verdict and every one is open (the port
/// answered with a SYN-ACK), 1 otherwise: `synscope scan host -p 443 && deploy`
/// works like `nc -z`.
fn verdict_code(results: &[synscope::model::Verdict]) -> u8 {
    if !results.is_empty()
        && results
            .iter()
            .all(|v| v.state == synscope::model::State::Open)
    {
        EXIT_OK
    } else {
        EXIT_NOT_OPEN
    }
}

/// The report was written (`written` is `EXIT_OK`): the verdicts decide.
fn or_verdicts(written: ExitCode, results: &[synscope::model::Verdict]) -> ExitCode {
    if written == ExitCode::from(EXIT_OK) {
        ExitCode::from(verdict_code(results))
    } else {
        written
    }
}

fn parse_shard(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{s:?}: a shard is I/N with 1 <= I <= N, e.g. 2/4");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n) = (
        i.trim().parse::<u32>().map_err(|_| bad())?,
        n.trim().parse::<u32>().map_err(|_| bad())?,
    );
    if i == 0 || i > n {
        return Err(bad());
    }
    Ok((i, n))
}

fn parse_timeout(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if (0.0..=86_400.0).contains(&t) => Ok(t),
        _ => Err(format!("{s:?} is not a number of seconds from 0 to 86400")),
    }
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
    let (host, port) = synscope::diagnose::run::split_host_port(&args.target);
    let Some(port) = port.or(args.port) else {
        eprintln!(
            "synscope: {}: which port? give HOST:PORT or -p PORT",
            args.target
        );
        return ExitCode::from(EXIT_INPUT);
    };
    if port == 0 {
        eprintln!("synscope: port 0 cannot be probed; give 1-65535");
        return ExitCode::from(EXIT_INPUT);
    }
    let family = if args.ipv4 {
        Family::V4
    } else if args.ipv6 {
        Family::V6
    } else {
        Family::Any
    };
    let opts = synscope::diagnose::run::DiagnoseOptions {
        host,
        port,
        family,
        reference: args
            .ref_ports
            .map(|p| p.iter().collect())
            .unwrap_or_default(),
        scan: ScanOptions {
            targets: Vec::new(),
            ports: PortSet::all(),
            engine: EngineConfig {
                rate: args.rate,
                ..EngineConfig::default()
            },
            wait: Duration::from_secs_f64(args.wait),
            ttl: None,
            seed: None,
            write: None,
            source_port: None,
            unprivileged: args.unprivileged,
            // diagnose opens more handles as it goes (traces): it keeps its
            // privileges, and Ctrl-C ends it at once.
            user: None,
            catch_signals: false,
            capture_buffer: None,
            shard: None,
            progress: false,
            track: track::Config::default(),
        },
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
        _ => {
            if d.addresses.is_empty() {
                // Resolution failed: nothing could be probed.
                ExitCode::from(EXIT_INPUT)
            } else {
                // The port is open on every address of the name, or not.
                let every_address = d.addresses.iter().all(|a| {
                    a.results
                        .iter()
                        .any(|v| v.port == port && v.state == synscope::model::State::Open)
                });
                ExitCode::from(if every_address {
                    EXIT_OK
                } else {
                    EXIT_NOT_OPEN
                })
            }
        }
    }
}

fn scan(args: ScanArgs) -> ExitCode {
    let family = if args.ipv4 {
        Family::V4
    } else if args.ipv6 {
        Family::V6
    } else {
        Family::Any
    };
    let targets = match targets::resolve(&args.targets, family, args.force) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("synscope: {e}");
            return ExitCode::from(EXIT_INPUT);
        }
    };
    let ports = match (args.ports, args.top_ports) {
        (Some(p), _) => p,
        (None, Some(n)) => match PortSet::top(n) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("synscope: {e}");
                return ExitCode::from(EXIT_INPUT);
            }
        },
        // clap requires one of the two.
        (None, None) => return ExitCode::from(EXIT_INPUT),
    };
    let probes = targets.len() as u64 * ports.len() as u64;
    if probes > MAX_PROBES && !args.large {
        eprintln!(
            "synscope: {probes} probes ({} targets × {} ports) is more than {MAX_PROBES}; add --large if that is what you mean",
            targets.len(),
            ports.len()
        );
        return ExitCode::from(EXIT_INPUT);
    }
    let opts = ScanOptions {
        targets,
        ports,
        engine: EngineConfig {
            rate: args.rate,
            max_retries: args.max_retries,
            ..EngineConfig::default()
        },
        wait: Duration::from_secs_f64(args.wait),
        ttl: args.ttl,
        seed: args.seed,
        write: args.write,
        source_port: args.source_port,
        unprivileged: args.unprivileged,
        user: args.user,
        catch_signals: true,
        capture_buffer: args.capture_buffer.map(|k| (k as i32).saturating_mul(1024)),
        shard: args.shard,
        progress: !args.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        track: track::Config {
            timeout: (args.timeout * NANOS_PER_SEC as f64) as u64,
            ..track::Config::default()
        },
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
    if info.capture_error.is_some() && code == ExitCode::from(EXIT_OK) {
        // The report was printed, but the scan could not finish.
        return ExitCode::from(EXIT_RUNTIME);
    }
    if info.partial && code == ExitCode::from(EXIT_OK) {
        // Interrupted: the shell's convention for SIGINT.
        return ExitCode::from(EXIT_INTERRUPTED);
    }
    or_verdicts(code, &outcome.analysis.results)
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
    let opts = Options {
        track: track::Config {
            timeout: (args.timeout * NANOS_PER_SEC as f64) as u64,
            ..track::Config::default()
        },
        selection: Selection {
            clients: args.client,
            targets: args.target,
            ports: args.ports.clone(),
        },
        filter: args.filter,
        keep_dns: args.findings,
    };
    let inputs = synscope::source::inputs::expand(&args.files);
    let mut code = EXIT_OK;
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
    // As many threads track as decode: each side is about half the work.
    let jobs = args.jobs.map(usize::from).unwrap_or_else(|| {
        (std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get) / 2).max(1)
    });
    let mut analyzer = Analyzer::new(opts).with_jobs(jobs);
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
    for i in analysis.errors() {
        eprintln!(
            "synscope: {}: {}",
            i.file,
            i.error.as_deref().unwrap_or("unreadable")
        );
        code = EXIT_INPUT;
    }
    if code == EXIT_OK
        && let Some(asked) = &args.ports
    {
        // Ports asked about with -p: each must have been seen, and every
        // attempt to them answered as open (`analyze -p 443 cap && ...`).
        let seen: std::collections::HashSet<u16> =
            analysis.results.iter().map(|v| v.port).collect();
        code = if asked.iter().all(|p| seen.contains(&p)) {
            verdict_code(&analysis.results)
        } else {
            EXIT_NOT_OPEN
        };
    }
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
