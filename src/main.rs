use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use synscope::analyze::{Analyzer, Options};
use synscope::report::{TableOptions, render_table, write_json};
use synscope::select::{AddrSpec, PortSet, Selection};
use synscope::track::{self, NANOS_PER_SEC};

/// Exit codes (docs/USAGE.md).
const EXIT_OK: u8 = 0;
const EXIT_INPUT: u8 = 2;
const EXIT_RUNTIME: u8 = 3;

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
  synscope analyze --filter 'host 203.0.113.2' big.pcap")]
    Analyze(AnalyzeArgs),
}

#[derive(clap::Args)]
struct AnalyzeArgs {
    /// Capture files (pcap or pcapng); verdicts are merged across them.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
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
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Table: list every port instead of collapsing the most common answer.
    #[arg(long)]
    all: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
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
            ports: args.ports,
        },
        filter: args.filter,
    };
    let mut analyzer = Analyzer::new(opts);
    for f in &args.files {
        analyzer.add_file(f);
    }
    let analysis = analyzer.finish();
    let mut code = EXIT_OK;
    for i in analysis.errors() {
        eprintln!(
            "synscope: {}: {}",
            i.file,
            i.error.as_deref().unwrap_or("unreadable")
        );
        code = EXIT_INPUT;
    }
    // Nothing to show but errors: the error lines alone say it.
    let all_failed =
        analysis.results.is_empty() && analysis.inputs.iter().all(|i| i.error.is_some());
    if !all_failed {
        let out = std::io::stdout().lock();
        let written = match args.format {
            Format::Table => {
                let mut out = out;
                out.write_all(render_table(&analysis, TableOptions { all: args.all }).as_bytes())
                    .and_then(|_| out.flush())
            }
            Format::Json => write_json(&analysis, std::io::BufWriter::new(out)),
        };
        match written {
            // The reader went away (`| head`): nothing more to say.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => {
                eprintln!("synscope: cannot write the report to stdout: {e}");
                code = EXIT_RUNTIME;
            }
            Ok(()) => {}
        }
    }
    ExitCode::from(code)
}
