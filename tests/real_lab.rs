//! The real-world lab profile (tests/lab/real.sh) comes up with every
//! kernel default for ICMP rate limiting, and each kind of target answers a
//! single probe as its answer key (tests/lab/real-key.txt) says. Root only:
//! skipped with a message otherwise, failed when CI is set.

mod common;

use common::lab::*;
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Checks one probe.py answer against the answer key.
fn check(probe: &Value, addr: &str, port: u16) -> Result<(), String> {
    let t = real_truth(addr, port).ok_or_else(|| format!("{addr}:{port} not in the key"))?;
    let got = (
        probe["result"].as_str().unwrap_or("?"),
        probe["type"].as_u64(),
        probe["code"].as_u64(),
        probe["from"].as_str(),
    );
    let want_result = match (t.state, t.icmp) {
        ("open", _) => "open",
        ("refused", _) => "reset",
        ("filtered", _) => "timeout",
        (_, Some(_)) => "icmp",
        _ => return Err(format!("{addr}:{port}: key rule {t:?} has no ICMP type")),
    };
    let want = (
        want_result,
        t.icmp.map(|(ty, _)| u64::from(ty)),
        t.icmp.map(|(_, c)| u64::from(c)),
        t.icmp.and(t.responder),
    );
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{} {addr}:{port}: got {got:?}, the key says {want:?} ({} {}) — probe {probe}",
            t.label, t.state, t.reason
        ))
    }
}

/// Probes run one after the other (ICMP buckets are per peer and family,
/// so their order matters within one sequence); sequences run in parallel.
fn run_sequence(lab: &RealLab, probes: &[(&str, u16, f64)]) -> Vec<String> {
    let mut errors = Vec::new();
    for &(addr, port, timeout) in probes {
        let p = lab.probe(addr, port, timeout);
        if let Err(e) = check(&p, addr, port) {
            errors.push(e);
        }
    }
    errors
}

fn sysctl(lab: &RealLab, ns: &str, key: &str) -> String {
    let o = lab
        .exec(ns, &["sysctl", "-n", key])
        .output()
        .expect("sysctl");
    assert!(o.status.success(), "sysctl {key} in {ns}: {}", stderr(&o));
    stdout(&o).trim().to_string()
}

/// Opens `n` non-blocking connections from the client to closed ports
/// 1001.. of `addr` at once; how many were refused within 0.5 s.
fn resets_in_a_burst(lab: &RealLab, addr: &str, n: u16) -> usize {
    let script = r#"
import errno, select, socket, sys, time
addr, n = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
socks = []
for p in range(1001, 1001 + n):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setblocking(False)
    s.connect_ex((addr, p))
    socks.append(s)
time.sleep(0.5)
print(sum(1 for s in socks if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED))
"#;
    let n = n.to_string();
    let o = lab
        .exec("c", &["python3", "-c", script, addr, &n])
        .output()
        .expect("python3");
    assert!(o.status.success(), "burst to {addr}: {}", stderr(&o));
    stdout(&o).trim().parse().expect("a count")
}

