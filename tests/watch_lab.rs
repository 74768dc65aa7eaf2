//! `synscope watch` in the lab (root, in CI): a passive capture in the
//! client namespace while programs there connect; each attempt's verdict
//! is printed as it is decided, failing DNS answers too, each named with
//! the program and pid the test started. It sends nothing itself; every
//! packet of the test stays inside the lab's namespaces.

mod common;

use common::lab::*;
use common::*;
use serde_json::Value;
use std::process::{Child, Stdio};
use std::time::Duration;

/// Python clients of the lab's targets: a DNS query nobody answers; IPv4
/// and IPv6 each, a refused port, a dropped one, an open one; then a name
/// that does not exist.
const CLIENTS: &str = r#"
import os, socket
print(os.getpid(), flush=True)
# A DNS query to a host with no resolver: no answer ever comes.
q = bytes.fromhex("12340100000100000000000005717569657403") + b"lab" + bytes.fromhex("0000010001")
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(q, ("203.0.113.2", 53)); u.close()
def tcp(host, port, fam):
    s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(1.0)
    try: s.connect((host, port))
    except OSError: pass
    s.close()
for host, fam in (("203.0.113.2", socket.AF_INET), ("2001:db8:2::2", socket.AF_INET6)):
    tcp(host, 8081, fam)
    tcp(host, 9000, fam)
    tcp(host, 80, fam)
try: socket.getaddrinfo("nosuch.lab", 80)
except OSError: pass
"#;

/// A program that retries a refused port three times, 2 s apart, over
/// IPv4 and IPv6.
const RETRIER: &str = r#"
import os, socket, time
print(os.getpid(), flush=True)
for i in range(3):
    for host, fam in (("203.0.113.2", socket.AF_INET), ("2001:db8:2::2", socket.AF_INET6)):
        s = socket.socket(fam, socket.SOCK_STREAM)
        try: s.connect((host, 8082))
        except OSError: pass
        s.close()
    if i < 2: time.sleep(2)
"#;

struct Pids {
    python: u64,
    curl4: u64,
    curl6: u64,
}

/// Runs CLIENTS (Python) and curl to the port the router rejects, over
/// IPv4 and IPv6, in the lab's client; their pids (`exec` keeps the pid
/// the shell echoed).
fn run_clients(lab: &Lab) -> Pids {
    let c = lab.exec('c', &["python3", "-c", CLIENTS]).output().unwrap();
    assert!(c.status.success(), "{}", stderr(&c));
    let python: u64 = stdout(&c).trim().parse().unwrap();
    let curl = |url: &str| -> u64 {
        let cmd = format!("echo $$; exec curl -s --max-time 2 '{url}'");
        let c = lab.exec('c', &["sh", "-c", &cmd]).output().unwrap();
        stdout(&c).trim().parse().unwrap()
    };
    let curl4 = curl("http://203.0.113.2:9002/");
    let curl6 = curl("http://[2001:db8:2::2]:9002/");
    Pids {
        python,
        curl4,
        curl6,
    }
}

fn run_retrier(lab: &Lab) -> u64 {
    let c = lab.exec('c', &["python3", "-c", RETRIER]).output().unwrap();
    assert!(c.status.success(), "{}", stderr(&c));
    stdout(&c).trim().parse().unwrap()
}

