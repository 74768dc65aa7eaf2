//! Findings from verdict fixtures shaped like the lab's answers.

use super::findings::*;
use crate::fixture::addr;
use crate::model::{Reason, State, Verdict};

fn v(port: u16, state: State, reason: Reason, responder: Option<&str>, ttl: Option<u8>) -> Verdict {
    Verdict {
        client: addr("198.51.100.2"),
        target: addr("203.0.113.2"),
        port,
        state,
        reason,
        icmp_type: None,
        icmp_code: None,
        responder: responder.map(addr),
        ttl,
        hops: ttl.map(crate::model::hops_from_ttl),
        rtt_ms: Some(0.2),
        rtt_last_ms: None,
        probes: 1,
        attempts: 1,
        ttls: vec![],
        ip_id: None,
        first_probe_ns: 0,
        decided_ns: None,
        uncertain: false,
        inferred: None,
        host_hops: None,
        name: None,
        process: None,
    }
}

fn icmp(mut x: Verdict, t: u8, c: u8) -> Verdict {
    x.icmp_type = Some(t);
    x.icmp_code = Some(c);
    x
}

const T: &str = "203.0.113.2";
const R: &str = "198.51.100.1";

fn lab() -> Vec<Verdict> {
    vec![
        v(22, State::Open, Reason::SynAck, Some(T), Some(63)),
        v(80, State::Open, Reason::SynAck, Some(T), Some(63)),
        v(8080, State::Open, Reason::SynAck, Some(T), Some(63)),
        v(8081, State::Refused, Reason::Reset, Some(T), Some(63)),
        v(9003, State::Refused, Reason::Reset, Some(T), Some(64)),
        icmp(
            v(
                9001,
                State::Unreachable,
                Reason::PortUnreach,
                Some(T),
                Some(63),
            ),
            3,
            3,
        ),
        icmp(
            v(
                9002,
                State::Unreachable,
                Reason::AdminProhibited,
                Some(R),
                Some(64),
            ),
            3,
            13,
        ),
        v(9000, State::Filtered, Reason::NoResponse, None, None),
    ]
}

#[test]
fn profile_learns_the_hosts_distance() {
    let p = profile(addr(T), &lab());
    assert_eq!(p.hops, Some(2));
    assert_eq!(p.open, vec![22, 80, 8080]);
    assert!(
        p.answering.contains(&9003),
        "the forged RST carries the host's address"
    );
}

#[test]
fn wrong_port_names_the_open_neighbour() {
    let f = finding(addr(T), 8081, &lab()).unwrap();
    assert_eq!(f.kind, Kind::RefusedByHost);
    assert!(
        f.summary.contains("nothing listens on port 8081"),
        "{}",
        f.summary
    );
    assert!(
        f.summary.contains("Port 8080 is open: wrong port?"),
        "{}",
        f.summary
    );
    assert!(f.details.iter().any(|d| d.contains("server that is down")));
    assert_eq!(
        f.application_error.as_deref(),
        Some("connect() fails with ECONNREFUSED \"Connection refused\"")
    );
    assert_eq!(f.evidence[0].port, 8081);
    assert!(f.evidence.len() > 1, "reference ports shown too");
}

#[test]
fn a_reset_one_hop_nearer_is_a_middlebox() {
    let f = finding(addr(T), 9003, &lab()).unwrap();
    assert_eq!(f.kind, Kind::MiddleboxReset);
    assert!(f.summary.contains("1 hop away"), "{}", f.summary);
    assert!(f.summary.contains("2 hops away"), "{}", f.summary);
}

#[test]
fn icmp_rejections_name_sender_and_application_error() {
    let f = finding(addr(T), 9002, &lab()).unwrap();
    assert_eq!(f.kind, Kind::RejectedOnPath);
    assert!(
        f.summary.contains(R) && f.summary.contains("admin-prohibited"),
        "{}",
        f.summary
    );
    assert_eq!(
        f.application_error.as_deref(),
        Some("connect() fails with EHOSTUNREACH \"No route to host\"")
    );
    let f = finding(addr(T), 9001, &lab()).unwrap();
    assert_eq!(f.kind, Kind::RejectedByHost);
    assert_eq!(
        f.application_error.as_deref(),
        Some("connect() fails with ECONNREFUSED \"Connection refused\"")
    );
}

#[test]
fn silence_with_the_host_up_is_a_drop() {
    let f = finding(addr(T), 9000, &lab()).unwrap();
    assert_eq!(f.kind, Kind::DroppedHostUp);
    assert!(
        f.summary.contains("answers on other ports"),
        "{}",
        f.summary
    );
    let silent: Vec<Verdict> = lab().into_iter().filter(|x| x.port == 9000).collect();
    assert_eq!(
        finding(addr(T), 9000, &silent).unwrap().kind,
        Kind::NoAnswerAtAll
    );
}

