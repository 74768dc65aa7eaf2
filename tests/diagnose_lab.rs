//! `synscope diagnose` in the lab (root): each classic failure gets its
//! finding, with the sender and what an application sees.

mod common;

use common::lab::*;
use common::*;
use serde_json::Value;

fn diagnose(lab: &Lab, target: &str, wait: &str) -> Value {
    let bin = env!("CARGO_BIN_EXE_synscope");
    let o = lab
        .exec(
            'c',
            &[bin, "diagnose", target, "--format", "json", "--wait", wait],
        )
        .output()
        .unwrap();
    let j = serde_json::from_slice(&o.stdout).unwrap();
    assert_diagnose_exit(&o, &j, target);
    assert_valid_diagnosis(&j, target);
    j
}

/// README "Exit codes" for diagnose: 0 when the asked port answered open on
/// every address of the name, 1 when it did not.
fn assert_diagnose_exit(o: &std::process::Output, j: &Value, what: &str) {
    let port = j["port"].as_u64().expect("the asked port");
    let addrs = j["addresses"].as_array().unwrap();
    let open = !addrs.is_empty()
        && addrs.iter().all(|a| {
            a["results"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["port"] == port && r["state"] == "open")
        });
    assert_eq!(
        o.status.code(),
        Some(if open { 0 } else { 1 }),
        "diagnose {what}: {}",
        stderr(o)
    );
}

fn first_finding(d: &Value) -> &Value {
    &d["addresses"][0]["findings"][0]
}

#[test]
fn classic_failures_are_explained() {
    let Some(lab) = Lab::up(&[]) else {
        return;
    };
    let cases: &[(&str, &str, &str, &[&str])] = &[
        // (target, wait, kind, words the summary / error must contain)
        (
            "203.0.113.2:8081",
            "0.5",
            "refused-by-host",
            &[
                "nothing listens on port 8081",
                "Port 8080 is open: wrong port?",
                "ECONNREFUSED",
            ],
        ),
        (
            "203.0.113.2:9003",
            "0.5",
            "middlebox-reset",
            &["not by the host", "1 hop away", "2 hops away"],
        ),
        (
            "203.0.113.2:9002",
            "0.5",
            "rejected-on-path",
            &["198.51.100.1", "admin-prohibited", "EHOSTUNREACH"],
        ),
        (
            "203.0.113.2:9001",
            "0.5",
            "rejected-by-host",
            &["203.0.113.2", "port-unreach", "ECONNREFUSED"],
        ),
        (
            "203.0.113.2:9000",
            "0.5",
            "dropped-host-up",
            &["answers on other ports", "ETIMEDOUT"],
        ),
        (
            "[2001:db8:2::2]:9002",
            "0.5",
            "rejected-on-path",
            &["2001:db8:1::1", "EACCES"],
        ),
        (
            "[2001:db8:2::2]:8081",
            "0.5",
            "refused-by-host",
            &["Port 8080 is open"],
        ),
        (
            "203.0.113.99:80",
            "3.5",
            "host-unreachable",
            &[
                "198.51.100.1",
                "could not reach 203.0.113.99",
                "EHOSTUNREACH",
            ],
        ),
    ];
    for (target, wait, kind, words) in cases {
        let d = diagnose(&lab, target, wait);
        let f = first_finding(&d);
        assert_eq!(f["kind"], *kind, "{target}: {f:#}");
        let text = format!(
            "{} {} {}",
            f["summary"], f["application_error"], f["details"]
        );
        for w in *words {
            assert!(text.contains(w), "{target}: {w:?} not in {text}");
        }
        println!("{target}: {}", f["summary"].as_str().unwrap_or(""));
    }
}

