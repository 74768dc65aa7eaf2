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
        let cap = start_capture(c, "Capturing on", "dumpcap");
        // dumpcap says it is capturing before its filter is set, and
        // libpcap discards what the ring held when the filter goes on: a
        // scan's first answers could fall in between.
        std::thread::sleep(Duration::from_millis(300));
        cap
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

// ------------------------------------------------------------------------
// The real-world profile (tests/lab/real.sh): every kernel default for ICMP
// rate limiting, targets as users meet them. Its answer key is
// tests/lab/real-key.txt (the README's table), read by `real_truth`.

pub const REAL_CLIENT4: &str = "198.18.0.2";
pub const REAL_ROUTER4: &str = "198.18.0.1";
pub const REAL_CLIENT6: &str = "2001:db8:18::2";
pub const REAL_ROUTER6: &str = "2001:db8:18::1";
/// Cloud VM: 22 and 443 open, INPUT policy DROP.
pub const REAL_VM4: &str = "198.18.1.2";
pub const REAL_VM6: &str = "2001:db8:18:1::2";
/// firewalld's default zone: 22 open, REJECT host-prohibited (v6 adm-prohibited).
pub const REAL_FW4: &str = "198.18.2.2";
pub const REAL_FW6: &str = "2001:db8:18:2::2";
/// Host behind the router: RST for closed ports; the router rejects 2002
/// (admin-prohibited) and resets 2003.
pub const REAL_HOST4: &str = "198.18.3.2";
pub const REAL_HOST6: &str = "2001:db8:18:3::2";
/// Nobody owns it (the router's ARP / neighbour discovery fails).
pub const REAL_ABSENT4: &str = "198.18.3.99";
pub const REAL_ABSENT6: &str = "2001:db8:18:3::99";
/// Addresses in the router's `unreachable`, `prohibit` and `blackhole` routes.
pub const REAL_UNREACH4: &str = "198.18.8.1";
pub const REAL_UNREACH6: &str = "2001:db8:18:8::1";
pub const REAL_PROHIBIT4: &str = "198.18.9.1";
pub const REAL_PROHIBIT6: &str = "2001:db8:18:9::1";
pub const REAL_BLACKHOLE4: &str = "198.18.10.1";
pub const REAL_BLACKHOLE6: &str = "2001:db8:18:a::1";
/// Behind the slow lossy link (tbf 4 Mbit / 20 ms each way, 1 % loss each way).
pub const REAL_SLOW4: &str = "198.18.4.2";
pub const REAL_SLOW6: &str = "2001:db8:18:4::2";
/// The slow host's open ports; `REAL_LOSSY_PORT` is "the lossy open port".
pub const REAL_SLOW_OPEN: [u16; 4] = [22, 80, 443, 2000];
pub const REAL_LOSSY_PORT: u16 = 2000;
/// A host that sends at most 200 resets a second, 200 at once (FreeBSD's
/// and macOS's default for closed ports); 22 open.
pub const REAL_BSD4: &str = "198.18.5.2";
pub const REAL_BSD6: &str = "2001:db8:18:5::2";

/// The truth for one (address, port) of the real-world profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truth {
    /// The target's name in the key (vm4, fw6, absent4, ...).
    pub label: &'static str,
    pub state: &'static str,
    pub reason: &'static str,
    /// Canonical text form (as synscope prints it); None when filtered.
    pub responder: Option<&'static str>,
    pub hops: Option<u64>,
    /// ICMP type/code of the deciding error, as observed on the wire.
    pub icmp: Option<(u8, u8)>,
}

struct Rule {
    net: std::net::IpAddr,
    len: u32,
    /// Inclusive ranges; None: every port.
    ports: Option<Vec<(u16, u16)>>,
    truth: Truth,
}

impl Rule {
    fn contains(&self, a: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        let (x, y, bits) = match (self.net, a) {
            (V4(n), V4(a)) => (u128::from(n.to_bits()), u128::from(a.to_bits()), 32),
            (V6(n), V6(a)) => (n.to_bits(), a.to_bits(), 128),
            _ => return false,
        };
        let shift = bits - self.len;
        shift >= 128 || (x >> shift) == (y >> shift)
    }

    /// The address scanned for this rule: itself, or a prefix's first host.
    fn target(&self) -> std::net::IpAddr {
        use std::net::IpAddr::{V4, V6};
        match self.net {
            V4(n) if self.len < 32 => V4((n.to_bits() + 1).into()),
            V6(n) if self.len < 128 => V6((n.to_bits() + 1).into()),
            a => a,
        }
    }
}