/// `synscope watch ARGS` in the lab's client, its output piped.
fn start(lab: &Lab, args: &[&str]) -> Child {
    let bin = env!("CARGO_BIN_EXE_synscope");
    let mut all = vec![bin, "watch"];
    all.extend_from_slice(args);
    let child = lab
        .exec('c', &all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The capture and the tracepoint open in well under a second.
    std::thread::sleep(Duration::from_millis(800));
    child
}

/// The real uid of a running process.
fn uid_of(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn watch_gives_each_attempt_its_verdict_and_program_as_it_happens() {
    // One watch at a time: the tracepoint is the whole machine's, and every
    // lab has the same addresses (see watch::procs on how attempts are
    // matched to programs).
    let _one = heavy();
    let Some(lab) = Lab::up(&[]) else {
        return;
    };
    let dir = scratch("watch-md");
    let md = dir.join("watch.md");
    for format in ["jsonl", "table"] {
        let mut args = vec!["--duration", "11", "-o", format];
        if format == "table" {
            args.extend(["--report", md.to_str().unwrap()]);
        }
        let watcher = start(&lab, &args);
        // Root is dropped once the capture is open: run as root without
        // sudo, it becomes nobody.
        assert_eq!(uid_of(watcher.id()), Some(65534), "watch dropped root");
        let p = run_clients(&lab);
        let retrier = run_retrier(&lab);
        let o = watcher.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let out = stdout(&o);
        if format == "table" {
            let dns = format!(
                "python3 (pid {}) DNS  nosuch.lab: no such name (NXDOMAIN) (answer from 198.51.100.1 to 198.51.100.2)",
                p.python
            );
            assert!(out.lines().any(|l| l.contains(&dns)), "{dns:?} in:\n{out}");
            let quiet = format!(
                "python3 (pid {}) DNS  quiet.lab: no answer from the resolver 203.0.113.2 within 5 s (A query) (query from 198.51.100.2 to 203.0.113.2)",
                p.python
            );
            assert!(
                out.lines().any(|l| l.contains(&quiet)),
                "{quiet:?} in:\n{out}"
            );
            assert!(
                out.lines().any(|l| l.contains(&format!("curl (pid {}) 198.51.100.2 → 203.0.113.2:9002  unreachable admin-prohibited (3/13) from 198.51.100.1 (64/1)", p.curl4))),
                "{out}"
            );
            assert!(
                out.lines().any(|l| l.contains(&format!("curl (pid {}) [2001:db8:1::2] → [2001:db8:2::2]:9002  unreachable admin-prohibited (1/1) from 2001:db8:1::1 (64/1)", p.curl6))),
                "{out}"
            );
            // The retries, said once each with what they mean.
            for dest in ["203.0.113.2:8082", "[2001:db8:2::2]:8082"] {
                let said = format!("- python3 (pid {retrier}) tried {dest} 3 times, 2.0 s apart");
                let line = out
                    .lines()
                    .find(|l| l.starts_with(&said))
                    .unwrap_or_else(|| panic!("no {said:?} in:\n{out}"));
                assert!(line.ends_with("refused each time by the host itself (nothing listens there): retrying cannot help"), "{line}");
            }
            // The name that never resolved, and no SYN after it.
            let unresolved = format!(
                "- python3 (pid {}) looked up nosuch.lab: no such name (NXDOMAIN); it made no connection attempt after that",
                p.python
            );
            assert!(out.contains(&unresolved), "{out}");
            // Each program by cause, with its destinations.
            let by = format!(
                "- python3 (pid {}, user root): 6 attempts to 6 destinations: 2 no answer (dropped) (203.0.113.2:9000, [2001:db8:2::2]:9000); 2 refused by the host (nothing listens) (203.0.113.2:8081, [2001:db8:2::2]:8081); 2 open (203.0.113.2:80, [2001:db8:2::2]:80); 2 DNS failures",
                p.python
            );
            assert!(out.contains(&by), "{by:?} in:\n{out}");
            assert!(
                out.contains(&format!("- curl (pid {}, user root): 1 attempt to 1 destination: 1 rejected by 198.51.100.1 (admin-prohibited) (203.0.113.2:9002)", p.curl4)),
                "{out}"
            );
            assert!(out.contains("Programs named by the kernel's tracepoint sock:inet_sock_set_state, DNS questions by the route lookups (fib, fib6)."), "{out}");
            // The report at the end, both families.
            for host in ["203.0.113.2", "2001:db8:2::2"] {
                assert!(out.contains(&format!("{host}: 5 ports: 1 open (syn-ack), 2 refused (reset), 1 filtered (no-response), 1 unreachable (admin-prohibited)")), "{out}");
            }
            // The same report in Markdown.
            let m = std::fs::read_to_string(&md).unwrap();
            assert!(m.starts_with("# synscope watch on any, from "), "{m}");
            for part in [
                "## By program\n",
                &by[2..],
                "## Repeated attempts\n",
                "## Names that did not resolve\n",
                "## Findings\n",
                "nosuch.lab does not exist (NXDOMAIN)",
                "## Every destination\n",
            ] {
                assert!(m.contains(part), "{part:?} in the Markdown report:\n{m}");
            }
            continue;
        }
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        let find = |t: &str, port: u64| -> Vec<&Value> {
            lines
                .iter()
                .filter(|v| v["target"] == t && v["port"] == port)
                .collect()
        };
        for (t, router) in [
            ("203.0.113.2", "198.51.100.1"),
            ("2001:db8:2::2", "2001:db8:1::1"),
        ] {
            let curl = if t.contains(':') { p.curl6 } else { p.curl4 };
            for (port, state, responder, pid, command) in [
                (8081, "refused", Some(t), p.python, "python3"),
                (9002, "unreachable", Some(router), curl, "curl"),
                (9000, "filtered", None, p.python, "python3"),
                (80, "open", Some(t), p.python, "python3"),
            ] {
                let got = find(t, port);
                assert_eq!(got.len(), 1, "{t}:{port} told once: {got:?}");
                assert_eq!(got[0]["state"], state, "{t}:{port}: {}", got[0]);
                assert_eq!(got[0]["responder"].as_str(), responder, "{t}:{port}");
                // The program, from the kernel's tracepoint: the pid the
                // test started (a refusal within microseconds included).
                assert_eq!(got[0]["process"]["pid"], pid, "{t}:{port}: {}", got[0]);
                assert_eq!(got[0]["process"]["command"], command, "{t}:{port}");
                assert_eq!(got[0]["process"]["user"], "root", "{t}:{port}");
                let errors = verdict_errors(got[0]);
                assert!(errors.is_empty(), "{t}:{port}: {errors:?}");
            }
            // Each retry told, each as the retrier's.
            let tries = find(t, 8082);
            assert_eq!(tries.len(), 3, "{t}:8082: {tries:?}");
            assert!(tries.iter().all(|v| v["process"]["pid"] == retrier));
        }
    }
}

#[test]
fn watch_follows_one_program_and_writes_its_report() {
    let _one = heavy();
    let Some(lab) = Lab::up(&[]) else {
        return;
    };
    let dir = scratch("watch-html");
    let html = dir.join("watch.html");
    let watcher = start(
        &lab,
        &[
            "--duration",
            "6",
            "--command",
            "curl",
            "-o",
            "json",
            "--report",
            html.to_str().unwrap(),
        ],
    );
    let p = run_clients(&lab);
    let o = watcher.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_valid_report(&j, "watch -o json");
    let r = j["results"].as_array().unwrap();
    // Only curl's attempts, their programs in the report's verdicts.
    assert_eq!(r.len(), 2, "{r:?}");
    for (v, pid) in r.iter().zip([p.curl4, p.curl6]) {
        assert_eq!(
            (v["port"].as_u64(), v["state"].as_str()),
            (Some(9002), Some("unreachable"))
        );
        assert_eq!(v["process"]["pid"], pid);
        assert_eq!(v["process"]["command"], "curl");
    }
    let w = &j["watch"];
    assert_eq!(w["naming"]["source"], "tracepoint", "{w}");
    assert_eq!(w["naming"]["dns"], true, "{w}");
    assert_eq!(w["capture"]["dropped"], 0, "{w}");
    // python3's DNS failure is not curl's.
    assert_eq!(w["dns_failures"].as_array().map(Vec::len), Some(0), "{w}");
    let by = w["by_program"].as_array().unwrap();
    assert_eq!(by.len(), 2, "{by:?}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    for part in [
        "<h2>By program</h2>",
        &format!(
            "curl (pid {}, user root): 1 attempt to 1 destination",
            p.curl4
        ),
        "<h2>How this was seen</h2>",
        "<h2>Every destination</h2>",
    ] {
        assert!(page.contains(part), "{part:?} in the HTML report");
    }
}

/// Without the tracepoint: the socket table names what it can (a dropped
/// port's socket lives for its whole connect timeout), never a wrong
/// program, and the report says what it lost.
#[test]
fn watch_falls_back_to_the_socket_table_and_says_what_it_lost() {
    let _one = heavy();
    let Some(lab) = Lab::up(&[]) else {
        return;
    };
    let watcher = start(
        &lab,
        &[
            "--duration",
            "8",
            "--programs-from",
            "socket-table",
            "-o",
            "json",
        ],
    );
    let p = run_clients(&lab);
    let o = watcher.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("programs are named from the socket table (sock_diag and /proc): an attempt whose socket closed before it was read (a refusal within microseconds, a short connection) stays unnamed"),
        "{}",
        stderr(&o)
    );
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_valid_report(&j, "watch -o json (socket table)");
    let r = j["results"].as_array().unwrap();
    assert_eq!(r.len(), 8, "{r:?}");
    let mut unnamed = 0;
    for v in r {
        let want = if v["port"] == 9002 {
            if v["target"].as_str().unwrap().contains(':') {
                p.curl6
            } else {
                p.curl4
            }
        } else {
            p.python
        };
        match v["process"]["pid"].as_u64() {
            Some(pid) => assert_eq!(pid, want, "{v}"),
            None => unnamed += 1,
        }
        // A dropped port's socket is in SYN_SENT for a second: found.
        if v["port"] == 9000 {
            assert_eq!(v["process"]["pid"], p.python, "{v}");
        }
    }
    let n = &j["watch"]["naming"];
    assert_eq!(n["source"], "socket-table", "{n}");
    assert_eq!(n["dns"], false, "{n}");
    assert_eq!(n["unnamed"], unnamed, "{n}: the report counts what it lost");
}

/// On a terminal, a summary line every `--every` seconds.
#[test]
fn watch_on_a_terminal_says_a_summary_now_and_then() {
    let _one = heavy();
    let Some(lab) = Lab::up(&[]) else {
        return;
    };
    let cmd = format!(
        "ip netns exec {} {} watch --duration 4 --every 1",
        lab.ns('c'),
        env!("CARGO_BIN_EXE_synscope")
    );
    let tty = std::process::Command::new("script")
        .args(["-qc", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1800));
    let c = lab
        .exec('c', &["python3", "-c", "import socket\ntry: socket.create_connection(('203.0.113.2', 8081), 1)\nexcept OSError: pass"])
        .output()
        .unwrap();
    assert!(c.status.success());
    let o = tty.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let sums: Vec<&str> = out.lines().filter(|l| l.starts_with("── ")).collect();
    assert!(sums.len() >= 2, "{out}");
    assert!(
        sums[0].contains("so far: 0 attempts by 0 programs; 0 DNS failures"),
        "{out}"
    );
    assert!(
        sums.last()
            .unwrap()
            .contains("so far: 1 attempt by 1 program: 1 refused; 0 DNS failures"),
        "{out}"
    );
}

/// Two programs connect to the same dropped port, the second while the
/// first still waits: each attempt is told as its own program's (the
/// socket's change out of SYN_SENT gives the exact 4-tuple; the latest
/// program per destination alone would name the second twice).
#[test]
fn two_programs_waiting_on_one_destination_are_told_apart() {
    let _one = heavy();
    let Some(lab) = Lab::up(&[]) else {
        return;
    };
    let watcher = start(&lab, &["--duration", "7", "-o", "jsonl"]);
    let waiter = "import os, socket, sys, time\ntime.sleep(float(sys.argv[1]))\nprint(os.getpid(), flush=True)\ns = socket.socket(); s.settimeout(1.5)\ntry: s.connect(('203.0.113.2', 9000))\nexcept OSError: pass\n";
    let spawn = |delay: &str| {
        lab.exec('c', &["python3", "-c", waiter, delay])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("0"), spawn("0.4"));
    let pid = |c: Child| -> u64 {
        let o = c.wait_with_output().unwrap();
        String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
    };
    let (a, b) = (pid(a), pid(b));
    let o = watcher.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let mut pids: Vec<u64> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["port"] == 9000)
        .map(|v| v["process"]["pid"].as_u64().unwrap_or(0))
        .collect();
    pids.sort_unstable();
    let mut want = vec![a, b];
    want.sort_unstable();
    assert_eq!(pids, want, "{out}");
}
