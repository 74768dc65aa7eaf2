//! The probe table from packet fixtures: matching, precedence, timing and
//! memory, all on packet time.

use super::*;
use crate::fixture::{self, Seg, addr};
use crate::model::{NANOS_PER_SEC, Reason, State, hops_from_ttl};
use crate::wire::{self, LinkType, Packet, flags};

const MS: Nanos = 1_000_000;
const T0: Nanos = 1_700_000_000 * NANOS_PER_SEC;

fn pkt(s: &Seg) -> Packet {
    wire::parse(LinkType::RAW, &fixture::tcp_ip(s)).unwrap()
}

fn icmp(from: &str, ttl: u8, ty: u8, code: u8, about: &Seg, quote: usize) -> Packet {
    let ip = fixture::icmp_error_ip(
        addr(from),
        about.src,
        ttl,
        ty,
        code,
        &fixture::tcp_ip(about),
        quote,
    );
    wire::parse(LinkType::RAW, &ip).unwrap()
}

fn syn(sport: u16, port: u16, isn: u32) -> Seg {
    Seg::syn("198.51.100.2", sport, "203.0.113.2", port, isn)
}

/// Runs packets (at T0 + ms offsets) through a fresh tracker and returns
/// every verdict, sorted by port, with the stats. The batch path
/// (`observe_all`, offline analysis's), whole and in runs of three, must
/// decide exactly as packet-by-packet `observe`.
fn run(events: &[(Nanos, Packet)]) -> (Vec<Verdict>, Stats) {
    let mut t = Tracker::new(Config::default());
    for (ms, p) in events {
        t.observe(T0 + ms * MS, p);
    }
    let (merged, stats) = t.finish();
    let out = merged.into_verdicts();
    let stamped: Vec<(Nanos, Packet)> = events
        .iter()
        .map(|(ms, p)| (T0 + ms * MS, p.clone()))
        .collect();
    for run in [stamped.len().max(1), 3] {
        let mut b = Tracker::new(Config::default());
        for part in stamped.chunks(run) {
            b.observe_all(part);
        }
        let (m, st) = b.finish();
        assert_eq!(
            (m.into_verdicts(), st),
            (out.clone(), stats),
            "runs of {run}"
        );
    }
    let n = events.len() as u64;
    assert_eq!(
        stats.syns + stats.replies + stats.unsolicited + stats.other_tcp,
        n,
        "every packet is counted once: {stats:?}"
    );
    (out, stats)
}

fn one(events: &[(Nanos, Packet)]) -> (Verdict, Stats) {
    let (v, s) = run(events);
    assert_eq!(v.len(), 1, "{v:#?}");
    (v.into_iter().next().unwrap(), s)
}

#[test]
fn syn_ack_is_open_with_responder_ttl_hops_rtt() {
    let s = syn(40000, 80, 1000);
    let (v, st) = one(&[
        (0, pkt(&s)),
        (12, pkt(&s.reply(flags::SYN | flags::ACK, 63))),
    ]);
    assert_eq!(v.state, State::Open);
    assert_eq!(v.reason, Reason::SynAck);
    assert_eq!(v.responder, Some(addr("203.0.113.2")));
    assert_eq!((v.ttl, v.hops), (Some(63), Some(2)));
    assert_eq!(v.rtt_ms, Some(12.0));
    assert_eq!((v.probes, v.attempts), (1, 1));
    assert_eq!(v.icmp_type, None);
    assert_eq!(st.replies, 1);
}

#[test]
fn rst_is_refused_with_ack_isn_plus_one_or_isn() {
    let s = syn(40000, 81, 5000);
    let (v, _) = one(&[
        (0, pkt(&s)),
        (1, pkt(&s.reply(flags::RST | flags::ACK, 64))),
    ]);
    assert_eq!((v.state, v.reason), (State::Refused, Reason::Reset));
    let mut r = s.reply(flags::RST, 64);
    r.ack = 5000;
    let (v, _) = one(&[(0, pkt(&s)), (1, pkt(&r))]);
    assert_eq!(v.state, State::Refused);
}

