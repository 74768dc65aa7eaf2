//! The network-namespace lab (tests/lab/lab.sh) as a guard: built on
//! creation, torn down on drop, even when the test fails.

use super::{have, is_root, root, skip_or_fail};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

pub const CLIENT4: &str = "198.51.100.2";
pub const ROUTER4: &str = "198.51.100.1";
pub const TARGET4: &str = "203.0.113.2";
pub const CLIENT6: &str = "2001:db8:1::2";
pub const ROUTER6: &str = "2001:db8:1::1";
pub const TARGET6: &str = "2001:db8:2::2";

/// The lab's definition (tests/lab/README.md): (state, reason, responder,
/// hops) for a port of the target.
pub fn expected(
    port: u16,
    v6: bool,
) -> (
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<u64>,
) {
    let (t, r) = if v6 {
        (TARGET6, ROUTER6)
    } else {
        (TARGET4, ROUTER4)
    };
    match port {
        22 | 80 | 443 | 8080 => ("open", "syn-ack", Some(t), Some(2)),
        9000 | 9004 => ("filtered", "no-response", None, None),
        9001 => ("unreachable", "port-unreach", Some(t), Some(2)),
        9002 => ("unreachable", "admin-prohibited", Some(r), Some(1)),
        // The router forges the RST in the target's name: one hop nearer.
        9003 => ("refused", "reset", Some(t), Some(1)),
        _ => ("refused", "reset", Some(t), Some(2)),
    }
}

pub struct Lab {
    pub prefix: String,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Lab {
    /// Builds a lab with a name of its own (tests run in parallel), or
    /// returns None after a visible skip where that is allowed (not root,
    /// tools missing, outside CI).
    pub fn up(tools: &[&str]) -> Option<Lab> {
        if !is_root() {
            skip_or_fail("the lab needs root (run as root, as CI does)");
            return None;
        }
        for t in ["ip", "iptables", "ip6tables", "python3"]
            .iter()
            .chain(tools)
        {
            if !have(t) {
                skip_or_fail(&format!("the lab needs `{t}` (installed by .ci/run)"));
                return None;
            }
        }
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("s{}x{n}", std::process::id() % 100_000);
        let st = Command::new("bash")
            .arg(root().join("tests/lab/lab.sh"))
            .args(["up", &prefix])
            .status()
            .expect("run lab.sh");
        assert!(st.success(), "lab.sh up {prefix} failed");
        Some(Lab { prefix })
    }

    pub fn ns(&self, which: char) -> String {
        format!("{}-{which}", self.prefix)
    }

    /// The client's interface towards the router.
    pub fn client_if(&self) -> String {
        format!("{}c", self.prefix)
    }

    /// A command run inside namespace `which` ('c', 'r' or 't').
    pub fn exec(&self, which: char, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(which)]).args(args);
        c.env_remove("SUDO_UID").env_remove("SUDO_GID");
        c
    }

    /// Starts dumpcap (Wireshark's capture engine: pcapng with interface
    /// and statistics blocks) in the client namespace writing `file`, and
    /// waits until it captures. Stop it with [`Capture::stop`] (its counts
    /// are tcpdump's: ignore them) or by dropping it.
    pub fn dumpcap(&self, iface: &str, file: &Path) -> Capture {
        let mut c = self.exec(
            'c',
            &["dumpcap", "-i", iface, "-f", "tcp or icmp or icmp6", "-w"],
        );
        c.arg(file);
        start_capture(c, "Capturing on", "dumpcap")
    }

    /// Starts tcpdump in the client namespace writing `file`, and waits until
    /// it listens.
    pub fn capture(&self, iface: &str, file: &Path) -> Capture {
        let mut c = self.exec(
            'c',
            &[
                "tcpdump",
                "--immediate-mode",
                "-i",
                iface,
                "-U",
                "-B",
                "65536",
                "-s",
                "128",
                "-w",
            ],
        );
        c.arg(file).arg("tcp or icmp or icmp6");
        start_capture(c, "listening on", "tcpdump")
    }
}

/// Spawns a capture tool and waits (10 s at most) for the stderr line
/// that says it is capturing.
fn start_capture(mut cmd: Command, ready: &str, name: &str) -> Capture {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    let stderr = child.stderr.take().expect("capture stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(l) if l.contains(ready) => break,
            Ok(_) => continue,
            Err(_) => {
                let _ = child.kill();
                panic!("{name} did not start capturing within 10 s");
            }
        }
    }
    Capture { child, lines: rx }
}

pub struct Capture {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Capture {
    /// Stops tcpdump (SIGINT, so it flushes) and returns how many packets
    /// were lost: dropped by the kernel, or accepted by the filter but never
    /// written (still in the ring when tcpdump stopped).
    pub fn stop(mut self) -> u64 {
        std::thread::sleep(Duration::from_millis(1000));
        // SAFETY: kill on a child pid we own.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
        }
        let _ = self.child.wait();
        let count = |l: &str| -> u64 {
            l.split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(u64::MAX)
        };
        let (mut captured, mut received, mut dropped) = (None, None, None);
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            if l.contains("packets captured") {
                captured = Some(count(&l));
            } else if l.contains("received by filter") {
                received = Some(count(&l));
            } else if l.contains("dropped by kernel") {
                dropped = Some(count(&l));
            }
        }
        match (captured, received, dropped) {
            (Some(c), Some(r), Some(d)) => d.saturating_add(r.saturating_sub(c)),
            _ => u64::MAX,
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(root().join("tests/lab/lab.sh"))
            .args(["down", &self.prefix])
            .status();
    }
}
