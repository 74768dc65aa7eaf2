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
        // 0, or 1 when -p names a port not seen open (see the exit-code test).
        assert_ran(&o, "selection");
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
        (&dir, "directory holds no pcap/pcapng file"),
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
        "lone-syn.pcap",
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

/// The CSV columns as docs/JSON.md lists them ("`client, target, ...`").
fn documented_csv_columns() -> Vec<String> {
    let doc = std::fs::read_to_string(root().join("docs/JSON.md")).unwrap();
    let section = &doc[doc.find("one row per result:").expect("the CSV columns")..];
    let start = section.find('`').unwrap() + 1;
    let end = start + section[start..].find('`').unwrap();
    section[start..end]
        .split(',')
        .map(|c| c.trim().to_string())
        .collect()
}

/// CSV read by a CSV parser (the csv crate, strict about field counts):
/// every row is its JSON verdict, for every shipped capture.
#[test]
fn csv_holds_the_same_verdicts_as_json() {
    let mut dir: Vec<_> = std::fs::read_dir(root().join("captures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    dir.sort();
    for f in dir {
        let f = f.to_str().unwrap();
        let o = run(&["analyze", "--format", "csv", f]);
        assert!(o.status.success());
        let mut rd = csv::ReaderBuilder::new()
            .flexible(false)
            .from_reader(&o.stdout[..]);
        let header: Vec<String> = rd.headers().unwrap().iter().map(str::to_string).collect();
        assert_eq!(header, documented_csv_columns());
        let o = run(&["analyze", "--format", "json", f]);
        let j: Value = serde_json::from_slice(&o.stdout).unwrap();
        let results = j["results"].as_array().unwrap();
        let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), results.len(), "{f}");
        for (row, r) in rows.iter().zip(results) {
            for (i, k) in header.iter().enumerate() {
                let want = match &r[k.as_str()] {
                    // Absent from JSON unless true; CSV says false.
                    Value::Null if k == "uncertain" => "false".to_string(),
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                assert_eq!(&row[i], want, "{f}: {k} of {r}");
            }
        }
    }
}

/// Completions generate for bash, zsh and fish, each shell parses its own,
/// and bash and fish complete a subcommand and an option with them.
#[test]
fn completions_and_man_page_generate() {
    let d = scratch("completions");
    for shell in ["bash", "zsh", "fish"] {
        let o = run(&["completions", shell]);
        assert!(o.status.success(), "{shell}");
        let text = stdout(&o);
        for word in ["synscope", "analyze", "scan", "diagnose", "format"] {
            assert!(text.contains(word), "{shell} completions lack {word}");
        }
        let f = d.join(format!("synscope.{shell}"));
        std::fs::write(&f, &text).unwrap();
        let Ok(check) = std::process::Command::new(shell).arg("-n").arg(&f).output() else {
            skip_or_fail(&format!(
                "needs {shell} to check its completions (installed by .ci/run)"
            ));
            continue;
        };
        assert!(check.status.success(), "{shell} -n: {}", stderr(&check));
    }
    // Ask each shell for completions, as a user pressing Tab would.
    let bash = |line: &str| -> String {
        let words: Vec<&str> = line.split(' ').collect();
        let script = format!(
            "source {}; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; _synscope synscope '{}' '{}'; echo \"${{COMPREPLY[@]}}\"",
            d.join("synscope.bash").display(),
            line,
            words.len() - 1,
            words[words.len() - 1],
            words[words.len().saturating_sub(2)],
        );
        stdout(
            &std::process::Command::new("bash")
                .args(["-c", &script])
                .output()
                .unwrap(),
        )
    };
    assert_eq!(bash("synscope an").trim(), "analyze");
    assert!(bash("synscope analyze --for").contains("--format"));
    if let Ok(o) = std::process::Command::new("fish")
        .args([
            "-c",
            &format!(
                "source {}; complete -C 'synscope analyze --for'; complete -C 'synscope di'",
                d.join("synscope.fish").display()
            ),
        ])
        .output()
    {
        let out = stdout(&o);
        assert!(
            out.contains("--format") && out.contains("diagnose"),
            "{out}"
        );
    }
    assert!(
        std::fs::read_to_string(d.join("synscope.zsh"))
            .unwrap()
            .starts_with("#compdef synscope")
    );
    let o = run(&["man"]);
    assert!(o.status.success());
    let man = stdout(&o);
    assert!(
        man.contains(".TH synscope 1") && man.contains("diagnose"),
        "{man}"
    );
    // Every page the main one names exists: synscope-COMMAND(1).
    let named: Vec<String> = man
        .lines()
        .filter_map(|l| {
            l.strip_prefix("synscope\\-")?
                .strip_suffix("(1)")
                .map(str::to_string)
        })
        .collect();
    assert!(named.len() >= 4, "{named:?}\n{man}");
    for c in &named {
        let o = run(&["man", c]);
        assert!(o.status.success(), "man {c}: {}", stderr(&o));
        let page = stdout(&o);
        assert!(
            page.contains(&format!(".TH synscope-{c} 1")),
            "man {c}:\n{page}"
        );
        assert!(page.contains(".SH OPTIONS"), "man {c}");
    }
    let o = run(&["man", "nosuch"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&d);
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
    // Box lines on a terminal; plain aligned columns into a pipe.
    assert!(on_tty(true).contains('┆'), "boxes on a terminal");
    assert!(!stdout(&piped).contains('┆'), "plain columns into a pipe");
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

/// README "Exit codes": with -p, 0 only when every port asked about was
/// seen and answered open, 1 when one was not; without -p, 0 (no port was
/// asked about); 2 for input errors; the same whichever way the report is
/// written.
#[test]
fn exit_code_says_whether_every_asked_port_is_open() {
    let f = root().join("captures/wrong-port.pcap");
    let f = f.to_str().unwrap();
    let d = scratch("exitcodes");
    let out = d.join("r.json");
    let out = out.to_str().unwrap();
    let cases = [
        ("8080", 0),
        ("8081", 1),
        ("8080,8081", 1),
        ("8080,9", 1),
        ("9", 1),
    ];
    for (ports, want) in cases {
        for extra in [&[][..], &["-o", "json"], &["-o", "csv", "--output", out]] {
            let mut args = vec!["analyze", "-p", ports];
            args.extend_from_slice(extra);
            args.push(f);
            let o = run(&args);
            assert_eq!(o.status.code(), Some(want), "{args:?}: {}", stderr(&o));
        }
    }
    let o = run(&["analyze", f]);
    assert_eq!(o.status.code(), Some(0), "no port asked: {}", stderr(&o));
    // An input error outranks the verdicts: the open port's file and a
    // missing one exit 2.
    let o = run(&["analyze", "-p", "8080", f, "/nonexistent/x.pcap"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // Shell use: `analyze ... && deploy`.
    let sh = |ports: &str| {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "\"$0\" analyze -q -p {ports} \"$1\" >/dev/null && echo deploy"
            ))
            .arg(env!("CARGO_BIN_EXE_synscope"))
            .arg(f)
            .output()
            .unwrap()
    };
    assert_eq!(stdout(&sh("8080")), "deploy\n");
    assert_eq!(stdout(&sh("8081")), "");
    let _ = std::fs::remove_dir_all(&d);
}

/// A capture of `n` attempts (SYN then RST, distinct ports and clients):
/// about 140 bytes of file per attempt.
fn write_many_attempts(path: &std::path::Path, n: u32) {
    use synscope::fixture::{self, Seg};
    use synscope::source::PcapWriter;
    use synscope::wire::{LinkType, flags};
    let t0: u64 = 1_700_000_000_000_000_000;
    let mut w = PcapWriter::create(path, LinkType::ETHERNET).expect("create pcap");
    for i in 0..n {
        let client = format!("198.51.{}.{}", 100 + (i >> 16), (i >> 8) & 0xff);
        let s = Seg::syn(
            &client,
            40000 + (i & 0xff) as u16,
            "203.0.113.2",
            1 + (i % 65000) as u16,
            i,
        );
        for (k, seg) in [s, s.reply(flags::RST | flags::ACK, 63)].iter().enumerate() {
            let f = fixture::ethernet(&fixture::tcp_ip(seg));
            w.write(t0 + u64::from(i) * 1000 + k as u64, f.len() as u32, &f);
        }
    }
    w.finish().expect("finish pcap");
}

#[test]
fn analyze_shows_progress_only_on_a_terminal_and_never_in_the_report() {
    let d = scratch("progress");
    let big = d.join("big.pcap");
    write_many_attempts(&big, 150_000);
    let size = std::fs::metadata(&big).unwrap().len();
    assert!(size >= 16 << 20, "{size} bytes: too small for a bar");
    let report = d.join("r.json");
    // `script` gives the command a terminal; stdout goes to a file.
    let on_tty = |extra: &str| {
        let cmd = format!(
            "{} analyze {extra} -o json {} > {}",
            env!("CARGO_BIN_EXE_synscope"),
            big.display(),
            report.display()
        );
        let o = std::process::Command::new("script")
            .args(["-qc", &cmd, "/dev/null"])
            .output()
            .expect("script");
        let j: Value = serde_json::from_slice(&std::fs::read(&report).unwrap())
            .expect("the report is JSON alone");
        assert_eq!(j["summary"]["refused"], 150_000);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let shown = on_tty("");
    assert!(
        shown.contains("reading "),
        "a bar on the terminal: {shown:?}"
    );
    assert!(shown.contains("MiB"), "{shown:?}");
    let quiet = on_tty("-q");
    assert!(!quiet.contains("reading "), "-q: {quiet:?}");
    // Not a terminal: nothing on stderr.
    let o = run(&["analyze", "-o", "json", big.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&d);
}

/// A directory, a quoted glob and the file list give one report, whatever
/// the number of files read at once.
#[test]
fn many_files_directories_and_globs_give_the_same_report() {
    let d = scratch("manyfiles");
    let caps = d.join("caps");
    std::fs::create_dir_all(&caps).unwrap();
    let mut names = Vec::new();
    for (i, f) in [
        "nmap-v4.pcap",
        "nmap-v6.pcapng",
        "wrong-port.pcap",
        "dropped.pcap",
        "rejected.pcap",
    ]
    .iter()
    .enumerate()
    {
        let to = caps.join(format!("part{i}-{f}"));
        std::fs::copy(root().join("captures").join(f), &to).unwrap();
        names.push(to.display().to_string());
    }
    // The same attempts split across two more files: merged as one.
    write_many_attempts(&caps.join("part5-many.pcap"), 3000);
    names.push(caps.join("part5-many.pcap").display().to_string());
    std::fs::write(caps.join("README"), "not a capture\n").unwrap();
    let report = |args: &[&str]| -> (Option<i32>, String, String) {
        let mut full = vec!["analyze", "-o", "json"];
        full.extend_from_slice(args);
        let o = run(&full);
        (o.status.code(), stdout(&o), stderr(&o))
    };
    let listed: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut one_by_one = vec!["-j", "1"];
    one_by_one.extend_from_slice(&listed);
    let (code, want, err) = report(&one_by_one);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
    let j: Value = serde_json::from_str(&want).unwrap();
    assert_eq!(j["inputs"].as_array().unwrap().len(), 6);
    assert!(j["summary"]["refused"].as_u64().unwrap() > 3000);
    let mut parallel = vec!["-j", "4"];
    parallel.extend_from_slice(&listed);
    assert_eq!(report(&parallel).1, want, "-j 4 = -j 1");
    let dir = caps.display().to_string();
    let (code, got, err) = report(&[&dir]);
    assert_eq!(code, Some(0));
    assert_eq!(got, want, "the directory = its files");
    assert_eq!(
        err.trim(),
        format!("synscope: {dir}: 1 file left out (not pcap/pcapng): README")
    );
    // One file, tracked by 1, 2 or 3 threads (a share of the flows each).
    for f in &listed {
        let one = report(&["-j", "1", f]).1;
        for j in ["2", "3"] {
            assert_eq!(report(&["-j", j, f]).1, one, "{f}: -j {j} = -j 1");
        }
    }
    let glob = format!("{dir}/part*");
    assert_eq!(report(&[&glob]).1, want, "a quoted glob = its files");
    let none = format!("{dir}/nothing*");
    let (code, _, err) = report(&[&none]);
    assert_eq!(code, Some(2));
    assert_eq!(err.trim(), format!("synscope: {none}: no file matches"));
    let _ = std::fs::remove_dir_all(&d);
}

/// Splits a capture every `n` packets into files named as `tcpdump -C`
/// names them (cap, cap1, cap2, ... cap10: the shell's and a plain sort put
/// cap10 before cap2).
fn rotate(src: &std::path::Path, dir: &std::path::Path, n: usize) -> usize {
    use synscope::source::{FileSource, PacketSource, PcapWriter};
    let mut s = FileSource::open(src, None).unwrap();
    let link = s.link_type();
    let mut files = 0;
    let mut w: Option<PcapWriter> = None;
    let mut count = 0;
    while let Some(p) = s.next_packet().unwrap() {
        if count % n == 0 {
            if let Some(w) = w.take() {
                w.finish().unwrap();
            }
            let name = if files == 0 {
                "cap".to_string()
            } else {
                format!("cap{files}")
            };
            w = Some(PcapWriter::create(&dir.join(name), link).unwrap());
            files += 1;
        }
        w.as_mut().unwrap().write(p.ts, p.len, p.data);
        count += 1;
    }
    if let Some(w) = w {
        w.finish().unwrap();
    }
    files
}

/// A rotation (`tcpdump -C`) analysed as a directory gives the report of
/// the unsplit capture: attempts whose SYN ends one file and whose answer
/// starts the next are still matched, whatever the order of the names.
#[test]
fn a_rotated_capture_reads_as_one() {
    let d = scratch("rotation");
    for f in ["nmap-v4.pcap", "nmap-v6.pcapng", "wrong-port.pcap"] {
        let whole = root().join("captures").join(f);
        let parts = d.join(f);
        std::fs::create_dir_all(&parts).unwrap();
        let files = rotate(&whole, &parts, 2);
        assert!(files > 6, "{f}: {files} files");
        let want = run(&["analyze", "-o", "json", whole.to_str().unwrap()]);
        let want: Value = serde_json::from_slice(&want.stdout).unwrap();
        for jobs in ["1", "2", "4"] {
            let o = run(&["analyze", "-o", "json", "-j", jobs, parts.to_str().unwrap()]);
            assert!(o.status.success(), "{}", stderr(&o));
            let got: Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(got["results"], want["results"], "{f}, -j {jobs}");
            for k in [
                "syns",
                "replies",
                "unsolicited",
                "packets_read",
                "retransmissions",
            ] {
                assert_eq!(got["summary"][k], want["summary"][k], "{f}: {k}");
            }
            // Inputs keep the order of the directory listing.
            let names: Vec<&str> = got["inputs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["file"].as_str().unwrap())
                .collect();
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted);
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// Every subcommand's --help ends with examples, and exits 0.
#[test]
fn help_has_examples_for_each_subcommand() {
    for sub in ["analyze", "scan", "diagnose", "watch", "completions", "man"] {
        let o = run(&[sub, "--help"]);
        assert!(o.status.success(), "{sub} --help");
        let text = stdout(&o);
        let at = text
            .find("Example")
            .unwrap_or_else(|| panic!("{sub} --help has no examples"));
        assert!(
            text[at..].contains(&format!("synscope {sub}")),
            "{sub} --help: examples do not show the command"
        );
    }
    let o = run(&["--help"]);
    assert!(o.status.success());
    for sub in ["analyze", "scan", "diagnose"] {
        assert!(stdout(&o).contains(sub));
    }
}

/// A resolver's capture repeats the same answers: `--findings` keeps each
/// distinct answer once (what it holds grows with distinct answers, not
/// with the capture), and the count is still exact.
#[test]
fn repeated_dns_answers_are_kept_once() {
    use synscope::source::{FileSource, PacketSource, PcapWriter};
    let src = root().join("captures/name-failure.pcap");
    let mut s = FileSource::open(&src, Some("udp src port 53")).unwrap();
    let link = s.link_type();
    let mut answers: Vec<Vec<u8>> = Vec::new();
    while let Some(p) = s.next_packet().unwrap() {
        answers.push(p.data.to_vec());
    }
    assert!(!answers.is_empty());
    let d = scratch("dns-repeat");
    let f = d.join("resolver.pcap");
    let mut w = PcapWriter::create(&f, link).unwrap();
    let copies = 200_000u64;
    for i in 0..copies {
        let a = &answers[i as usize % answers.len()];
        w.write(1_700_000_000_000_000_000 + i * 1000, a.len() as u32, a);
    }
    w.finish().unwrap();
    let o = run(&["analyze", "--findings", "-o", "json", f.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["summary"]["dns"], copies);
    let kept = j["scan"]["dns"].as_array().unwrap().len();
    assert!(kept >= 1 && kept <= answers.len(), "{kept} kept");
    assert_eq!(j["scan"]["names"].as_array().unwrap().len(), 1);
    let _ = std::fs::remove_dir_all(&d);
}

/// `-` reads a capture from standard input, as tcpdump and tshark do
/// (`tcpdump -w - | synscope analyze -`), beside files.
#[test]
fn a_capture_on_standard_input() {
    use std::io::Write;
    for name in ["nmap-v4.pcap", "nmap-v6.pcapng"] {
        let f = root().join("captures").join(name);
        let want = analyze_ok(&[f.to_str().unwrap()]);
        let mut child = bin()
            .args(["analyze", "-o", "json", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let bytes = std::fs::read(&f).unwrap();
        let mut stdin = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&bytes);
        });
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{name}");
        let got: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(got["results"], want["results"], "{name} through stdin");
        assert_eq!(got["inputs"][0]["file"], "-");
    }
    // Not a capture on stdin: one line, exit 2.
    let o = bin()
        .args(["analyze", "-"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).starts_with("synscope: -: "));
}

/// A reader that went away before anything was written (`| head -c0`,
/// a closed pipe): exit 0 and not a word, for every command that writes
/// to stdout and every report format.
#[test]
fn a_closed_pipe_is_not_an_error_anywhere() {
    let capture = root().join("captures/nmap-v4.pcap");
    let capture = capture.to_str().expect("path");
    let mut cases: Vec<Vec<&str>> = vec![
        vec!["completions", "bash"],
        vec!["completions", "zsh"],
        vec!["completions", "fish"],
        vec!["man"],
        vec!["--help"],
    ];
    for f in ["table", "json", "jsonl", "csv", "nmap-xml"] {
        cases.push(vec!["analyze", "--format", f, "--all", capture]);
    }
    cases.push(vec!["analyze", "--findings", capture]);
    for args in cases {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_synscope"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn synscope");
        // Close our end before the child writes: every write fails (EPIPE).
        drop(child.stdout.take());
        let o = child.wait_with_output().expect("wait");
        assert!(
            o.status.success() && o.stderr.is_empty(),
            "{args:?}: {:?}, stderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// `--output` (and diagnose's `--report`) where nothing can be written:
/// one line naming the file, exit 3, at once, before anything is read or
/// sent (the scans' target is loopback, and they must not get that far).
#[test]
fn an_unwritable_output_fails_before_the_work() {
    let d = scratch("unwritable");
    let missing = d.join("no-such-dir").join("out.json");
    let missing = missing.to_str().expect("path");
    let dir = d.to_str().expect("path");
    let capture = root().join("captures/nmap-v4.pcap");
    let capture = capture.to_str().expect("path");
    for (args, path) in [
        (
            vec![
                "scan",
                "-p",
                "1-65535",
                "-o",
                "json",
                "--output",
                missing,
                "127.0.0.1",
            ],
            missing,
        ),
        (vec!["scan", "-p", "80", "--output", dir, "127.0.0.1"], dir),
        (
            vec!["diagnose", "127.0.0.1:1", "--report", missing],
            missing,
        ),
        (vec!["analyze", "--output", missing, capture], missing),
    ] {
        let started = std::time::Instant::now();
        let o = run(&args);
        let took = started.elapsed();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {err}");
        assert!(
            took < std::time::Duration::from_secs(1),
            "{args:?}: {took:?}"
        );
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains(path) && err.contains("nothing was done"),
            "{err}"
        );
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// A `--filter` that selects probes keeps the ICMP errors about them:
/// they come from other addresses (a router) and carry the probe's ports
/// only in their quote, but the filter is asked about the quoted packet.
/// For the ports a filter selects, the verdicts are those without it.
#[test]
fn a_filter_keeps_the_icmp_errors_that_quote_what_it_selects() {
    let verdicts = |file: &str, filter: Option<&str>, ports: &str| -> Vec<Value> {
        let f = root().join("captures").join(file);
        let mut args = vec!["analyze", "-o", "json", "-p", ports, f.to_str().unwrap()];
        if let Some(flt) = filter {
            args.extend(["--filter", flt]);
        }
        let o = run(&args);
        assert!(
            o.status.success() || o.status.code() == Some(1),
            "{args:?}: {}",
            stderr(&o)
        );
        let j: Value = serde_json::from_slice(&o.stdout).expect("JSON");
        j["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|v| {
                serde_json::json!([
                    v["target"],
                    v["port"],
                    v["state"],
                    v["reason"],
                    v["responder"]
                ])
            })
            .collect()
    };
    let cases: [(&str, &str, &[&str]); 4] = [
        (
            "nmap-v4.pcap",
            "9001,9002,80,443",
            &[
                "host 203.0.113.2",
                "port 9001 or port 9002",
                "tcp",
                "host 203.0.113.99",
                "net 192.0.2.0/24",
                "dst host 192.0.2.129 or src host 192.0.2.129",
            ],
        ),
        (
            "nmap-v6.pcapng",
            "9001,9002,80,443",
            &[
                "host 2001:db8:2::2",
                "port 9002",
                "ip6 and tcp",
                "net 2001:db8:3::/48",
            ],
        ),
        (
            "rejected.pcap",
            "9001,9002",
            &["host 203.0.113.2", "port 9002"],
        ),
        (
            "absent-host.pcap",
            "80",
            &["host 203.0.113.99", "tcp port 80"],
        ),
    ];
    for (file, ports, filters) in cases {
        let all = verdicts(file, None, ports);
        assert!(
            all.iter().any(|v| v[2] == "unreachable"),
            "{file}: the case needs ICMP errors"
        );
        for flt in filters {
            let got = verdicts(file, Some(flt), ports);
            assert!(!got.is_empty(), "{file} -f {flt:?}: nothing selected");
            // Each verdict the filter leaves is the one without it.
            for v in &got {
                assert!(
                    all.contains(v),
                    "{file} -f {flt:?}: {v} not as without a filter"
                );
            }
        }
        // The two filters of the issue select exactly these ports.
    }
    let v4 = verdicts("nmap-v4.pcap", None, "9001,9002");
    for flt in ["host 203.0.113.2", "port 9001 or port 9002"] {
        assert_eq!(
            verdicts("nmap-v4.pcap", Some(flt), "9001,9002"),
            v4,
            "-f {flt:?}"
        );
    }
}

/// A reset forged one hop nearer, among 40 of the host's own: marked in
/// every format with both distances, and never folded into "Not shown".
#[test]
fn a_forged_reset_is_marked_everywhere_and_never_folded() {
    use synscope::fixture::{self, Seg};
    use synscope::source::PcapWriter;
    use synscope::wire::{LinkType, flags};
    let d = scratch("forged");
    let f = d.join("forged.pcap");
    let t0: u64 = 1_700_000_000_000_000_000;
    let mut w = PcapWriter::create(&f, LinkType::ETHERNET).expect("create pcap");
    let mut put = |ts: u64, s: &Seg| {
        let fr = fixture::ethernet(&fixture::tcp_ip(s));
        w.write(ts, fr.len() as u32, &fr);
    };
    for (k, port) in (1000..1040u16).chain([22, 9003]).enumerate() {
        let syn = Seg::syn("198.51.100.2", 40000, "203.0.113.2", port, 100 + k as u32);
        let at = t0 + k as u64 * 1_000_000;
        put(at, &syn);
        let reply = match port {
            22 => syn.reply(flags::SYN | flags::ACK, 63),
            // One hop nearer than the host: TTL 64 where its own say 63.
            9003 => syn.reply(flags::RST | flags::ACK, 64),
            _ => syn.reply(flags::RST | flags::ACK, 63),
        };
        put(at + 100_000, &reply);
    }
    w.finish().expect("finish pcap");
    let file = f.to_str().unwrap();
    let table = stdout(&run(&["analyze", file]));
    assert!(
        table.contains("Not shown: 40 refused ports (reset) from 203.0.113.2, 2 hops"),
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.contains(" 9003 "))
        .unwrap_or_else(|| panic!("9003 folded away:\n{table}"));
    assert!(row.contains("64/1!"), "{row}");
    assert!(
        table.contains("!: in the host's name but from 1 hop, where its own replies come from 2"),
        "{table}"
    );
    let j = analyze_ok(&[file]);
    let r = j["results"].as_array().unwrap();
    let marked: Vec<&Value> = r.iter().filter(|v| v.get("host_hops").is_some()).collect();
    assert_eq!(marked.len(), 1, "{marked:?}");
    assert_eq!(
        (
            marked[0]["port"].as_u64(),
            marked[0]["hops"].as_u64(),
            marked[0]["host_hops"].as_u64()
        ),
        (Some(9003), Some(1), Some(2))
    );
    assert_valid_report(&j, "forged");
    let jl = stdout(&run(&["analyze", "-o", "jsonl", file]));
    let line = jl
        .lines()
        .find(|l| l.contains("\"port\":9003"))
        .expect("9003 line");
    assert!(line.contains("\"host_hops\":2"), "{line}");
    let csv = stdout(&run(&["analyze", "-o", "csv", file]));
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "host_hops")
        .expect("host_hops column");
    for l in csv.lines().skip(1) {
        let cells: Vec<&str> = l.split(',').collect();
        let want = if cells[2] == "9003" { "2" } else { "" };
        assert_eq!(cells[col], want, "{l}");
    }
    // nmap-xml: a script element of the port (the DTD has no attribute for
    // it), valid against nmap's DTD where xmllint and the DTD are here.
    let xml_file = d.join("forged.xml");
    let o = run(&[
        "analyze",
        "-o",
        "nmap-xml",
        "--output",
        xml_file.to_str().unwrap(),
        file,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let xml = std::fs::read_to_string(&xml_file).unwrap();
    let marks: Vec<&str> = xml
        .lines()
        .filter(|l| l.contains("synscope-path"))
        .collect();
    assert_eq!(marks.len(), 1, "{xml}");
    assert!(
        marks[0].contains("portid=\"9003\"")
            && marks[0].contains("reply from 1 hop, the host's own replies from 2"),
        "{}",
        marks[0]
    );
    let dtd = std::path::Path::new("/usr/share/nmap/nmap.dtd");
    if dtd.exists() && have("xmllint") {
        let v = std::process::Command::new("xmllint")
            .args(["--noout", "--dtdvalid"])
            .arg(dtd)
            .arg(&xml_file)
            .output()
            .unwrap();
        assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    } else {
        skip_or_fail("the DTD check needs nmap.dtd and xmllint, installed by .ci/run");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// `--findings` where the format cannot carry them: refused in one line,
/// exit 2, before anything is read or sent (not dropped without a word).
#[test]
fn findings_in_a_format_that_cannot_carry_them_are_refused() {
    let capture = root().join("captures/nmap-v4.pcap");
    let capture = capture.to_str().expect("path");
    for f in ["csv", "jsonl", "nmap-xml"] {
        for args in [
            vec!["analyze", "--findings", "-o", f, capture],
            vec!["scan", "--findings", "-o", f, "-p", "1-65535", "127.0.0.1"],
        ] {
            let started = std::time::Instant::now();
            let o = run(&args);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
            assert!(
                started.elapsed() < std::time::Duration::from_secs(1),
                "{args:?}"
            );
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(
                err.contains("--findings is shown in the table and JSON formats only"),
                "{err}"
            );
            assert!(o.stdout.is_empty(), "{args:?}");
        }
    }
}

/// A selection that matches nothing says what the inputs hold instead,
/// not that they hold no attempt at all.
#[test]
fn a_selection_that_matches_nothing_says_what_there_is() {
    let f = root().join("captures/wrong-port.pcap");
    let f = f.to_str().unwrap();
    for args in [
        vec!["analyze", "-p", "9999", f],
        vec!["analyze", "--target", "192.0.2.77", f],
    ] {
        let out = stdout(&run(&args));
        assert!(
            out.contains("No connection attempt matches the selection (--target, --client, -p, --state, --open): the inputs have attempts to 2 other target ports"),
            "{args:?}: {out}"
        );
    }
    let d = scratch("no-attempts");
    let empty = d.join("empty.pcap");
    let w =
        synscope::source::PcapWriter::create(&empty, synscope::wire::LinkType::ETHERNET).unwrap();
    w.finish().unwrap();
    let out = stdout(&run(&["analyze", "-p", "80", empty.to_str().unwrap()]));
    assert!(out.contains("No TCP connection attempts found."), "{out}");
    let _ = std::fs::remove_dir_all(&d);
}

/// A bad --filter over a directory is said once, not once per file.
#[test]
fn a_bad_filter_is_reported_once() {
    let d = scratch("bad-filter");
    for name in ["nmap-v4.pcap", "wrong-port.pcap", "rejected.pcap"] {
        std::fs::copy(root().join("captures").join(name), d.join(name)).unwrap();
    }
    let o = run(&["analyze", "-f", "hosst 1.2.3.4", d.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("bad --filter \"hosst 1.2.3.4\""), "{err}");
    assert!(o.stdout.is_empty());
    let _ = std::fs::remove_dir_all(&d);
}

/// `diagnose HOST:80 -p 81`: two ports asked for, one line, exit 2,
/// nothing sent (it used to take 80 without a word).
#[test]
fn diagnose_refuses_two_different_ports() {
    let o = run(&["diagnose", "127.0.0.1:80", "-p", "81"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("port 80 in the target and -p 81: give one of them"),
        "{err}"
    );
}

/// Many hosts at a glance: a host silent on every port is one line, the
/// summary counts hosts; --open and --state show only those states, in
/// every format, and the exit code still follows every verdict.
#[test]
fn many_hosts_one_line_each_when_silent_and_states_to_show() {
    use synscope::fixture::{self, Seg};
    use synscope::source::PcapWriter;
    use synscope::wire::{LinkType, flags};
    let d = scratch("many-hosts");
    let f = d.join("many.pcap");
    let t0: u64 = 1_700_000_000_000_000_000;
    let mut w = PcapWriter::create(&f, LinkType::ETHERNET).expect("create pcap");
    let mut put = |ts: u64, s: &Seg| {
        let fr = fixture::ethernet(&fixture::tcp_ip(s));
        w.write(ts, fr.len() as u32, &fr);
    };
    // 203.0.113.1: 80 open, 443 refused; .2 to .30: silent on both.
    let mut k = 0u64;
    for host in 1..=30u8 {
        for port in [80u16, 443] {
            let target = format!("203.0.113.{host}");
            let syn = Seg::syn("198.51.100.2", 40000, &target, port, 7 + k as u32);
            let at = t0 + k * 1_000_000;
            put(at, &syn);
            if host == 1 {
                let fl = if port == 80 {
                    flags::SYN | flags::ACK
                } else {
                    flags::RST | flags::ACK
                };
                put(at + 100_000, &syn.reply(fl, 63));
            }
            k += 1;
        }
    }
    w.finish().expect("finish pcap");
    let file = f.to_str().unwrap();
    let table = stdout(&run(&["analyze", file]));
    for host in 2..=30 {
        let line =
            format!("203.0.113.{host}: 2 ports: silent on every one (filtered, no-response)");
        assert_eq!(table.matches(&line).count(), 1, "{line}\n{table}");
    }
    assert!(table.contains("30 hosts: 1 with some answer"), "{table}");
    assert!(table.contains("29 silent on every port probed"), "{table}");
    assert_eq!(
        table.matches(" PORT ").count(),
        1,
        "one table, for the host that answered:\n{table}"
    );
    // Into a pipe, plain columns: no box lines for grep / awk / cut.
    assert!(!table.contains('│') && !table.contains('┌'), "{table}");
    let row = table
        .lines()
        .find(|l| l.trim_start().starts_with("80 "))
        .expect("row of 80");
    let cells: Vec<&str> = row.split_whitespace().collect();
    // The third column is the service's name (or "-"): the machine's
    // services database says which.
    assert_eq!(
        [cells[0], cells[1], cells[3], cells[4]],
        ["80", "open", "syn-ack", "203.0.113.1"],
        "{row}"
    );
    let open = stdout(&run(&["analyze", "--open", "-o", "csv", file]));
    let rows: Vec<&str> = open.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{open}");
    assert!(rows[0].contains("203.0.113.1,80,open"), "{open}");
    let j = analyze_ok(&["--state", "refused,filtered", file]);
    let states: Vec<&str> = j["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.len(), 59);
    assert!(states.iter().all(|s| *s == "refused" || *s == "filtered"));
    assert_eq!(j["summary"]["open"], 0);
    let o = run(&["analyze", "--state", "closed", file]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&d);
}

/// diagnose in a format that carries verdicts only says where the findings
/// are, instead of dropping them without a word. Loopback only.
#[test]
fn diagnose_in_csv_says_where_the_findings_are() {
    let o = run(&["diagnose", "127.0.0.1:1", "-o", "csv", "--wait", "0.2"]);
    let err = stderr(&o);
    assert!(
        err.contains("the findings are in the table (Markdown), JSON and --report"),
        "{err}"
    );
    assert!(
        stdout(&o).starts_with("client,target,port,"),
        "{}",
        stdout(&o)
    );
}

/// Five hosts that each answer port 80 with a RST and drop 5432; a sixth
/// drops only 8080. The shared finding is one line, the odd one its own.
fn write_five_hosts_dropping(path: &std::path::Path) {
    use synscope::fixture::{self, Seg};
    use synscope::source::PcapWriter;
    use synscope::wire::{LinkType, flags};
    let t0: u64 = 1_700_000_000_000_000_000;
    let ms = 1_000_000;
    let mut w = PcapWriter::create(path, LinkType::ETHERNET).unwrap();
    let mut put = |ts: u64, s: &Seg| {
        let f = fixture::ethernet(&fixture::tcp_ip(s));
        w.write(ts, f.len() as u32, &f);
    };
    let mut t = t0;
    for h in 1..=6 {
        let host = format!("203.0.113.{h}");
        let dropped = if h == 6 { 8080 } else { 5432 };
        let closed = Seg::syn("198.51.100.2", 40000 + h, &host, 80, 100 * u32::from(h));
        let silent = Seg::syn("198.51.100.2", 41000 + h, &host, dropped, 7 * u32::from(h));
        put(t, &closed);
        put(t + ms, &closed.reply(flags::RST | flags::ACK, 62));
        put(t + 2 * ms, &silent);
        put(t + 1002 * ms, &silent);
        t += 10 * ms;
    }
    w.finish().unwrap();
}

#[test]
fn findings_shared_by_many_hosts_are_said_once() {
    let d = scratch("groups");
    let f = d.join("five.pcap");
    write_five_hosts_dropping(&f);
    let o = run(&["analyze", "--findings", f.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let findings: Vec<&str> = out.lines().filter(|l| l.starts_with("- ")).collect();
    let shared: Vec<&&str> = findings.iter().filter(|l| l.contains("5432")).collect();
    assert_eq!(shared.len(), 1, "one line for the five hosts:\n{out}");
    assert!(
        shared[0].contains("port 5432 got no answer on 5 hosts")
            && shared[0]
                .contains("203.0.113.1, 203.0.113.2, 203.0.113.3, 203.0.113.4, 203.0.113.5"),
        "{out}"
    );
    // Port 80's RST, shared by all six: one line too.
    assert!(
        out.contains("nothing listens on port 80 of 6 hosts"),
        "{out}"
    );
    // The sixth host's own finding stays its own.
    assert!(
        out.lines()
            .any(|l| l.starts_with("- 203.0.113.6:8080") && l.contains("Dropped silently")),
        "{out}"
    );
    let o = run(&["analyze", "--findings", "-o", "json", f.to_str().unwrap()]);
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_valid_report(&j, "grouped findings");
    let groups = j["scan"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{groups:?}");
    let g = groups.iter().find(|g| g["port"] == 5432).unwrap();
    assert_eq!(g["kind"], "dropped-host-up");
    assert_eq!(g["targets"].as_array().unwrap().len(), 5);
    // Every host's finding is still listed one by one in the JSON.
    assert_eq!(j["scan"]["findings"].as_array().unwrap().len(), 12);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn analyze_names_targets_from_the_captures_dns_answers() {
    let f = root().join("captures/name-failure.pcap");
    let j = analyze_ok(&[f.to_str().unwrap()]);
    let r = j["results"].as_array().unwrap();
    let v = r.iter().find(|v| v["target"] == "203.0.113.2").unwrap();
    assert_eq!(v["name"], "target.lab", "{v}");
    let o = run(&["analyze", f.to_str().unwrap()]);
    assert!(
        stdout(&o).contains("203.0.113.2 (target.lab): "),
        "{}",
        stdout(&o)
    );
    let o = run(&["analyze", "-o", "nmap-xml", f.to_str().unwrap()]);
    assert!(
        stdout(&o).contains("<hostname name=\"target.lab\""),
        "{}",
        stdout(&o)
    );
}

#[test]
fn service_names_come_from_the_services_database() {
    let d = scratch("services");
    let db = d.join("services");
    std::fs::write(&db, "http\t80/tcp\twww\nsunrpc\t111/udp\nhttp-alt 81/tcp\n").unwrap();
    let f = d.join("scan.pcap");
    write_small_scan(&f);
    let with_db = |args: &[&str]| {
        let o = bin()
            .env("SYNSCOPE_SERVICES", &db)
            .args(args)
            .arg(&f)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let table = with_db(&["analyze"]);
    let header = table.lines().find(|l| l.contains("PORT")).unwrap();
    let cols: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        &cols[..4],
        ["PORT", "STATE", "SERVICE", "REASON"],
        "{table}"
    );
    let row = |port: &str| -> Vec<String> {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(port))
            .unwrap()
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(row("80")[2], "http");
    assert_eq!(row("81")[2], "http-alt");
    assert_eq!(row("9000")[2], "-", "a port the database does not name");
    let xml = with_db(&["analyze", "-o", "nmap-xml"]);
    assert!(
        xml.contains("portid=\"80\"><state state=\"open\" reason=\"syn-ack\" reason_ttl=\"63\"/><service name=\"http\" method=\"table\" conf=\"3\"/></port>"),
        "{xml}"
    );
    let csv = with_db(&["analyze", "-o", "csv", "--fields", "port,service,state"]);
    assert_eq!(
        csv,
        "port,service,state\n80,http,open\n81,http-alt,refused\n9000,,filtered\n"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn csv_fields_choose_the_columns_and_bad_ones_are_refused() {
    let d = scratch("fields");
    let f = d.join("scan.pcap");
    write_small_scan(&f);
    let path = f.to_str().unwrap();
    let o = run(&[
        "analyze",
        "-o",
        "csv",
        "--output-fields",
        "state,port",
        path,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "state,port\nopen,80\nrefused,81\nfiltered,9000\n"
    );
    for (args, says) in [
        (
            vec!["-o", "csv", "--fields", "port,colour"],
            "no column 'colour'",
        ),
        (
            vec!["-o", "csv", "--fields", "port,port"],
            "'port' is given twice",
        ),
        (vec!["-o", "json", "--fields", "port"], "add -o csv"),
    ] {
        let mut a = vec!["analyze"];
        a.extend(args);
        a.push(path);
        let o = run(&a);
        assert_eq!(o.status.code(), Some(2), "{a:?}");
        assert!(o.stdout.is_empty(), "{a:?}");
        let e = stderr(&o);
        assert_eq!(e.lines().count(), 1, "one line: {e}");
        assert!(e.contains(says), "{a:?}: {e}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn top_ports_follow_nmaps_table_where_it_is_installed() {
    // Loopback only: connect() probes to 127.0.0.1.
    let d = scratch("top-ports");
    std::fs::write(
        d.join("nmap-services"),
        "# made up for the test\nhttp\t80/tcp\t0.4\nrare\t40123/tcp\t0.3\nssh\t22/tcp\t0.2\ndomain\t53/udp\t0.9\n",
    )
    .unwrap();
    let scan = |dir: &std::path::Path, n: &str| {
        bin()
            .env("NMAPDIR", dir)
            .args(["scan", "127.0.0.1", "--unprivileged", "--top-ports", n])
            .args(["-o", "csv", "--fields", "port", "--wait", "0"])
            .output()
            .unwrap()
    };
    let o = scan(&d, "2");
    let mut ports: Vec<String> = stdout(&o).lines().skip(1).map(String::from).collect();
    ports.sort();
    assert_eq!(ports, ["40123", "80"], "{}", stderr(&o));
    let o = scan(&d, "4");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--top-ports takes 1 to 3 (nmap's nmap-services)"),
        "{}",
        stderr(&o)
    );
    // No table where NMAPDIR points: synscope's own list, and the way to
    // nmap's order said.
    let empty = d.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = scan(&empty, "500");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("install nmap"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn many_ports_of_one_kind_are_counted_not_listed() {
    use synscope::fixture::{self, Seg};
    use synscope::source::PcapWriter;
    use synscope::wire::{LinkType, flags};
    let d = scratch("counted");
    let f = d.join("drops.pcap");
    let t0: u64 = 1_700_000_000_000_000_000;
    let mut w = PcapWriter::create(&f, LinkType::ETHERNET).unwrap();
    let mut put = |ts: u64, s: &Seg| {
        let fr = fixture::ethernet(&fixture::tcp_ip(s));
        w.write(ts, fr.len() as u32, &fr);
    };
    // Port 22 answers; 11 ports are dropped, 3 refused.
    let open = Seg::syn("198.51.100.2", 40000, "203.0.113.2", 22, 1);
    put(t0, &open);
    put(t0 + 1_000_000, &open.reply(flags::SYN | flags::ACK, 62));
    for p in 1000..1011u16 {
        put(
            t0 + u64::from(p),
            &Seg::syn("198.51.100.2", 40000, "203.0.113.2", p, u32::from(p)),
        );
    }
    for p in 2000..2003u16 {
        let s = Seg::syn("198.51.100.2", 40000, "203.0.113.2", p, u32::from(p));
        put(t0 + u64::from(p), &s);
        put(
            t0 + u64::from(p) + 1000,
            &s.reply(flags::RST | flags::ACK, 62),
        );
    }
    w.finish().unwrap();
    let o = run(&["analyze", "--findings", f.to_str().unwrap()]);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("- ")).collect();
    assert_eq!(lines.len(), 4, "one counted line, three listed:\n{out}");
    assert!(lines[..3].iter().all(|l| l.contains(":200")), "{out}");
    assert_eq!(
        lines[3],
        "- 203.0.113.2: 11 ports dropped silently, while the host answers on others (a DROP rule on it or on the path)",
        "{out}"
    );
    let j = analyze_ok(&["--findings", f.to_str().unwrap()]);
    assert_valid_report(&j, "counted findings");
    assert_eq!(j["scan"]["counted"][0]["ports"], 11);
    assert_eq!(j["scan"]["counted"][0]["kind"], "dropped-host-up");
    assert_eq!(j["scan"]["findings"].as_array().unwrap().len(), 3);
    let _ = std::fs::remove_dir_all(&d);
}

/// Among many hosts, one a router could not reach on any port (its ARP
/// failed: an absent host) is one line with the router, as a silent one.
#[test]
fn an_absent_host_among_many_is_one_line() {
    use synscope::fixture::{self, Seg};
    use synscope::source::PcapWriter;
    use synscope::wire::{LinkType, flags};
    let d = scratch("absent-hosts");
    let f = d.join("absent.pcap");
    let t0: u64 = 1_700_000_000_000_000_000;
    let mut w = PcapWriter::create(&f, LinkType::ETHERNET).unwrap();
    let router = fixture::addr("198.51.100.1");
    let client = fixture::addr("198.51.100.2");
    let mut at = t0;
    for host in 1..=3u8 {
        for port in [80u16, 443] {
            let syn = Seg::syn(
                "198.51.100.2",
                40000,
                &format!("203.0.113.{host}"),
                port,
                9 + u32::from(port),
            );
            let ip = fixture::tcp_ip(&syn);
            let fr = fixture::ethernet(&ip);
            w.write(at, fr.len() as u32, &fr);
            let reply = if host == 1 {
                fixture::ethernet(&fixture::tcp_ip(&syn.reply(flags::RST | flags::ACK, 63)))
            } else {
                fixture::ethernet(&fixture::icmp_error_ip(router, client, 64, 3, 1, &ip, 28))
            };
            w.write(at + 3_000_000_000, reply.len() as u32, &reply);
            at += 1_000_000;
        }
    }
    w.finish().unwrap();
    let out = stdout(&run(&["analyze", f.to_str().unwrap()]));
    for host in [2, 3] {
        let line = format!(
            "203.0.113.{host}: 2 ports: unreachable on every one (host-unreach from the router 198.51.100.1, 1 hop)"
        );
        assert!(out.lines().any(|l| l == line), "{line}\n{out}");
    }
    assert!(out.contains("203.0.113.1: 2 ports: 2 refused"), "{out}");
    assert_eq!(out.matches("PORT").count(), 1, "one table:\n{out}");
    // --all shows every host's table.
    let all = stdout(&run(&["analyze", "--all", f.to_str().unwrap()]));
    assert_eq!(all.matches("PORT").count(), 3, "{all}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn analyze_report_draws_the_findings_shared_by_many_hosts_once() {
    let d = scratch("groups-html");
    let f = d.join("five.pcap");
    write_five_hosts_dropping(&f);
    let html = d.join("findings.html");
    let md = d.join("findings.md");
    for r in [&html, &md] {
        let o = run(&[
            "analyze",
            "--report",
            r.to_str().unwrap(),
            f.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    // Two findings shared by many hosts (80 refused by 6, 5432 dropped on
    // 5) and the sixth host's own: three cards, three pictures.
    assert_eq!(
        page.matches("<div class=\"path picture\">").count(),
        3,
        "{page}"
    );
    assert!(
        page.contains("5 hosts: 203.0.113.1, 203.0.113.2, 203.0.113.3, 203.0.113.4, 203.0.113.5.")
    );
    assert!(
        page.contains("<span class=\"hop stop\">✗ port 5432<br>no answer</span>"),
        "{page}"
    );
    assert!(page.contains("Port 8080: Dropped silently"), "{page}");
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(text.starts_with("# Findings from "), "{text}");
    assert!(
        text.contains("port 5432 got no answer on 5 hosts"),
        "{text}"
    );
    // The report file is checked before the work, as --output is.
    let o = run(&[
        "analyze",
        "--report",
        "/nonexistent/dir/x.html",
        f.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&d);
}
