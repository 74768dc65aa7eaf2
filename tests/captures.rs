//! The shipped captures (captures/, made in the lab with real clients) hold
//! `analyze` to captures/expected.tsv, the answer key read off the packets
//! by hand: every row, and no verdict beyond them. No root needed.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;

fn analyze_json(file: &str) -> Value {
    let path = root().join("captures").join(file);
    let o = run(&["analyze", "--format", "json", path.to_str().unwrap()]);
    assert!(o.status.success(), "{file}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn every_shipped_capture_gives_its_expected_verdicts() {
    let tsv = std::fs::read_to_string(root().join("captures/expected.tsv")).unwrap();
    let mut by_file: BTreeMap<&str, Vec<Vec<&str>>> = BTreeMap::new();
    for line in tsv.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 6, "bad row {line:?}");
        by_file.entry(cols[0]).or_default().push(cols);
    }
    assert!(
        by_file.len() >= 8,
        "expected.tsv covers {} files",
        by_file.len()
    );
    let mut checked = 0;
    for (file, rows) in &by_file {
        let j = analyze_json(file);
        let results = j["results"].as_array().unwrap();
        assert_eq!(
            results.len(),
            rows.len(),
            "{file}: {} verdicts, expected {}",
            results.len(),
            rows.len()
        );
        for row in rows {
            let (target, port) = (row[1], row[2].parse::<u64>().unwrap());
            let r = results
                .iter()
                .find(|r| r["target"] == target && r["port"] == port)
                .unwrap_or_else(|| panic!("{file}: no verdict for {target}:{port}"));
            let responder = r["responder"].as_str().unwrap_or("");
            assert_eq!(
                (
                    r["state"].as_str().unwrap(),
                    r["reason"].as_str().unwrap(),
                    responder
                ),
                (row[3], row[4], row[5]),
                "{file} {target}:{port}"
            );
            checked += 1;
        }
    }
    println!(
        "{checked} expected verdicts held over {} captures",
        by_file.len()
    );
}

fn without_timing(mut j: Value) -> Value {
    for r in j["results"].as_array_mut().unwrap() {
        let o = r.as_object_mut().unwrap();
        for k in ["rtt_ms", "first_probe_ns", "decided_ns"] {
            o.remove(k);
        }
    }
    j["results"].take()
}

#[test]
fn pcap_pcapng_and_sll2_of_the_same_traffic_agree() {
    let pcap = analyze_json("wrong-port.pcap");
    let pcapng = analyze_json("wrong-port.pcapng");
    // pcapng is a conversion of the same file: identical to the nanosecond.
    assert_eq!(pcap["results"], pcapng["results"]);
    assert_eq!(pcap["summary"], pcapng["summary"]);
    // SLL2 was captured at the same time by a second tcpdump on "any": the
    // same packets, with timestamps of their own.
    let sll2 = analyze_json("wrong-port-sll2.pcap");
    assert_eq!(without_timing(pcap.clone()), without_timing(sll2));
    assert_eq!(pcap["inputs"][0]["link_type"], "EN10MB (Ethernet)");
    let r = pcap["results"].as_array().unwrap();
    assert_eq!(r.len(), 2);
    // The classic: the wrong port is refused by the host itself, the right
    // one is open.
    let port = |p: u64| r.iter().find(|v| v["port"] == p).unwrap();
    assert_eq!(
        (port(8081)["state"].as_str(), port(8081)["reason"].as_str()),
        (Some("refused"), Some("reset"))
    );
    assert_eq!(port(8081)["responder"], "203.0.113.2");
    assert_eq!(port(8080)["state"], "open");
}

#[test]
fn sll2_link_type_is_read_as_such() {
    let j = analyze_json("wrong-port-sll2.pcap");
    assert_eq!(j["inputs"][0]["link_type"], "LINUX_SLL2");
}

fn findings_json(file: &str) -> Value {
    let path = root().join("captures").join(file);
    let o = run(&[
        "analyze",
        "--findings",
        "--format",
        "json",
        path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{file}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn offline_findings_match_the_live_diagnosis() {
    // The router's forged reset, found by its TTL; ICMP senders named.
    let j = findings_json("nmap-v4.pcap");
    let f = j["scan"]["findings"].as_array().unwrap();
    let kind = |target: &str, port: u64| {
        f.iter()
            .find(|x| x["target"] == target && x["port"] == port)
            .map(|x| x["kind"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(kind("203.0.113.2", 9003), "middlebox-reset");
    assert_eq!(kind("203.0.113.2", 8081), "refused-by-host");
    assert_eq!(kind("203.0.113.2", 9002), "rejected-on-path");
    assert_eq!(kind("203.0.113.2", 9001), "rejected-by-host");
    assert_eq!(kind("203.0.113.99", 80), "host-unreachable");
    assert_eq!(kind("203.0.113.2", 9000), "dropped-host-up");
    assert_eq!(kind("203.0.113.2", 80), "", "open ports need no finding");
}

#[test]
fn an_nxdomain_in_the_capture_explains_a_failure_before_any_syn() {
    let j = findings_json("name-failure.pcap");
    let names = j["scan"]["names"].as_array().unwrap();
    assert_eq!(
        names.len(),
        1,
        "A and AAAA answers are one finding: {names:?}"
    );
    assert_eq!(names[0]["name"], "nosuch.lab");
    assert_eq!(names[0]["rcode"], 3);
    assert!(
        names[0]["summary"]
            .as_str()
            .unwrap()
            .contains("does not exist (NXDOMAIN)")
    );
    assert_eq!(j["summary"]["dns"], 3, "three DNS answers read");
    let o = run(&[
        "analyze",
        "--findings",
        root().join("captures/name-failure.pcap").to_str().unwrap(),
    ]);
    let text = stdout(&o);
    assert!(
        text.contains("203.0.113.2:8081 (target.lab) — Refused by the host itself"),
        "{text}"
    );
}
