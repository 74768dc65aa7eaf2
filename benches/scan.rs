//! Live full-port scan: `synscope scan -p-` against `nmap -sS -n -Pn -p- -T4`
//! on the same lab target (tests/lab), in the same run: wall time, CPU time
//! and correctness (every verdict checked against the lab's definition).
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
    let syn_args = [
        bin,
        "scan",
        TARGET,
        "-p-",
        "--rate",
        "0",
        "--max-retries",
        "1",
        "--wait",
        "0.2",
        "--format",
        "json",
    ];
    let nmap_args = ["nmap", "-sS", "-n", "-Pn", "-p-", "-T4", "-oG", "-", TARGET];
    println!(
        "{:<70} {:>8} {:>8} {:>8} {:>7}",
        "command (3 runs each, alternating)", "wall s", "cpu s", "ports", "wrong"
    );
    for _ in 0..3 {
        let r = measure(&syn_args);
        let (n, wrong) = synscope_wrong(&r.stdout);
        println!(
            "{:<70} {:>8.3} {:>8.3} {:>8} {:>7}",
            "synscope scan -p- --rate 0 --max-retries 1 --wait 0.2", r.wall, r.cpu, n, wrong
        );
        if have_nmap {
            let r = measure(&nmap_args);
            let (n, wrong) = nmap_wrong(&r.stdout);
            println!(
                "{:<70} {:>8.3} {:>8.3} {:>8} {:>7}",
                "nmap -sS -n -Pn -p- -T4", r.wall, r.cpu, n, wrong
            );
        }
    }
    println!("(nmap reports ICMP-rejected ports as filtered; it is held to that.)");
}