#[test]
fn real_world_lab_comes_up_and_answers_as_documented() {
    let _machine = light();
    let started = Instant::now();
    let Some(lab) = RealLab::up(&[]) else {
        return;
    };

    // The answer key covers every target, both families.
    assert_eq!(real_targets(false).len(), 9, "{:?}", real_targets(false));
    assert_eq!(real_targets(true).len(), 9, "{:?}", real_targets(true));
    for t in real_targets(false).iter().chain(&real_targets(true)) {
        assert!(
            real_truth(t, 1).is_some() && real_truth(t, 3000).is_some(),
            "{t}"
        );
    }
    assert_eq!(
        real_truth(REAL_FW4, 80).map(|t| (t.state, t.reason, t.icmp)),
        Some(("unreachable", "host-prohibited", Some((3, 10))))
    );
    assert_eq!(
        real_truth("198.18.9.200", 5).map(|t| t.label),
        Some("prohibit4"),
        "a prefix rule covers its whole prefix"
    );

    // Every namespace keeps the kernel's default ICMP rate limits.
    for ns in ["c", "r", "vm", "fw", "h", "slow", "bsd"] {
        let got: Vec<String> = [
            "net.ipv4.icmp_ratelimit",
            "net.ipv4.icmp_ratemask",
            "net.ipv4.icmp_msgs_per_sec",
            "net.ipv4.icmp_msgs_burst",
            "net.ipv6.icmp.ratelimit",
            "net.ipv6.icmp.ratemask",
        ]
        .iter()
        .map(|k| sysctl(&lab, ns, k))
        .collect();
        assert_eq!(
            got,
            ["1000", "6168", "1000", "50", "100", "0-1,3-127"],
            "ICMP rate-limit sysctls in {}",
            lab.ns(ns)
        );
    }

    // The slow link: tbf on both ends, 1 % loss each way in the router.
    let (router_end, host_end) = lab.slow_ifs();
    for (ns, dev) in [("r", &router_end), ("slow", &host_end)] {
        let o = lab
            .exec(ns, &["tc", "qdisc", "show", "dev", dev])
            .output()
            .expect("tc");
        let q = stdout(&o);
        assert!(
            q.contains("tbf") && q.contains("rate 4Mbit") && q.contains("lat 20ms"),
            "qdisc of {dev} in {}: {q}",
            lab.ns(ns)
        );
    }
    for ipt in ["iptables", "ip6tables"] {
        let o = lab
            .exec("r", &[ipt, "-w", "-S", "FORWARD"])
            .output()
            .expect("iptables -S");
        let rules = stdout(&o);
        let lossy = rules
            .lines()
            .filter(|l| {
                // iptables prints 0.01 as 0.00999999978.
                let p = l
                    .split_once("--mode random --probability ")
                    .and_then(|(_, r)| r.split_whitespace().next())
                    .and_then(|p| p.parse::<f64>().ok());
                p.is_some_and(|p| (p - 0.01).abs() < 1e-6) && l.ends_with("-j DROP")
            })
            .count();
        assert_eq!(lossy, 2, "{ipt} FORWARD of the router: {rules}");
    }

    // Open ports answer through the router (curl gets the listener's page),
    // the lossy open port included.
    for url in [
        format!("http://{REAL_VM4}:22/"),
        format!("http://[{REAL_VM6}]:443/"),
        format!("http://{REAL_FW4}:22/"),
        format!("http://{REAL_HOST4}:443/"),
        format!("http://{REAL_SLOW4}:{REAL_LOSSY_PORT}/"),
        format!("http://[{REAL_SLOW6}]:{REAL_LOSSY_PORT}/"),
        format!("http://{REAL_BSD4}:22/"),
        format!("http://[{REAL_BSD6}]:22/"),
    ] {
        let o = lab
            .exec(
                "c",
                &["curl", "-gsf", "--max-time", "5", "--retry", "2", &url],
            )
            .output()
            .expect("curl");
        assert!(
            o.status.success() && stdout(&o).contains("synscope lab ok"),
            "curl {url}: {}",
            stderr(&o)
        );
    }

    // Single-port probes, each checked against the key. IPv4 router errors
    // first: `unreachable`/`prohibit` route errors pay twice in the router's
    // per-client token bucket (ip_error's limiter, then icmp_send's) and get
    // none at all once that bucket runs dry; the absent host last (its error
    // comes after ~3 s of failed ARP).
    let v4: Vec<(&str, u16, f64)> = vec![
        (REAL_UNREACH4, 80, 4.0),
        (REAL_PROHIBIT4, 80, 4.0),
        (REAL_HOST4, 2002, 4.0),
        (REAL_HOST4, 2003, 4.0),
        (REAL_HOST4, 81, 4.0),
        (REAL_FW4, 80, 4.0), // the firewalld host's first reject
        (REAL_VM4, 443, 4.0),
        (REAL_SLOW4, 81, 4.0),
        (REAL_BSD4, 81, 4.0),
        (REAL_ABSENT4, 80, 6.0),
    ];
    let v6: Vec<(&str, u16, f64)> = vec![
        (REAL_UNREACH6, 80, 4.0),
        (REAL_PROHIBIT6, 80, 4.0),
        (REAL_HOST6, 2002, 4.0),
        (REAL_HOST6, 2003, 4.0),
        (REAL_HOST6, 81, 4.0),
        (REAL_FW6, 80, 4.0),
        (REAL_VM6, 22, 4.0),
        (REAL_SLOW6, 81, 4.0),
        (REAL_BSD6, 81, 4.0),
        (REAL_ABSENT6, 80, 6.0),
    ];
    // Silence takes the whole timeout: these run in a third sequence.
    let silent: Vec<(&str, u16, f64)> = vec![
        (REAL_VM4, 80, 3.0),
        (REAL_VM6, 8080, 3.0),
        (REAL_BLACKHOLE4, 80, 3.0),
        (REAL_BLACKHOLE6, 80, 3.0),
    ];
    let lab_ref = &lab;
    let errors: Vec<String> = std::thread::scope(|s| {
        let hs = [&v4, &v6, &silent].map(|seq| s.spawn(move || run_sequence(lab_ref, seq)));
        hs.into_iter()
            .flat_map(|h| h.join().expect("probe thread"))
            .collect()
    });
    assert!(
        errors.is_empty(),
        "not as documented:\n{}",
        errors.join("\n")
    );

    // The reset limit, after the single probes above: 400 connect()s to
    // closed ports at once, both families; about 200 are refused within
    // half a second (the limit's burst), the rest get no answer.
    for addr in [REAL_BSD4, REAL_BSD6] {
        let refused = resets_in_a_burst(&lab, addr, 400);
        assert!(
            (180..=230).contains(&refused),
            "{addr}: {refused} of 400 connects refused"
        );
    }

    drop(lab);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}
