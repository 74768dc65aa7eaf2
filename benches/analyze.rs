//! Offline throughput: `synscope analyze` against `tcpdump -r FILE -w
//! /dev/null` with a filter, on the same capture, in the same run,
//! alternating, medians of 5: wall, CPU, packets a second and peak memory
//! of each, and the ratios the issue asks for (rate, CPU, peak), then the
//! same with `-f FILTER` on both.
//!
//! Two captures. The synthetic one is built here: full-port scans (65,535
//! SYNs each, answered like the lab target answers nmap: RST from closed
//! ports, SYN-ACK + client RST from open ones, ICMP port-unreachable,
//! silence), repeated from new source ports with shifted timestamps until
//! it holds at least 5 million packets (pcap). The real one, when run as
//! root with nmap installed: a real `nmap -sS -p- -n -Pn -T4` of the lab's
//! target (tests/lab/lab.sh, its namespaces only) captured with tcpdump in
//! the lab's client, then repeated 40 times with shifted timestamps into a
//! pcapng file (nanosecond resolution). Run: `sudo cargo bench --bench
//! analyze` (SYNSCOPE_BENCH_PACKETS to change the synthetic size,
//! SYNSCOPE_BENCH_KEEP=1 to keep the captures for profiling). Figures go
//! in docs/BENCHMARKS.md.

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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs every command `runs` times, alternating, and prints the median of
/// each (wall, CPU, peak), and every run's wall time; returns the medians.
fn compare(title: &str, packets: u64, runs: usize, mut cmds: Vec<(String, Command)>) -> Vec<Run> {
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); cmds.len()];
    for _ in 0..runs {
        for (i, (_, c)) in cmds.iter_mut().enumerate() {
            results[i].push(measure(c));
        }
    }
    println!(
        "{:<64} {:>8} {:>8} {:>12} {:>9}",
        format!("{title} (medians of {runs})"),
        "wall s",
        "cpu s",
        "packets/s",
        "peak MiB"
    );
    let mut medians = Vec::new();
    for ((name, _), ms) in cmds.iter().zip(&results) {
        let m = (
            median(ms.iter().map(|r| r.0).collect()),
            median(ms.iter().map(|r| r.1).collect()),
            median(ms.iter().map(|r| r.2 as f64).collect()) as i64,
        );
        println!(
            "{name:<64} {:>8.3} {:>8.3} {:>12.0} {:>9.1}",
            m.0,
            m.1,
            packets as f64 / m.0,
            m.2 as f64 / 1024.0
        );
        medians.push(m);
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
    medians
}

/// synscope's figures against tcpdump's: the ratios the issue asks for.
fn ratios(ours: Run, theirs: Run, filtered: bool) {
    let rate = theirs.0 / ours.0;
    let cpu = ours.1 / theirs.1;
    let peak = ours.2 as f64 / 1024.0;
    if filtered {
        println!("  => with the filter: packet rate {rate:.2} x tcpdump's (target >= 1.0)\n");
    } else {
        println!(
            "  => packet rate {rate:.2} x tcpdump's (target >= 2.0); CPU {cpu:.2} x tcpdump's (target <= 1.5); peak {peak:.1} MiB (target <= 64)\n"
        );
    }
}

/// One file against tcpdump, unfiltered and filtered.
fn bench_file(title: &str, file: &Path, packets: u64, have_tcpdump: bool) {
    let synscope = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_synscope"));
        c.arg("analyze").args(args).arg(file);
        c
    };
    let tcpdump = |filter: &str| {
        let mut c = Command::new("tcpdump");
        c.arg("-r").arg(file).args(["-w", "/dev/null", filter]);
        c
    };
    let base = "tcp or icmp or icmp6";
    let mut one = vec![(
        "synscope analyze --format json FILE".to_string(),
        synscope(&["--format", "json"]),
    )];
    if have_tcpdump {
        one.push((
            format!("tcpdump -r FILE -w /dev/null '{base}'"),
            tcpdump(base),
        ));
    }
    let m = compare(title, packets, 5, one);
    if let [ours, theirs] = m[..] {
        ratios(ours, theirs, false);
    }
    let f = "host 203.0.113.2 and portrange 1-1024";
    let mut two = vec![(
        format!("synscope analyze --format json -f '{f}' FILE"),
        synscope(&["--format", "json", "-f", f]),
    )];
    if have_tcpdump {
        two.push((format!("tcpdump -r FILE -w /dev/null '{f}'"), tcpdump(f)));
    }
    let m = compare(&format!("{title}, filtered"), packets, 5, two);
    if let [ours, theirs] = m[..] {
        ratios(ours, theirs, true);
    }
}

