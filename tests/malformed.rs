//! Broken captures made here, one problem each: a clear error or a report,
//! never a panic, and the rest of the file used where libpcap allows it.

mod common;

use common::*;
use serde_json::Value;
use synscope::fixture::{self, Seg};
use synscope::wire::flags;

fn syn_and_rst() -> (Vec<u8>, Vec<u8>) {
    let s = Seg::syn("198.51.100.2", 40000, "203.0.113.2", 81, 7);
    (
        fixture::ethernet(&fixture::tcp_ip(&s)),
        fixture::ethernet(&fixture::tcp_ip(&s.reply(flags::RST | flags::ACK, 63))),
    )
}

fn pcap_header(snaplen: u32, linktype: u32) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&4u16.to_le_bytes());
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(&snaplen.to_le_bytes());
    v.extend_from_slice(&linktype.to_le_bytes());
    v
}

fn record(v: &mut Vec<u8>, sec: u32, caplen: u32, len: u32, data: &[u8]) {
    v.extend_from_slice(&sec.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&caplen.to_le_bytes());
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(data);
}

fn block(v: &mut Vec<u8>, ty: u32, body: &[u8]) {
    let mut body = body.to_vec();
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    let total = (12 + body.len()) as u32;
    v.extend_from_slice(&ty.to_le_bytes());
    v.extend_from_slice(&total.to_le_bytes());
    v.extend_from_slice(&body);
    v.extend_from_slice(&total.to_le_bytes());
}

fn shb(v: &mut Vec<u8>) {
    let mut b = Vec::new();
    b.extend_from_slice(&0x1A2B3C4Du32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&(-1i64).to_le_bytes());
    block(v, 0x0A0D0D0A, &b);
}

fn idb(v: &mut Vec<u8>, linktype: u16) {
    let mut b = Vec::new();
    b.extend_from_slice(&linktype.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&65535u32.to_le_bytes());
    block(v, 1, &b);
}

fn epb(v: &mut Vec<u8>, iface: u32, usec: u64, data: &[u8]) {
    let mut b = Vec::new();
    b.extend_from_slice(&iface.to_le_bytes());
    b.extend_from_slice(&((usec >> 32) as u32).to_le_bytes());
    b.extend_from_slice(&(usec as u32).to_le_bytes());
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(data);
    block(v, 6, &b);
}

/// Runs analyze on `bytes`; checks the universal promises and returns
/// (exit code, JSON report if any, stderr).
fn analyze(name: &str, bytes: &[u8]) -> (Option<i32>, Option<Value>, String) {
    let d = scratch(&format!("malformed-{name}"));
    let f = d.join(format!("{name}.pcap"));
    std::fs::write(&f, bytes).unwrap();
    let o = run(&["analyze", "--format", "json", f.to_str().unwrap()]);
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{name}: {err}");
    assert!(
        matches!(o.status.code(), Some(0) | Some(2)),
        "{name}: {:?} {err}",
        o.status.code()
    );
    assert!(
        err.lines().count() <= 1,
        "{name}: more than one line: {err}"
    );
    if let Some(l) = err.lines().next() {
        assert!(
            l.starts_with(&format!("synscope: {}: ", f.display())),
            "{name}: {l}"
        );
    }
    let j = serde_json::from_slice(&o.stdout).ok();
    let _ = std::fs::remove_dir_all(&d);
    (o.status.code(), j, err)
}

