//! The whole scan loop against the fake network: no root, no packets, a
//! clock that moves only when the loop waits.

use super::fake::{Behaviour, FakeHost, FakeNetwork};
use super::plan::Plan;
use super::{ScanOptions, ScanOutcome, scan_on};
use crate::fixture::{self, Seg, addr};
use crate::model::{Reason, State, Verdict};
use crate::select::PortSet;
use crate::wire::flags;
use std::net::IpAddr;
use std::time::Duration;

const HOST: &str = "203.0.113.2";
const ROUTER: &str = "198.51.100.1";
const SPORT: u16 = 40000;

fn icmp(from: &str, ttl: u8, icmp_type: u8, code: u8, delay_ms: u64) -> Behaviour {
    Behaviour::Icmp {
        from: addr(from),
        ttl,
        icmp_type,
        code,
        delay: Duration::from_millis(delay_ms),
    }
}

fn route_error(from: &str, icmp_type: u8, code: u8) -> Behaviour {
    Behaviour::RouteError {
        from: addr(from),
        ttl: 64,
        icmp_type,
        code,
    }
}

fn opts(targets: &[&str], ports: &str) -> ScanOptions {
    ScanOptions {
        targets: targets.iter().map(|t| addr(t)).collect(),
        ports: ports.parse().unwrap(),
        seed: Some(7),
        source_port: Some(SPORT),
        ..ScanOptions::default()
    }
}

fn plan_for(net: &FakeNetwork, o: &ScanOptions) -> Plan {
    Plan::scan(
        &o.targets,
        &o.ports,
        o.shard,
        o.seed,
        o.source_port,
        o.ttl,
        |t| Some(net.source_of(t)),
    )
    .0
}

/// Runs the scan; also returns every verdict streamed.
fn scan(net: &mut FakeNetwork, o: &ScanOptions) -> (ScanOutcome, Vec<Verdict>) {
    let plan = plan_for(net, o);
    let mut streamed = Vec::new();
    let out = scan_on(net, &plan, o, None, &mut |v| streamed.push(v.clone()), true).unwrap();
    (out, streamed)
}

/// Runs the scan with `--write`, analyses the written capture, and checks
/// both say the same of every port, marks included.
fn scan_written(net: &mut FakeNetwork, o: &ScanOptions, name: &str) -> ScanOutcome {
    let dir = std::env::temp_dir().join(format!("synscope-fake-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("scan.pcap");
    let plan = plan_for(net, o);
    let mut w = crate::source::PcapWriter::create(&file, crate::wire::LinkType::RAW).unwrap();
    let out = scan_on(net, &plan, o, Some(&mut w), &mut |_| {}, false).unwrap();
    w.finish().unwrap();
    let mut a = crate::analyze::Analyzer::new(crate::analyze::Options::default());
    a.add_file(&file);
    let again = a.finish();
    let _ = std::fs::remove_dir_all(&dir);
    let differ: Vec<(&Verdict, &Verdict)> = again
        .results
        .iter()
        .zip(&out.analysis.results)
        .filter(|(a, b)| a != b)
        .collect();
    assert!(
        differ.is_empty() && again.results.len() == out.analysis.results.len(),
        "{name}: {} of {} verdicts differ, e.g. {:?}",
        differ.len(),
        out.analysis.results.len(),
        differ.first()
    );
    assert_eq!(again.summary, out.analysis.summary, "{name}");
    out
}

fn verdict<'a>(out: &'a ScanOutcome, target: &str, port: u16) -> &'a Verdict {
    let t = addr(target);
    out.analysis
        .results
        .iter()
        .find(|v| v.target == t && v.port == port)
        .unwrap_or_else(|| panic!("no verdict for {target}:{port}"))
}

fn lab_host() -> FakeHost {
    FakeHost::new(HOST, Behaviour::Drop)
        .port(22, Behaviour::Open)
        .port(80, Behaviour::Closed)
        .port(81, icmp(HOST, 63, 3, 3, 0))
        .port(82, icmp(ROUTER, 64, 3, 13, 0))
        .port(83, Behaviour::ForgedReset { ttl: 64 })
}