/// A pcapng file of `frames` (its link type `link`), repeated `times`,
/// each repetition `shift` nanoseconds after the one before: nanosecond
/// timestamps (if_tsresol 9). Returns the packets written.
fn write_pcapng_repeated(
    path: &Path,
    link: u16,
    frames: &[(u64, u32, Vec<u8>)],
    times: u32,
    shift: u64,
) -> u64 {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).expect("create pcapng"));
    let block = |w: &mut std::io::BufWriter<std::fs::File>, kind: u32, body: &[u8]| {
        let pad = (4 - body.len() % 4) % 4;
        let total = (12 + body.len() + pad) as u32;
        let mut b = Vec::with_capacity(total as usize);
        b.extend(kind.to_le_bytes());
        b.extend(total.to_le_bytes());
        b.extend(body);
        b.extend(std::iter::repeat_n(0u8, pad));
        b.extend(total.to_le_bytes());
        w.write_all(&b).expect("write pcapng");
    };
    let mut shb = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
    shb.extend([1, 0, 0, 0]);
    shb.extend((-1i64).to_le_bytes());
    block(&mut w, 0x0A0D_0D0A, &shb);
    let mut idb = link.to_le_bytes().to_vec();
    idb.extend([0, 0]);
    idb.extend(262_144u32.to_le_bytes());
    idb.extend(9u16.to_le_bytes());
    idb.extend(1u16.to_le_bytes());
    idb.extend([9, 0, 0, 0]);
    idb.extend([0, 0, 0, 0]);
    block(&mut w, 1, &idb);
    let mut n = 0;
    for r in 0..u64::from(times) {
        for (ts, len, data) in frames {
            let t = ts + r * shift;
            let mut epb = 0u32.to_le_bytes().to_vec();
            epb.extend(((t >> 32) as u32).to_le_bytes());
            epb.extend((t as u32).to_le_bytes());
            epb.extend((data.len() as u32).to_le_bytes());
            epb.extend(len.to_le_bytes());
            epb.extend(data);
            block(&mut w, 6, &epb);
            n += 1;
        }
    }
    w.flush().expect("flush pcapng");
    n
}

/// The real capture: nmap -sS -p- of the lab's target, captured in the
/// lab's client, repeated 40 times into a pcapng. None without root or
/// nmap (said why).
fn real_capture(dir: &Path) -> Option<(std::path::PathBuf, u64)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("real capture: needs root (the lab's namespaces); synthetic only");
        return None;
    }
    if Command::new("nmap").arg("--version").output().is_err() {
        println!("real capture: needs nmap; synthetic only");
        return None;
    }
    let lab = |action: &str| {
        Command::new("bash")
            .arg(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/lab/lab.sh"))
            .args([action, "ssban"])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    struct Down<F: Fn(&str) -> bool>(F);
    impl<F: Fn(&str) -> bool> Drop for Down<F> {
        fn drop(&mut self) {
            (self.0)("down");
        }
    }
    if !lab("up") {
        println!("real capture: the lab would not come up; synthetic only");
        return None;
    }
    let _down = Down(lab);
    let one = dir.join("nmap-once.pcap");
    let mut dump = Command::new("ip")
        .args([
            "netns", "exec", "ssban-c", "tcpdump", "-i", "any", "-n", "-s", "256", "-w",
        ])
        .arg(&one)
        .arg("tcp or icmp or icmp6")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    std::thread::sleep(std::time::Duration::from_secs(1));
    let nmap = Command::new("ip")
        .args([
            "netns",
            "exec",
            "ssban-c",
            "nmap",
            "-sS",
            "-p-",
            "-n",
            "-Pn",
            "-T4",
            "203.0.113.2",
        ])
        .stdout(Stdio::null())
        .status();
    std::thread::sleep(std::time::Duration::from_secs(1));
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(dump.id() as libc::pid_t, libc::SIGINT) };
    let _ = dump.wait();
    if !nmap.is_ok_and(|s| s.success()) {
        println!("real capture: nmap failed; synthetic only");
        return None;
    }
    let mut src = synscope::source::FileSource::open(&one, None).ok()?;
    use synscope::source::PacketSource;
    let link = src.link_type().0 as u16;
    let mut frames = Vec::new();
    while let Ok(Some(p)) = src.next_packet() {
        frames.push((p.ts, p.len, p.data.to_vec()));
    }
    let span = frames.last()?.0 - frames.first()?.0;
    let file = dir.join("nmap-x40.pcapng");
    // Each repetition after every timeout of the one before.
    let n = write_pcapng_repeated(&file, link, &frames, 40, span + 5_000_000_000);
    Some((file, n))
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
        "{} CPUs; synscope's default -j is half of them, at least 1 (one thread reads, as many track)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let have_tcpdump = Command::new("tcpdump").arg("--version").output().is_ok();
    if !have_tcpdump {
        println!("tcpdump is not installed: no reference figures");
    }
    let synscope = |args: &[&str], input: &Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_synscope"));
        c.arg("analyze").args(args).arg(input);
        c
    };
    bench_file("synthetic scans, one pcap", &file, packets, have_tcpdump);
    if let Some((real, n)) = real_capture(&dir) {
        let size = std::fs::metadata(&real).map(|m| m.len()).unwrap_or(0);
        println!(
            "real capture: nmap -sS -p- of the lab target x 40, {n} packets, {:.0} MiB pcapng",
            size as f64 / 1048576.0
        );
        bench_file("real nmap scan x 40, one pcapng", &real, n, have_tcpdump);
    }

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
