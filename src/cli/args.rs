//! The command line: its commands, their flags and help texts (the
//! completions and the man page are made from these), and the parsers of
//! the values clap has none for.

use crate::select::{AddrSpec, PortSet};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "synscope",
    version,
    // `synscope COMMAND --help` is the help of a command; no `help`
    // command, whose man page would not exist.
    disable_help_subcommand = true,
    about = "Why is the connection refused (or hanging)? TCP SYN verdicts from packets, not guesses.",
    after_help = "Privileges: scan and diagnose send raw SYNs and capture the answers: they need root, or the capabilities CAP_NET_RAW and CAP_NET_ADMIN (sudo setcap cap_net_raw,cap_net_admin+eip $(command -v synscope)); with --unprivileged they use connect() probes instead and need neither. analyze reads files and needs neither."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
    /// Watch the connection attempts an interface sees, live: each verdict as it is decided (needs root or CAP_NET_RAW; sends nothing).
    #[command(after_help = "Examples:
  sudo synscope watch                      (every interface, as tcpdump -i any; Ctrl-C for the report)
  sudo synscope watch -i eth0 port 5432 --duration 60
  sudo synscope watch -o jsonl | jq -c 'select(.state != \"open\")'

It never sends a packet. A filter (tcpdump syntax) keeps the ICMP errors
that quote what it selects.")]
    Watch(WatchArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to stdout.
    #[command(
        after_help = "Example:\n  synscope completions bash > /etc/bash_completion.d/synscope"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print a man page (roff) to stdout: synscope(1), or a command's, synscope-COMMAND(1).
    #[command(
        after_help = "Example:\n  synscope man > /usr/local/share/man/man1/synscope.1\n  for c in analyze scan diagnose watch completions; do synscope man $c > /usr/local/share/man/man1/synscope-$c.1; done"
    )]
    Man {
        /// The command whose page to print (analyze, scan, diagnose, watch, completions, man).
        #[arg(value_name = "COMMAND")]
        command: Option<String>,
    },
}

// The doc comments are help texts, not rustdoc: `[IPv6]:PORT` is no link.
#[allow(rustdoc::broken_intra_doc_links)]
#[derive(clap::Args)]
pub struct DiagnoseArgs {
    /// HOST:PORT, [IPv6]:PORT, or HOST with -p.
    #[arg(value_name = "HOST[:PORT]")]
    pub target: String,
    /// The port, when not given as HOST:PORT.
    #[arg(short = 'p', long, value_name = "PORT")]
    pub port: Option<u16>,
    /// More reference ports to probe (besides 20 common ones).
    #[arg(long, value_name = "PORTS")]
    pub ref_ports: Option<PortSet>,
    /// Only IPv4 addresses of the name.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Only IPv6 addresses of the name.
    #[arg(short = '6')]
    pub ipv6: bool,
    /// Seconds to keep listening for late answers after the last probe (default: as long as something can still answer).
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout)]
    pub wait: Option<f64>,
    /// Probes per second at most.
    #[arg(long, default_value_t = 1000, value_name = "PPS")]
    pub rate: u32,
    /// After a SYN-ACK: seconds to hold a real connection (connect()) to each open port and watch what the server does: speaks first, closes, resets, or waits for the client (0: skip).
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS", value_parser = parse_hold)]
    pub hold: f64,
    /// connect() probes instead of raw SYNs (also the fallback, with a warning, without privileges).
    #[arg(long)]
    pub unprivileged: bool,
    /// Write the report to FILE as well: FILE.html for a web page, any other name for Markdown.
    #[arg(long, value_name = "FILE.md|FILE.html")]
    pub report: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("portspec").args(["ports", "top_ports"])))]