#[test]
fn every_state_with_its_reason_and_responder_v4_and_v6() {
    let v6 = FakeHost::new("2001:db8:2::2", Behaviour::Drop)
        .port(22, Behaviour::Open)
        .port(80, Behaviour::Closed)
        .port(82, icmp("2001:db8:1::1", 64, 1, 1, 0));
    let mut net = FakeNetwork::new(vec![lab_host(), v6]);
    let o = opts(&[HOST, "2001:db8:2::2"], "22,80-84");
    let (out, streamed) = scan(&mut net, &o);
    type Want<'a> = (&'a str, u16, State, Reason, Option<&'a str>, Option<u8>);
    let want: [Want; 10] = [
        (HOST, 22, State::Open, Reason::SynAck, Some(HOST), Some(2)),
        (HOST, 80, State::Refused, Reason::Reset, Some(HOST), Some(2)),
        (
            HOST,
            81,
            State::Unreachable,
            Reason::PortUnreach,
            Some(HOST),
            Some(2),
        ),
        (
            HOST,
            82,
            State::Unreachable,
            Reason::AdminProhibited,
            Some(ROUTER),
            Some(1),
        ),
        // Forged one hop nearer: the TTL tells.
        (HOST, 83, State::Refused, Reason::Reset, Some(HOST), Some(1)),
        (HOST, 84, State::Filtered, Reason::NoResponse, None, None),
        (
            "2001:db8:2::2",
            22,
            State::Open,
            Reason::SynAck,
            Some("2001:db8:2::2"),
            Some(2),
        ),
        (
            "2001:db8:2::2",
            80,
            State::Refused,
            Reason::Reset,
            Some("2001:db8:2::2"),
            Some(2),
        ),
        (
            "2001:db8:2::2",
            82,
            State::Unreachable,
            Reason::AdminProhibited,
            Some("2001:db8:1::1"),
            Some(1),
        ),
        (
            "2001:db8:2::2",
            84,
            State::Filtered,
            Reason::NoResponse,
            None,
            None,
        ),
    ];
    for (t, port, state, reason, responder, hops) in want {
        let v = verdict(&out, t, port);
        assert_eq!(
            (v.state, v.reason, v.responder, v.hops),
            (state, reason, responder.map(addr), hops),
            "{t}:{port}"
        );
        assert!(!v.uncertain, "{t}:{port}");
    }
    assert_eq!(out.analysis.results.len(), 12);
    // Every answer came to a first send: a silent port is sent twice (one
    // more than the highest try that got an answer), an answered one once.
    assert_eq!(net.sent.syns[&(addr(HOST), 84)], 2);
    assert_eq!(net.sent.syns[&(addr(HOST), 22)], 1);
    assert_eq!(verdict(&out, HOST, 84).probes, 2);
    let e = out.info.engine;
    assert_eq!((e.sent, e.answered, e.unanswered), (12, 8, 4));
    assert!(
        !out.info.partial && out.info.warnings.is_empty(),
        "{:?}",
        out.info
    );
    // Streamed: every port once, the same verdicts as the report.
    let mut s = streamed.clone();
    s.sort_by_key(|v| (v.target, v.port));
    assert_eq!(s, out.analysis.results);
    // The fake clock: the silent ports' retries, then the 3 s end wait;
    // no more.
    assert!(
        net.elapsed() < Duration::from_secs(15),
        "{:?}",
        net.elapsed()
    );
}

#[test]
fn a_lossy_port_answered_only_on_a_retransmission_is_open() {
    let host = FakeHost::new(HOST, Behaviour::Closed)
        .port(443, Behaviour::Open)
        .lossy(443, 2)
        .lossy(444, 1);
    let mut net = FakeNetwork::new(vec![host]);
    let (out, _) = scan(&mut net, &opts(&[HOST], "443,444,445"));
    let v = verdict(&out, HOST, 443);
    assert_eq!((v.state, v.probes), (State::Open, 3));
    let v = verdict(&out, HOST, 444);
    assert_eq!((v.state, v.probes), (State::Refused, 2));
    assert_eq!(verdict(&out, HOST, 445).probes, 1);
    let e = out.info.engine;
    assert_eq!(
        (e.answered, e.answered_after_retry, e.retransmitted),
        (3, 2, 3)
    );
}

#[test]
fn a_late_host_unreachable_from_the_router_decides_every_port() {
    // An absent host: the router's ARP fails and it says so 3 s later.
    let absent = FakeHost::new("203.0.113.9", icmp(ROUTER, 64, 3, 1, 3000));
    let mut net = FakeNetwork::new(vec![absent]);
    let (out, _) = scan(&mut net, &opts(&["203.0.113.9"], "1-20"));
    assert_eq!(out.analysis.results.len(), 20);
    for v in &out.analysis.results {
        assert_eq!(
            (v.state, v.reason, v.responder, v.icmp_type, v.icmp_code),
            (
                State::Unreachable,
                Reason::HostUnreach,
                Some(addr(ROUTER)),
                Some(3),
                Some(1)
            ),
            "port {}",
            v.port
        );
        // The answer quotes the first SYN; retransmissions went out while
        // the router was still trying ARP.
        assert!(v.probes > 1, "{v:?}");
        assert!(v.rtt_ms.is_some_and(|r| r >= 3000.0), "{v:?}");
    }
}

