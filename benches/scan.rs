//! Live scans, synscope on its DEFAULT options against `nmap -sS -n -Pn
//! -T4` on the same targets and ports, in the same run, alternating: wall
//! time, CPU time and correct / total for both.
//!
//! (i) the deterministic lab (tests/lab/lab.sh): all 65,535 ports of a host
//! whose closed ports answer RST, every verdict checked against the lab's
//! definition; also `--rate 10000`'s CPU (and nmap's at `--max-rate
//! 10000`) and a single answered port's scan time. Medians of 5. Beside
//! the capped CPU, the machine's own cost of sleeping: a fixed piece of
//! work done at once and in 5 ms slices with sleeps between.
//! (ii)-(iv) the real-world lab (tests/lab/real.sh: kernel-default ICMP
//! rate limits): the cloud VM (DROP all but 2 ports), all 65,535 ports
//! (medians of 3: nmap takes about 90 s a run); the firewalld host and the
//! slow lossy link, 3,000 ports each (medians of 5, 7 s apart so every ICMP
//! limiter refills); scored against tests/lab/real-key.txt by
//! tests/lab/realkey.py.
//!
//! Needs root (it builds the network-namespace labs, and both scanners use
//! raw sockets) and nmap; without root it says so and exits. Every packet
//! stays inside the labs' namespaces. Run: `sudo cargo bench --bench scan`.
//! Figures go in docs/BENCHMARKS.md.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

const PREFIX: &str = "ssbench";
/// The real-world lab's prefix (its namespaces are PREFIX-w-*).
const REAL: &str = "ssbreal";
const TARGET: &str = "203.0.113.2";
const ROUTER: &str = "198.51.100.1";

