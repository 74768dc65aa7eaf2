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

fn build_capture(path: &Path, min_packets: u64) -> u64 {
    let mut w = PcapWriter::create(path, LinkType::ETHERNET).expect("create capture");
    let mut n = 0u64;
    let mut ts: u64 = 1_700_000_000_000_000_000;
    let mut put = |ts: u64, ip: &[u8]| {
        let f = fixture::ethernet(ip);
        w.write(ts, f.len() as u32, &f);
    };
    let mut round = 0u32;
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
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed"
    );
    let cpu = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (
        wall,
        cpu(usage.ru_utime) + cpu(usage.ru_stime),
        usage.ru_maxrss,
    )
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
    let packets = build_capture(&file, want);
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    println!(
        "capture: {packets} packets, {:.0} MiB, built in {:.1} s",
        size as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );
    let filter = "tcp or icmp or icmp6";
    let runs = 3;
    let mut rows: Vec<(&str, Vec<Run>)> = vec![
        ("synscope analyze --format json", Vec::new()),
        (
            "tcpdump -r FILE -w /dev/null 'tcp or icmp or icmp6'",
            Vec::new(),
        ),
    ];
    let have_tcpdump = Command::new("tcpdump").arg("--version").output().is_ok();
    for _ in 0..runs {
        rows[0].1.push(measure(
            Command::new(env!("CARGO_BIN_EXE_synscope"))
                .args(["analyze", "--format", "json"])
                .arg(&file),
        ));
        if have_tcpdump {
            rows[1].1.push(measure(
                Command::new("tcpdump")
                    .args(["-r"])
                    .arg(&file)
                    .args(["-w", "/dev/null", filter]),
            ));
        }
    }
    println!(
        "{:<52} {:>10} {:>10} {:>12} {:>10}",
        "command (best of 3 by wall time)", "wall s", "cpu s", "packets/s", "peak MiB"
    );
    for (name, ms) in &rows {
        let Some(best) = ms.iter().copied().min_by(|a, b| a.0.total_cmp(&b.0)) else {
            println!("{name:<52} (not installed)");
            continue;
        };
        println!(
            "{name:<52} {:>10.3} {:>10.3} {:>12.0} {:>10.1}",
            best.0,
            best.1,
            packets as f64 / best.0,
            best.2 as f64 / 1024.0
        );
    }
    if std::env::var_os("SYNSCOPE_BENCH_KEEP").is_some() {
        println!("kept {}", file.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
