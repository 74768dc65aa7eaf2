//! In the lab (root): nmap -sS -p- against the target, captured, and
//! `analyze` holds every one of the 65,535 ports to the lab's definition
//! (tests/lab/README.md), IPv4 and IPv6.

mod common;

use common::lab::*;
use common::*;
use serde_json::Value;
use std::collections::HashMap;

fn full_scan(lab: &Lab, v6: bool, dir: &std::path::Path) {
    let (target, client) = if v6 {
        (TARGET6, CLIENT6)
    } else {
        (TARGET4, CLIENT4)
    };
    let file = dir.join(if v6 {
        "nmap-full-v6.pcap"
    } else {
        "nmap-full-v4.pcap"
    });
    let cap = lab.capture(&lab.client_if(), &file);
    let mut args = vec![
        "timeout",
        "600",
        "nmap",
        "-sS",
        "-n",
        "-Pn",
        "-p-",
        "-T4",
        "--max-retries",
        "2",
    ];
    if v6 {
        args.push("-6");
    }
    args.push(target);
    let start = std::time::Instant::now();
    let o = lab.exec('c', &args).output().expect("run nmap");
    assert!(
        o.status.success(),
        "nmap failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // tcpdump's own count of packets it accepted but did not write; a
    // stray neighbour-discovery packet at shutdown can make it 1. The
    // verdicts below are the real check: a lost reply would show there.
    let lost = cap.stop();
    println!("nmap -p- {target}: {:.1} s", start.elapsed().as_secs_f64());

    let j = analyze_ok(&["--target", target, file.to_str().unwrap()]);
    let results = j["results"].as_array().unwrap();
    let by_port: HashMap<u64, &Value> = results
        .iter()
        .map(|r| (r["port"].as_u64().unwrap(), r))
        .collect();
    assert_eq!(by_port.len(), 65535, "one verdict per port");
    let mut wrong = Vec::new();
    for port in 1..=65535u16 {
        let r = by_port[&u64::from(port)];
        let (state, reason, responder, hops) = expected(port, v6);
        let got = (
            r["state"].as_str().unwrap_or(""),
            r["reason"].as_str().unwrap_or(""),
            r["responder"].as_str(),
            r["hops"].as_u64(),
        );
        if got != (state, reason, responder, hops) || r["client"] != client {
            wrong.push(format!(
                "port {port}: got {got:?}, want {:?}",
                (state, reason, responder, hops)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong verdicts (tcpdump lost {lost} packets), first: {:#?}",
        wrong.len(),
        &wrong[..wrong.len().min(20)]
    );
    println!("{target}: 65535 ports as defined; summary {}", j["summary"]);
}

#[test]
fn nmap_full_port_scan_v4_and_v6_matches_the_lab() {
    let Some(lab) = Lab::up(&["nmap", "tcpdump"]) else {
        return;
    };
    let dir = scratch("lab-full");
    full_scan(&lab, false, &dir);
    full_scan(&lab, true, &dir);
    let _ = std::fs::remove_dir_all(&dir);
}