#[test]
fn forged_replies_are_unsolicited_and_change_nothing() {
    let s = syn(40000, 81, 5000);
    let mut bad_rst = s.reply(flags::RST | flags::ACK, 64);
    bad_rst.ack = 7777;
    let mut bad_synack = s.reply(flags::SYN | flags::ACK, 64);
    bad_synack.ack = 5000;
    let mut wrong_port = s.reply(flags::RST | flags::ACK, 64);
    wrong_port.dport = 1;
    let mut bad_quote = s;
    bad_quote.seq = 4999;
    let (v, st) = one(&[
        (0, pkt(&s)),
        (1, pkt(&bad_rst)),
        (2, pkt(&bad_synack)),
        (3, pkt(&wrong_port)),
        (4, icmp("198.51.100.1", 64, 3, 13, &bad_quote, 28)),
    ]);
    assert_eq!((v.state, v.reason), (State::Filtered, Reason::NoResponse));
    assert_eq!(st.unsolicited, 4);
    assert_eq!(st.replies, 0);
}

#[test]
fn icmp_errors_are_unreachable_with_sender_and_code() {
    let s = syn(40000, 9002, 42);
    let (v, _) = one(&[(0, pkt(&s)), (2, icmp("198.51.100.1", 64, 3, 13, &s, 28))]);
    assert_eq!(
        (v.state, v.reason),
        (State::Unreachable, Reason::AdminProhibited)
    );
    assert_eq!((v.icmp_type, v.icmp_code), (Some(3), Some(13)));
    assert_eq!(v.responder, Some(addr("198.51.100.1")));
    assert_eq!(v.hops, Some(1));
    // A quote without the sequence number is matched on the 4-tuple.
    let (v, _) = one(&[(0, pkt(&s)), (2, icmp("203.0.113.2", 63, 3, 3, &s, 24))]);
    assert_eq!(v.reason, Reason::PortUnreach);
    // Time exceeded.
    let (v, _) = one(&[(0, pkt(&s)), (2, icmp("198.51.100.1", 64, 11, 0, &s, 28))]);
    assert_eq!(
        (v.state, v.reason),
        (State::Unreachable, Reason::TimeExceeded)
    );
}

#[test]
fn icmpv6_errors() {
    let s = Seg::syn("2001:db8:1::2", 40000, "2001:db8:2::99", 80, 9);
    for (code, reason) in [
        (0, Reason::NoRoute),
        (1, Reason::AdminProhibited),
        (2, Reason::BeyondScope),
        (3, Reason::HostUnreach),
        (4, Reason::PortUnreach),
        (5, Reason::DestUnreach),
        (6, Reason::RejectRoute),
    ] {
        let (v, _) = one(&[
            (0, pkt(&s)),
            (3000, icmp("2001:db8:1::1", 64, 1, code, &s, 48)),
        ]);
        assert_eq!(
            (v.state, v.reason),
            (State::Unreachable, reason),
            "code {code}"
        );
        assert_eq!(v.rtt_ms, Some(3000.0));
    }
}

#[test]
fn silence_becomes_filtered_once_the_clock_passes_the_timeout() {
    assert_eq!(DEFAULT_TIMEOUT, 3_500 * MS);
    let s = syn(40000, 9000, 1);
    let other = syn(40001, 22, 2);
    let mut t = Tracker::new(Config::default());
    t.observe(T0, &pkt(&s));
    t.observe(T0 + 3_499 * MS, &pkt(&other));
    assert_eq!(t.decided_attempts(), 0, "not yet: 3.5 s have not passed");
    assert_eq!(t.live_attempts(), 2);
    t.observe(
        T0 + 3_501 * MS,
        &pkt(&other.reply(flags::SYN | flags::ACK, 63)),
    );
    let d = t.decided_verdicts();
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].port, d[0].state), (9000, State::Filtered));
    assert_eq!(t.live_attempts(), 1);
    // A reply to the expired attempt is too late: unsolicited.
    t.observe(T0 + 4_000 * MS, &pkt(&s.reply(flags::RST | flags::ACK, 63)));
    assert_eq!(t.stats().unsolicited, 1);
}

#[test]
fn a_reply_exactly_at_the_deadline_counts() {
    let s = syn(40000, 81, 1);
    let (v, _) = one(&[
        (0, pkt(&s)),
        (3500, pkt(&s.reply(flags::RST | flags::ACK, 64))),
    ]);
    assert_eq!(v.state, State::Refused);
    let (v, _) = one(&[
        (0, pkt(&s)),
        (3501, pkt(&s.reply(flags::RST | flags::ACK, 64))),
    ]);
    assert_eq!(v.state, State::Filtered);
}

