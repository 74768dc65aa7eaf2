//! Captures as other tools write them: the shipped captures rewritten by
//! Wireshark's editcap / tshark / mergecap and by tcpdump, in every file
//! format libpcap reads (pcap in both byte orders, micro- and nanosecond,
//! Kuznetsov's modified pcap, pcapng), cut at the snap lengths old tools
//! used, and split across files: `analyze` gives the same verdicts. No
//! root needed; the tools are installed by .ci/run (package tshark).

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const CAPTURES: [&str; 3] = ["nmap-v4.pcap", "nmap-v6.pcapng", "wrong-port.pcap"];

fn tools() -> bool {
    for t in ["editcap", "tshark", "mergecap", "tcpdump"] {
        if !have(t) {
            skip_or_fail(&format!(
                "needs `{t}` (Debian packages tshark and tcpdump, installed by .ci/run)"
            ));
            return false;
        }
    }
    true
}

/// Runs a tool that must succeed; its stderr, less tshark's note about
/// running as root, must be empty.
fn tool(args: &[&str]) {
    let o = Command::new(args[0]).args(&args[1..]).output().unwrap();
    let err: Vec<String> = stderr(&o)
        .lines()
        .filter(|l| {
            !l.starts_with("Running as user \"root\"") && !l.starts_with("reading from file")
        })
        .map(str::to_string)
        .collect();
    assert!(o.status.success() && err.is_empty(), "{args:?}: {err:?}");
}