pub struct ScanArgs {
    /// Targets: addresses, CIDR blocks, nmap-style IPv4 ranges (10.0.0.1-20, 10.0.1-3.*), host names (every A and AAAA record), HOST:PORT.
    #[arg(required_unless_present = "input_list", value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Read more targets from FILE (one or more a line, # comments; - for stdin), as nmap's -iL.
    #[arg(long, value_name = "FILE")]
    pub input_list: Option<PathBuf>,
    /// Leave these targets out (addresses, blocks, ranges, names; comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "TARGETS")]
    pub exclude: Vec<String>,
    /// Leave out the targets listed in FILE.
    #[arg(long, value_name = "FILE")]
    pub excludefile: Option<PathBuf>,
    /// Ports, nmap syntax: 22,80,8000-8100; `-p-` for all 65,535.
    #[arg(short = 'p', long, value_name = "PORTS", allow_hyphen_values = true)]
    pub ports: Option<PortSet>,
    /// The N ports most often open: nmap's measured order, read from its nmap-services where nmap is installed (or $NMAPDIR), else synscope's own list of 139 (src/scan/top-ports.txt).
    #[arg(long, value_name = "N")]
    pub top_ports: Option<usize>,
    /// Only IPv4 addresses of the targets.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Only IPv6 addresses of the targets.
    #[arg(short = '6')]
    pub ipv6: bool,
    /// Probes per second at most, retransmissions included: an exact cap (default: none; a congestion window paces the scan).
    #[arg(long, value_name = "PPS")]
    pub rate: Option<u32>,
    /// Sends after the first for a silent probe, at most (they follow the evidence: one more than the highest try that got an answer).
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub max_retries: u8,
    /// Seconds to keep listening after the last probe (default: only while something can still answer: up to 3.5 s after the first probe of a host that never answered, for a router's host-unreachable).
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout)]
    pub wait: Option<f64>,
    /// TTL / hop limit of the probes.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
    pub ttl: Option<u8>,
    /// Seed of the probe order (random by default; printed in JSON).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Save every probe and every captured answer to this pcap file.
    #[arg(short = 'w', long, value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// connect() probes instead of raw SYNs: no privileges needed, ICMP errors still read (no TTLs).
    #[arg(long)]
    pub unprivileged: bool,
    /// Probe broadcast, multicast, unspecified and block network/broadcast addresses too.
    #[arg(long)]
    pub force: bool,
    /// Allow more than 1,048,576 probes (targets × ports) in one scan.
    #[arg(long)]
    pub large: bool,
    /// Once the sockets are open, drop root to this user (default: the sudo caller).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// No progress bar (it is drawn on stderr only when stderr is a terminal).
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Probe only part I of N of the target × port space (e.g. 2/4): N machines cover it exactly once.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<(u32, u32)>,
    /// Kernel capture buffer in KiB (default: 1 KiB a probe, 2048 to 65536), like tcpdump -B.
    #[arg(long, value_name = "KIB", value_parser = clap::value_parser!(u32).range(1..=4_194_304))]
    pub capture_buffer: Option<u32>,
    /// Source port of the probes (default: random, outside the kernel's ephemeral range).
    #[arg(short = 'g', long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub source_port: Option<u16>,
    /// Seconds after an attempt's last SYN with no answer before it counts as filtered.
    #[arg(short = 't', long, default_value_t = 3.5, value_name = "SECONDS", value_parser = parse_timeout)]
    pub timeout: f64,
    #[command(flatten)]
    pub report: ReportArgs,
    /// Explain the failures in plain language (as `diagnose` does), from what the scan saw.
    #[arg(long)]
    pub findings: bool,
}

/// How a verdict report is written (analyze and scan).
#[derive(clap::Args)]
pub struct ReportArgs {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Table: list every port instead of collapsing the most common answer.
    #[arg(long)]
    pub all: bool,
    /// Write the report to FILE (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Show only open ports (nmap's --open; the same as --state open).
    #[arg(long, conflicts_with = "state")]
    pub open: bool,
    /// Show only ports in these states (comma-separated): open, refused, filtered, unreachable.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "STATES")]
    pub state: Vec<ShownState>,
    /// CSV: these columns, in this order (comma-separated; zmap's --output-fields): client, target, port, state, reason, icmp_type, icmp_code, responder, ttl, hops, rtt_ms, probes, attempts, uncertain, inferred, host_hops, name, first_probe_ns, decided_ns; rtt_last_ms and service on request.
    #[arg(
        long,
        alias = "output-fields",
        value_delimiter = ',',
        value_name = "FIELDS"
    )]
    pub fields: Vec<String>,
}

/// A verdict state, for `--state`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShownState {
    Open,
    Refused,
    Filtered,
    Unreachable,
}

impl ReportArgs {
    /// `--fields` chooses CSV columns: refused with another format (it
    /// would be ignored without a word), or with a column that is none.
    pub fn check_fields(&self) -> Result<(), String> {
        if self.fields.is_empty() {
            return Ok(());
        }
        if self.format != Format::Csv {
            return Err(
                "--fields chooses the columns of -o csv: add -o csv, or drop --fields".into(),
            );
        }
        crate::report::check_fields(&self.fields)
    }

    /// The states shown (`--open`, `--state`), or None for all.
    pub fn shown_states(&self) -> Option<Vec<crate::model::State>> {
        use crate::model::State;
        if self.open {
            return Some(vec![State::Open]);
        }
        if self.state.is_empty() {
            return None;
        }
        Some(
            self.state
                .iter()
                .map(|s| match s {
                    ShownState::Open => State::Open,
                    ShownState::Refused => State::Refused,
                    ShownState::Filtered => State::Filtered,
                    ShownState::Unreachable => State::Unreachable,
                })
                .collect(),
        )
    }
}

