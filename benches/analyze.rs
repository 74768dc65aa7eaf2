//! Offline throughput: `synscope analyze` against `tcpdump -r FILE -w
//! /dev/null` with a filter, on the same capture, in the same run.
//!
//! The capture is built here: full-port scans (65,535 SYNs each, answered
//! like the lab target answers nmap: RST from closed ports, SYN-ACK + client
//! RST from open ones, ICMP port-unreachable, silence), repeated from new
//! source ports with shifted timestamps until it holds at least 5 million
//! packets. Run: `cargo bench --bench analyze` (SYNSCOPE_BENCH_PACKETS to
//! change the size, SYNSCOPE_BENCH_KEEP=1 to keep the capture for profiling). Figures go in docs/BENCHMARKS.md.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;
use synscope::fixture::{self, Seg, addr};
use synscope::source::PcapWriter;
use synscope::wire::{LinkType, flags};

/// Full-port scans from round `first_round` on (each round a new source
/// port) until the file holds `min_packets`.
fn build_capture(path: &Path, min_packets: u64, first_round: u32) -> u64 {
    let mut w = PcapWriter::create(path, LinkType::ETHERNET).expect("create capture");
    let mut n = 0u64;
    let mut ts: u64 = 1_700_000_000_000_000_000;
    let mut put = |ts: u64, ip: &[u8]| {
        let f = fixture::ethernet(ip);
        w.write(ts, f.len() as u32, &f);
    };
    let mut round = first_round;
    ts += u64::from(first_round) * 70_000_000_000;
    while n < min_packets {
        for port in 1..=65535u16 {
            let sport = 30000 + (round % 30000) as u16;
            let s = Seg::syn(
                "198.51.100.2",
                sport,
                "203.0.113.2",
                port,
                round.wrapping_mul(65536) ^ u32::from(port),
            );
            put(ts, &fixture::tcp_ip(&s));
            n += 1;
            let rts = ts + 40_000;
            match port {
                22 | 80 | 443 | 8080 => {
                    put(rts, &fixture::tcp_ip(&s.reply(flags::SYN | flags::ACK, 63)));
                    let mut r = s;
                    r.flags = flags::RST;
                    r.seq = s.seq.wrapping_add(1);
                    put(rts + 5_000, &fixture::tcp_ip(&r));
                    n += 2;
                }
                9000 | 9004 => {}
                9001 => {
                    let ip = fixture::icmp_error_ip(
                        addr("203.0.113.2"),
                        s.src,
                        63,
                        3,
                        3,
                        &fixture::tcp_ip(&s),
                        28,
                    );
                    put(rts, &ip);
                    n += 1;
                }
                _ => {
                    put(rts, &fixture::tcp_ip(&s.reply(flags::RST | flags::ACK, 63)));
                    n += 1;
                }
            }
            // About 25,000 probes a second, like a fast scan.
            ts += 40_000;
        }
        round += 1;
        // The next scan starts after every timeout of this one.
        ts += 5_000_000_000;
    }
    w.finish().expect("finish capture");
    n
}

/// Wall seconds, CPU seconds and peak RSS (KiB) of one run.
type Run = (f64, f64, i64);

fn measure(cmd: &mut Command) -> Run {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: wait4 on our own child, with valid out-pointers.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::wait4(pid, &mut status, 0, &mut u);
        u
    };
    let wall = start.elapsed().as_secs_f64();
    let _ = child.try_wait();
    // synscope exits 1 when some port is not open (README, exit codes).
    assert!(
        libc::WIFEXITED(status) && matches!(libc::WEXITSTATUS(status), 0 | 1),
        "{cmd:?} failed"
    );
    let cpu = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (
        wall,
        cpu(usage.ru_utime) + cpu(usage.ru_stime),
        usage.ru_maxrss,
    )
}

/// Runs every command `runs` times, alternating, and prints the best of
/// each by wall time.
fn compare(title: &str, packets: u64, runs: usize, mut cmds: Vec<(String, Command)>) {
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); cmds.len()];
    for _ in 0..runs {
        for (i, (_, c)) in cmds.iter_mut().enumerate() {
            results[i].push(measure(c));
        }
    }
    println!(
        "{:<60} {:>8} {:>8} {:>12} {:>9}",
        format!("{title} (best of {runs} by wall time)"),
        "wall s",
        "cpu s",
        "packets/s",
        "peak MiB"
    );
    for ((name, _), ms) in cmds.iter().zip(&results) {
        let Some(best) = ms.iter().copied().min_by(|a, b| a.0.total_cmp(&b.0)) else {
            continue;
        };
        println!(
            "{name:<60} {:>8.3} {:>8.3} {:>12.0} {:>9.1}",
            best.0,
            best.1,
            packets as f64 / best.0,
            best.2 as f64 / 1024.0
        );
    }
    let all: Vec<String> = results
        .iter()
        .zip(&cmds)
        .map(|(ms, (name, _))| {
            let w: Vec<String> = ms.iter().map(|r| format!("{:.3}", r.0)).collect();
            format!("  {name}: wall {}", w.join(" / "))
        })
        .collect();
    println!("{}", all.join("\n"));
}

fn main() {
    let want: u64 = std::env::var("SYNSCOPE_BENCH_PACKETS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5_000_000);
    let dir = std::env::temp_dir().join(format!("synscope-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let file = dir.join("scan.pcap");
    let t = Instant::now();
    let packets = build_capture(&file, want, 0);
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    println!(
        "capture: {packets} packets, {:.0} MiB, built in {:.1} s",
        size as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );
    let filter = "tcp or icmp or icmp6";
    println!(
        "{} CPUs; synscope's default -j is one less (one thread tracks)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let have_tcpdump = Command::new("tcpdump").arg("--version").output().is_ok();
    let synscope = |args: &[&str], input: &Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_synscope"));
        c.arg("analyze").args(args).arg(input);
        c
    };
    let mut one = vec![(
        "synscope analyze --format json FILE".to_string(),
        synscope(&["--format", "json"], &file),
    )];
    if have_tcpdump {
        let mut c = Command::new("tcpdump");
        c.arg("-r").arg(&file).args(["-w", "/dev/null", filter]);
        one.push((format!("tcpdump -r FILE -w /dev/null '{filter}'"), c));
    } else {
        println!("tcpdump is not installed: no reference figures");
    }
    compare("one file", packets, 3, one);

    // The same number of packets in four files (other scans: new source
    // ports), read as a directory.
    let parts = dir.join("parts");
    std::fs::create_dir_all(&parts).expect("parts dir");
    let mut part_packets = 0;
    for i in 0..4u32 {
        part_packets += build_capture(&parts.join(format!("part{i}.pcap")), want / 4, i * 1000);
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let j = cpus.to_string();
    let mut many = vec![
        (
            "synscope analyze --format json -j 1 DIR".to_string(),
            synscope(&["--format", "json", "-j", "1"], &parts),
        ),
        (
            format!("synscope analyze --format json -j {cpus} DIR"),
            synscope(&["--format", "json", "-j", &j], &parts),
        ),
    ];
    if have_tcpdump {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!(
                "for f in \"$0\"/*.pcap; do tcpdump -r \"$f\" -w /dev/null '{filter}' || exit 1; done"
            ))
            .arg(&parts);
        many.push(("tcpdump -r (each file in turn) -w /dev/null".to_string(), c));
    }
    compare("four files, a directory", part_packets, 3, many);
    if std::env::var_os("SYNSCOPE_BENCH_KEEP").is_some() {
        println!("kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