fn states(j: &Option<Value>) -> Vec<String> {
    j.as_ref()
        .and_then(|j| j["results"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|r| format!("{}:{}", r["port"], r["state"].as_str().unwrap_or("")))
        .collect()
}

#[test]
fn bad_magic_and_every_cut_of_the_header() {
    let mut bad = pcap_header(65535, 1);
    bad[..4].copy_from_slice(&0xdeadbeefu32.to_le_bytes());
    let (code, _, err) = analyze("bad-magic", &bad);
    assert_eq!(code, Some(2));
    assert!(err.contains("not a readable pcap/pcapng capture"), "{err}");
    let h = pcap_header(65535, 1);
    for cut in 0..h.len() {
        let (code, _, err) = analyze(&format!("cut-{cut}"), &h[..cut]);
        assert_eq!(code, Some(2), "header cut at {cut}: {err}");
    }
    // The whole header and no packet: a report with nothing in it.
    let (code, j, _) = analyze("header-only", &h);
    assert_eq!(code, Some(0));
    assert_eq!(j.unwrap()["summary"]["packets_read"], 0);
}

#[test]
fn odd_records_keep_the_good_packets() {
    let (syn, rst) = syn_and_rst();
    // caplen above the file's snap length, caplen above the wire length,
    // and a zero-length packet, between a good SYN and its RST.
    let mut v = pcap_header(64, 1);
    record(&mut v, 100, syn.len() as u32, syn.len() as u32, &syn);
    record(&mut v, 100, 100, 100, &[0u8; 100]);
    record(&mut v, 100, 20, 10, &[0u8; 20]);
    record(&mut v, 100, 0, 60, &[]);
    record(&mut v, 100, rst.len() as u32, rst.len() as u32, &rst);
    let (code, j, err) = analyze("odd-records", &v);
    assert_eq!(states(&j), vec!["81:refused".to_string()], "{err}");
    assert!(
        code == Some(0) || err.contains("stopped after packet"),
        "{err}"
    );
}

#[test]
fn a_4_gb_claimed_packet_stops_the_file_not_the_run() {
    let (syn, rst) = syn_and_rst();
    let mut v = pcap_header(65535, 1);
    record(&mut v, 100, syn.len() as u32, syn.len() as u32, &syn);
    record(&mut v, 100, rst.len() as u32, rst.len() as u32, &rst);
    record(&mut v, 101, u32::MAX, u32::MAX, &[1, 2, 3, 4]);
    let (code, j, err) = analyze("four-gb", &v);
    assert_eq!(code, Some(2));
    assert!(err.contains("stopped after packet 2"), "{err}");
    assert_eq!(
        states(&j),
        vec!["81:refused".to_string()],
        "what came before is kept"
    );
}

#[test]
fn timestamps_going_backwards() {
    let (syn, rst) = syn_and_rst();
    let mut v = pcap_header(65535, 1);
    record(&mut v, 2_000_000, syn.len() as u32, syn.len() as u32, &syn);
    record(&mut v, 1_000_000, rst.len() as u32, rst.len() as u32, &rst);
    let (code, j, _) = analyze("backwards", &v);
    assert_eq!(code, Some(0));
    assert_eq!(states(&j), vec!["81:refused".to_string()]);
}

#[test]
fn pcapng_with_unknown_blocks_and_two_link_types() {
    let (syn, rst) = syn_and_rst();
    let mut v = Vec::new();
    shb(&mut v);
    idb(&mut v, 1);
    block(&mut v, 0x0000_0BAD, b"what is this");
    epb(&mut v, 0, 1_700_000_000_000_000, &syn);
    block(&mut v, 0x4000_0001, b"custom");
    epb(&mut v, 0, 1_700_000_000_000_100, &rst);
    let (code, j, err) = analyze("unknown-blocks", &v);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(states(&j), vec!["81:refused".to_string()]);

    // A second interface of another link type (raw IP): libpcap reads the
    // file with the first interface's type; the packets of the other are
    // skipped as not decodable, or the file stops with one line.
    let s2 = Seg::syn("198.51.100.2", 40001, "203.0.113.2", 82, 9);
    let raw_syn = fixture::tcp_ip(&s2);
    let mut v = Vec::new();
    shb(&mut v);
    idb(&mut v, 1);
    idb(&mut v, 101);
    epb(&mut v, 0, 1_700_000_000_000_000, &syn);
    epb(&mut v, 1, 1_700_000_000_000_050, &raw_syn);
    epb(&mut v, 0, 1_700_000_000_000_100, &rst);
    let (code, j, err) = analyze("two-link-types", &v);
    println!("two link types: exit {code:?}, {err}, {:?}", states(&j));
    assert!(
        states(&j).contains(&"81:refused".to_string()) || err.contains("synscope: "),
        "a report or one line: {err}"
    );
}
