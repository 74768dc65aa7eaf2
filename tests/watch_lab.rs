//! `synscope watch` in the lab (root, in CI): a passive capture in the
//! client namespace while programs there connect; each attempt's verdict
//! is printed as it is decided, failing DNS answers too. It sends nothing
//! itself; every packet of the test stays inside the lab's namespaces.

mod common;

use common::lab::*;
use common::*;
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;

/// Python clients of the lab's targets: a refused port, a router's reject,
/// a dropped port, an open one, IPv6 refused, a name that does not exist.
const CLIENTS: &str = r#"
import os, socket
print(os.getpid(), flush=True)
def tcp(host, port, fam=socket.AF_INET):
    s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(1.0)
    try: s.connect((host, port))
    except OSError: pass
    s.close()
tcp("203.0.113.2", 8081)
tcp("203.0.113.2", 9000)
tcp("203.0.113.2", 80)
tcp("2001:db8:2::2", 8081, socket.AF_INET6)
try: socket.getaddrinfo("nosuch.lab", 80)
except OSError: pass
"#;

/// Runs CLIENTS (Python) and a curl to the port the router rejects in the
/// lab's client; their pids (`exec` keeps the pid the shell echoed).
fn run_clients(lab: &Lab) -> (u64, u64) {
    let c = lab.exec('c', &["python3", "-c", CLIENTS]).output().unwrap();
    assert!(c.status.success(), "{}", stderr(&c));
    let python: u64 = stdout(&c).trim().parse().unwrap();
    let curl_cmd = "echo $$; exec curl -s --max-time 2 http://203.0.113.2:9002/";
    let c = lab.exec('c', &["sh", "-c", curl_cmd]).output().unwrap();
    let curl: u64 = stdout(&c).trim().parse().unwrap();
    (python, curl)
}

#[test]
fn watch_gives_each_attempt_its_verdict_as_it_happens() {
    // One watch at a time: the tracepoint is the whole machine's, and every
    // lab has the same addresses (see watch::procs on how attempts are
    // matched to programs).
    let _one = heavy();
    let Some(lab) = Lab::up(&[]) else {
        return;
    };
    let bin = env!("CARGO_BIN_EXE_synscope");
    for format in ["jsonl", "table"] {
        let watcher = lab
            .exec('c', &[bin, "watch", "--duration", "9", "-o", format])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The capture opens in well under a second.
        std::thread::sleep(Duration::from_millis(800));
        let (python, curl) = run_clients(&lab);
        // A program that retries a refused port three times, 2 s apart.
        let retry = "import os, socket, time\nprint(os.getpid(), flush=True)\nfor i in range(3):\n    s = socket.socket()\n    try: s.connect(('203.0.113.2', 8082))\n    except OSError: pass\n    s.close()\n    if i < 2: time.sleep(2)\n";
        let c = lab.exec('c', &["python3", "-c", retry]).output().unwrap();
        let retrier: u64 = stdout(&c).trim().parse().unwrap();
        let o = watcher.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let out = stdout(&o);
        if format == "table" {
            assert!(
                out.lines()
                    .any(|l| l.contains("DNS  nosuch.lab does not exist (NXDOMAIN)")),
                "{out}"
            );
            assert!(
                out.lines().any(|l| l.contains(&format!("curl (pid {curl}) 198.51.100.2 → 203.0.113.2:9002  unreachable admin-prohibited (3/13) from 198.51.100.1 (64/1)"))),
                "{out}"
            );
            // The retries, said once with what they mean.
            let said =
                format!("- python3 (pid {retrier}) tried 203.0.113.2:8082 3 times, 2.0 s apart");
            let line = out
                .lines()
                .find(|l| l.starts_with(&said))
                .unwrap_or_else(|| panic!("no {said:?} in:\n{out}"));
            assert!(line.ends_with("refused each time by the host itself (nothing listens there): retrying cannot help"), "{line}");
            // The report at the end.
            assert!(out.contains("203.0.113.2: 5 ports: 1 open (syn-ack), 2 refused (reset), 1 filtered (no-response), 1 unreachable (admin-prohibited)"), "{out}");
            continue;
        }
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        let find = |t: &str, p: u64| -> Vec<&Value> {
            lines
                .iter()
                .filter(|v| v["target"] == t && v["port"] == p)
                .collect()
        };
        for (t, p, state, responder, pid, command) in [
            (
                "203.0.113.2",
                8081,
                "refused",
                Some("203.0.113.2"),
                python,
                "python3",
            ),
            (
                "203.0.113.2",
                9002,
                "unreachable",
                Some("198.51.100.1"),
                curl,
                "curl",
            ),
            ("203.0.113.2", 9000, "filtered", None, python, "python3"),
            (
                "203.0.113.2",
                80,
                "open",
                Some("203.0.113.2"),
                python,
                "python3",
            ),
            (
                "2001:db8:2::2",
                8081,
                "refused",
                Some("2001:db8:2::2"),
                python,
                "python3",
            ),
        ] {
            let got = find(t, p);
            assert_eq!(got.len(), 1, "{t}:{p} told once: {got:?}");
            assert_eq!(got[0]["state"], state, "{t}:{p}: {}", got[0]);
            assert_eq!(got[0]["responder"].as_str(), responder, "{t}:{p}");
            // The program, from the kernel's tracepoint: the pid the test
            // started (a refusal within microseconds included).
            assert_eq!(got[0]["process"]["pid"], pid, "{t}:{p}: {}", got[0]);
            assert_eq!(got[0]["process"]["command"], command, "{t}:{p}");
            let errors = verdict_errors(got[0]);
            assert!(errors.is_empty(), "{t}:{p}: {errors:?}");
        }
    }
}

#[test]
fn watch_follows_one_program_and_names_it_in_the_report() {
    let _one = heavy();
    let Some(lab) = Lab::up(&[]) else {
        return;
    };
    let bin = env!("CARGO_BIN_EXE_synscope");
    let watcher = lab
        .exec(
            'c',
            &[
                bin,
                "watch",
                "--duration",
                "4",
                "--command",
                "curl",
                "-o",
                "json",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let (_, curl) = run_clients(&lab);
    let o = watcher.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_valid_report(&j, "watch -o json");
    let r = j["results"].as_array().unwrap();
    // Only curl's attempt, its program in the report's verdict.
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (r[0]["port"].as_u64(), r[0]["state"].as_str()),
        (Some(9002), Some("unreachable"))
    );
    assert_eq!(r[0]["process"]["pid"], curl);
    assert_eq!(r[0]["process"]["command"], "curl");
}
