//! `synscope scan` for real (root): in the lab, every port and host gets
//! its defined state, reason and responder over IPv4 and IPv6; `--write`
//! then `analyze` gives the same verdicts; loopback scans work.

mod common;

use common::lab::*;
use common::*;
use serde_json::Value;
use std::net::TcpListener;

const PORTS: &str = "22,80,81,443,8080,8081,9000-9004";

fn scan_json(lab: Option<&Lab>, args: &[&str]) -> Value {
    let bin = env!("CARGO_BIN_EXE_synscope");
    let mut full = vec![bin, "scan", "--format", "json"];
    full.extend_from_slice(args);
    let o = match lab {
        Some(lab) => lab.exec('c', &full).output().unwrap(),
        None => std::process::Command::new(bin)
            .args(&full[1..])
            .output()
            .unwrap(),
    };
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    let j = serde_json::from_slice(&o.stdout).unwrap();
    assert_exit_follows(&o, &j, &format!("scan {args:?}"));
    assert_valid_report(&j, &format!("scan {args:?}"));
    j
}

fn find<'a>(j: &'a Value, target: &str, port: u64) -> &'a Value {
    j["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["target"] == target && r["port"] == port)
        .unwrap_or_else(|| panic!("no verdict for {target}:{port}"))
}

fn check_lab_scan(lab: &Lab, v6: bool, dir: &std::path::Path) {
    let (target, absent, unreach, prohibit, router) = if v6 {
        (
            TARGET6,
            "2001:db8:2::99",
            "2001:db8:3::1",
            "2001:db8:4::1",
            ROUTER6,
        )
    } else {
        (TARGET4, "203.0.113.99", "192.0.2.1", "192.0.2.129", ROUTER4)
    };
    let file = dir.join(if v6 { "scan6.pcap" } else { "scan4.pcap" });
    let file_s = file.to_str().unwrap();
    // Wireshark's dumpcap captures the same scan beside synscope.
    let dumped = dir.join(if v6 {
        "dumpcap6.pcapng"
    } else {
        "dumpcap4.pcapng"
    });
    let dumpcap = lab.dumpcap(&lab.client_if(), &dumped);
    let j = scan_json(
        Some(lab),
        &["-p", PORTS, "--seed", "7", "--write", file_s, target],
    );
    let _ = dumpcap.stop();
    let mut checked = 0;
    for port in [22u16, 80, 81, 443, 8080, 8081, 9000, 9001, 9002, 9003, 9004] {
        let r = find(&j, target, u64::from(port));
        let (state, reason, responder, hops) = expected(port, v6);
        assert_eq!(
            (
                r["state"].as_str().unwrap(),
                r["reason"].as_str().unwrap(),
                r["responder"].as_str(),
                r["hops"].as_u64()
            ),
            (state, reason, responder, hops),
            "{target}:{port}"
        );
        checked += 1;
    }
    // The written capture, analysed offline, gives the same verdicts.
    let o = run(&["analyze", "--format", "json", file_s]);
    assert!(o.status.success(), "{}", stderr(&o));
    let offline: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        offline["results"], j["results"],
        "--write then analyze differs"
    );
    tshark_reads_cleanly(&file);
    // What dumpcap wrote (pcapng) gives the same verdicts (its timestamps,
    // so RTTs, differ by microseconds).
    let d = analyze_ok(&["--target", target, dumped.to_str().unwrap()]);
    let magic = std::fs::read(&dumped).unwrap();
    assert_eq!(
        magic.get(..4),
        Some(&[0x0a, 0x0d, 0x0d, 0x0a][..]),
        "pcapng"
    );
    let key = |r: &Value| {
        [
            "target",
            "port",
            "state",
            "reason",
            "responder",
            "hops",
            "probes",
        ]
        .map(|k| r[k].to_string())
        .join(" ")
    };
    let keys =
        |j: &Value| -> Vec<String> { j["results"].as_array().unwrap().iter().map(key).collect() };
    assert_eq!(keys(&d), keys(&j), "dumpcap's capture differs");

    // The absent host (late ICMP after ARP fails) and the router's routes.
    let j = scan_json(Some(lab), &["-p", "80", absent, unreach, prohibit]);
    let want_unreach = if v6 { "no-route" } else { "host-unreach" };
    for (t, reason) in [
        (absent, "host-unreach"),
        (unreach, want_unreach),
        (prohibit, "admin-prohibited"),
    ] {
        let r = find(&j, t, 80);
        assert_eq!(r["state"], "unreachable", "{t}");
        assert_eq!(r["reason"], reason, "{t}");
        assert_eq!(r["responder"], router, "{t}: the router answers");
        checked += 1;
    }
    println!("{target}: {checked} verdicts as the lab defines them; write+analyze identical");
}