#[test]
fn a_reset_forged_for_an_absent_host_does_not_end_the_wait_for_its_router() {
    // The first router resets port 9003 for every address behind it (a
    // tcp-reset rule), the host behind it is absent: the forged RST (TTL
    // 64, one hop) must not count as the host answering, or the scan ends
    // before the router's host-unreachable for the other ports comes.
    let absent = FakeHost::new("203.0.113.9", icmp(ROUTER, 64, 3, 1, 3000))
        .port(9003, Behaviour::ForgedReset { ttl: 64 });
    let mut net = FakeNetwork::new(vec![absent]);
    let (out, _) = scan(&mut net, &opts(&["203.0.113.9"], "80,8081,9003"));
    for p in [80, 8081] {
        let v = verdict(&out, "203.0.113.9", p);
        assert_eq!(
            (v.state, v.reason, v.responder),
            (State::Unreachable, Reason::HostUnreach, Some(addr(ROUTER))),
            "port {p}: {v:?}"
        );
    }
    assert_eq!(verdict(&out, "203.0.113.9", 9003).state, State::Refused);
}

#[test]
fn forged_replies_change_no_verdict_and_are_counted() {
    let mut net = FakeNetwork::new(vec![lab_host()]);
    let o = opts(&[HOST], "22,80,84");
    let (clean, _) = scan(&mut net, &o);
    let mut net = FakeNetwork::new(vec![lab_host()]);
    // Replies to the scan's own 4-tuples with sequence numbers that answer
    // no SYN of it (the ISNs are keyed per run), and ICMP errors quoting a
    // SYN it never sent.
    let me = net.source_of(addr(HOST));
    let mut forged = 0;
    for (k, port) in [22u16, 80, 84].into_iter().enumerate() {
        for n in 0..20u32 {
            let syn = Seg {
                src: me,
                dst: addr(HOST),
                sport: SPORT,
                dport: port,
                seq: 0x1234_5678u32.wrapping_add(n * 7919 + k as u32),
                ack: 0,
                flags: flags::SYN,
                ttl: 64,
            };
            let at = Duration::from_micros(100 + u64::from(n) * 300);
            for f in [flags::RST | flags::ACK, flags::SYN | flags::ACK, flags::RST] {
                net.inject(at, fixture::tcp_ip(&syn.reply(f, 63)));
                forged += 1;
            }
            let quoted = fixture::tcp_ip(&syn);
            net.inject(
                at,
                fixture::icmp_error_ip(addr(ROUTER), me, 64, 3, 13, &quoted, quoted.len()),
            );
            forged += 1;
        }
    }
    let (out, _) = scan(&mut net, &o);
    let strip = |o: &ScanOutcome| -> Vec<(u16, State, Reason, Option<IpAddr>)> {
        o.analysis
            .results
            .iter()
            .map(|v| (v.port, v.state, v.reason, v.responder))
            .collect()
    };
    assert_eq!(strip(&out), strip(&clean));
    // Each forged packet is counted: unsolicited, or (after the open
    // port's SYN-ACK) traffic of that connection; none is a reply.
    let (a, b) = (&out.analysis.summary, &clean.analysis.summary);
    assert_eq!(
        (a.unsolicited + a.other_tcp) - (b.unsolicited + b.other_tcp),
        forged
    );
    assert_eq!(a.replies, b.replies);
    assert!(a.unsolicited >= forged / 2, "{a:?}");
}

#[test]
fn an_interrupted_scan_stops_sending_and_reports_only_what_it_can_back() {
    let host = FakeHost::new(HOST, Behaviour::Drop).port(22, Behaviour::Open);
    let mut net = FakeNetwork::new(vec![host]);
    net.interrupt_after(Duration::from_millis(50));
    let mut o = opts(&[HOST], "1-2000");
    o.engine.rate = 10_000;
    let (out, _) = scan(&mut net, &o);
    assert!(out.info.partial);
    assert!(
        out.info
            .warnings
            .iter()
            .any(|w| w.starts_with("interrupted"))
    );
    let sent = out.info.engine.sent;
    assert!(sent > 0 && sent < 2000, "{sent} of 2000 sent before Ctrl-C");
    // Silence not given its full time is no verdict; what answered is.
    assert!(
        out.analysis
            .results
            .iter()
            .all(|v| v.state != State::Filtered),
        "{:?}",
        out.analysis
            .results
            .iter()
            .find(|v| v.state == State::Filtered)
    );
    assert!(
        net.elapsed() < Duration::from_millis(200),
        "{:?}",
        net.elapsed()
    );
    assert!(
        out.info
            .warnings
            .iter()
            .any(|w| w.contains("still waiting for an answer when the scan stopped are left out")),
        "{:?}",
        out.info.warnings
    );
}

