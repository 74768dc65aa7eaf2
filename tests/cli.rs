//! The `analyze` command as a user meets it: output, JSON contract, and one
//! clear line per bad input while the other inputs are still analysed.

mod common;

use common::*;
use serde_json::Value;

#[test]
fn analyze_small_scan_table_and_json() {
    let d = scratch("small");
    let f = d.join("scan.pcap");
    write_small_scan(&f);
    let o = run(&["analyze", f.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(
            "203.0.113.2: 3 ports: 1 open (syn-ack), 1 refused (reset), 1 filtered (no-response)"
        ),
        "{out}"
    );
    assert!(out.contains("63/2"), "{out}");

    let o = run(&["analyze", "--format", "json", f.to_str().unwrap()]);
    assert!(o.status.success());
    let j: Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
    assert_eq!(j["schema_version"], 1);
    let r = j["results"].as_array().unwrap();
    assert_eq!(r.len(), 3);
    let by_port = |p: u64| r.iter().find(|v| v["port"] == p).unwrap();
    assert_eq!(by_port(80)["state"], "open");
    assert_eq!(by_port(80)["reason"], "syn-ack");
    assert_eq!(by_port(80)["responder"], "203.0.113.2");
    assert_eq!(by_port(80)["ttl"], 63);
    assert_eq!(by_port(80)["hops"], 2);
    assert_eq!(by_port(80)["rtt_ms"], 3.0);
    assert_eq!(by_port(81)["state"], "refused");
    assert_eq!(by_port(9000)["state"], "filtered");
    assert_eq!(by_port(9000)["responder"], Value::Null);
    for key in [
        "client",
        "target",
        "port",
        "state",
        "reason",
        "icmp_type",
        "icmp_code",
        "responder",
        "ttl",
        "hops",
        "rtt_ms",
        "probes",
    ] {
        assert!(r[0].get(key).is_some(), "result lacks {key}");
    }
    let s = &j["summary"];
    assert_eq!(
        (
            s["open"].as_u64(),
            s["refused"].as_u64(),
            s["filtered"].as_u64(),
            s["unreachable"].as_u64()
        ),
        (Some(1), Some(1), Some(1), Some(0))
    );
    assert_eq!(s["packets_read"], 5);
    assert_eq!(s["skipped"], 0);
    assert_eq!(s["unsolicited"], 0);
}

#[test]
fn selectors_narrow_the_report() {
    let d = scratch("select");
    let f = d.join("scan.pcap");
    write_small_scan(&f);
    let json = |extra: &[&str]| -> Value {
        let mut args = vec!["analyze", "--format", "json"];
        args.extend_from_slice(extra);
        args.push(f.to_str().unwrap());
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    assert_eq!(
        json(&["-p", "80,81"])["results"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        json(&["--target", "203.0.113.0/24"])["results"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        json(&["--target", "192.0.2.1"])["results"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        json(&["--client", "198.51.100.2", "-p", "9000"])["results"][0]["state"],
        "filtered"
    );
    assert_eq!(
        json(&["--filter", "tcp port 81"])["results"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // A timeout of 0 s: replies later than the SYN itself are too late.
    let j = json(&["--timeout", "0"]);
    assert_eq!(j["summary"]["filtered"], 3);
}

#[test]
fn bad_inputs_get_one_line_each_and_the_good_file_is_still_analysed() {
    let d = scratch("bad");
    let good = d.join("good.pcap");
    write_small_scan(&good);
    let bytes = std::fs::read(&good).unwrap();

    let text = d.join("notes.txt");
    std::fs::write(&text, "this is not a capture\n").unwrap();
    let empty = d.join("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    let short_header = d.join("short-header.pcap");
    std::fs::write(&short_header, &bytes[..10]).unwrap();
    let short_packet = d.join("short-packet.pcap");
    std::fs::write(&short_packet, &bytes[..bytes.len() - 7]).unwrap();
    let mut user0 = bytes.clone();
    user0[20..24].copy_from_slice(&147u32.to_le_bytes());
    let unknown_link = d.join("user0.pcap");
    std::fs::write(&unknown_link, &user0).unwrap();
    let dir = d.join("a-directory");
    std::fs::create_dir_all(&dir).unwrap();
    let missing = d.join("missing.pcap");

    let bad = [
        &text,
        &empty,
        &short_header,
        &short_packet,
        &unknown_link,
        &dir,
        &missing,
    ];
    let mut args: Vec<String> = vec!["analyze".into(), "--format".into(), "json".into()];
    args.push(good.display().to_string());
    args.extend(bad.iter().map(|p| p.display().to_string()));
    let o = bin().args(&args).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "input errors exit 2");
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), bad.len(), "one line per bad input:\n{err}");
    for (p, line) in bad.iter().zip(&lines) {
        assert!(line.starts_with("synscope: "), "{line}");
        assert!(
            line.contains(&p.display().to_string()),
            "{line} names {}",
            p.display()
        );
    }
    assert!(!err.contains("panicked"));
    for (p, want) in [
        (&text, "not a readable pcap/pcapng capture"),
        (&empty, "empty file"),
        (&short_header, "not a readable pcap/pcapng capture"),
        (&short_packet, "truncated"),
        (&unknown_link, "not a link type synscope decodes"),
        (&dir, "is a directory"),
        (&missing, "no such file"),
    ] {
        let line = lines
            .iter()
            .find(|l| l.contains(&p.display().to_string()))
            .unwrap();
        assert!(line.contains(want), "{line} should say {want:?}");
    }
    // The good file, and the good part of the cut one, were analysed.
    let j: Value = serde_json::from_slice(&o.stdout).expect("JSON still printed");
    let r = j["results"].as_array().unwrap();
    assert_eq!(r.len(), 3);
    assert_eq!(
        r.iter().find(|v| v["port"] == 80).unwrap()["probes"],
        2,
        "SYNs from both readable files"
    );
    assert_eq!(j["inputs"].as_array().unwrap().len(), 1 + bad.len());
}

#[test]
fn only_bad_inputs_print_no_report() {
    let o = run(&["analyze", "/nonexistent/x.pcap"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).is_empty());
    assert_eq!(stderr(&o).lines().count(), 1);
}

#[test]
fn usage_errors_are_one_clear_message() {
    let o = run(&["analyze", "-p", "0-99999", "x.pcap"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("ports are 1-65535"), "{}", stderr(&o));
    let o = run(&["analyze", "--target", "example.com", "x.pcap"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not an IP address or CIDR"));
    let o = run(&["analyze", "--filter", "tcp port", "x.pcap"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn bad_bpf_filter_names_the_filter() {
    let d = scratch("bpf");
    let f = d.join("scan.pcap");
    write_small_scan(&f);
    let o = run(&["analyze", "--filter", "tcp port", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad --filter"), "{}", stderr(&o));
}

#[test]
fn a_full_disk_on_stdout_is_one_line_and_exit_3() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        skip_or_fail("no /dev/full");
        return;
    };
    let o = bin()
        .args([
            "analyze",
            root().join("captures/nmap-v4.pcap").to_str().unwrap(),
        ])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot write the report"), "{err}");
}

#[test]
fn counters_add_up_to_the_packets_read() {
    for f in [
        "nmap-v4.pcap",
        "nmap-v6.pcapng",
        "wrong-port-sll2.pcap",
        "absent-host.pcap",
    ] {
        let o = run(&[
            "analyze",
            "--format",
            "json",
            root().join("captures").join(f).to_str().unwrap(),
        ]);
        let j: Value = serde_json::from_slice(&o.stdout).unwrap();
        let s = &j["summary"];
        let n = |k: &str| s[k].as_u64().unwrap();
        assert_eq!(
            n("syns") + n("replies") + n("unsolicited") + n("other_tcp") + n("skipped") + n("dns"),
            n("packets_read"),
            "{f}: {s}"
        );
    }
}

#[test]
fn scans_refuse_non_hosts_and_huge_jobs_before_sending_anything() {
    // Should a refusal ever regress, nothing may leave the machine: as root
    // the command runs in a new, empty network namespace (unshare --net),
    // and the huge job is aimed at loopback.
    let isolated = |args: &[&str]| {
        if is_root() {
            std::process::Command::new("unshare")
                .arg("--net")
                .arg(env!("CARGO_BIN_EXE_synscope"))
                .args(args)
                .output()
                .expect("unshare (util-linux)")
        } else {
            run(args)
        }
    };
    for t in ["224.0.0.1", "255.255.255.255", "0.0.0.0", "ff02::1"] {
        let o = isolated(&["scan", t, "-p", "80"]);
        assert_eq!(o.status.code(), Some(2), "{t}");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("refusing to probe") && err.contains("--force"),
            "{err}"
        );
    }
    let o = isolated(&["scan", "127.0.0.0/16", "-p-"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("add --large"), "{}", stderr(&o));
}

#[test]
fn csv_holds_the_same_verdicts_as_json() {
    let f = root().join("captures/nmap-v6.pcapng");
    let o = run(&["analyze", "--format", "csv", f.to_str().unwrap()]);
    assert!(o.status.success());
    let csv = stdout(&o);
    let o = run(&["analyze", "--format", "json", f.to_str().unwrap()]);
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[..5], ["client", "target", "port", "state", "reason"]);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let results = j["results"].as_array().unwrap();
    assert_eq!(rows.len(), results.len());
    for (row, r) in rows.iter().zip(results) {
        assert_eq!(row.len(), header.len(), "{row:?}");
        assert_eq!(row[1], r["target"].as_str().unwrap());
        assert_eq!(row[2], r["port"].to_string());
        assert_eq!(row[3], r["state"].as_str().unwrap());
        assert_eq!(row[7], r["responder"].as_str().unwrap_or(""));
    }
}

#[test]
fn completions_and_man_page_generate() {
    for shell in ["bash", "zsh", "fish"] {
        let o = run(&["completions", shell]);
        assert!(o.status.success(), "{shell}");
        let text = stdout(&o);
        for word in ["synscope", "analyze", "scan", "diagnose", "format"] {
            assert!(text.contains(word), "{shell} completions lack {word}");
        }
    }
    let o = run(&["man"]);
    assert!(o.status.success());
    let man = stdout(&o);
    assert!(
        man.contains(".TH synscope 1") && man.contains("diagnose"),
        "{man}"
    );
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let f = root().join("captures/wrong-port.pcap");
    let cmd = format!("{} analyze {}", env!("CARGO_BIN_EXE_synscope"), f.display());
    // `script` (util-linux / bsdutils) gives the command a terminal.
    let on_tty = |no_color: bool| {
        let mut c = std::process::Command::new("script");
        c.args(["-qc", &cmd, "/dev/null"]);
        if no_color {
            c.env("NO_COLOR", "1");
        } else {
            c.env_remove("NO_COLOR");
        }
        String::from_utf8_lossy(&c.output().expect("script").stdout).into_owned()
    };
    assert!(on_tty(false).contains("\x1b["), "colours on a terminal");
    assert!(!on_tty(true).contains("\x1b["), "none with NO_COLOR");
    let piped = run(&["analyze", f.to_str().unwrap()]);
    assert!(!stdout(&piped).contains("\x1b["), "none into a pipe");
}

#[test]
fn output_goes_to_a_file_written_whole() {
    let d = scratch("output");
    let out = d.join("report.json");
    std::fs::write(&out, b"old").unwrap();
    let f = root().join("captures/wrong-port.pcap");
    let o = run(&[
        "analyze",
        "-o",
        "json",
        "--output",
        out.to_str().unwrap(),
        f.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).is_empty(), "nothing on stdout");
    let j: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(j["results"].as_array().unwrap().len(), 2);
    // Into a directory that does not exist: one line, exit 3, nothing left.
    let bad = d.join("no/such/dir/r.csv");
    let o = run(&[
        "analyze",
        "-o",
        "csv",
        "--output",
        bad.to_str().unwrap(),
        f.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(stderr(&o).lines().count(), 1);
    let o = run(&[
        "analyze",
        "--findings",
        "--output",
        out.to_str().unwrap(),
        f.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .starts_with("Findings:")
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn jsonl_is_one_verdict_per_line() {
    let f = root().join("captures/nmap-v4.pcap");
    let o = run(&["analyze", "-o", "jsonl", f.to_str().unwrap()]);
    assert!(o.status.success());
    let lines: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let o = run(&["analyze", "-o", "json", f.to_str().unwrap()]);
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(&lines, j["results"].as_array().unwrap());
}

#[test]
fn nmap_xml_validates_against_nmaps_dtd() {
    let dtd = std::path::Path::new("/usr/share/nmap/nmap.dtd");
    if !dtd.exists()
        || std::process::Command::new("xmllint")
            .arg("--version")
            .output()
            .is_err()
    {
        skip_or_fail(
            "needs nmap.dtd (Debian's nmap) and xmllint (libxml2-utils), installed by .ci/run",
        );
        return;
    }
    let d = scratch("nmapxml");
    for f in ["nmap-v4.pcap", "nmap-v6.pcapng"] {
        let out = d.join(format!("{f}.xml"));
        let cap = root().join("captures").join(f);
        let o = run(&[
            "analyze",
            "-o",
            "nmap-xml",
            "--output",
            out.to_str().unwrap(),
            cap.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v = std::process::Command::new("xmllint")
            .args(["--noout", "--dtdvalid"])
            .arg(dtd)
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            v.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&v.stderr)
        );
        let xml = std::fs::read_to_string(&out).unwrap();
        assert!(
            xml.contains(
                "<port protocol=\"tcp\" portid=\"8081\"><state state=\"closed\" reason=\"reset\""
            ),
            "{xml}"
        );
        assert!(
            xml.contains("portid=\"9002\"><state state=\"filtered\" reason=\"admin-prohibited\""),
            "{xml}"
        );
        assert!(
            xml.contains("reason_ip=\""),
            "the router's address on its rejections"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}