#[test]
fn a_report_file_is_written_and_a_bad_address_needs_no_probe() {
    let Some(lab) = Lab::up(&[]) else {
        return;
    };
    let dir = scratch("diag-report");
    let md = dir.join("ticket.md");
    let bin = env!("CARGO_BIN_EXE_synscope");
    let o = lab
        .exec(
            'c',
            &[
                bin,
                "diagnose",
                "203.0.113.2:8081",
                "--wait",
                "0.5",
                "--report",
                md.to_str().unwrap(),
            ],
        )
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "8081 is refused: {}", stderr(&o));
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(text.starts_with("# Why 203.0.113.2:8081?"), "{text}");
    assert!(
        text.contains("### Evidence")
            && text.contains("| 8081 (asked) | refused | reset | 203.0.113.2 |"),
        "{text}"
    );
    assert_eq!(stdout(&o), text, "the terminal shows the same report");
    // -4 on an IPv6 address: resolution says so, nothing is sent, exit 2.
    let o = lab
        .exec('c', &[bin, "diagnose", "[2001:db8:2::2]:80", "-4"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).contains("No packet was sent"), "{}", stdout(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn name_resolution_failures_are_told_apart_and_send_nothing() {
    // The lab's resolver (dnsmasq on the router) knows target.lab,
    // v6only.lab (AAAA only) and says NXDOMAIN for any other *.lab name.
    let Some(lab) = Lab::up(&["dnsmasq"]) else {
        return;
    };
    let bin = env!("CARGO_BIN_EXE_synscope");
    let run_json = |args: &[&str]| -> (Option<i32>, Value) {
        let mut full = vec![bin, "diagnose", "--format", "json", "--wait", "0.3"];
        full.extend_from_slice(args);
        let o = lab.exec('c', &full).output().unwrap();
        let j = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        assert_valid_diagnosis(&j, &format!("{args:?}"));
        (o.status.code(), j)
    };
    let (code, d) = run_json(&["nosuch.lab:80"]);
    assert_eq!(code, Some(2));
    assert_eq!(d["resolution"]["outcome"], "no-such-name");
    assert!(
        d["resolution_summary"]
            .as_str()
            .unwrap()
            .contains("does not exist (NXDOMAIN). No packet was sent")
    );
    assert_eq!(d["addresses"].as_array().unwrap().len(), 0);
    assert!(d["scan"].is_null(), "no probe was sent");

    let (code, d) = run_json(&["v6only.lab:80", "-4"]);
    assert_eq!(code, Some(2));
    assert_eq!(d["resolution"]["outcome"], "no-address");
    assert_eq!(d["resolution"]["other_family"][0], "2001:db8:2::2");
    assert!(d["scan"].is_null());

    // A name with both families: every address is probed.
    let (code, d) = run_json(&["target.lab:8081"]);
    assert_eq!(code, Some(1), "8081 is refused on both addresses");
    assert_eq!(d["resolution"]["outcome"], "resolved");
    let addrs: Vec<&str> = d["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["address"].as_str().unwrap())
        .collect();
    assert!(
        addrs.contains(&"203.0.113.2") && addrs.contains(&"2001:db8:2::2"),
        "{addrs:?}"
    );
    for a in d["addresses"].as_array().unwrap() {
        assert_eq!(a["findings"][0]["kind"], "refused-by-host");
    }
}

#[test]
fn silent_drops_are_located_by_hop() {
    // The far target sits behind two routers: the first router drops 9004
    // on its way there, the far target drops 9000 itself.
    let Some(lab) = Lab::up(&[]) else {
        return;
    };
    for (far, router1, router2) in [
        ("198.18.1.2", ROUTER4, "198.18.0.2"),
        ("2001:db8:6::2", ROUTER6, "2001:db8:5::2"),
    ] {
        let bracket = if far.contains(':') {
            format!("[{far}]")
        } else {
            far.to_string()
        };
        let d = diagnose(&lab, &format!("{bracket}:9004"), "0.5");
        let a = &d["addresses"][0];
        assert_eq!(a["findings"][0]["kind"], "dropped-host-up");
        let l = &a["drop_location"];
        assert_eq!(
            (
                l["last_hop"].as_u64(),
                l["at_host"].as_bool(),
                l["host_hop"].as_u64()
            ),
            (Some(1), Some(false), Some(3)),
            "{l:#}"
        );
        assert_eq!(l["last_router"], router1);
        let text = l["text"].as_str().unwrap();
        assert!(
            text.contains(&format!("at or just after hop 1 ({router1})")),
            "{text}"
        );
        assert!(
            text.contains(&format!("answered there by {router2}")),
            "{text}"
        );
        println!("{far}:9004 {text}");

        let d = diagnose(&lab, &format!("{bracket}:9000"), "0.5");
        let l = &d["addresses"][0]["drop_location"];
        assert_eq!(
            (l["last_hop"].as_u64(), l["at_host"].as_bool()),
            (Some(2), Some(true)),
            "{l:#}"
        );
        assert_eq!(l["last_router"], router2);
        assert!(
            l["text"]
                .as_str()
                .unwrap()
                .starts_with("Located at the last hop")
        );
        println!("{far}:9000 {}", l["text"]);
    }
}

/// Every path finding has its picture in the HTML report (issue 13): a
/// forged reset, a router's reject, the host's reject, host unreachable
/// at the last router, a drop; checked in the DOM Chromium parsed.
#[test]
fn html_report_renders_in_headless_chromium() {
    let Some(lab) = Lab::up(&["chromium"]) else {
        return;
    };
    let dir = scratch("diag-html");
    let bin = env!("CARGO_BIN_EXE_synscope");
    // (target, the box where it went wrong, another box)
    let cases = [
        (
            "203.0.113.2:9003",
            "RST for 9003, in 203.0.113.2",
            "its own replies come from here",
        ),
        (
            "203.0.113.2:9002",
            "rejects 9002: admin-prohibited (3/13)",
            "not reached",
        ),
        (
            "203.0.113.2:9001",
            "rejects 9001: port-unreach (3/3)",
            "⋯ 1 router",
        ),
        (
            "203.0.113.99:80",
            "host-unreach (3/1): cannot reach it",
            "no answer to the router",
        ),
        ("198.18.1.2:9004", "✗ port 9004", "answers other ports"),
    ];
    for (target, stop, other) in cases {
        let html = dir.join(format!("{}.html", target.replace([':', '.'], "_")));
        let o = lab
            .exec(
                'c',
                &[bin, "diagnose", target, "--report", html.to_str().unwrap()],
            )
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{target}: {}", stderr(&o));
        let text = std::fs::read_to_string(&html).unwrap();
        assert!(text.starts_with("<!DOCTYPE html>"));
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "self-contained: nothing to fetch"
        );
        let (png, dom) = chromium_render(&lab.ns('c'), &html, &dir);
        // The picture: a row of boxes from "you", the one where it went
        // wrong marked.
        assert_eq!(
            dom.matches("<div class=\"path picture\">").count(),
            1,
            "{target}: one finding, one picture"
        );
        let boxes = picture_boxes(&dom);
        assert_eq!(
            boxes[0],
            ("hop".to_string(), "you".to_string()),
            "{target}: {boxes:?}"
        );
        assert!(
            boxes
                .iter()
                .any(|(c, t)| c == "hop stop" && t.contains(stop)),
            "{target}: {stop:?} not in a stop box: {boxes:?}"
        );
        assert!(
            boxes.iter().any(|(_, t)| t.contains(other)),
            "{target}: {boxes:?}"
        );
        if target.ends_with(":9004") {
            assert!(dom.contains("Located at or just after hop 1"), "{dom}");
        }
        println!(
            "{target}: screenshot {} bytes at {}",
            png.len(),
            html.with_extension("png").display()
        );
    }
}

#[test]
fn unprivileged_mode_names_icmp_senders_as_a_plain_user() {
    let Some(lab) = Lab::up(&["setpriv"]) else {
        return;
    };
    // A copy of the binary that the unprivileged user can run.
    let (dir, bin) = public_copy("diag-unpriv");
    let as_nobody = |target: &str, extra: &[&str]| -> (String, Value) {
        let mut args = AS_NOBODY.to_vec();
        let b = bin.to_str().unwrap();
        args.extend_from_slice(&[b, "diagnose", target, "--format", "json", "--wait", "0.3"]);
        args.extend_from_slice(extra);
        let o = lab.exec('c', &args).output().unwrap();
        let j: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_diagnose_exit(&o, &j, target);
        assert_valid_diagnosis(&j, target);
        (stderr(&o), j)
    };
    for (target, extra) in [
        ("203.0.113.2:9001", &["--unprivileged"][..]),
        ("203.0.113.2:9002", &[][..]),
    ] {
        let (err, d) = as_nobody(target, extra);
        assert!(
            err.contains("unprivileged mode"),
            "the mode says what it cannot see: {err}"
        );
        if extra.is_empty() {
            assert!(err.contains("falling back to connect() probes"), "{err}");
        }
        let f = &d["addresses"][0]["findings"][0];
        let ev = &f["evidence"][0];
        match target {
            "203.0.113.2:9001" => {
                assert_eq!(f["kind"], "rejected-by-host");
                assert_eq!(
                    (ev["reason"].as_str(), ev["responder"].as_str()),
                    (Some("port-unreach"), Some(TARGET4))
                );
                assert_eq!(
                    (ev["icmp_type"].as_u64(), ev["icmp_code"].as_u64()),
                    (Some(3), Some(3))
                );
            }
            _ => {
                assert_eq!(f["kind"], "rejected-on-path");
                assert_eq!(
                    (ev["reason"].as_str(), ev["responder"].as_str()),
                    (Some("admin-prohibited"), Some(ROUTER4))
                );
                assert_eq!(
                    (ev["icmp_type"].as_u64(), ev["icmp_code"].as_u64()),
                    (Some(3), Some(13))
                );
            }
        }
        assert!(ev["ttl"].is_null(), "no TTL in this mode");
        println!("as nobody, {target}: {}", f["summary"]);
    }
    // The Markdown of one such report does not contradict itself: open
    // ports seen, so the host did answer (its distance is what is unknown).
    let mut args = AS_NOBODY.to_vec();
    args.extend_from_slice(&[
        bin.to_str().unwrap(),
        "diagnose",
        "203.0.113.2:9001",
        "--unprivileged",
        "--wait",
        "0.3",
    ]);
    let o = lab.exec('c', &args).output().unwrap();
    let md = stdout(&o);
    assert!(!md.contains("sent nothing"), "{md}");
    assert!(
        md.contains("The host answered (open ports seen: 22"),
        "{md}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_rate_limited_reject_is_reprobed_slowly_not_called_filtered() {
    let Some(lab) = Lab::up(&[]) else {
        return;
    };
    // Port 9005 at the target: ICMP port-unreachable, but at most one every
    // 3 s (burst 1); beyond the limit, silence.
    for rule in [
        vec![
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "--dport",
            "9005",
            "-m",
            "limit",
            "--limit",
            "20/minute",
            "--limit-burst",
            "1",
            "-j",
            "REJECT",
            "--reject-with",
            "icmp-port-unreachable",
        ],
        vec!["-A", "INPUT", "-p", "tcp", "--dport", "9005", "-j", "DROP"],
    ] {
        let mut args = vec!["iptables", "-w"];
        args.extend(rule);
        assert!(lab.exec('t', &args).status().unwrap().success());
    }
    // Use up the burst, so the diagnosis's first probes meet silence.
    let bin = env!("CARGO_BIN_EXE_synscope");
    let o = lab
        .exec(
            'c',
            &[
                bin,
                "scan",
                TARGET4,
                "-p",
                "9005",
                "--max-retries",
                "0",
                "--wait",
                "0.2",
                "--format",
                "json",
            ],
        )
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "9005 is not open: {}", stderr(&o));
    let warm: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        warm["results"][0]["reason"], "port-unreach",
        "the first probe takes the one token"
    );
    let d = diagnose(&lab, "203.0.113.2:9005", "0.3");
    let f = first_finding(&d);
    assert_eq!(f["kind"], "rejected-by-host", "{f:#}");
    let details = f["details"].to_string();
    assert!(
        details.contains("probed again slowly") && details.contains("rate-limits"),
        "{details}"
    );
    println!("{}", f["details"]);
}

/// On a terminal (through `script`), diagnose says each stage on stderr as
/// it starts, and its Markdown ends with the verdict; into a pipe, no stage
/// line at all. The report says when and from which machine it probed.
#[test]
fn stages_show_on_a_terminal_never_in_a_pipe() {
    let Some(lab) = Lab::up(&["script"]) else {
        return;
    };
    let bin = env!("CARGO_BIN_EXE_synscope");
    // 9004 is dropped silently: resolving, probing, re-probing, tracing.
    let target = "203.0.113.2:9004";
    let cmd = format!("{bin} diagnose {target} --wait 0.5");
    let o = lab
        .exec('c', &["script", "-qefc", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let tty = String::from_utf8_lossy(&o.stdout).replace('\r', "");
    for stage in [
        "synscope: resolving 203.0.113.2...",
        "synscope: probing port 9004 and",
        "synscope: 203.0.113.2 port 9004 was silent: probing it again",
        "synscope: tracing where port 9004's probes stop",
    ] {
        assert!(tty.contains(stage), "{stage:?} not on the terminal:\n{tty}");
    }
    let last = tty
        .lines()
        .rev()
        .find(|l| l.starts_with("**In short:"))
        .unwrap_or_else(|| panic!("no closing verdict:\n{tty}"));
    assert!(last.contains("203.0.113.2 port 9004"), "{last}");
    assert!(tty.contains("_Probed from "), "{tty}");
    // Into a pipe: the same report, and not one stage line.
    let o = lab
        .exec('c', &[bin, "diagnose", target, "--wait", "0.5"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(!err.contains("..."), "stages in a pipe: {err}");
    assert!(stdout(&o).contains("**In short:"), "{}", stdout(&o));
    let j = diagnose(&lab, target, "0.5");
    let at = j["generated_at"].as_str().unwrap_or("");
    assert!(at.ends_with('Z') && at.len() == 20, "{at}");
    assert!(!j["generated_on"].as_str().unwrap_or("").is_empty());
}