/// tshark (Wireshark) opens a --write capture with no warning, finds no
/// malformed or truncated frame in it, and counts its frames as libpcap does.
fn tshark_reads_cleanly(file: &std::path::Path) {
    let o = std::process::Command::new("tshark")
        .args(["-n", "-r"])
        .arg(file)
        .args(["-q", "-z", "expert,warn"])
        .output()
        .expect("run tshark (installed by .ci/run)");
    // tshark run as root says so on every start: that is about the user,
    // not the file.
    let err: Vec<String> = stderr(&o)
        .lines()
        .filter(|l| !l.starts_with("Running as user \"root\""))
        .map(str::to_string)
        .collect();
    assert!(o.status.success(), "tshark failed: {err:?}");
    assert!(err.is_empty(), "tshark warns: {err:?}");
    let out = stdout(&o);
    assert!(
        !out.contains("Malformed") && !out.contains("Errors ("),
        "tshark's expert info: {out}"
    );
    let frames = std::process::Command::new("tshark")
        .args(["-n", "-r"])
        .arg(file)
        .output()
        .unwrap();
    let n = stdout(&frames).lines().count();
    let o = run(&["analyze", "-o", "json", file.to_str().unwrap()]);
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        j["summary"]["packets_read"].as_u64(),
        Some(n as u64),
        "tshark and synscope count the same frames"
    );
}

