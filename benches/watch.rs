//! `synscope watch` under a SYN flood, against `tcpdump -w /dev/null` on
//! the same traffic, in the same run, alternating: kernel drops, CPU time
//! and peak memory of each, and how many verdicts watch told.
//!
//! The flood: this bench's own binary, run with `--flood RATE SECONDS` in
//! a network namespace of its own (`sswatchb`, only its loopback up), sends
//! raw TCP SYNs from 127.0.0.1 to 127.0.0.1 at RATE a second (default
//! 120,000, so that at least 100,000 are reached with a watcher attached;
//! SYNSCOPE_FLOOD_RATE to change), for SECONDS (10), in batches
//! of 64 (sendmmsg), paced by a token bucket: a new (source port,
//! destination port) each, nothing listening, so the kernel answers each
//! with a RST. Both watchers capture `-i lo` in that namespace, and stop at
//! SIGINT a second after the flood. The flood runs on CPU 0 and the
//! watcher on CPU 1 (taskset), so on a 2-CPU machine neither slows the
//! other. Medians of 3 runs each.
//!
//! Needs root (the namespace, raw sockets, the capture) and tcpdump;
//! without root it says so and exits. Every packet stays on the
//! namespace's loopback. Run: `sudo cargo bench --bench watch`. Figures go
//! in docs/BENCHMARKS.md.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NS: &str = "sswatchb";
const SECONDS: u64 = 10;
const RUNS: usize = 3;
const BATCH: usize = 64;

/// Tears the namespace down however the bench ends.
struct Guard;
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", NS]).status();
    }
}

fn csum(data: &[u8], mut sum: u32) -> u16 {
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 SYN from 127.0.0.1:sport to 127.0.0.1:dport (the kernel fills
/// in the IP checksum and id).
fn syn(sport: u16, dport: u16, seq: u32) -> [u8; 40] {
    let mut p = [0u8; 40];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&40u16.to_be_bytes());
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&[127, 0, 0, 1]);
    p[16..20].copy_from_slice(&[127, 0, 0, 1]);
    let t = &mut p[20..];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x02;
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    // The pseudo-header: addresses, protocol, TCP length.
    let pseudo = 0x7f00u32 + 0x0001 + 0x7f00 + 0x0001 + 6 + 20;
    let c = csum(&p[20..40], pseudo);
    p[36..38].copy_from_slice(&c.to_be_bytes());
    p
}

/// The flood, run inside the namespace: `rate` SYNs a second for `secs`.
fn flood(rate: u64, secs: u64) {
    // SAFETY: a raw socket; checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
    // SAFETY: all-zero is a valid sockaddr_in, then filled.
    let mut to: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    to.sin_family = libc::AF_INET as u16;
    to.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
    let total = rate * secs;
    let start = Instant::now();
    let mut sent = 0u64;
    let mut bufs = vec![[0u8; 40]; BATCH];
    while sent < total && start.elapsed() < Duration::from_secs(secs + 5) {
        // Tokens: what the rate allows by now.
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        if due < sent + BATCH as u64 && due < total {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        let n = ((due - sent) as usize).min(BATCH);
        for (k, b) in bufs.iter_mut().take(n).enumerate() {
            let i = sent + k as u64;
            let dport = 1 + (i % 65535) as u16;
            let sport = 1024 + ((i / 65535) % 60000) as u16;
            *b = syn(sport, dport, i as u32);
        }
        let mut iov: Vec<libc::iovec> = bufs
            .iter_mut()
            .take(n)
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iov
            .iter_mut()
            .map(|v| {
                // SAFETY: all-zero is a valid mmsghdr, then filled.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_name = (&mut to as *mut libc::sockaddr_in).cast();
                m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
                m.msg_hdr.msg_iov = v;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        // SAFETY: `n` valid messages pointing at live buffers.
        let r = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), n as u32, 0) };
        if r > 0 {
            sent += r as u64;
        }
    }
    let t = start.elapsed().as_secs_f64();
    println!("{sent} {t:.3}");
}

struct Run {
    cpu: f64,
    peak_mib: f64,
    /// Kernel drops (libpcap's counters).
    dropped: u64,
    /// Packets the capture received.
    received: u64,
    /// Lines watch told (0 for tcpdump).
    lines: u64,
    /// SYNs the flood sent, and over how long.
    sent: u64,
    flood_s: f64,
}

fn number_before(text: &str, words: &str) -> Option<u64> {
    let at = text.find(words)?;
    text[..at].split_whitespace().last()?.parse().ok()
}