#[test]
fn a_routers_error_for_a_failed_arp_answers_a_lone_syn() {
    // A Linux router resolves the host with 3 solicitations a second apart
    // and sends its host-unreachable 3.07-3.08 s after the SYN that
    // started it (measured in the real-world lab, IPv4 and IPv6): a
    // client that sends one SYN (masscan, zmap, nmap --max-retries 0)
    // still gets its verdict from it.
    let s = syn(62000, 22, 676_641_932);
    let (v, st) = one(&[(0, pkt(&s)), (3079, icmp("198.51.100.1", 64, 3, 1, &s, 28))]);
    assert_eq!(
        (v.state, v.reason, st.unsolicited),
        (State::Unreachable, Reason::HostUnreach, 0)
    );
    assert_eq!(v.rtt_ms, Some(3079.0));
    let s6 = Seg::syn("2001:db8:1::2", 57099, "2001:db8:2::99", 22, 9);
    let (v, st) = one(&[
        (0, pkt(&s6)),
        (3075, icmp("2001:db8:1::1", 64, 1, 3, &s6, 48)),
    ]);
    assert_eq!(
        (v.state, v.reason, st.unsolicited),
        (State::Unreachable, Reason::HostUnreach, 0)
    );
}

#[test]
fn retransmissions_extend_the_wait_and_count_as_probes() {
    let s = syn(40000, 80, 77);
    let (v, st) = one(&[
        (0, pkt(&s)),
        (1000, pkt(&s)),
        (3000, pkt(&s)),
        (5500, pkt(&s.reply(flags::SYN | flags::ACK, 63))),
    ]);
    assert_eq!(v.state, State::Open);
    assert_eq!((v.probes, v.attempts), (3, 1));
    assert_eq!(st.retransmissions, 2);
    assert_eq!(v.rtt_ms, Some(5500.0));
    // From the last SYN before the reply too, as one came after the first.
    assert_eq!(v.rtt_last_ms, Some(2500.0));
}

#[test]
fn an_error_that_answered_a_retransmission_says_how_soon() {
    let s = syn(40000, 80, 77);
    // A router without a route: silent at first (its budget spent), then
    // at once after the second SYN, 2.5 s later.
    let (v, _) = one(&[
        (0, pkt(&s)),
        (2500, pkt(&s)),
        (2501, icmp("198.51.100.1", 64, 3, 1, &s, 28)),
    ]);
    assert_eq!(v.reason, Reason::HostUnreach);
    assert_eq!((v.rtt_ms, v.rtt_last_ms), (Some(2501.0), Some(1.0)));
    // One SYN: the two would be the same, and only rtt_ms is given.
    let (v, _) = one(&[(0, pkt(&s)), (2900, icmp("198.51.100.1", 64, 3, 1, &s, 28))]);
    assert_eq!((v.rtt_ms, v.rtt_last_ms), (Some(2900.0), None));
}

#[test]
fn nmap_retry_from_a_new_source_port_is_one_verdict() {
    let a = syn(40000, 81, 10);
    let b = syn(40001, 81, 20);
    let (v, _) = one(&[
        (0, pkt(&a)),
        (1000, pkt(&b)),
        (1001, pkt(&b.reply(flags::RST | flags::ACK, 63))),
    ]);
    assert_eq!(v.state, State::Refused);
    assert_eq!((v.probes, v.attempts), (2, 2));
    assert_eq!(
        v.rtt_ms,
        Some(1.0),
        "rtt is from the answered attempt's first SYN"
    );
}

#[test]
fn precedence_syn_ack_over_rst_over_icmp() {
    let s = syn(40000, 443, 3);
    let (v, _) = one(&[
        (0, pkt(&s)),
        (1, icmp("198.51.100.1", 64, 3, 13, &s, 28)),
        (2, pkt(&s.reply(flags::RST | flags::ACK, 64))),
        (3, pkt(&s.reply(flags::SYN | flags::ACK, 63))),
    ]);
    assert_eq!(v.state, State::Open);
    assert_eq!(v.ttls, vec![63, 64], "both TTLs seen are reported");
    let (v, _) = one(&[
        (0, pkt(&s)),
        (1, pkt(&s.reply(flags::RST | flags::ACK, 64))),
        (2, icmp("198.51.100.1", 64, 3, 13, &s, 28)),
    ]);
    assert_eq!(v.state, State::Refused);
    assert!(v.ttls.is_empty(), "one distinct TTL: no list");
}