#[test]
fn lab_scan_v4_and_v6() {
    let _machine = light();
    let Some(lab) = Lab::up(&["tshark", "dumpcap"]) else {
        return;
    };
    let dir = scratch("scan-lab");
    check_lab_scan(&lab, false, &dir);
    check_lab_scan(&lab, true, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    // `scan --findings`: the same findings analyze gives from a capture,
    // in the JSON `scan` object beside how the scan went, and in the table.
    for target in [TARGET4, TARGET6] {
        let j = scan_json(Some(&lab), &["--findings", "-p", "9000-9004", target]);
        let kinds: Vec<(u64, &str)> = j["scan"]["findings"]
            .as_array()
            .expect("scan.findings")
            .iter()
            .map(|f| {
                (
                    f["port"].as_u64().unwrap_or(0),
                    f["kind"].as_str().unwrap_or("?"),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                (9000, "dropped-host-up"),
                (9001, "rejected-by-host"),
                (9002, "rejected-on-path"),
                (9003, "middlebox-reset"),
                (9004, "dropped-host-up"),
            ],
            "{target}"
        );
        assert!(
            j["scan"]["engine"].is_object(),
            "how the scan went is still there"
        );
        let bin = env!("CARGO_BIN_EXE_synscope");
        let o = lab
            .exec(
                'c',
                &[bin, "scan", "--findings", "-p", "22,80,81,9003", target],
            )
            .output()
            .unwrap();
        let out = stdout(&o);
        assert!(out.starts_with("Findings:"), "{out}");
        assert!(out.contains("Reset by a device on the path"), "{out}");
        assert!(out.contains("!: in the host's name"), "{out}");
    }
}

#[test]
fn loopback_scans_work_v4_and_v6() {
    let _machine = light();
    if !is_root() {
        skip_or_fail("scanning needs root (run as root, as CI does)");
        return;
    }
    for (host, bind) in [("127.0.0.1", "127.0.0.1:0"), ("::1", "[::1]:0")] {
        let listener = TcpListener::bind(bind).unwrap();
        let open = listener.local_addr().unwrap().port();
        // A port that was free a moment ago: closed now.
        let closed = TcpListener::bind(bind)
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let ports = format!("{open},{closed}");
        let j = scan_json(None, &["-p", &ports, "--wait", "0.5", host]);
        assert_eq!(
            find(&j, host, u64::from(open))["state"],
            "open",
            "{host}:{open}"
        );
        assert_eq!(
            find(&j, host, u64::from(closed))["state"],
            "refused",
            "{host}:{closed}"
        );
        assert_eq!(find(&j, host, u64::from(open))["responder"], host);
        drop(listener);
    }
}

/// README "Exit codes": `synscope scan HOST -p PORT && deploy` works like
/// `nc -z`: 0 only when every asked port is open, 1 when one is refused,
/// filtered or unreachable; diagnose likewise for its port.
#[test]
fn exit_codes_work_like_nc_z() {
    let _machine = light();
    let Some(lab) = Lab::up(&[]) else {
        return;
    };
    let bin = env!("CARGO_BIN_EXE_synscope");
    let shell = |cmd: &str| -> (Option<i32>, String) {
        let o = lab
            .exec(
                'c',
                &[
                    "sh",
                    "-c",
                    &format!("\"$0\" {cmd} >/dev/null && echo deploy"),
                    bin,
                ],
            )
            .output()
            .unwrap();
        (o.status.code(), stdout(&o))
    };
    let fast = "-q --max-retries 1 --timeout 0.5 --wait 0.3";
    for (args, want) in [
        (format!("scan {TARGET4} -p 443 {fast}"), 0),
        (format!("scan {TARGET4} -p 22,80,443,8080 {fast}"), 0),
        (format!("scan {TARGET6} -p 443 -o json {fast}"), 0),
        (format!("scan {TARGET4} -p 443,8081 {fast}"), 1),
        (format!("scan {TARGET4} -p 9000 {fast}"), 1),
        (format!("scan {TARGET4} -p 9002 -o csv {fast}"), 1),
        (format!("diagnose {TARGET4}:443 --wait 0.3"), 0),
        (format!("diagnose {TARGET4}:9001 --wait 0.3"), 1),
    ] {
        let (code, out) = shell(&args);
        let deployed = out == "deploy\n";
        assert_eq!(
            (deployed, code),
            (want == 0, Some(want)),
            "synscope {args}: the shell's && ran deploy: {deployed}"
        );
    }
}

#[test]
fn forged_replies_change_no_verdict_and_are_counted() {
    let _machine = light();
    let Some(lab) = Lab::up(&[]) else {
        return;
    };
    let ports = "22,80,81,8081,9000,9001,9002,9003";
    let sport = "40123";
    let forger = lab
        .exec(
            'r',
            &[
                "timeout",
                "20",
                "python3",
                root().join("tests/lab/forge.py").to_str().unwrap(),
                "--client",
                CLIENT4,
                "--target",
                TARGET4,
                "--sport",
                sport,
                "--ports",
                ports,
                "--seconds",
                "4",
            ],
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Slow on purpose, so the forgeries land while the probes wait.
    let j = scan_json(
        Some(&lab),
        &[
            "-p", ports, "-g", sport, "--rate", "20", "--wait", "1", TARGET4,
        ],
    );
    let out = forger.wait_with_output().unwrap();
    let forged: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(forged > 100, "the forger sent {forged} packets");
    for port in ports.split(',').map(|p| p.parse::<u16>().unwrap()) {
        let r = find(&j, TARGET4, u64::from(port));
        let (state, reason, responder, _) = expected(port, false);
        assert_eq!(
            (
                r["state"].as_str().unwrap(),
                r["reason"].as_str().unwrap(),
                r["responder"].as_str()
            ),
            (state, reason, responder),
            "port {port} under forged replies"
        );
    }
    let unsolicited = j["summary"]["unsolicited"].as_u64().unwrap();
    println!(
        "forged {forged} packets; {unsolicited} counted unsolicited; every verdict as defined"
    );
    // Every forgery that reached the capture while synscope listened is
    // unsolicited; most of the 4 s of forging overlaps the scan.
    assert!(
        unsolicited >= forged / 4,
        "{unsolicited} unsolicited of {forged} forged"
    );
}

#[test]
fn open_port_behind_50_percent_loss_is_found_open() {
    let _machine = light();
    let Some(lab) = Lab::up(&[]) else {
        return;
    };
    // Half the SYNs to 8080 vanish at the target.
    let st = lab
        .exec(
            't',
            &[
                "iptables",
                "-w",
                "-I",
                "INPUT",
                "-p",
                "tcp",
                "--dport",
                "8080",
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                "0.5",
                "-j",
                "DROP",
            ],
        )
        .status()
        .unwrap();
    assert!(st.success());
    let (runs, mut open, mut sends) = (20, 0, 0u64);
    // Each scan not open, as (state, SYNs sent to the port): all 7 sends
    // lost is a 1-in-128 chance a scan.
    let mut missed: Vec<(String, u64)> = Vec::new();
    for _ in 0..runs {
        let j = scan_json(Some(&lab), &["-p", "8080", "--wait", "0.2", TARGET4]);
        let r = find(&j, TARGET4, 8080);
        if r["state"] == "open" {
            open += 1;
        } else {
            missed.push((
                r["state"].as_str().unwrap_or("?").to_string(),
                r["probes"].as_u64().unwrap_or(0),
            ));
        }
        let e = &j["scan"]["engine"];
        sends += e["sent"].as_u64().unwrap() + e["retransmitted"].as_u64().unwrap();
    }
    // Each scan ends at the first answered send: sends per answer ≈ 1/(1-loss).
    let loss = 1.0 - f64::from(open) / sends as f64;
    println!(
        "open in {open} of {runs} scans; {sends} probes sent; measured loss {:.0} %",
        loss * 100.0
    );
    // What the scanner controls: a scan that did not find the port open
    // sent every SYN it may (1 + the default 6 retries). Two misses in 20
    // scans happen by luck about once in a hundred runs, four about once
    // in 50,000: a scan that gives up early fails the first check, a
    // matcher that loses answers the second.
    assert!(
        missed.iter().all(|(_, probes)| *probes == 7),
        "a scan gave up before its 7th SYN; the missed scans (state, probes): {missed:?}"
    );
    assert!(
        open >= 17,
        "open in only {open} of {runs} scans; the others (state, probes): {missed:?}"
    );
}

#[test]
fn without_privileges_one_clear_line_and_exit_3() {
    let _machine = light();
    if !is_root() {
        // Unprivileged already: run it as we are.
        let o = run(&["scan", "127.0.0.1", "-p", "80", "--wait", "0"]);
        assert_eq!(o.status.code(), Some(3));
        assert!(stderr(&o).contains("setcap cap_net_raw"), "{}", stderr(&o));
        return;
    }
    // As root: drop to nobody with setpriv (util-linux), from a copy of the
    // binary that nobody can read.
    let (dir, bin) = public_copy("nopriv");
    let o = std::process::Command::new(AS_NOBODY[0])
        .args(&AS_NOBODY[1..])
        .arg(&bin)
        .args(["scan", "127.0.0.1", "-p", "80", "--wait", "0"])
        .output()
        .expect("setpriv (util-linux)");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("not permitted") && err.contains("setcap cap_net_raw,cap_net_admin+eip"),
        "{err}"
    );
    // The way without root is named too.
    assert!(err.contains("--unprivileged"), "{err}");
    assert!(!err.contains("panicked"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unprivileged_scan_hears_the_routers_error_for_an_absent_host() {
    // connect() gets EHOSTUNREACH when the router's ARP / ND fails, 3.07 s
    // after the SYN; the scan's connect() waits the tracker's timeout
    // (3.5 s by default; at 3 s these ports read filtered).
    let _machine = light();
    let Some(lab) = Lab::up(&["setpriv"]) else {
        return;
    };
    let (dir, bin) = public_copy("unpriv-absent");
    let mut args = AS_NOBODY.to_vec();
    args.extend_from_slice(&[
        bin.to_str().unwrap(),
        "scan",
        "--unprivileged",
        "--format",
        "json",
        "-p",
        "22,80",
        "203.0.113.99",
        "2001:db8:2::99",
    ]);
    let o = lab.exec('c', &args).output().unwrap();
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_exit_follows(&o, &j, "scan --unprivileged of the absent host");
    assert_valid_report(&j, "scan --unprivileged of the absent host");
    for (target, router) in [("203.0.113.99", ROUTER4), ("2001:db8:2::99", ROUTER6)] {
        for port in [22, 80] {
            let v = find(&j, target, port);
            assert_eq!(
                (
                    v["state"].as_str(),
                    v["reason"].as_str(),
                    v["responder"].as_str()
                ),
                (Some("unreachable"), Some("host-unreach"), Some(router)),
                "{target}:{port}: {v}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ctrl_c_prints_partial_verdicts_and_leaves_a_readable_capture() {
    let _machine = light();
    if !is_root() {
        skip_or_fail("scanning needs root (run as root, as CI does)");
        return;
    }
    let dir = scratch("sigint");
    let file = dir.join("partial.pcap");
    // All ports of loopback at 2,000 a second: about 33 s, interrupted at 1.5 s.
    let child = bin()
        .args([
            "scan",
            "127.0.0.1",
            "-p-",
            "--rate",
            "2000",
            "--format",
            "json",
            "--write",
        ])
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(stderr(&o).contains("interrupted"), "{}", stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["scan"]["partial"], true);
    let n = j["results"].as_array().unwrap().len();
    assert!(n > 100 && n < 65535, "{n} verdicts so far");
    // The capture is complete and readable, and gives the same verdicts.
    let o = run(&["analyze", "--format", "json", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let offline: Value = serde_json::from_slice(&o.stdout).unwrap();
    // Every verdict the scan printed reads back the same. The capture can
    // also hold a last probe whose answer had not come when the scan
    // stopped listening (a tenth of a second after the interrupt): the
    // scan leaves it out, the capture shows it unanswered.
    let live = j["results"].as_array().unwrap();
    let read: Vec<&Value> = offline["results"].as_array().unwrap().iter().collect();
    for v in live {
        assert!(read.contains(&v), "not in the capture's verdicts: {v}");
    }
    let extra: Vec<&&Value> = read.iter().filter(|v| !live.contains(v)).collect();
    assert!(
        extra.len() <= 3 && extra.iter().all(|v| v["state"] == "filtered"),
        "the capture's verdicts beyond the scan's: {extra:?}"
    );
    println!(
        "interrupted after {n} verdicts; the capture reads back the same ({} unanswered at the stop)",
        extra.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_sudo_scan_drops_root_before_reading_packets() {
    let _machine = light();
    if !is_root() {
        skip_or_fail("dropping root needs root");
        return;
    }
    let dir = scratch("drop");
    // The invoking user (as sudo says) will own the written capture.
    assert!(
        std::process::Command::new("chown")
            .arg("65534:65534")
            .arg(&dir)
            .status()
            .unwrap()
            .success()
    );
    let file = dir.join("scan.pcap");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_synscope"))
        .args([
            "scan",
            "127.0.0.1",
            "-p",
            "1-3000",
            "--rate",
            "1000",
            "--wait",
            "0.5",
            "--format",
            "json",
            "--write",
        ])
        .arg(&file)
        .env("SUDO_UID", "65534")
        .env("SUDO_GID", "65534")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    // While it scans, its effective uid is no longer 0.
    let mut euid = None;
    for _ in 0..200 {
        std::thread::sleep(std::time::Duration::from_millis(10));
        let s = std::fs::read_to_string(&status).unwrap_or_default();
        let uids: Vec<u32> = s
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        if uids.len() == 4 && uids[1] != 0 {
            euid = Some(uids);
            break;
        }
    }
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    let st = child.wait().unwrap();
    // It ran (1: most loopback ports are refused, not open).
    assert_eq!(st.code(), Some(1));
    let uids = euid.expect("the scan kept euid 0");
    assert_eq!(
        uids,
        vec![65534; 4],
        "real, effective, saved and fs uid all dropped"
    );
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["scan"]["ran_as_uid"], 65534);
    assert_eq!(
        j["results"].as_array().unwrap().len(),
        3000,
        "the scan still worked"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().uid(),
        65534,
        "the capture belongs to the caller"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn capabilities_alone_are_enough() {
    let _machine = light();
    if !is_root() {
        skip_or_fail("setting file capabilities needs root");
        return;
    }
    let (dir, bin) = public_copy("caps");
    let st = std::process::Command::new("setcap")
        .arg("cap_net_raw,cap_net_admin+eip")
        .arg(&bin)
        .status()
        .expect("setcap (libcap2-bin)");
    assert!(st.success(), "setcap failed");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().port();
    let o = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args([
            "scan",
            "127.0.0.1",
            "-p",
            &open.to_string(),
            "--wait",
            "0.2",
            "--format",
            "json",
        ])
        .env_remove("SUDO_UID")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "as nobody with capabilities: {}",
        stderr(&o)
    );
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["results"][0]["state"], "open");
    assert_eq!(j["scan"]["ran_as_uid"], 65534);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_interface_going_down_mid_scan_ends_it_partial_with_a_clear_message() {
    let _machine = light();
    let Some(lab) = Lab::up(&[]) else {
        return;
    };
    let bin = env!("CARGO_BIN_EXE_synscope");
    let child = lab
        .exec(
            'c',
            &[
                bin, "scan", TARGET4, "-p", "1-30000", "--rate", "5000", "--format", "json",
            ],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let iface = lab.client_if();
    assert!(
        lab.exec('c', &["ip", "link", "set", &iface, "down"])
            .status()
            .unwrap()
            .success()
    );
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("the scan stopped early") && err.contains("interface down"),
        "{err}"
    );
    let j: Value =
        serde_json::from_slice(&o.stdout).expect("the verdicts so far are still printed");
    assert_eq!(j["scan"]["partial"], true);
    let results = j["results"].as_array().unwrap();
    assert!(
        !results.is_empty() && results.len() < 30000,
        "{} verdicts",
        results.len()
    );
    // Every verdict given is backed by packets: nothing is filtered by
    // default because it was never seen.
    for r in results {
        let port = r["port"].as_u64().unwrap() as u16;
        let (state, _, _, _) = expected(port, false);
        assert_eq!(r["state"], state, "port {port}");
    }
    println!(
        "stopped after {} verdicts: {}",
        results.len(),
        err.lines().next().unwrap_or("")
    );
}

#[test]
fn replayed_answers_of_an_earlier_scan_change_nothing() {
    let _machine = light();
    let Some(lab) = Lab::up(&[]) else {
        return;
    };
    let dir = scratch("replay");
    let first = dir.join("first.pcap");
    let ports = "22,80,81,8081,9000,9001,9002,9003";
    let sport = "40200";
    // A first scan's answers, recorded.
    let j1 = scan_json(
        Some(&lab),
        &[
            "-p",
            ports,
            "-g",
            sport,
            "--wait",
            "0.5",
            "--write",
            first.to_str().unwrap(),
            TARGET4,
        ],
    );
    assert_eq!(find(&j1, TARGET4, 81)["state"], "refused");
    // They come back (from the router namespace) while a second scan, from
    // the same source port, runs slowly.
    let replayer = lab
        .exec(
            'r',
            &[
                "timeout",
                "20",
                "python3",
                root().join("tests/lab/replay.py").to_str().unwrap(),
                "--pcap",
                first.to_str().unwrap(),
                "--from",
                TARGET4,
                "--seconds",
                "4",
            ],
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let j2 = scan_json(
        Some(&lab),
        &[
            "-p", ports, "-g", sport, "--rate", "20", "--wait", "1", TARGET4,
        ],
    );
    let out = replayer.wait_with_output().unwrap();
    let replayed: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(replayed > 50, "replayed {replayed}");
    for port in ports.split(',').map(|p| p.parse::<u16>().unwrap()) {
        let (state, reason, responder, _) = expected(port, false);
        let r = find(&j2, TARGET4, u64::from(port));
        assert_eq!(
            (
                r["state"].as_str().unwrap(),
                r["reason"].as_str().unwrap(),
                r["responder"].as_str()
            ),
            (state, reason, responder),
            "port {port} under replayed answers"
        );
    }
    let unsolicited = j2["summary"]["unsolicited"].as_u64().unwrap();
    // Most of the 4 s of replaying overlaps the scan's listening.
    assert!(
        unsolicited >= replayed / 8,
        "{unsolicited} unsolicited of {replayed} replayed"
    );
    println!(
        "replayed {replayed} old answers; {unsolicited} counted unsolicited; verdicts unchanged"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_target_that_starts_answering_halfway_is_probed_again() {
    let _machine = light();
    let Some(lab) = Lab::up(&[]) else {
        return;
    };
    // The target drops all TCP at first ("down"), then comes up mid-scan.
    let drop_all = ["-p", "tcp", "--dport", "1:2000", "-j", "DROP"];
    let mut insert = vec!["iptables", "-w", "-I", "INPUT"];
    insert.extend_from_slice(&drop_all);
    assert!(lab.exec('t', &insert).status().unwrap().success());
    let bin = env!("CARGO_BIN_EXE_synscope");
    let child = lab
        .exec(
            'c',
            &[
                bin,
                "scan",
                TARGET4,
                "-p",
                "1-2000",
                "--rate",
                "1000",
                "--max-retries",
                "0",
                "--wait",
                "0.5",
                "--format",
                "json",
            ],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let mut delete = vec!["iptables", "-w", "-D", "INPUT"];
    delete.extend_from_slice(&drop_all);
    assert!(lab.exec('t', &delete).status().unwrap().success());
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert!(
        err.contains("answered nothing until partway through the scan"),
        "{err}"
    );
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_exit_follows(&o, &j, "halfway");
    let results = j["results"].as_array().unwrap();
    assert_eq!(results.len(), 2000);
    let wrong: Vec<String> = results
        .iter()
        .filter(|r| r["state"] != expected(r["port"].as_u64().unwrap() as u16, false).0)
        .map(|r| format!("{}:{}", r["port"], r["state"]))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} ports still wrong: {:?}\n{err}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    println!("{err}");
}

#[test]
fn a_capture_that_overflows_says_so_and_presents_no_silence_as_certain() {
    let _machine = heavy();
    if !is_root() {
        skip_or_fail("scanning needs root (run as root, as CI does)");
        return;
    }
    // Every port of loopback, unthrottled, into a 64 KiB capture buffer:
    // the kernel drops packets the scan cannot read in time.
    let j = {
        let o = bin()
            .args([
                "scan",
                "127.0.0.1",
                "-p-",
                "--rate",
                "0",
                "--capture-buffer",
                "64",
                "--wait",
                "0.3",
                "--format",
                "json",
            ])
            .output()
            .unwrap();
        assert_ran(&o, "overflow");
        assert!(
            stderr(&o).contains("lost") && stderr(&o).contains("lower --rate"),
            "{}",
            stderr(&o)
        );
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    let dropped = j["scan"]["captures"][0][1]["dropped"].as_u64().unwrap();
    assert!(dropped > 0, "the buffer did not overflow");
    let results = j["results"].as_array().unwrap();
    let mut silent = 0;
    for r in results {
        if r["state"] == "filtered" {
            silent += 1;
            assert_eq!(
                r["uncertain"], true,
                "silence after lost packets is not certain: {r}"
            );
        } else {
            assert!(r.get("uncertain").is_none());
        }
    }
    println!(
        "{dropped} packets dropped by the kernel; {silent} silent ports, all marked uncertain"
    );
}

#[test]
fn jsonl_streams_verdicts_while_the_scan_runs() {
    let _machine = light();
    if !is_root() {
        skip_or_fail("scanning needs root (run as root, as CI does)");
        return;
    }
    use std::io::BufRead;
    // 6,000 ports at 1,000 a second: about 6 s; verdicts are decided 3 s
    // (the timeout) after their probe, so lines come while it runs.
    let mut child = bin()
        .args([
            "scan",
            "127.0.0.1",
            "-p",
            "1-6000",
            "--rate",
            "1000",
            "--wait",
            "0.3",
            "-o",
            "jsonl",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first line came only after the scan ended"
    );
    let mut ports = std::collections::HashSet::new();
    for l in std::iter::once(first).chain(lines.map_while(Result::ok)) {
        let v: Value = serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        let errors = verdict_errors(&v);
        assert!(errors.is_empty(), "{l}: {errors:?}");
        assert!(v["state"].is_string() && v["target"] == "127.0.0.1");
        ports.insert(v["port"].as_u64().unwrap());
    }
    // Most of 1-6000 is refused on loopback: exit 1.
    assert_eq!(child.wait().unwrap().code(), Some(1));
    assert_eq!(ports.len(), 6000, "one line per port");
}

#[test]
fn progress_only_on_a_terminal_and_not_with_q() {
    let _machine = light();
    if !is_root() {
        skip_or_fail("scanning needs root (run as root, as CI does)");
        return;
    }
    let d = scratch("progress");
    let out = d.join("r.json");
    let base = format!(
        "{} scan 127.0.0.1 -p 1-1500 --rate 2000 --wait 0.2 -o json --output {}",
        env!("CARGO_BIN_EXE_synscope"),
        out.display()
    );
    // `script` gives the command a terminal (stdout and stderr).
    let tty = |extra: &str| {
        let o = std::process::Command::new("script")
            .args(["-qc", &format!("{base} {extra}"), "/dev/null"])
            .env_remove("SUDO_UID")
            .output()
            .expect("script");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(tty("").contains("probes decided"), "a bar on a terminal");
    assert!(!tty("-q").contains("probes decided"), "none with -q");
    let o = bin()
        .args([
            "scan",
            "127.0.0.1",
            "-p",
            "1-300",
            "--wait",
            "0.2",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        !stderr(&o).contains("probes decided"),
        "none when stderr is not a terminal"
    );
    assert!(
        serde_json::from_slice::<Value>(&o.stdout).is_ok(),
        "never mixed into the output"
    );
    // JSON Lines on the same terminal as the bar: the bar is lifted while
    // each line prints, so every line arrives whole.
    let o = std::process::Command::new("script")
        .args([
            "-qc",
            &format!(
                "{} scan 127.0.0.1 -p 1-1500 --rate 1000 --wait 0.2 --timeout 0.5 -o jsonl",
                env!("CARGO_BIN_EXE_synscope")
            ),
            "/dev/null",
        ])
        .env_remove("SUDO_UID")
        .output()
        .expect("script");
    let screen = String::from_utf8_lossy(&o.stdout);
    assert!(screen.contains("probes decided"), "a bar while it streams");
    // A line may follow the escape codes that clear the bar; from its
    // opening brace on it must be whole.
    let lines: Vec<&str> = screen
        .split(['\r', '\n'])
        .filter_map(|l| l.find("{\"client\"").map(|at| &l[at..]))
        .collect();
    let torn: Vec<&&str> = lines
        .iter()
        .filter(|l| serde_json::from_str::<Value>(l).is_err())
        .collect();
    assert!(torn.is_empty(), "torn lines: {torn:?}");
    // Nor does a line start where the bar's text still stands: on its
    // terminal row, after the last carriage return, nothing of the bar.
    let mixed = screen
        .split('\n')
        .filter_map(|row| row.find("{\"client\"").map(|at| &row[..at]))
        .filter(|before| before.rsplit('\r').next().unwrap_or("").contains("probes"))
        .count();
    assert_eq!(mixed, 0, "lines printed after the bar's text on its row");
    assert_eq!(lines.len(), 1500, "every line on the terminal");
    let _ = std::fs::remove_dir_all(&d);
}

/// `scan target.lab`: the name the addresses came from is kept in every
/// format (the lab's resolver gives target.lab an A and an AAAA record).
#[test]
fn a_scanned_name_is_kept_in_every_format() {
    let _machine = light();
    let Some(lab) = Lab::up(&["dnsmasq"]) else {
        return;
    };
    let bin = env!("CARGO_BIN_EXE_synscope");
    let out = |format: &str| -> String {
        let o = lab
            .exec(
                'c',
                &[bin, "scan", "-q", "-o", format, "-p", "22,81", "target.lab"],
            )
            .output()
            .unwrap();
        // 81 is refused: exit 1 (not every port open).
        assert_eq!(o.status.code(), Some(1), "{format}: {}", stderr(&o));
        stdout(&o)
    };
    let j: Value = serde_json::from_str(&out("json")).unwrap();
    assert_valid_report(&j, "scan target.lab");
    let r = j["results"].as_array().unwrap();
    assert_eq!(r.len(), 4, "two ports of each address");
    assert!(r.iter().all(|v| v["name"] == "target.lab"), "{r:?}");
    let table = out("table");
    for addr in [TARGET4, TARGET6] {
        assert!(
            table.contains(&format!("{addr} (target.lab): 2 ports")),
            "{table}"
        );
    }
    let csv = out("csv");
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "name")
        .expect("a name column");
    for l in csv.lines().skip(1) {
        assert_eq!(l.split(',').nth(col), Some("target.lab"), "{l}");
    }
    assert!(
        out("jsonl")
            .lines()
            .all(|l| l.contains("\"name\":\"target.lab\""))
    );
    let xml = out("nmap-xml");
    assert_eq!(
        xml.matches("<hostname name=\"target.lab\" type=\"user\"/>")
            .count(),
        2,
        "{xml}"
    );
}

/// nmap's ways of giving targets: a list file (`-iL`, also from stdin),
/// exclusions (addresses, blocks, a file), HOST:PORT; a name that does not
/// resolve is a warning, the others are scanned, and the exit code says
/// it. Loopback only.
#[test]
fn targets_from_a_list_with_exclusions_and_host_port() {
    let _machine = light();
    if !is_root() {
        skip_or_fail("scanning needs root (run as root, as CI does)");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_synscope");
    let d = scratch("target-list");
    let list = d.join("targets.txt");
    std::fs::write(
        &list,
        "127.0.0.1  # the v4 loopback\n::1\n127.0.0.2 127.0.0.3\n",
    )
    .unwrap();
    let skip = d.join("skip.txt");
    std::fs::write(&skip, "127.0.0.3\n").unwrap();
    let (list, skip) = (list.to_str().unwrap(), skip.to_str().unwrap());
    let targets_of = |j: &Value| -> Vec<String> {
        let mut t: Vec<String> = j["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| format!("{}:{}", v["target"].as_str().unwrap(), v["port"]))
            .collect();
        t.sort();
        t.dedup();
        t
    };
    let j = scan_json(
        None,
        &[
            "-iL",
            list,
            "--exclude",
            "::1",
            "--excludefile",
            skip,
            "-p",
            "9",
            "--wait",
            "0.2",
        ],
    );
    assert_eq!(targets_of(&j), vec!["127.0.0.1:9", "127.0.0.2:9"]);
    // A block excluded by containment, the list from stdin.
    let mut c = std::process::Command::new(bin);
    c.args([
        "scan",
        "-q",
        "-o",
        "json",
        "-iL",
        "-",
        "--exclude",
        "127.0.0.0/31",
        "-p",
        "9",
        "--wait",
        "0.2",
    ])
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"127.0.0.1\n127.0.0.2\n").unwrap();
    drop(child.stdin.take());
    let o = child.wait_with_output().unwrap();
    let j: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    assert_eq!(targets_of(&j), vec!["127.0.0.2:9"]);
    // HOST:PORT, and a name that does not resolve among the targets: in
    // the lab's client namespace, whose resolver is the lab's own (it says
    // NXDOMAIN for nosuch.lab; no query leaves the lab).
    let lab = Lab::up(&["dnsmasq"]).expect("the lab");
    let o = lab
        .exec(
            'c',
            &[
                bin,
                "scan",
                "-q",
                "-o",
                "json",
                "--wait",
                "0.2",
                "203.0.113.2:22",
                "nosuch.lab",
            ],
        )
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("nosuch.lab") && err.contains("the other targets are scanned"),
        "{err}"
    );
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(targets_of(&j), vec!["203.0.113.2:22"]);
    drop(lab);
    // Everything excluded: one line, exit 2, nothing sent.
    let o = std::process::Command::new(bin)
        .args(["scan", "-p", "9", "--exclude", "127.0.0.0/8", "127.0.0.1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("every target is excluded"),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(&d);
}
