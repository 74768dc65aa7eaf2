//! Fixture tests for the wire parsers: every link type, every ICMP error
//! kind, truncated and impossible lengths. None needs root or a file.

use super::*;
use crate::fixture::{self, Seg, addr};

fn syn4() -> Seg {
    Seg::syn("198.51.100.2", 40000, "203.0.113.2", 80, 0x0102_0304)
}

fn syn6() -> Seg {
    Seg::syn("2001:db8:1::2", 40000, "2001:db8:2::2", 443, 0xa0b0_c0d0)
}

fn expect_tcp(link: LinkType, frame: &[u8], s: &Seg) {
    let p = parse(link, frame).unwrap_or_else(|e| panic!("{link:?}: {e:?}"));
    assert_eq!(p.src, s.src);
    assert_eq!(p.dst, s.dst);
    assert_eq!(p.ttl, s.ttl);
    let Body::Tcp(t) = p.body else {
        panic!("not tcp: {p:?}")
    };
    assert_eq!(
        (t.sport, t.dport, t.seq, t.ack),
        (s.sport, s.dport, Seq(s.seq), Seq(s.ack))
    );
    assert_eq!(t.flags, s.flags);
}

/// Every supported framing of one IP packet.
fn framings(ip: &[u8]) -> Vec<(LinkType, Vec<u8>)> {
    let v6 = ip.first().map(|b| b >> 4) == Some(6);
    let mut v = vec![
        (LinkType::ETHERNET, fixture::ethernet(ip)),
        (LinkType::ETHERNET, fixture::ethernet_vlan(ip, 42)),
        (LinkType::LINUX_SLL, fixture::sll(ip)),
        (LinkType::LINUX_SLL2, fixture::sll2(ip)),
        (LinkType::RAW, ip.to_vec()),
        (LinkType::LINKTYPE_RAW, ip.to_vec()),
        (LinkType::RAW_OPENBSD, ip.to_vec()),
        (
            if v6 { LinkType::IPV6 } else { LinkType::IPV4 },
            ip.to_vec(),
        ),
    ];
    let families: &[u32] = if v6 { &[10, 24, 28, 30] } else { &[2] };
    for &f in families {
        v.push((LinkType::NULL, fixture::null_le(ip, f)));
        v.push((LinkType::NULL, fixture::loop_be(ip, f)));
        v.push((LinkType::LOOP, fixture::loop_be(ip, f)));
        v.push((LinkType::LOOP, fixture::null_le(ip, f)));
    }
    v
}

#[test]
fn syn_decodes_over_every_link_type_v4_and_v6() {
    for s in [syn4(), syn6()] {
        let ip = fixture::tcp_ip(&s);
        for (link, frame) in framings(&ip) {
            expect_tcp(link, &frame, &s);
        }
    }
}

#[test]
fn replies_keep_flags_and_ack() {
    let s = syn4();
    for flags_ in [flags::SYN | flags::ACK, flags::RST | flags::ACK, flags::RST] {
        let r = s.reply(flags_, 63);
        expect_tcp(
            LinkType::ETHERNET,
            &fixture::ethernet(&fixture::tcp_ip(&r)),
            &r,
        );
    }
}

/// A real frame as tcpdump shows it (`tcpdump -xx`): Ethernet, IPv4 with
/// TTL 63 and IP-ID 0, TCP 8081 → 51234 RST|ACK, ack 0x5c4b1e22.
const RST_ACK_HEX: &str = "0200000000010200000000020800\
4500002800004000\
3f06f6cbcb007102c6336402\
1f91c822000000005c4b1e22501400007f0a0000";

fn unhex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
    s.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap_or("00"), 16).unwrap_or(0))
        .collect()
}

#[test]
fn hex_fixture_rst_ack() {
    let frame = unhex(RST_ACK_HEX);
    let p = parse(LinkType::ETHERNET, &frame).unwrap();
    assert_eq!(p.src, addr("203.0.113.2"));
    assert_eq!(p.dst, addr("198.51.100.2"));
    assert_eq!(p.ttl, 63);
    assert_eq!(p.ip_id, Some(0));
    let Body::Tcp(t) = p.body else { panic!() };
    assert_eq!((t.sport, t.dport), (8081, 51234));
    assert_eq!(t.ack, 0x5c4b_1e22);
    assert!(t.has(flags::RST | flags::ACK));
    assert!(!t.has(flags::SYN));
}

fn icmp_frame(from: &str, s: &Seg, ty: u8, code: u8, quote_len: usize) -> Vec<u8> {
    let offending = fixture::tcp_ip(s);
    fixture::ethernet(&fixture::icmp_error_ip(
        addr(from),
        s.src,
        62,
        ty,
        code,
        &offending,
        quote_len,
    ))
}