fn analyze(files: &[&Path]) -> Value {
    let mut args = vec!["analyze", "-o", "json"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let o = run(&args);
    assert!(o.status.success(), "{files:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// What a verdict is, less the timing (a microsecond format rounds it).
fn verdicts(j: &Value) -> Vec<String> {
    j["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            [
                "client",
                "target",
                "port",
                "state",
                "reason",
                "responder",
                "ttl",
                "hops",
                "probes",
                "attempts",
            ]
            .map(|k| r[k].to_string())
            .join(" ")
        })
        .collect()
}

/// A little-endian pcap rewritten in big-endian byte order, as a SPARC or
/// PowerPC machine's tcpdump wrote it.
fn big_endian(src: &Path, dst: &Path) {
    let b = std::fs::read(src).unwrap();
    assert_eq!(&b[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "a little-endian pcap");
    let mut out = Vec::with_capacity(b.len());
    let swap = |out: &mut Vec<u8>, field: &[u8]| out.extend(field.iter().rev());
    // Magic, version (2 × u16), thiszone, sigfigs, snaplen, linktype.
    for (at, len) in [(0, 4), (4, 2), (6, 2), (8, 4), (12, 4), (16, 4), (20, 4)] {
        swap(&mut out, &b[at..at + len]);
    }
    let mut i = 24;
    while i + 16 <= b.len() {
        let caplen = u32::from_le_bytes(b[i + 8..i + 12].try_into().unwrap()) as usize;
        for k in 0..4 {
            swap(&mut out, &b[i + 4 * k..i + 4 * k + 4]);
        }
        out.extend_from_slice(&b[i + 16..i + 16 + caplen]);
        i += 16 + caplen;
    }
    assert_eq!(i, b.len());
    std::fs::write(dst, out).unwrap();
}

#[test]
fn every_format_other_tools_write_gives_the_same_verdicts() {
    if !tools() {
        return;
    }
    let d = scratch("interop-formats");
    let mut checked = 0;
    for name in CAPTURES {
        let orig = root().join("captures").join(name);
        let want = analyze(&[&orig]);
        let o = orig.to_str().unwrap();
        let out = |tag: &str| -> PathBuf { d.join(format!("{tag}-{name}")) };
        let mut made: Vec<(String, PathBuf)> = Vec::new();
        for fmt in ["pcap", "nsecpcap", "modpcap", "pcapng"] {
            let f = out(&format!("editcap-{fmt}"));
            tool(&["editcap", "-F", fmt, o, f.to_str().unwrap()]);
            made.push((format!("editcap -F {fmt}"), f));
        }
        for fmt in ["pcap", "pcapng"] {
            let f = out(&format!("tshark-{fmt}"));
            tool(&[
                "tshark",
                "-n",
                "-r",
                o,
                "-F",
                fmt,
                "-w",
                f.to_str().unwrap(),
            ]);
            made.push((format!("tshark -F {fmt}"), f));
        }
        let f = out("tcpdump");
        tool(&["tcpdump", "-r", o, "-w", f.to_str().unwrap()]);
        made.push(("tcpdump -w".into(), f));
        let f = out("tcpdump-nano");
        tool(&[
            "tcpdump",
            "--time-stamp-precision=nano",
            "-r",
            o,
            "-w",
            f.to_str().unwrap(),
        ]);
        made.push(("tcpdump --time-stamp-precision=nano -w".into(), f));
        let le = out("le");
        tool(&["editcap", "-F", "pcap", o, le.to_str().unwrap()]);
        let be = out("big-endian");
        big_endian(&le, &be);
        made.push(("big-endian pcap".into(), be));
        for (how, f) in &made {
            let got = analyze(&[f]);
            assert_eq!(verdicts(&got), verdicts(&want), "{name} via {how}");
            assert_eq!(
                got["summary"]["packets_read"], want["summary"]["packets_read"],
                "{name} via {how}"
            );
            checked += 1;
        }
    }
    println!("{checked} rewritten captures: same verdicts");
    let _ = std::fs::remove_dir_all(&d);
}

/// Split by editcap (every 3 packets) or by time, merged again by mergecap:
/// the pieces as a directory, and the merged file, read as the original.
#[test]
fn split_and_merged_captures_read_as_one() {
    if !tools() {
        return;
    }
    let d = scratch("interop-split");
    for name in CAPTURES {
        let orig = root().join("captures").join(name);
        let want = analyze(&[&orig]);
        let parts = d.join(format!("parts-{name}"));
        std::fs::create_dir_all(&parts).unwrap();
        let base = parts.join("piece.pcapng");
        tool(&[
            "editcap",
            "-c",
            "3",
            orig.to_str().unwrap(),
            base.to_str().unwrap(),
        ]);
        let n = std::fs::read_dir(&parts).unwrap().count();
        assert!(n >= 5, "{name}: {n} pieces");
        let got = analyze(&[&parts]);
        assert_eq!(
            verdicts(&got),
            verdicts(&want),
            "{name}: editcap -c 3 pieces"
        );
        assert_eq!(got["inputs"].as_array().unwrap().len(), n);
        let mut pieces: Vec<PathBuf> = std::fs::read_dir(&parts)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        pieces.sort();
        let merged = d.join(format!("merged-{name}.pcapng"));
        let mut args = vec!["mergecap", "-w", merged.to_str().unwrap()];
        args.extend(pieces.iter().map(|p| p.to_str().unwrap()));
        tool(&args);
        let got = analyze(&[&merged]);
        assert_eq!(verdicts(&got), verdicts(&want), "{name}: mergecap");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// tcpdump's old default snap length (68 bytes) cuts a SYN's options and an
/// ICMPv4 error's quoted sequence number: the verdicts hold. IPv6 at 96
/// bytes cuts an ICMPv6 error inside the quoted header: those answers are
/// lost, and synscope counts them as truncated and says how to capture.
#[test]
fn short_snap_lengths() {
    if !tools() {
        return;
    }
    let d = scratch("interop-snap");
    for name in ["nmap-v4.pcap", "wrong-port.pcap"] {
        let orig = root().join("captures").join(name);
        let cut = d.join(format!("s68-{name}"));
        tool(&[
            "editcap",
            "-s",
            "68",
            orig.to_str().unwrap(),
            cut.to_str().unwrap(),
        ]);
        assert_eq!(
            verdicts(&analyze(&[&cut])),
            verdicts(&analyze(&[&orig])),
            "{name} at 68 bytes"
        );
    }
    let orig = root().join("captures/nmap-v6.pcapng");
    let cut = d.join("s96-nmap-v6.pcapng");
    tool(&[
        "editcap",
        "-s",
        "96",
        orig.to_str().unwrap(),
        cut.to_str().unwrap(),
    ]);
    let want = analyze(&[&orig]);
    let got = analyze(&[&cut]);
    let icmp_answers = want["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] == "unreachable")
        .count();
    assert!(icmp_answers > 0);
    let truncated = got["inputs"][0]["skipped_by_reason"]["truncated"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        truncated as usize >= icmp_answers,
        "{truncated} truncated, {icmp_answers} ICMPv6 answers"
    );
    // Every verdict decided by a TCP answer holds.
    for r in want["results"].as_array().unwrap() {
        if r["state"] == "open" || r["state"] == "refused" {
            assert!(
                got["results"].as_array().unwrap().contains(r),
                "lost at 96 bytes: {r}"
            );
        }
    }
    let table = stdout(&run(&["analyze", cut.to_str().unwrap()]));
    assert!(
        table.contains("cut by the capture's snap length"),
        "{table}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// The pcap variants of patched 1999-2000 tcpdumps (Red Hat 6.1, SuSE 6.3,
/// Nokia IPSO) carry the standard magic number but longer record headers;
/// libpcap cannot read them. One line says so and how to convert, and the
/// converted file gives the original verdicts.
#[test]
fn old_patched_tcpdump_variants_get_a_way_out() {
    if !tools() {
        return;
    }
    let d = scratch("interop-variants");
    let orig = root().join("captures/nmap-v4.pcap");
    let want = analyze(&[&orig]);
    for fmt in ["rh6_1pcap", "suse6_3pcap", "nokiapcap"] {
        let f = d.join(format!("{fmt}.pcap"));
        tool(&[
            "editcap",
            "-F",
            fmt,
            orig.to_str().unwrap(),
            f.to_str().unwrap(),
        ]);
        let o = run(&["analyze", f.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{fmt}");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{fmt}: {err}");
        assert!(err.contains("editcap -F pcap"), "{fmt}: {err}");
        let fixed = d.join(format!("{fmt}-converted.pcap"));
        tool(&[
            "editcap",
            "-F",
            "pcap",
            f.to_str().unwrap(),
            fixed.to_str().unwrap(),
        ]);
        assert_eq!(
            verdicts(&analyze(&[&fixed])),
            verdicts(&want),
            "{fmt}, converted"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}