#[test]
fn a_capture_that_drops_makes_every_silence_uncertain() {
    let mut net = FakeNetwork::new(vec![lab_host()]);
    net.reported_drops = 5;
    // And one probe whose SYN the capture never saw.
    net.unseen_syns.insert((addr(HOST), 85));
    let (out, streamed) = scan(&mut net, &opts(&[HOST], "22,80,84,85"));
    assert!(
        out.info
            .warnings
            .iter()
            .any(|w| w.contains("lost 5 packets")),
        "{:?}",
        out.info.warnings
    );
    assert_eq!(out.info.not_captured, 1);
    assert!(
        out.info
            .warnings
            .iter()
            .any(|w| w.contains("never seen by the capture")),
        "{:?}",
        out.info.warnings
    );
    for port in [84, 85] {
        let v = verdict(&out, HOST, port);
        assert_eq!((v.state, v.uncertain), (State::Filtered, true), "{port}");
        // The stream says it again, marked.
        assert!(
            streamed
                .iter()
                .any(|s| s.port == port && s.uncertain && s.state == State::Filtered)
        );
    }
    assert!(!verdict(&out, HOST, 22).uncertain);
    assert_eq!(verdict(&out, HOST, 22).state, State::Open);
}

#[test]
fn the_capture_written_and_analysed_again_gives_the_same_verdicts() {
    let dir = std::env::temp_dir().join(format!("synscope-fake-write-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("scan.pcap");
    let mut net = FakeNetwork::new(vec![lab_host()]);
    let o = opts(&[HOST], "20-90");
    let plan = plan_for(&net, &o);
    let mut w = crate::source::PcapWriter::create(&file, crate::wire::LinkType::RAW).unwrap();
    let out = scan_on(&mut net, &plan, &o, Some(&mut w), &mut |_| {}, false).unwrap();
    w.finish().unwrap();
    let mut a = crate::analyze::Analyzer::new(crate::analyze::Options::default());
    a.add_file(&file);
    let again = a.finish();
    assert_eq!(again.results, out.analysis.results);
    assert_eq!(
        again.summary.packets_read,
        out.analysis.summary.packets_read
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_drop_all_host_is_filtered_on_every_port_and_the_ports_set_holds() {
    let mut net = FakeNetwork::new(vec![FakeHost::new(HOST, Behaviour::Drop)]);
    let o = opts(&[HOST], "1-100");
    let (out, _) = scan(&mut net, &o);
    let ports: Vec<u16> = out.analysis.results.iter().map(|v| v.port).collect();
    assert_eq!(
        ports,
        PortSet::from_ports(&(1..=100).collect::<Vec<_>>())
            .iter()
            .collect::<Vec<_>>()
    );
    assert!(
        out.analysis
            .results
            .iter()
            .all(|v| v.state == State::Filtered && !v.uncertain)
    );
}

#[test]
fn a_host_that_comes_up_partway_is_probed_again_on_the_same_network() {
    // Closed ports answer with RSTs from 8 s on; the first ports' probes
    // (and their retries) fell before that.
    let host = FakeHost::new(HOST, Behaviour::Closed).up_after(Duration::from_secs(8));
    let mut net = FakeNetwork::new(vec![host]);
    let mut o = opts(&[HOST], "1-400");
    o.engine.rate = 40;
    let out = scan_written(&mut net, &o, "late");
    assert!(
        out.analysis
            .results
            .iter()
            .all(|v| v.state == State::Refused),
        "{:?}",
        out.analysis
            .results
            .iter()
            .find(|v| v.state != State::Refused)
    );
    // The first pass left the early ports silent; the second got them all.
    let said = out
        .info
        .warnings
        .iter()
        .find_map(|w| {
            let rest = w.split("; the ").nth(1)?;
            let (n, tail) = rest.split_once(" ports silent before that were probed again: ")?;
            let (m, _) = tail.split_once(" answered this time")?;
            Some((n.parse::<usize>().ok()?, m.parse::<usize>().ok()?))
        })
        .unwrap_or_else(|| panic!("{:?}", out.info.warnings));
    assert!(said.0 >= 2 && said.0 == said.1, "{said:?}");
    assert_eq!(out.analysis.summary.refused, 400);
}

fn rate_limited_world() -> FakeNetwork {
    // firewalld's default zone: 22 open, every other port rejected with
    // host-prohibited (IPv6: admin-prohibited) by the host itself; an
    // absent host behind the router; both rate-limit their errors as Linux
    // does.
    let fw4 =
        FakeHost::new("198.18.20.2", icmp("198.18.20.2", 63, 3, 10, 0)).port(22, Behaviour::Open);
    let fw6 = FakeHost::new("2001:db8:20::2", icmp("2001:db8:20::2", 63, 1, 1, 0))
        .port(22, Behaviour::Open);
    let absent = FakeHost::new("203.0.113.99", icmp(ROUTER, 64, 3, 1, 3000));
    FakeNetwork::new(vec![fw4, fw6, absent]).linux_icmp_limits()
}

#[test]
fn rate_limited_rejections_are_inferred_for_every_silent_port_and_marked() {
    let mut net = rate_limited_world();
    let o = opts(&["198.18.20.2", "2001:db8:20::2", "203.0.113.99"], "1-3000");
    let (out, streamed) = scan(&mut net, &o);
    // And written, then analysed: the same, marks included.
    let mut net = rate_limited_world();
    let written = scan_written(&mut net, &o, "rate-limited");
    assert_eq!(written.analysis.summary, out.analysis.summary);
    assert_eq!(out.analysis.results.len(), 9000);
    let want = [
        ("198.18.20.2", Reason::HostProhibited, "198.18.20.2"),
        ("2001:db8:20::2", Reason::AdminProhibited, "2001:db8:20::2"),
        ("203.0.113.99", Reason::HostUnreach, ROUTER),
    ];
    for (host, reason, responder) in want {
        let t = addr(host);
        let vs: Vec<&Verdict> = out
            .analysis
            .results
            .iter()
            .filter(|v| v.target == t)
            .collect();
        let own = vs
            .iter()
            .filter(|v| v.inferred.is_none() && v.state == State::Unreachable)
            .count();
        // The limiter let a burst and about one a second through.
        assert!((2..60).contains(&own), "{host}: {own} errors of its own");
        for v in vs {
            if host != "203.0.113.99" && v.port == 22 {
                assert_eq!(v.state, State::Open);
                continue;
            }
            assert_eq!(
                (v.state, v.reason, v.responder),
                (State::Unreachable, reason, Some(addr(responder))),
                "{host}:{}",
                v.port
            );
            if let Some(inf) = &v.inferred {
                assert_eq!(inf.errors as usize, own);
                assert!(v.rtt_ms.is_none() && v.decided_ns.is_none());
            }
        }
    }
    // The stream ends with the inferred verdicts, marked.
    assert!(streamed.iter().any(|v| v.inferred.is_some()));
    // Without the inference they would have been silence: check the fake
    // really limited.
    assert!(out.analysis.summary.unreachable == 9000 - 2);
}

#[test]
fn a_routers_reject_lost_to_its_spent_icmp_budget_is_found_on_the_slow_reprobe() {
    // The router rejects 9002 of a host that answers RSTs, and cannot
    // reach an absent host: its errors for that host spend its budget.
    let host = FakeHost::new(HOST, Behaviour::Closed)
        .port(22, Behaviour::Open)
        .port(9002, icmp(ROUTER, 64, 3, 13, 0))
        .port(9004, Behaviour::Drop);
    let absent = FakeHost::new("203.0.113.99", icmp(ROUTER, 64, 3, 1, 0));
    let mut net = FakeNetwork::new(vec![host, absent]).linux_icmp_limits();
    // Spend the router's budget before the scan: errors for another host.
    let o = opts(&["203.0.113.99"], "1-200");
    let _ = scan(&mut net, &o);
    let o = opts(&[HOST, "203.0.113.99"], "1-200,9002,9004");
    let out = scan_written(&mut net, &o, "router-reject");
    let v = verdict(&out, HOST, 9002);
    assert_eq!(
        (v.state, v.reason, v.responder, v.inferred.is_some()),
        (
            State::Unreachable,
            Reason::AdminProhibited,
            Some(addr(ROUTER)),
            false
        ),
        "{v:?}"
    );
    let v = verdict(&out, HOST, 9004);
    assert_eq!((v.state, v.reason), (State::Filtered, Reason::NoResponse));
    assert!(
        out.info
            .warnings
            .iter()
            .any(|w| w.contains("were probed again slowly")),
        "{:?}",
        out.info.warnings
    );
    // The absent host: every port host-unreach from the router.
    let t = addr("203.0.113.99");
    let bad: Vec<(u16, Reason, bool)> = out
        .analysis
        .results
        .iter()
        .filter(|v| v.target == t && v.reason != Reason::HostUnreach)
        .map(|v| (v.port, v.reason, v.inferred.is_some()))
        .collect();
    let own = out
        .analysis
        .results
        .iter()
        .filter(|v| v.target == t && v.state == State::Unreachable && v.inferred.is_none())
        .count();
    assert!(
        bad.is_empty(),
        "{} not host-unreach ({own} own errors): {:?} {:?}",
        bad.len(),
        &bad[..bad.len().min(5)],
        out.info.warnings
    );
}

#[test]
fn hosts_behind_one_rate_limited_router_each_get_their_own_verdict() {
    // One router, one ICMP budget for everything it sends us: an absent
    // host (ARP fails, 3 s), an unreachable route and a prohibit route
    // (whose errors cost the router twice), a blackhole route (silence),
    // and a host that RSTs with one port the router rejects.
    let r = ROUTER;
    let hosts = vec![
        FakeHost::new("203.0.113.99", icmp(r, 64, 3, 1, 3000)),
        FakeHost::new("192.0.2.1", route_error(r, 3, 1)),
        FakeHost::new("192.0.2.129", route_error(r, 3, 13)),
        FakeHost::new("198.18.10.1", Behaviour::Drop),
        FakeHost::new(HOST, Behaviour::Closed)
            .port(22, Behaviour::Open)
            .port(2002, icmp(r, 64, 3, 13, 0)),
    ];
    let mut net = FakeNetwork::new(hosts).linux_icmp_limits();
    let targets = [
        "203.0.113.99",
        "192.0.2.1",
        "192.0.2.129",
        "198.18.10.1",
        HOST,
    ];
    let o = opts(&targets, "1-1000,2002");
    let out = scan_written(&mut net, &o, "five-hosts");
    let truth = |t: &str, port: u16| -> (State, Reason, Option<IpAddr>) {
        match (t, port) {
            ("203.0.113.99" | "192.0.2.1", _) => {
                (State::Unreachable, Reason::HostUnreach, Some(addr(r)))
            }
            ("192.0.2.129", _) | (HOST, 2002) => {
                (State::Unreachable, Reason::AdminProhibited, Some(addr(r)))
            }
            ("198.18.10.1", _) => (State::Filtered, Reason::NoResponse, None),
            (HOST, 22) => (State::Open, Reason::SynAck, Some(addr(HOST))),
            _ => (State::Refused, Reason::Reset, Some(addr(HOST))),
        }
    };
    for t in targets {
        let wrong: Vec<u16> = out
            .analysis
            .results
            .iter()
            .filter(|v| v.target == addr(t) && (v.state, v.reason, v.responder) != truth(t, v.port))
            .map(|v| v.port)
            .collect();
        assert!(
            wrong.is_empty(),
            "{t}: {} wrong, e.g. {:?}; {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)],
            out.info.warnings
        );
    }
}

/// HOST (22 open, RSTs) and `n` absent hosts of its /24 behind ROUTER,
/// which rate-limits its errors as Linux does: the scan of `ports` on all
/// of them, written and analysed the same (`name`: its scratch file).
fn absent_network(n: u8, ports: &str, name: &str) -> (Vec<String>, ScanOutcome) {
    let absent: Vec<String> = (10..10 + n).map(|i| format!("203.0.113.{i}")).collect();
    let mut hosts = vec![FakeHost::new(HOST, Behaviour::Closed).port(22, Behaviour::Open)];
    hosts.extend(
        absent
            .iter()
            .map(|a| FakeHost::new(a, Behaviour::Absent { from: addr(ROUTER) })),
    );
    let mut net = FakeNetwork::new(hosts).linux_icmp_limits();
    let mut targets: Vec<&str> = vec![HOST];
    targets.extend(absent.iter().map(String::as_str));
    let out = scan_written(&mut net, &opts(&targets, ports), name);
    (absent, out)
}

#[test]
fn a_network_of_absent_hosts_behind_a_rate_limited_router_is_told_host_by_host() {
    // A /24 of which one host is up, the rest absent: the router's ARP
    // fails for each (3 s after its first SYN) and its budget lets a burst
    // of its errors through, then one a second. Each absent host has a
    // single port: no host has other ports to extend an error to.
    let (absent, out) = absent_network(30, "22", "absent-net");
    let host = verdict(&out, HOST, 22);
    assert_eq!(host.state, State::Open);
    let (mut told, mut silent) = (0, 0);
    for a in &absent {
        let v = verdict(&out, a, 22);
        match v.state {
            State::Unreachable => {
                assert_eq!(
                    (v.reason, v.responder, v.inferred.is_some()),
                    (Reason::HostUnreach, Some(addr(ROUTER)), false),
                    "{a}: {v:?}"
                );
                told += 1;
            }
            State::Filtered => silent += 1,
            s => panic!("{a}: {s:?}"),
        }
    }
    let w = &out.info.warnings;
    // The slow pass: its 16 samples each answered (one a second, each
    // kept open past the router's 3 s), the hosts past them said so.
    let probed: Option<(usize, usize)> = w.iter().find_map(|w| {
        let (n, rest) = w.split_once(" silent ports (")?;
        let n = n.rsplit(' ').next()?.parse().ok()?;
        let m = rest.rsplit_once(": ")?.1.split(' ').next()?.parse().ok()?;
        Some((n, m))
    });
    assert_eq!(probed, Some((16, 16)), "{w:?}");
    let left = w.iter().find_map(|w| {
        w.split(" more hosts said nothing")
            .next()?
            .parse::<usize>()
            .ok()
    });
    assert_eq!(left, Some(silent), "{told} told, {silent} silent: {w:?}");
    assert!(told >= 16 + 2, "{told} told: {w:?}");
}

#[test]
fn absent_hosts_with_several_ports_need_one_sample_each() {
    // Sixteen absent hosts, three ports each: one re-probed port a host
    // gets the router's host-unreach, which tells of the host's others.
    let (absent, out) = absent_network(16, "22,80,443", "absent-ports");
    let w = &out.info.warnings;
    assert!(
        !w.iter().any(|w| w.contains("more hosts said nothing")),
        "{w:?}"
    );
    for a in &absent {
        for port in [22, 80, 443] {
            let v = verdict(&out, a, port);
            assert_eq!(
                (v.state, v.reason, v.responder),
                (State::Unreachable, Reason::HostUnreach, Some(addr(ROUTER))),
                "{a}:{port}: {w:?}"
            );
        }
    }
}

/// The real-world lab's slow link: 4 Mbit/s (a SYN every 150 µs), a 20 ms
/// queue, `loss` each way, in front of a host whose closed ports RST and
/// whose port 22 is open.
fn slow_host(loss: f64) -> FakeHost {
    let link = super::fake::Link {
        per_packet: Duration::from_micros(150),
        queue: Duration::from_millis(20),
        loss,
    };
    FakeHost::new("198.18.4.2", Behaviour::Closed)
        .port(22, Behaviour::Open)
        .slow(link)
}

#[test]
fn a_slow_lossy_link_gets_every_verdict_right_and_slows_only_itself() {
    // The slow link with 1 % loss each way; beside it a fast host.
    let slow = slow_host(0.01).port(2000, Behaviour::Open);
    let fast = FakeHost::new(HOST, Behaviour::Closed).port(443, Behaviour::Open);
    let mut net = FakeNetwork::new(vec![slow, fast]);
    let o = opts(&["198.18.4.2", HOST], "1-3000");
    let (out, _) = scan(&mut net, &o);
    assert!(
        net.link_drops > 30,
        "the link lost and dropped: {}",
        net.link_drops
    );
    for v in &out.analysis.results {
        let open = matches!(
            (v.target == addr(HOST), v.port),
            (true, 443) | (false, 22 | 2000)
        );
        let want = if open { State::Open } else { State::Refused };
        assert_eq!(
            v.state, want,
            "{}:{} after {} probes",
            v.target, v.port, v.probes
        );
    }
    let e = out.info.engine;
    assert!(e.answered_after_retry > 0, "{e:?}");
    // The slow host's window was cut by its losses; the fast host's was
    // not: its ports took no retransmission at all.
    assert!(
        out.analysis
            .results
            .iter()
            .filter(|v| v.target == addr(HOST))
            .all(|v| v.probes == 1),
        "{:?} {e:?}",
        out.analysis
            .results
            .iter()
            .filter(|v| v.target == addr(HOST) && v.probes > 1)
            .map(|v| (v.port, v.probes))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_drop_all_host_with_one_open_port_is_timed_by_pings() {
    // A cloud VM: 22 open, everything else dropped. Its one answer gives
    // the round trip; timing pings to 22 then keep the window growing
    // while nothing else answers.
    let vm = FakeHost::new(HOST, Behaviour::Drop).port(22, Behaviour::Open);
    let mut net = FakeNetwork::new(vec![vm]);
    let (out, _) = scan(&mut net, &opts(&[HOST], "1-20000"));
    let e = out.info.engine;
    assert!(e.pings > 10, "{e:?}");
    assert_eq!(out.analysis.summary.open, 1);
    assert_eq!(out.analysis.summary.filtered, 19_999);
    // Each ping is a SYN to 22 again, in its probe count.
    let v = verdict(&out, HOST, 22);
    assert_eq!(u64::from(v.probes), 1 + e.pings);
    assert_eq!(net.sent.syns[&(addr(HOST), 22)], 1 + e.pings as u32);
    // Two sends a silent port, at the pace the window allows: without
    // the pings the window would stay at its start (256 probes in
    // flight, each held for two timeouts: 20,000 ports in 16 s at best).
    assert!(
        net.elapsed() < Duration::from_secs(6),
        "{:?} {e:?}",
        net.elapsed()
    );
}

#[test]
fn a_capped_scan_wakes_for_its_tokens_not_for_each_answer() {
    // At 5,000/s over a slow link the answers trickle in between the
    // rate's wakes; the loop reads them at its next wake instead of
    // waking for each.
    let mut net = FakeNetwork::new(vec![slow_host(0.0)]);
    let mut o = opts(&["198.18.4.2"], "1-3000");
    o.engine.rate = 5000;
    let (out, _) = scan(&mut net, &o);
    for v in &out.analysis.results {
        let want = if v.port == 22 {
            State::Open
        } else {
            State::Refused
        };
        assert_eq!(v.state, want, "{}:{}", v.target, v.port);
    }
    // 3,000 probes at 5,000/s: 0.6 s, about 30 wakes of 20 ms of tokens;
    // only the end (nothing left to send: about a queue's worth of
    // answers, 20 ms / 150 µs, still on their way) wakes on answers. When
    // every answer woke the loop: 3,001 waits, 3,000 ended by an answer.
    let took = net.elapsed();
    assert!(
        took >= Duration::from_millis(580) && took < Duration::from_millis(900),
        "{took:?}"
    );
    assert!(
        net.sent.woken < 150 && net.sent.waits < 200,
        "{} waits, {} ended by an answer",
        net.sent.waits,
        net.sent.woken
    );
}

#[test]
fn a_host_that_answers_nothing_is_scanned_at_the_silent_window() {
    // DROP for every port, nothing open: no answer times it, no port can
    // be pinged. Its window grows on silence to 2,048 probes, each held
    // for the 500 ms initial timeout: 20,000 ports, two sends each
    // (40,000), at up to 4,096 a second, in about 12 s (at the first
    // window, 256: 512 a second, 78 s).
    let mut net = FakeNetwork::new(vec![FakeHost::new(HOST, Behaviour::Drop)]);
    let (out, _) = scan(&mut net, &opts(&[HOST], "1-20000"));
    assert_eq!(out.analysis.summary.filtered, 20_000);
    assert!(out.analysis.results.iter().all(|v| v.probes == 2));
    let took = net.elapsed();
    assert!(
        took > Duration::from_secs(9) && took < Duration::from_secs(15),
        "{took:?}"
    );
}

#[test]
fn a_host_that_rate_limits_its_resets_is_paced_to_its_rate() {
    // FreeBSD and macOS answer at most 200 closed-port probes a second
    // (net.inet.icmp.icmplim); the rest go unanswered, however often they
    // are sent faster than that. Every closed port is still refused: the
    // host's pace is found from its answers and its probes kept to it.
    let bsd = FakeHost::new(HOST, Behaviour::Closed)
        .port(22, Behaviour::Open)
        .limit_resets(200.0, 200.0);
    let fast = FakeHost::new("203.0.113.3", Behaviour::Closed);
    let mut net = FakeNetwork::new(vec![bsd, fast]);
    let (out, _) = scan(&mut net, &opts(&[HOST, "203.0.113.3"], "1-3000"));
    let open = |v: &Verdict| v.target == addr(HOST) && v.port == 22;
    let wrong: Vec<_> = out
        .analysis
        .results
        .iter()
        .filter(|v| v.state != if open(v) { State::Open } else { State::Refused })
        .map(|v| (v.target, v.port, v.probes))
        .collect();
    assert_eq!(out.analysis.results.len(), 6000);
    let e = out.info.engine;
    assert!(wrong.is_empty(), "{} wrong: {wrong:?} {e:?}", wrong.len());
    assert!(net.resets_limited > 100, "the limit held resets back");
    // 2,800 resets beyond the first 200 at 200 a second: 14 s at best.
    // Unpaced, the scan gave up on 322 ports after 7 sends each, in 12.4 s.
    let took = net.elapsed();
    assert!(
        took > Duration::from_secs(14) && took < Duration::from_secs(17),
        "{took:?} {e:?}"
    );
    let note = out
        .info
        .warnings
        .iter()
        .find(|w| w.contains("probes a second"))
        .expect("the pace is said");
    assert!(
        note.starts_with(&format!("{HOST} answered at most about ")),
        "{note}"
    );
    // Only the limited host is paced: the fast host beside it is not, and
    // none of its ports needed a second send.
    assert!(!note.contains("203.0.113.3"), "{note}");
    assert!(
        out.analysis
            .results
            .iter()
            .filter(|v| v.target == addr("203.0.113.3"))
            .all(|v| v.probes == 1)
    );
}

#[test]
fn a_server_behind_a_syn_limit_is_paced_and_its_open_ports_found() {
    // A SYN limit in front of a server (iptables hashlimit, 100 a second,
    // 50 at once): SYNs beyond it are dropped whatever their port, so open
    // ports go silent too. Every port is still found: open ones open.
    let open = [22u16, 80, 443, 1500, 2999];
    let mut host = FakeHost::new(HOST, Behaviour::Closed).limit_syns(50.0, 100.0);
    for p in open {
        host = host.port(p, Behaviour::Open);
    }
    let mut net = FakeNetwork::new(vec![host]);
    let (out, _) = scan(&mut net, &opts(&[HOST], "1-3000"));
    let e = out.info.engine;
    let wrong: Vec<_> = out
        .analysis
        .results
        .iter()
        .filter(|v| {
            v.state
                != if open.contains(&v.port) {
                    State::Open
                } else {
                    State::Refused
                }
        })
        .map(|v| (v.port, v.probes))
        .collect();
    assert!(wrong.is_empty(), "{} wrong: {wrong:?} {e:?}", wrong.len());
    assert!(net.syns_limited > 100, "the limit dropped SYNs");
    // 2,950 SYNs beyond the first 50 at 100 a second: 29.5 s at best.
    let took = net.elapsed();
    assert!(
        took > Duration::from_secs(29) && took < Duration::from_secs(36),
        "{took:?} {e:?}"
    );
    assert!(
        out.info
            .warnings
            .iter()
            .any(|w| w.contains("probes a second")),
        "{:?}",
        out.info.warnings
    );
}
