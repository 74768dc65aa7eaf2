//! Live full-port scan: `synscope scan -p-` on its default options against
//! `nmap -sS -n -Pn -p- -T4` on the same lab target (tests/lab, a host whose
//! closed ports answer RST), in the same run, alternating: wall time, CPU
//! time and correctness (every verdict checked against the lab's
//! definition); also `--rate 10000`'s CPU and a single answered port's
//! scan time. Medians of 5.
//!
//! Needs root (it builds the network-namespace lab, and both scanners use
//! raw sockets); without root it says so and exits. Every packet stays
//! inside the lab's namespaces. Run: `sudo cargo bench --bench scan`.
//! Figures go in docs/BENCHMARKS.md.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

const PREFIX: &str = "ssbench";
const TARGET: &str = "203.0.113.2";
const ROUTER: &str = "198.51.100.1";

fn lab(action: &str) -> bool {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/lab/lab.sh");
    Command::new("bash")
        .arg(script)
        .args([action, PREFIX])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Tears the lab down however the bench ends.
struct Guard;
impl Drop for Guard {
    fn drop(&mut self) {
        lab("down");
    }
}

/// The lab's definition for a port of the target: synscope's state and
/// the state nmap reports for it.
fn expected(port: u16) -> (&'static str, Option<&'static str>, &'static str) {
    match port {
        22 | 80 | 443 | 8080 => ("open", Some(TARGET), "open"),
        9000 | 9004 => ("filtered", None, "filtered"),
        9001 => ("unreachable", Some(TARGET), "filtered"),
        9002 => ("unreachable", Some(ROUTER), "filtered"),
        _ => ("refused", Some(TARGET), "closed"),
    }
}

struct Run {
    wall: f64,
    cpu: f64,
    stdout: String,
}

fn measure(args: &[&str]) -> Run {
    let start = Instant::now();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &format!("{PREFIX}-c")])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    let pid = child.id() as libc::pid_t;
    // Read stdout on a thread so the child never blocks on a full pipe.
    let mut out = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).ok();
        s
    });
    let mut status = 0;
    // SAFETY: wait4 on our own child with valid out-pointers.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::wait4(pid, &mut status, 0, &mut u);
        u
    };
    let wall = start.elapsed().as_secs_f64();
    // Already reaped by wait4; this only settles the handle.
    let _ = child.try_wait();
    let stdout = reader.join().unwrap_or_default();
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    Run {
        wall,
        cpu: t(u.ru_utime) + t(u.ru_stime),
        stdout,
    }
}

fn synscope_wrong(json: &str) -> (usize, usize) {
    let j: serde_json::Value = serde_json::from_str(json).expect("synscope JSON");
    let mut wrong = 0;
    let mut n = 0;
    for r in j["results"].as_array().into_iter().flatten() {
        n += 1;
        let port = r["port"].as_u64().unwrap_or(0) as u16;
        let (state, responder, _) = expected(port);
        if r["state"] != state || r["responder"].as_str() != responder {
            wrong += 1;
        }
    }
    (n, wrong + 65535usize.saturating_sub(n))
}