#[test]
fn icmpv4_errors_every_code_quote_the_probe() {
    let s = syn4();
    let cases = (0u8..=15).map(|c| (3u8, c)).chain([(11, 0), (11, 1)]);
    for (ty, code) in cases {
        let f = icmp_frame("198.51.100.1", &s, ty, code, 28);
        let p = parse(LinkType::ETHERNET, &f).unwrap();
        assert_eq!(p.src, addr("198.51.100.1"));
        assert_eq!(p.ttl, 62);
        let Body::IcmpError(e) = p.body else { panic!() };
        let e = *e;
        assert_eq!((e.v6, e.icmp_type, e.code), (false, ty, code));
        assert_eq!(
            e.quoted,
            Quoted {
                src: s.src,
                dst: s.dst,
                sport: s.sport,
                dport: s.dport,
                seq: Some(Seq(s.seq))
            }
        );
    }
}

#[test]
fn icmpv6_errors_every_code_quote_the_probe() {
    let s = syn6();
    let cases = (0u8..=7).map(|c| (1u8, c)).chain([(3, 0), (3, 1)]);
    for (ty, code) in cases {
        let f = icmp_frame("2001:db8:1::1", &s, ty, code, 48);
        let p = parse(LinkType::ETHERNET, &f).unwrap();
        let Body::IcmpError(e) = p.body else { panic!() };
        let e = *e;
        assert_eq!((e.v6, e.icmp_type, e.code), (true, ty, code));
        assert_eq!(e.quoted.seq, Some(Seq(s.seq)));
        assert_eq!((e.quoted.sport, e.quoted.dport), (s.sport, s.dport));
        assert_eq!(e.quoted.src, s.src);
    }
}

#[test]
fn short_icmp_quotes() {
    let s = syn4();
    // Ports but no sequence number.
    let p = parse(
        LinkType::ETHERNET,
        &icmp_frame("198.51.100.1", &s, 3, 1, 24),
    )
    .unwrap();
    let Body::IcmpError(e) = p.body else { panic!() };
    let e = *e;
    assert_eq!(e.quoted.seq, None);
    assert_eq!(e.quoted.dport, 80);
    // Not even both ports, or no IP header at all.
    for len in [0, 10, 20, 22, 23] {
        assert_eq!(
            parse(
                LinkType::ETHERNET,
                &icmp_frame("198.51.100.1", &s, 3, 1, len)
            ),
            Err(Skip::Malformed),
            "quote of {len} bytes"
        );
    }
}

#[test]
fn other_traffic_is_skipped_not_failed() {
    // ICMP echo: not an error.
    let s = syn4();
    let echo = icmp_frame("198.51.100.1", &s, 8, 0, 28);
    assert_eq!(parse(LinkType::ETHERNET, &echo), Err(Skip::NotTcp));
    // UDP.
    let mut udp = Vec::new();
    etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(53, 53)
        .write(&mut udp, b"x")
        .unwrap();
    assert_eq!(parse(LinkType::RAW, &udp), Err(Skip::NotTcp));
    // ICMP error quoting UDP.
    let e = fixture::icmp_error_ip(addr("10.0.0.2"), addr("10.0.0.1"), 64, 3, 3, &udp, 28);
    assert_eq!(parse(LinkType::RAW, &e), Err(Skip::NotTcp));
    // ARP over Ethernet.
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
    arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&[0; 20]);
    assert_eq!(parse(LinkType::ETHERNET, &arp), Err(Skip::NotIp));
    // An unknown NULL family and an unknown link type.
    assert_eq!(
        parse(LinkType::NULL, &fixture::null_le(&udp, 7)),
        Err(Skip::NotIp)
    );
    assert_eq!(parse(LinkType(195), &udp), Err(Skip::UnsupportedLink));
    // Raw link carrying something that is not IP.
    assert_eq!(parse(LinkType::RAW, &[0x20, 0, 0, 0]), Err(Skip::NotIp));
}

#[test]
fn non_first_fragment_is_skipped() {
    let mut ip = fixture::tcp_ip(&syn4());
    // Fragment offset 8 (×8 bytes), checksum left stale: parsers must not care.
    ip[6] = 0x00;
    ip[7] = 0x08;
    assert_eq!(parse(LinkType::RAW, &ip), Err(Skip::Fragment));
}