#[test]
fn absent_host_and_routes() {
    let mut x = icmp(
        v(
            80,
            State::Unreachable,
            Reason::HostUnreach,
            Some(R),
            Some(64),
        ),
        3,
        1,
    );
    x.rtt_ms = Some(3050.0);
    let f = finding(addr(T), 80, &[x.clone()]).unwrap();
    assert_eq!(f.kind, Kind::HostUnreachable);
    let far = |f: &Finding| crate::report::picture_text(&crate::report::picture(f, None, None));
    assert!(
        far(&f).ends_with("no answer to the router's ARP / ND"),
        "{}",
        far(&f)
    );
    assert!(f.details.iter().any(|d| d.contains("ARP")));
    assert!(
        f.details.iter().any(|d| d.contains("3.0 s after")),
        "{:?}",
        f.details
    );
    // The same error at ARP's time, though just after a retransmission
    // (a client's SYNs at 0, 1 and 3 s): still the ARP.
    x.rtt_last_ms = Some(50.0);
    let f = finding(addr(T), 80, &[x.clone()]).unwrap();
    assert!(f.details.iter().any(|d| d.contains("3.0 s after")), "{f:?}");
    // At once: a router without a route (an unreachable route), not ARP.
    x.rtt_ms = Some(0.4);
    x.rtt_last_ms = None;
    let f = finding(addr(T), 80, &[x.clone()]).unwrap();
    assert_eq!(f.kind, Kind::HostUnreachable);
    assert!(
        f.details.iter().all(|d| !d.contains("got no answer"))
            && f.details[0].contains("0.400 ms after the SYN, too soon for a failed ARP"),
        "{:?}",
        f.details
    );
    assert!(far(&f).ends_with("no route to it"), "{}", far(&f));
    // A millisecond or more: to the tenth.
    x.rtt_ms = Some(12.34);
    let f = finding(addr(T), 80, &[x.clone()]).unwrap();
    assert!(
        f.details[0].contains("came 12.3 ms after the SYN"),
        "{:?}",
        f.details
    );
    // At once after the second SYN of a slow re-probe, 2.5 s after the
    // first: no route either.
    x.rtt_ms = Some(2500.3);
    x.rtt_last_ms = Some(0.3);
    let f = finding(addr(T), 80, &[x.clone()]).unwrap();
    assert!(
        f.details[0].contains("0.300 ms after a retransmitted SYN"),
        "{:?}",
        f.details
    );
    // Inferred (no timing): both causes said.
    x.rtt_ms = None;
    x.rtt_last_ms = None;
    let f = finding(addr(T), 80, &[x.clone()]).unwrap();
    assert!(f.details[0].starts_with("Either"), "{:?}", f.details);
    // Inferred from port 22's own error, which came at ARP's time.
    x.inferred = Some(crate::model::Inferred {
        errors: 1,
        from_ports: vec![22],
    });
    let mut told = x.clone();
    (told.port, told.inferred, told.rtt_ms) = (22, None, Some(3040.0));
    let f = finding(addr(T), 80, &[told, x]).unwrap();
    assert!(
        f.details[1]
            .starts_with("Its error for the ports told by a packet of their own came 3.0 s after"),
        "{:?}",
        f.details
    );
    let n = icmp(
        v(
            80,
            State::Unreachable,
            Reason::NetUnreach,
            Some(R),
            Some(64),
        ),
        3,
        0,
    );
    assert_eq!(
        finding(addr(T), 80, &[n]).unwrap().kind,
        Kind::NetworkUnreachable
    );
}

#[test]
fn application_errors_follow_linux() {
    let mut x = v(
        80,
        State::Unreachable,
        Reason::AdminProhibited,
        Some(R),
        Some(64),
    );
    for (t, c, want) in [
        (3, 0, "ENETUNREACH"),
        (3, 1, "EHOSTUNREACH"),
        (3, 3, "ECONNREFUSED"),
        (3, 13, "EHOSTUNREACH"),
        (11, 0, "ETIMEDOUT"),
    ] {
        x = icmp(x, t, c);
        assert!(application_error(&x).unwrap().contains(want), "{t}/{c}");
    }
    x.target = addr("2001:db8::2");
    for (t, c, want) in [
        (1, 0, "ENETUNREACH"),
        (1, 1, "EACCES"),
        (1, 3, "EHOSTUNREACH"),
        (1, 4, "ECONNREFUSED"),
    ] {
        x = icmp(x, t, c);
        assert!(application_error(&x).unwrap().contains(want), "v6 {t}/{c}");
    }
}

mod drop_location {
    use super::*;
    use crate::model::{Hop, HopKind, PortTrace};

    fn te(ttl: u8, from: &str) -> Hop {
        Hop {
            ttl,
            from: addr(from),
            kind: HopKind::TimeExceeded,
        }
    }

    fn reference() -> PortTrace {
        PortTrace {
            port: 22,
            hops: vec![
                te(1, "198.51.100.1"),
                te(2, "198.18.0.2"),
                Hop {
                    ttl: 3,
                    from: addr("198.18.1.2"),
                    kind: HopKind::Reached {
                        reason: Reason::SynAck,
                    },
                },
            ],
        }
    }

    #[test]
    fn a_drop_at_the_first_router_is_located_there() {
        let silent = PortTrace {
            port: 9004,
            hops: vec![te(1, "198.51.100.1")],
        };
        let l = locate_drop(addr("198.18.1.2"), &silent, &reference()).unwrap();
        assert_eq!((l.last_hop, l.at_host, l.host_hop), (1, false, Some(3)));
        assert!(
            l.text.contains("at or just after hop 1 (198.51.100.1)"),
            "{}",
            l.text
        );
        assert!(
            l.text.contains("answered there by 198.18.0.2"),
            "{}",
            l.text
        );
    }

    #[test]
    fn a_drop_at_the_host_is_located_at_the_last_hop() {
        let silent = PortTrace {
            port: 9000,
            hops: vec![te(1, "198.51.100.1"), te(2, "198.18.0.2")],
        };
        let l = locate_drop(addr("198.18.1.2"), &silent, &reference()).unwrap();
        assert!(l.at_host);
        assert!(l.text.starts_with("Located at the last hop"), "{}", l.text);
    }

    #[test]
    fn no_reference_no_location() {
        let silent = PortTrace {
            port: 9000,
            hops: vec![],
        };
        let none = PortTrace {
            port: 22,
            hops: vec![],
        };
        assert!(locate_drop(addr("198.18.1.2"), &silent, &none).is_none());
    }
}