/// One run: `watcher` started in the namespace, the flood, SIGINT, the
/// watcher's counters.
fn run(watcher: &[&str], rate: u64) -> Run {
    // The watcher on the second CPU, the flood (and the kernel's work for
    // it, done in its context on loopback) on the first: neither starves
    // the other on a 2-CPU machine.
    let mut child = Command::new("taskset")
        .args(["-c", "1", "ip", "netns", "exec", NS])
        .args(watcher)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the watcher");
    let pid = child.id() as libc::pid_t;
    // stdout counted (lines) with its tail kept; stderr kept.
    let mut out = child.stdout.take().expect("stdout");
    let counter = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut lines = 0u64;
        let mut tail: Vec<u8> = Vec::new();
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > 1 << 20 {
                tail.drain(..tail.len() - (1 << 18));
            }
        }
        (lines, String::from_utf8_lossy(&tail).into_owned())
    });
    let mut err = child.stderr.take().expect("stderr");
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    std::thread::sleep(Duration::from_millis(1500));
    let me = std::env::current_exe().expect("this bench");
    let f = Command::new("taskset")
        .args(["-c", "0", "ip", "netns", "exec", NS])
        .arg(&me)
        .args(["--flood", &rate.to_string(), &SECONDS.to_string()])
        .output()
        .expect("the flood");
    let said = String::from_utf8_lossy(&f.stdout).to_string();
    let mut w = said.split_whitespace();
    let sent: u64 = w.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let flood_s: f64 = w.next().and_then(|x| x.parse().ok()).unwrap_or(0.0);
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let mut status = 0;
    // SAFETY: wait4 on our own child with valid out-pointers.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::wait4(pid, &mut status, 0, &mut u);
        u
    };
    let _ = child.try_wait();
    let (lines, tail) = counter.join().unwrap_or_default();
    let stderr = errs.join().unwrap_or_default();
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    let (received, dropped) = if watcher.first() == Some(&"tcpdump") {
        (
            number_before(&stderr, "packets received by filter").unwrap_or(0),
            number_before(&stderr, "packets dropped by kernel").unwrap_or(u64::MAX),
        )
    } else {
        (
            number_before(&tail, "packets received,").unwrap_or(0),
            number_before(&tail, "dropped by the kernel").unwrap_or(u64::MAX),
        )
    };
    Run {
        cpu: t(u.ru_utime) + t(u.ru_stime),
        peak_mib: u.ru_maxrss as f64 / 1024.0,
        dropped,
        received,
        lines,
        sent,
        flood_s,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--flood") {
        let rate = args
            .get(i + 1)
            .and_then(|r| r.parse().ok())
            .unwrap_or(100_000);
        let secs = args
            .get(i + 2)
            .and_then(|r| r.parse().ok())
            .unwrap_or(SECONDS);
        flood(rate, secs.min(60));
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "bench watch: needs root (a network namespace, raw sockets, captures): sudo cargo bench --bench watch"
        );
        return;
    }
    if Command::new("tcpdump").arg("--version").output().is_err() {
        eprintln!("bench watch: needs tcpdump (apt-get install tcpdump)");
        return;
    }
    let rate: u64 = std::env::var("SYNSCOPE_FLOOD_RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(120_000)
        .min(1_000_000);
    let _ = Command::new("ip").args(["netns", "del", NS]).status();
    let ok = Command::new("ip")
        .args(["netns", "add", NS])
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("ip")
            .args(["-n", NS, "link", "set", "lo", "up"])
            .status()
            .is_ok_and(|s| s.success());
    let _guard = Guard;
    assert!(ok, "cannot create the namespace {NS}");
    let bin = env!("CARGO_BIN_EXE_synscope");
    let watch = [bin, "watch", "-i", "lo"];
    let tcpdump = ["tcpdump", "-i", "lo", "-n", "-w", "/dev/null"];
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for i in 0..RUNS {
        ours.push(run(&watch, rate));
        theirs.push(run(&tcpdump, rate));
        let (a, b) = (&ours[i], &theirs[i]);
        println!(
            "run {}: flood {} SYNs in {:.2} s; synscope watch: {} received, {} dropped, {} lines, CPU {:.2} s, peak {:.1} MiB; tcpdump: {} received, {} dropped, CPU {:.2} s, peak {:.1} MiB (its flood {} in {:.2} s)",
            i + 1,
            a.sent,
            a.flood_s,
            a.received,
            a.dropped,
            a.lines,
            a.cpu,
            a.peak_mib,
            b.received,
            b.dropped,
            b.cpu,
            b.peak_mib,
            b.sent,
            b.flood_s
        );
    }
    let m = |v: &[Run], f: fn(&Run) -> f64| median(v.iter().map(f).collect());
    println!(
        "\nSYN flood on loopback, {rate}/s asked for {SECONDS} s, medians of {RUNS}:\n  flood rate achieved: {:.0}/s (synscope runs), {:.0}/s (tcpdump runs)\n  synscope watch -i lo: kernel drops {:.0}, CPU {:.2} s, peak {:.1} MiB, {:.0} lines told\n  tcpdump -i lo -w /dev/null: kernel drops {:.0}, CPU {:.2} s, peak {:.1} MiB",
        m(&ours, |r| r.sent as f64 / r.flood_s.max(1e-9)),
        m(&theirs, |r| r.sent as f64 / r.flood_s.max(1e-9)),
        m(&ours, |r| r.dropped as f64),
        m(&ours, |r| r.cpu),
        m(&ours, |r| r.peak_mib),
        m(&ours, |r| r.lines as f64),
        m(&theirs, |r| r.dropped as f64),
        m(&theirs, |r| r.cpu),
        m(&theirs, |r| r.peak_mib),
    );
}