#[test]
fn split_handshake_syn_is_open() {
    let s = syn(40000, 80, 3);
    let mut back = s.reply(flags::SYN, 63);
    back.ack = 0;
    let (v, _) = one(&[(0, pkt(&s)), (1, pkt(&back))]);
    assert_eq!(
        (v.state, v.reason),
        (State::Open, Reason::SplitHandshakeSyn)
    );
}

#[test]
fn connection_traffic_is_not_unsolicited() {
    let s = syn(40000, 80, 100);
    let synack = s.reply(flags::SYN | flags::ACK, 63);
    let mut ack = s;
    ack.flags = flags::ACK;
    ack.seq = 101;
    let mut data = synack;
    data.flags = flags::ACK | flags::PSH;
    let mut late_rst = synack;
    late_rst.flags = flags::RST | flags::ACK;
    late_rst.ack = 500;
    let (v, st) = one(&[
        (0, pkt(&s)),
        (1, pkt(&synack)),
        (2, pkt(&ack)),
        (10, pkt(&data)),
        (2500, pkt(&data)),
        (5000, pkt(&data)),
        (7500, pkt(&late_rst)),
    ]);
    assert_eq!(v.state, State::Open);
    assert_eq!(st.unsolicited, 0, "{st:?}");
    assert_eq!(st.other_tcp, 5);
}

#[test]
fn client_rst_after_syn_ack_is_its_own_traffic() {
    let s = syn(40000, 22, 1);
    let mut crst = s;
    crst.flags = flags::RST;
    crst.seq = 2;
    let (v, st) = one(&[
        (0, pkt(&s)),
        (1, pkt(&s.reply(flags::SYN | flags::ACK, 63))),
        (2, pkt(&crst)),
    ]);
    assert_eq!(v.state, State::Open);
    assert_eq!((st.other_tcp, st.unsolicited), (1, 0));
}

#[test]
fn a_second_episode_later_merges_into_one_verdict() {
    // Filtered at first, answered an hour later: the stronger evidence wins.
    let a = syn(40000, 80, 1);
    let b = syn(40002, 80, 2);
    let (m, _) = one(&[
        (0, pkt(&a)),
        (3_600_000, pkt(&b)),
        (3_600_001, pkt(&b.reply(flags::SYN | flags::ACK, 63))),
    ]);
    assert_eq!(m.state, State::Open);
    assert_eq!((m.probes, m.attempts), (2, 2));
    assert_eq!(m.first_probe_ns, T0);
    assert_eq!(m.rtt_ms, Some(1.0));
}

#[test]
fn timestamps_going_backwards_do_not_break_the_clock() {
    let s = syn(40000, 81, 1);
    let (v, _) = one(&[
        (5000, pkt(&s)),
        (10, pkt(&s.reply(flags::RST | flags::ACK, 63))),
    ]);
    assert_eq!(v.state, State::Refused);
    assert_eq!(v.rtt_ms, Some(0.0));
}

#[test]
fn memory_stays_bounded_on_a_long_scan() {
    // 200,000 probes at 10,000 per second, half answered: the table holds
    // about timeout × rate attempts (3.5 s × 10,000), never the whole scan.
    let mut t = Tracker::new(Config::default());
    let mut peak = 0;
    for i in 0..200_000u32 {
        let port = (i % 65535 + 1) as u16;
        let target = format!("203.0.{}.{}", (i / 65535) % 256, 2);
        let s = Seg::syn("198.51.100.2", 40000, &target, port, i);
        let ts = T0 + u64::from(i) * 100_000;
        t.observe(ts, &pkt(&s));
        if i % 2 == 0 {
            t.observe(ts + 50_000, &pkt(&s.reply(flags::RST | flags::ACK, 63)));
        }
        peak = peak.max(t.live_attempts());
    }
    let decided = t.decided_attempts();
    assert!(decided > 150_000, "decided as the scan went: {decided}");
    let (merged, _) = t.finish();
    assert_eq!(merged.len(), 200_000);
    assert!(peak <= 35_100, "peak {peak}");
}

#[test]
fn the_hard_cap_evicts_the_oldest_and_counts_it() {
    let mut t = Tracker::new(Config {
        max_attempts: 100,
        ..Config::default()
    });
    for i in 0..1000u16 {
        t.observe(T0, &pkt(&syn(40000, i + 1, u32::from(i))));
        assert!(t.live_attempts() <= 100);
    }
    assert_eq!(t.decided_attempts(), 900);
    let (merged, st) = t.finish();
    assert_eq!(st.evicted, 900);
    assert_eq!(merged.len(), 1000);
}