#[derive(clap::Args)]
pub struct AnalyzeArgs {
    /// Capture files (pcap or pcapng), directories of them, quoted globs
    /// ('caps/*.pcap'), or - for standard input; verdicts are merged
    /// across them.
    #[arg(required = true, value_name = "FILE|DIR|GLOB")]
    pub files: Vec<PathBuf>,
    /// Threads that read and decode files (a file each), and as many that
    /// track (a share of the flows each); default: half the CPUs, at least 1;
    /// at most 256.
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: Option<u16>,
    /// No progress bar (drawn on stderr, only when it is a terminal and the
    /// inputs add up to 16 MiB or more).
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// BPF filter applied while reading (tcpdump syntax); ICMP errors
    /// quoting a packet it selects are kept too.
    #[arg(short = 'f', long, value_name = "BPF")]
    pub filter: Option<String>,
    /// Seconds after an attempt's last SYN with no answer before it counts as filtered.
    #[arg(short = 't', long, default_value_t = 3.5, value_name = "SECONDS", value_parser = parse_timeout)]
    pub timeout: f64,
    /// Only attempts from these clients (address or CIDR; repeat or comma-separate).
    #[arg(long, value_name = "ADDR[/LEN]", value_delimiter = ',')]
    pub client: Vec<AddrSpec>,
    /// Only attempts to these targets (address or CIDR; repeat or comma-separate).
    #[arg(long, value_name = "ADDR[/LEN]", value_delimiter = ',')]
    pub target: Vec<AddrSpec>,
    /// Only these target ports, nmap syntax: 22,80,8000-8100.
    #[arg(short = 'p', long, value_name = "PORTS")]
    pub ports: Option<PortSet>,
    #[command(flatten)]
    pub report: ReportArgs,
    /// Explain the failures in plain language (as `diagnose` does), from what the capture holds.
    #[arg(long)]
    pub findings: bool,
    /// Write the findings to FILE as well: FILE.html for a web page (the findings shared by many hosts once, each drawn), any other name for Markdown.
    #[arg(long = "report", value_name = "FILE.md|FILE.html")]
    pub findings_report: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
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

/// `--shard I/N`: part I of N, 1 <= I <= N.
pub fn parse_shard(s: &str) -> Result<(u32, u32), String> {
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

/// Seconds (`--timeout`, `--wait`): 0 to a day.
pub fn parse_timeout(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if (0.0..=86_400.0).contains(&t) => Ok(t),
        _ => Err(format!("{s:?} is not a number of seconds from 0 to 86400")),
    }
}

/// Seconds (`--hold`): 0 to 60 (a connection held longer tells no more).
pub fn parse_hold(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if (0.0..=60.0).contains(&t) => Ok(t),
        _ => Err(format!("{s:?} is not a number of seconds from 0 to 60")),
    }
}

#[derive(clap::Args)]
pub struct WatchArgs {
    /// The interface to capture on (default: every one, as tcpdump -i any).
    #[arg(short = 'i', long, default_value = "any", value_name = "IFACE")]
    pub interface: String,
    /// A tcpdump filter (its words may be given unquoted, as to tcpdump).
    #[arg(value_name = "FILTER", trailing_var_arg = true)]
    pub filter: Vec<String>,
    /// Stop after this many seconds (default: at Ctrl-C).
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout)]
    pub duration: Option<f64>,
    /// How long after its last SYN an attempt waits for an answer before it is filtered.
    #[arg(short = 't', long, default_value_t = 3.5, value_name = "SECONDS", value_parser = parse_timeout)]
    pub timeout: f64,
    /// table: a line per verdict as it is decided, and the report at the end; jsonl: a verdict per line as decided; json: the report at the end.
    #[arg(short = 'o', long, value_enum, default_value_t = WatchFormat::Table)]
    pub format: WatchFormat,
    /// The user to become once the capture is open (default: the sudo caller).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Only the attempts of this process.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Only the attempts of programs of this name (as ps shows it: /proc/PID/comm).
    #[arg(long, value_name = "NAME")]
    pub command: Option<String>,
    /// Where programs' names come from: the kernel's tracepoint (exact, root or CAP_PERFMON), the socket table (sock_diag and /proc: best effort, misses fast refusals), the first that works (auto), or none.
    #[arg(long, value_enum, default_value_t = ProgramsFrom::Auto, value_name = "SOURCE")]
    pub programs_from: ProgramsFrom,
    /// On a terminal, a summary line every this many seconds (0: none).
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS", value_parser = parse_every)]
    pub every: f64,
    /// Write the final report to FILE as well: FILE.html for a web page, any other name for Markdown.
    #[arg(long, value_name = "FILE.md|FILE.html")]
    pub report: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgramsFrom {
    Auto,
    Tracepoint,
    SocketTable,
    None,
}

fn parse_every(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (v == 0.0 || (0.5..=86400.0).contains(&v)) => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of seconds between 0.5 and 86400 (or 0 for no summaries)"
        )),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WatchFormat {
    Table,
    Jsonl,
    Json,
}