fn script(name: &str, action: &str, prefix: &str) -> bool {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/lab")
        .join(name);
    Command::new("bash")
        .arg(script)
        .args([action, prefix])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn lab(action: &str) -> bool {
    script("lab.sh", action, PREFIX)
}

/// Tears both labs down however the bench ends.
struct Guard;
impl Drop for Guard {
    fn drop(&mut self) {
        lab("down");
        script("real.sh", "down", REAL);
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
    measure_in(&format!("{PREFIX}-c"), args)
}

/// Runs `args` in namespace `ns`: wall and CPU time (wait4), stdout.
fn measure_in(ns: &str, args: &[&str]) -> Run {
    let start = Instant::now();
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns])
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

fn med(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn row(what: &str, r: &Run, right: &str) {
    println!("{what:<46} {:>8.3} {:>8.3} {right:>14}", r.wall, r.cpu);
}

/// `right/total` for `target` in tests/lab/realkey.py's score of `file`
/// (`tool`: synscope JSON or nmap XML).
fn real_score(tool: &str, file: &str, ports: &str, target: &str) -> String {
    let key = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/lab/realkey.py");
    let family = if target.contains(':') { "6" } else { "4" };
    let out = Command::new("python3")
        .arg(key)
        .args(["score", tool, file, ports, family])
        .output()
        .expect("python3 tests/lab/realkey.py");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(target))
        .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
        .unwrap_or_else(|| format!("? ({})", text.trim()))
}

/// One real-world case: `runs` alternating runs of synscope (defaults) and
/// nmap -T4 on `target`, ports `ports`; prints each run and the medians,
/// and returns (synscope wall, nmap wall, synscope CPU, nmap CPU) medians.
fn real_case(name: &str, target: &str, ports: &str, runs: usize) -> (f64, f64, f64, f64) {
    let bin = env!("CARGO_BIN_EXE_synscope");
    let ns = format!("{REAL}-w-c");
    let dir = std::env::temp_dir().join(format!("synscope-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let json = dir.join("s.json");
    let xml = dir.join("n.xml");
    let (json, xml) = (json.to_str().expect("path"), xml.to_str().expect("path"));
    let p = format!("-p{ports}");
    let ports_list = if ports == "-" { "1-65535" } else { ports };
    let (mut sw, mut nw, mut sc, mut nc) = (vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        let r = measure_in(&ns, &[bin, "scan", "-q", "-o", "json", &p, target]);
        let _ = std::fs::write(json, &r.stdout);
        row(
            &format!("{name}: synscope scan {p}"),
            &r,
            &real_score("synscope", json, ports_list, target),
        );
        sw.push(r.wall);
        sc.push(r.cpu);
        std::thread::sleep(std::time::Duration::from_secs(7));
        let r = measure_in(
            &ns,
            &["nmap", "-sS", "-n", "-Pn", "-T4", &p, "-oX", xml, target],
        );
        row(
            &format!("{name}: nmap -sS -n -Pn -T4 {p}"),
            &r,
            &real_score("nmap", xml, ports_list, target),
        );
        nw.push(r.wall);
        nc.push(r.cpu);
        std::thread::sleep(std::time::Duration::from_secs(7));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let m = (med(&sw), med(&nw), med(&sc), med(&nc));
    println!(
        "medians, {name}: synscope {:.3} s wall, {:.3} s CPU; nmap {:.3} s, {:.3} s: wall ratio {:.2}, CPU ratio {:.2}",
        m.0,
        m.2,
        m.1,
        m.3,
        m.0 / m.1,
        m.2 / m.3
    );
    m
}

/// CPU seconds this thread has used so far.
fn thread_cpu() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut u);
        u
    };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// This machine's cost of sleeping, the yardstick for the capped scan's
/// CPU: the same work (random updates of a table of `bytes`) done at once
/// and in 5 ms slices with 15 ms sleeps between, as a capped scan works
/// (a burst every 20 ms). Returns the sliced CPU over the at-once CPU,
/// median of 3 alternating pairs. On a VM whose idle vCPU gives its core
/// to others, what a thread had in its caches is gone after each sleep.
fn sleep_penalty(bytes: usize) -> f64 {
    let n = (bytes / 8).next_power_of_two();
    let updates: u64 = 20_000_000;
    let work = |slice: Option<std::time::Duration>| {
        let mut t = vec![0u64; n];
        let mut x: u64 = 1;
        let mut done = 0u64;
        let c0 = thread_cpu();
        while done < updates {
            let start = Instant::now();
            loop {
                for _ in 0..1000 {
                    x = x
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let i = (x >> 40) as usize & (n - 1);
                    t[i] = t[i].wrapping_add(x);
                }
                done += 1000;
                if done >= updates || slice.is_some_and(|s| start.elapsed() >= s) {
                    break;
                }
            }
            if slice.is_some() && done < updates {
                std::thread::sleep(std::time::Duration::from_millis(15));
            }
        }
        std::hint::black_box(&t);
        thread_cpu() - c0
    };
    let mut ratios = vec![];
    for _ in 0..3 {
        let once = work(None);
        let sliced = work(Some(std::time::Duration::from_millis(5)));
        ratios.push(sliced / once);
    }
    med(&ratios)
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("scan benchmark skipped: it needs root (sudo cargo bench --bench scan)");
        return;
    }
    if Command::new("nmap").arg("--version").output().is_err() {
        println!("scan benchmark skipped: nmap is not installed (apt-get install nmap)");
        return;
    }
    let _guard = Guard;
    assert!(lab("up"), "lab.sh up {PREFIX} failed");
    let bin = env!("CARGO_BIN_EXE_synscope");
    // synscope on its DEFAULT options: the headline figures.
    let syn_args = [bin, "scan", TARGET, "-p-", "--format", "json"];
    let capped = [
        bin, "scan", TARGET, "-p-", "--rate", "10000", "--format", "json",
    ];
    let one = [bin, "scan", TARGET, "-p", "443", "--format", "json"];
    let nmap_args = ["nmap", "-sS", "-n", "-Pn", "-p-", "-T4", "-oG", "-", TARGET];
    let nmap_capped = [
        "nmap",
        "-sS",
        "-n",
        "-Pn",
        "-p-",
        "-T4",
        "--max-rate",
        "10000",
        "-oG",
        "-",
        TARGET,
    ];
    println!(
        "{:<46} {:>8} {:>8} {:>14}",
        "(i) deterministic lab, 5 runs alternating", "wall s", "cpu s", "right/total"
    );
    let runs = 5;
    let (mut sw, mut sc, mut nw, mut nc, mut cc, mut ncc, mut one_ms) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        let r = measure(&syn_args);
        let (n, wrong) = synscope_wrong(&r.stdout);
        row(
            "synscope scan -p- (defaults)",
            &r,
            &format!("{}/65535", n - wrong.min(n)),
        );
        sw.push(r.wall);
        sc.push(r.cpu);
        let r = measure(&nmap_args);
        let (n, wrong) = nmap_wrong(&r.stdout);
        row(
            "nmap -sS -n -Pn -p- -T4",
            &r,
            &format!("{}/65535", n - wrong.min(n)),
        );
        nw.push(r.wall);
        nc.push(r.cpu);
        let r = measure(&capped);
        let (n, wrong) = synscope_wrong(&r.stdout);
        row(
            "synscope scan -p- --rate 10000",
            &r,
            &format!("{}/65535", n - wrong.min(n)),
        );
        cc.push(r.cpu);
        let r = measure(&nmap_capped);
        let (n, wrong) = nmap_wrong(&r.stdout);
        row(
            "nmap ... -p- -T4 --max-rate 10000",
            &r,
            &format!("{}/65535", n - wrong.min(n)),
        );
        ncc.push(r.cpu);
        let r = measure(&one);
        let j: serde_json::Value = serde_json::from_str(&r.stdout).expect("synscope JSON");
        let d = j["scan"]["duration_s"].as_f64().unwrap_or(f64::NAN) * 1e3;
        let rtt = j["results"][0]["rtt_ms"].as_f64().unwrap_or(f64::NAN);
        row(
            "synscope scan -p 443 (defaults)",
            &r,
            &format!("{d:.1} ms, RTT {rtt:.3}"),
        );
        one_ms.push(d);
    }
    println!(
        "medians, (i): synscope -p- {:.3} s wall, {:.3} s CPU; nmap {:.3} s wall, {:.3} s CPU: wall ratio {:.2}, CPU ratio {:.2}; --rate 10000 CPU {:.3} s (nmap --max-rate 10000: {:.3} s); one port: scan {:.1} ms",
        med(&sw),
        med(&sc),
        med(&nw),
        med(&nc),
        med(&sw) / med(&nw),
        med(&sc) / med(&nc),
        med(&cc),
        med(&ncc),
        med(&one_ms)
    );
    println!("(nmap reports ICMP-rejected ports as filtered; in (i) it is held to that.)");
    println!(
        "this machine's cost of sleeping (the same work in 5 ms slices with 15 ms sleeps between, CPU against done at once, median of 3): 1 MiB table {:+.0} %, 8 MiB table {:+.0} %; synscope --rate 10000 against uncapped: {:+.0} %, nmap --max-rate 10000 against uncapped: {:+.0} %",
        (sleep_penalty(1 << 20) - 1.0) * 100.0,
        (sleep_penalty(8 << 20) - 1.0) * 100.0,
        (med(&cc) / med(&sc) - 1.0) * 100.0,
        (med(&ncc) / med(&nc) - 1.0) * 100.0
    );
    lab("down");
    assert!(script("real.sh", "up", REAL), "real.sh up {REAL} failed");
    println!();
    println!(
        "{:<46} {:>8} {:>8} {:>14}",
        "real-world lab (tests/lab/real.sh)", "wall s", "cpu s", "right/total"
    );
    real_case("(ii) cloud VM", "198.18.1.2", "-", 3);
    real_case("(iii) firewalld", "198.18.2.2", "1-3000", 5);
    real_case("(iv) slow lossy link", "198.18.4.2", "1-3000", 5);
}