#[test]
fn hops_from_ttl_uses_the_next_usual_initial_ttl() {
    for (ttl, hops) in [
        (64, 1),
        (63, 2),
        (1, 32),
        (32, 1),
        (33, 32),
        (128, 1),
        (120, 9),
        (255, 1),
        (250, 6),
        (0, 33),
    ] {
        assert_eq!(hops_from_ttl(ttl), hops, "ttl {ttl}");
    }
}

#[test]
fn icmpv4_reason_names() {
    for (code, r) in [
        (0, Reason::NetUnreach),
        (1, Reason::HostUnreach),
        (2, Reason::ProtoUnreach),
        (3, Reason::PortUnreach),
        (4, Reason::DestUnreach),
        (9, Reason::NetProhibited),
        (10, Reason::HostProhibited),
        (13, Reason::AdminProhibited),
        (15, Reason::DestUnreach),
    ] {
        assert_eq!(Reason::from_icmp(false, 3, code), r);
    }
    assert_eq!(Reason::from_icmp(false, 11, 1), Reason::TimeExceeded);
    assert_eq!(Reason::from_icmp(true, 3, 0), Reason::TimeExceeded);
    assert_eq!(
        serde_json::to_string(&Reason::SplitHandshakeSyn).unwrap(),
        "\"split-handshake-syn\""
    );
}

#[test]
fn a_late_reply_is_unsolicited_even_while_the_attempt_lingers() {
    // The retransmission moves the deadline to 4.5 s; expiry is lazy, but
    // a reply at 5 s is still too late.
    let s = syn(40000, 81, 1);
    let (v, st) = one(&[
        (0, pkt(&s)),
        (1000, pkt(&s)),
        (5000, pkt(&s.reply(flags::RST | flags::ACK, 64))),
    ]);
    assert_eq!(v.state, State::Filtered);
    assert_eq!(st.unsolicited, 1);
}

/// An attempt's SYN, its answers in both directions and the ICMP errors
/// quoting it fall in one partition, whatever the number of partitions;
/// many flows spread over all of them.
#[test]
fn partitions_keep_an_attempt_together() {
    for port in [22u16, 80, 443, 8081, 9000] {
        let s = syn(40000 + port, port, 7);
        let packets = [
            pkt(&s),
            pkt(&s.reply(flags::SYN | flags::ACK, 63)),
            pkt(&s.reply(flags::RST | flags::ACK, 63)),
            icmp("198.51.100.1", 64, 3, 13, &s, 28),
            icmp("203.0.113.2", 63, 3, 3, &s, 8 + 20),
        ];
        for n in 1..=8 {
            let p = partition(&packets[0], n);
            assert!(p < n);
            for q in &packets[1..] {
                assert_eq!(partition(q, n), p, "port {port}, {n} partitions");
            }
        }
    }
    let mut counts = [0usize; 4];
    for port in 1..=4000u16 {
        counts[partition(&pkt(&syn(50000, port, 1)), 4)] += 1;
    }
    assert!(counts.iter().all(|&c| c > 700), "{counts:?}");
}

#[test]
fn verdicts_come_sorted_by_target_port_client_across_families() {
    let segs = [
        Seg::syn("2001:db8::9", 40000, "2001:db8::1", 80, 1),
        Seg::syn("198.51.100.9", 40001, "203.0.113.2", 443, 2),
        Seg::syn("198.51.100.2", 40002, "203.0.113.2", 443, 3),
        Seg::syn("198.51.100.2", 40003, "192.0.2.7", 22, 4),
        Seg::syn("2001:db8::2", 40004, "2001:db8::1", 80, 5),
        Seg::syn("198.51.100.2", 40005, "203.0.113.2", 22, 6),
        Seg::syn("2001:db8::2", 40006, "2001:db8::1", 7, 7),
    ];
    let events: Vec<(Nanos, Packet)> = segs.iter().map(|s| (0, pkt(s))).collect();
    let (v, _) = run(&events);
    let got: Vec<_> = v.iter().map(|v| (v.target, v.port, v.client)).collect();
    let mut want = got.clone();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(got.len(), segs.len());
    assert_eq!(got[0].0, addr("192.0.2.7"));
    assert_eq!(got[6], (addr("2001:db8::1"), 80, addr("2001:db8::9")));
}