#[test]
fn every_truncation_of_every_framing_is_an_error_not_a_panic() {
    for s in [syn4(), syn6()] {
        let ip = fixture::tcp_ip(&s);
        let ip_hlen = if s.src.is_ipv4() { 20 } else { 40 };
        for (link, frame) in framings(&ip) {
            // Where the TCP header starts in this framing.
            let tcp_at = frame.len() - ip.len() + ip_hlen;
            for cut in 0..frame.len() {
                let r = parse(link, &frame[..cut]);
                if cut >= tcp_at + 14 {
                    // The snap length cut the TCP header after its flags:
                    // what synscope reads is all there.
                    expect_tcp(link, &frame[..cut], &s);
                } else if cut >= tcp_at {
                    assert_eq!(r, Err(Skip::Truncated), "{link:?} cut at {cut}");
                } else {
                    assert!(
                        r.is_err(),
                        "{link:?} cut at {cut}/{} parsed: {r:?}",
                        frame.len()
                    );
                }
            }
        }
        let offending = fixture::tcp_ip(&s);
        let e = fixture::icmp_error_ip(addr("192.0.2.1"), s.src, 64, 3, 3, &offending, 48);
        for cut in 0..e.len() {
            let _ = parse(LinkType::RAW, &e[..cut]);
        }
    }
}

/// tcpdump's old 68-byte and Wireshark's 96-byte snap lengths: a SYN's
/// options cut off still gives the SYN; an ICMP error whose quote is cut
/// before the ports is counted as truncated, not malformed.
#[test]
fn snap_length_cuts() {
    // A SYN with 20 bytes of options (data offset 10) of which only the
    // fixed header was captured.
    let s = syn4();
    let mut ip = fixture::tcp_ip(&s);
    ip.truncate(40);
    ip[2..4].copy_from_slice(&60u16.to_be_bytes());
    ip[32] = 0xa0;
    let p = parse(LinkType::RAW, &ip).unwrap();
    let Body::Tcp(t) = p.body else { panic!() };
    assert_eq!(
        (t.sport, t.dport, t.seq, t.flags),
        (40000, 80, Seq(s.seq), flags::SYN)
    );
    // Not cut (the IP length says 40 bytes) but claiming options past its
    // end: malformed, as before.
    let mut bad = fixture::tcp_ip(&s);
    bad[32] = 0xa0;
    assert_eq!(parse(LinkType::RAW, &bad), Err(Skip::Malformed));
    // ICMPv6 error quoting the SYN, captured with a 96-byte snap length:
    // the quote stops inside its IPv6 header.
    let s6 = syn6();
    let f = icmp_frame("2001:db8:1::1", &s6, 1, 4, 48);
    assert!(f.len() > 96);
    assert_eq!(parse(LinkType::ETHERNET, &f[..96]), Err(Skip::Truncated));
    assert!(parse(LinkType::ETHERNET, &f).is_ok());
    // ICMPv4 error cut inside the quoted ports; with 68 bytes the ports
    // are there and the sequence number is not.
    let f = icmp_frame("198.51.100.1", &s, 3, 3, 28);
    assert_eq!(parse(LinkType::ETHERNET, &f[..64]), Err(Skip::Truncated));
    let p = parse(LinkType::ETHERNET, &f[..68]).unwrap();
    let Body::IcmpError(e) = p.body else { panic!() };
    assert_eq!((e.quoted.dport, e.quoted.seq), (80, None));
}

#[test]
fn impossible_lengths() {
    let ip = fixture::tcp_ip(&syn4());
    // IHL below 5.
    let mut bad = ip.clone();
    bad[0] = 0x44;
    assert_eq!(parse(LinkType::RAW, &bad), Err(Skip::Malformed));
    // IHL past the end of the packet.
    let mut bad = ip.clone();
    bad[0] = 0x4f;
    assert_eq!(parse(LinkType::RAW, &bad), Err(Skip::Malformed));
    // Total length smaller than the header: read laxly from the captured
    // bytes, as TSO/GSO captures carry 0 there.
    let mut odd = ip.clone();
    odd[2] = 0;
    odd[3] = 10;
    assert!(matches!(
        parse(LinkType::RAW, &odd),
        Ok(Packet {
            body: Body::Tcp(_),
            ..
        })
    ));
    // TCP data offset below 5 words, and past the end.
    for off in [0x00u8, 0x40, 0xf0] {
        let mut bad = ip.clone();
        bad[20 + 12] = off;
        assert_eq!(
            parse(LinkType::RAW, &bad),
            Err(Skip::Malformed),
            "offset {off:#x}"
        );
    }
    // Total length beyond the captured bytes (snap length): still decoded.
    let mut long = ip.clone();
    long[2] = 0x05;
    long[3] = 0xdc;
    assert!(matches!(
        parse(LinkType::RAW, &long),
        Ok(Packet {
            body: Body::Tcp(_),
            ..
        })
    ));
    // IPv6 payload length beyond the bytes, and zero (jumbo without option).
    let ip6 = fixture::tcp_ip(&syn6());
    for len in [[0xff, 0xff], [0, 0]] {
        let mut b = ip6.clone();
        b[4..6].copy_from_slice(&len);
        let _ = parse(LinkType::RAW, &b);
    }
}