/// tests/lab/real-key.txt, parsed once. Panics on a malformed rule (the
/// file is part of the test suite).
fn real_rules() -> &'static [Rule] {
    static RULES: std::sync::OnceLock<Vec<Rule>> = std::sync::OnceLock::new();
    RULES.get_or_init(|| {
        let text: &'static str = include_str!("../lab/real-key.txt");
        let opt = |s: &'static str| (s != "-").then_some(s);
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let f: Vec<&'static str> = l.split_whitespace().collect();
                assert_eq!(f.len(), 8, "real-key.txt: bad rule {l:?}");
                let (addr, len) = match f[1].split_once('/') {
                    Some((a, n)) => (a, n.parse().expect("prefix length")),
                    None => (f[1], if f[1].contains(':') { 128 } else { 32 }),
                };
                let net: std::net::IpAddr = addr.parse().expect("an address");
                let ports = (f[2] != "*").then(|| {
                    f[2].split(',')
                        .map(|p| match p.split_once('-') {
                            Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                            None => (p.parse().unwrap(), p.parse().unwrap()),
                        })
                        .collect()
                });
                let responder = opt(f[5]);
                if let Some(r) = responder {
                    let canon = r
                        .parse::<std::net::IpAddr>()
                        .expect("responder")
                        .to_string();
                    assert_eq!(canon, r, "real-key.txt: responder not in canonical form");
                }
                let icmp = opt(f[7]).map(|s| {
                    let (t, c) = s.split_once('/').expect("icmp TYPE/CODE");
                    (t.parse().unwrap(), c.parse().unwrap())
                });
                Rule {
                    net,
                    len,
                    ports,
                    truth: Truth {
                        label: f[0],
                        state: f[3],
                        reason: f[4],
                        responder,
                        hops: opt(f[6]).map(|h| h.parse().expect("hops")),
                        icmp,
                    },
                }
            })
            .collect()
    })
}

/// The answer key (tests/lab/real-key.txt) for `port` of `addr` in the
/// real-world profile: the first matching rule. None for an address that is
/// none of its targets.
pub fn real_truth(addr: &str, port: u16) -> Option<Truth> {
    let a: std::net::IpAddr = addr.parse().ok()?;
    real_rules()
        .iter()
        .find(|r| {
            r.contains(a)
                && r.ports
                    .as_ref()
                    .is_none_or(|ps| ps.iter().any(|&(lo, hi)| (lo..=hi).contains(&port)))
        })
        .map(|r| r.truth.clone())
}

/// The address to scan of every real-world target of one family, in the
/// key's order (a route prefix by its first host).
pub fn real_targets(v6: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in real_rules() {
        let t = r.target();
        if t.is_ipv6() == v6 && !out.contains(&t.to_string()) {
            out.push(t.to_string());
        }
    }
    out
}

/// The real-world profile (tests/lab/real.sh) as a guard: built on
/// creation, torn down on drop.
pub struct RealLab {
    pub prefix: String,
}

impl RealLab {
    /// Builds the profile with a prefix of its own, or returns None after a
    /// visible skip where that is allowed (not root, tools missing, outside
    /// CI; in CI it panics instead).
    pub fn up(tools: &[&str]) -> Option<RealLab> {
        if !is_root() {
            skip_or_fail("the real-world lab needs root (run as root, as CI does)");
            return None;
        }
        for t in ["ip", "tc", "iptables", "ip6tables", "python3", "curl"]
            .iter()
            .chain(tools)
        {
            if !have(t) {
                skip_or_fail(&format!(
                    "the real-world lab needs `{t}` (installed by .ci/run)"
                ));
                return None;
            }
        }
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("w{}y{n}", std::process::id() % 100_000);
        let st = Command::new("bash")
            .arg(root().join("tests/lab/real.sh"))
            .args(["up", &prefix])
            .status()
            .expect("run real.sh");
        assert!(st.success(), "real.sh up {prefix} failed");
        Some(RealLab { prefix })
    }

    /// Namespace of `which`: "c" (client), "r" (router), "vm", "fw", "h"
    /// (host behind the router), "slow", "bsd".
    pub fn ns(&self, which: &str) -> String {
        format!("{}-w-{which}", self.prefix)
    }

    /// The client's interface towards the router.
    pub fn client_if(&self) -> String {
        format!("{}c", self.prefix)
    }

    /// The router's and the slow host's ends of the slow link.
    pub fn slow_ifs(&self) -> (String, String) {
        (format!("{}rs", self.prefix), format!("{}s", self.prefix))
    }

    /// A command run inside namespace `which` (see [`RealLab::ns`]).
    pub fn exec(&self, which: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(which)]).args(args);
        c.env_remove("SUDO_UID").env_remove("SUDO_GID");
        c
    }

    /// One connect() probe from the client with tests/lab/probe.py: its
    /// JSON line (result open|reset|icmp|timeout, type, code, from, ms).
    pub fn probe(&self, addr: &str, port: u16, timeout_s: f64) -> serde_json::Value {
        let script = root().join("tests/lab/probe.py");
        let o = self
            .exec(
                "c",
                &[
                    "python3",
                    script.to_str().expect("utf-8 path"),
                    addr,
                    &port.to_string(),
                    &timeout_s.to_string(),
                ],
            )
            .output()
            .expect("run probe.py");
        assert!(
            o.status.success(),
            "probe.py {addr} {port}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("probe.py {addr} {port}: {e}: {:?}", o.stdout))
    }
}

impl Drop for RealLab {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(root().join("tests/lab/real.sh"))
            .args(["down", &self.prefix])
            .status();
    }
}