/// nmap's grepable output lists the ports outside "Ignored State".
fn nmap_wrong(grep: &str) -> (usize, usize) {
    let mut listed: HashMap<u16, String> = HashMap::new();
    let mut ignored_state = String::new();
    let mut ignored = 0usize;
    for line in grep.lines().filter(|l| l.contains("Ports:")) {
        if let Some(p) = line.split("Ports: ").nth(1) {
            let ports = p.split("\tIgnored State:").next().unwrap_or("");
            for item in ports.split(", ") {
                let f: Vec<&str> = item.split('/').collect();
                if f.len() > 1
                    && let Ok(port) = f[0].trim().parse::<u16>()
                {
                    listed.insert(port, f[1].to_string());
                }
            }
        }
        if let Some(ig) = line.split("Ignored State: ").nth(1) {
            // "closed (65527)"
            let mut it = ig.split_whitespace();
            ignored_state = it.next().unwrap_or("").to_string();
            ignored = it
                .next()
                .map(|c| c.trim_matches(|c| c == '(' || c == ')'))
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
        }
    }
    let mut wrong = 0;
    let mut counted = 0;
    for port in 1..=65535u16 {
        let want = expected(port).2;
        let got = listed
            .get(&port)
            .map(String::as_str)
            .unwrap_or(&ignored_state);
        if got != want {
            wrong += 1;
        }
        counted += 1;
    }
    if listed.len() + ignored != 65535 {
        wrong += 65535usize.abs_diff(listed.len() + ignored);
    }
    (counted, wrong)
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("scan benchmark skipped: it needs root (sudo cargo bench --bench scan)");
        return;
    }
    let have_nmap = Command::new("nmap").arg("--version").output().is_ok();
    assert!(lab("up"), "lab.sh up {PREFIX} failed");
    let _guard = Guard;
    let bin = env!("CARGO_BIN_EXE_synscope");
    // synscope on its DEFAULT options: the headline figures.
    let syn_args = [bin, "scan", TARGET, "-p-", "--format", "json"];
    let capped = [
        bin, "scan", TARGET, "-p-", "--rate", "10000", "--format", "json",
    ];
    let one = [bin, "scan", TARGET, "-p", "443", "--format", "json"];
    let nmap_args = ["nmap", "-sS", "-n", "-Pn", "-p-", "-T4", "-oG", "-", TARGET];
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>7}",
        "command (5 runs each, alternating)", "wall s", "cpu s", "ports", "wrong"
    );
    let runs = 5;
    let (mut sw, mut sc, mut nw, mut nc, mut cc, mut one_ms) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        let r = measure(&syn_args);
        let (n, wrong) = synscope_wrong(&r.stdout);
        println!(
            "{:<44} {:>8.3} {:>8.3} {:>8} {:>7}",
            "synscope scan -p- (defaults)", r.wall, r.cpu, n, wrong
        );
        sw.push(r.wall);
        sc.push(r.cpu);
        if have_nmap {
            let r = measure(&nmap_args);
            let (n, wrong) = nmap_wrong(&r.stdout);
            println!(
                "{:<44} {:>8.3} {:>8.3} {:>8} {:>7}",
                "nmap -sS -n -Pn -p- -T4", r.wall, r.cpu, n, wrong
            );
            nw.push(r.wall);
            nc.push(r.cpu);
        }
        let r = measure(&capped);
        let (n, wrong) = synscope_wrong(&r.stdout);
        println!(
            "{:<44} {:>8.3} {:>8.3} {:>8} {:>7}",
            "synscope scan -p- --rate 10000", r.wall, r.cpu, n, wrong
        );
        cc.push(r.cpu);
        let r = measure(&one);
        let j: serde_json::Value = serde_json::from_str(&r.stdout).expect("synscope JSON");
        let d = j["scan"]["duration_s"].as_f64().unwrap_or(f64::NAN) * 1e3;
        let rtt = j["results"][0]["rtt_ms"].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:<44} {:>8.3} {:>8.3}   scan {d:.1} ms, RTT {rtt:.3} ms",
            "synscope scan -p 443 (defaults)", r.wall, r.cpu
        );
        one_ms.push(d);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let (sw, sc, nw, nc, cc, one_ms) = (
        med(&mut sw),
        med(&mut sc),
        med(&mut nw),
        med(&mut nc),
        med(&mut cc),
        med(&mut one_ms),
    );
    println!(
        "medians: synscope -p- {sw:.3} s wall, {sc:.3} s CPU; nmap {nw:.3} s wall, {nc:.3} s CPU: wall ratio {:.2}, CPU ratio {:.2}; --rate 10000 CPU {cc:.3} s; one port: scan {one_ms:.1} ms",
        sw / nw,
        sc / nc
    );
    println!("(nmap reports ICMP-rejected ports as filtered; it is held to that.)");
}