#[test]
fn pseudo_random_bytes_never_panic() {
    // A fixed xorshift stream over every link type and many lengths; the
    // fuzz targets do this at scale, this keeps it in every test run.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let links = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 9999];
    let base = fixture::tcp_ip(&syn6());
    for i in 0..20_000 {
        let len = (next() % 120) as usize;
        let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 2 == 0 && len > 4 {
            // Start from a real packet and flip bytes, to get past the headers.
            buf = base.clone();
            for _ in 0..3 {
                let at = (next() as usize) % buf.len();
                buf[at] = next() as u8;
            }
        }
        let link = LinkType(links[(next() as usize) % links.len()]);
        let _ = parse(link, &buf);
    }
}

#[test]
fn dns_responses_are_read_and_queries_skipped() {
    use simple_dns::{
        CLASS, Name, Packet as DnsPacket, PacketFlag, RCODE, ResourceRecord, rdata::RData,
    };
    let mut p = DnsPacket::new_reply(7);
    p.set_flags(PacketFlag::RESPONSE);
    p.questions.push(simple_dns::Question::new(
        Name::new_unchecked("target.lab"),
        simple_dns::TYPE::A.into(),
        simple_dns::CLASS::IN.into(),
        false,
    ));
    p.answers.push(ResourceRecord::new(
        Name::new_unchecked("target.lab"),
        CLASS::IN,
        60,
        RData::A(simple_dns::rdata::A {
            address: u32::from_be_bytes([203, 0, 113, 2]),
        }),
    ));
    let ok = p.build_bytes_vec().unwrap();
    *p.rcode_mut() = RCODE::NameError;
    p.answers.clear();
    let nx = p.build_bytes_vec().unwrap();
    let udp = |sport: u16, payload: &[u8]| {
        let mut v = Vec::new();
        etherparse::PacketBuilder::ipv4([198, 51, 100, 1], [198, 51, 100, 2], 64)
            .udp(sport, 40000)
            .write(&mut v, payload)
            .unwrap();
        v
    };
    let Ok(Packet {
        body: Body::Dns(a), ..
    }) = parse(LinkType::RAW, &udp(53, &ok))
    else {
        panic!()
    };
    assert_eq!((a.name.as_str(), a.rcode), ("target.lab", 0));
    assert_eq!(a.addresses, vec![addr("203.0.113.2")]);
    let Ok(Packet {
        body: Body::Dns(a), ..
    }) = parse(LinkType::RAW, &udp(53, &nx))
    else {
        panic!()
    };
    assert_eq!(a.rcode, 3);
    // Not from port 53, or not DNS at all: skipped as before.
    assert_eq!(parse(LinkType::RAW, &udp(5353, &ok)), Err(Skip::NotTcp));
    assert_eq!(
        parse(LinkType::RAW, &udp(53, b"\x01\x02")),
        Err(Skip::NotTcp)
    );
    for cut in 0..ok.len() {
        let _ = parse(LinkType::RAW, &udp(53, &ok[..cut]));
    }
}

#[test]
fn the_frame_an_icmp_error_quotes_keeps_the_link_header() {
    use crate::fixture::{self, Seg, addr};
    let syn = Seg {
        src: addr("198.51.100.2"),
        dst: addr("203.0.113.2"),
        sport: 40000,
        dport: 9002,
        seq: 7,
        ack: 0,
        flags: crate::wire::flags::SYN,
        ttl: 64,
    };
    let quoted = fixture::tcp_ip(&syn);
    let err = fixture::icmp_error_ip(
        addr("198.51.100.1"),
        addr("198.51.100.2"),
        64,
        3,
        13,
        &quoted,
        quoted.len(),
    );
    // Raw IP: the quoted datagram itself.
    assert_eq!(
        super::quoted_frame(LinkType::RAW, &err).as_deref(),
        Some(&quoted[..])
    );
    // Ethernet: the same 14-byte header in front.
    let mut eth = vec![0u8; 12];
    eth.extend_from_slice(&[0x08, 0x00]);
    let mut frame = eth.clone();
    frame.extend_from_slice(&err);
    let mut want = eth;
    want.extend_from_slice(&quoted);
    assert_eq!(super::quoted_frame(LinkType::ETHERNET, &frame), Some(want));
    // Not an error: None.
    assert_eq!(super::quoted_frame(LinkType::RAW, &quoted), None);
    // Cut anywhere: no panic.
    for n in 0..err.len() {
        let _ = super::quoted_frame(LinkType::RAW, &err[..n]);
    }
}
