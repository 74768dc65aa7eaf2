//! Frame builders for tests, fuzz seeds and benchmarks: TCP segments and
//! ICMP errors over every link type synscope reads, as raw bytes.

use crate::wire::flags;
use etherparse::{PacketBuilder, TcpHeader};
use std::net::IpAddr;

/// A TCP segment to build.
#[derive(Debug, Clone, Copy)]
pub struct Seg {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub ttl: u8,
}

impl Seg {
    /// A client's SYN with TTL 64.
    pub fn syn(src: &str, sport: u16, dst: &str, dport: u16, seq: u32) -> Seg {
        Seg {
            src: addr(src),
            dst: addr(dst),
            sport,
            dport,
            seq,
            ack: 0,
            flags: flags::SYN,
            ttl: 64,
        }
    }

    /// The reply to this segment with the given flags, ack = seq + 1.
    pub fn reply(&self, flags: u8, ttl: u8) -> Seg {
        Seg {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            seq: 0x1000_0000,
            ack: self.seq.wrapping_add(1),
            flags,
            ttl,
        }
    }
}

/// Parses an address literal; fixtures only use valid ones.
pub fn addr(s: &str) -> IpAddr {
    s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

fn tcp_header(s: &Seg) -> TcpHeader {
    let mut h = TcpHeader::new(s.sport, s.dport, s.seq, 64240);
    h.fin = s.flags & flags::FIN != 0;
    h.syn = s.flags & flags::SYN != 0;
    h.rst = s.flags & flags::RST != 0;
    h.psh = s.flags & flags::PSH != 0;
    h.ack = s.flags & flags::ACK != 0;
    h.acknowledgment_number = s.ack;
    h
}

/// The segment as a raw IPv4 or IPv6 packet (by its addresses' family).
pub fn tcp_ip(s: &Seg) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    let h = tcp_header(s);
    let res = match (s.src, s.dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => PacketBuilder::ipv4(a.octets(), b.octets(), s.ttl)
            .tcp_header(h)
            .write(&mut out, &[]),
        (a, b) => PacketBuilder::ipv6(v6(a), v6(b), s.ttl)
            .tcp_header(h)
            .write(&mut out, &[]),
    };
    res.map(|_| out).unwrap_or_default()
}

fn v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
    }
}

/// An ICMP error from `from` to `to` quoting the first `quote_len` bytes of
/// the IP packet `offending` (ICMPv4 or ICMPv6 by `from`'s family).
pub fn icmp_error_ip(
    from: IpAddr,
    to: IpAddr,
    ttl: u8,
    icmp_type: u8,
    code: u8,
    offending: &[u8],
    quote_len: usize,
) -> Vec<u8> {
    let quote = &offending[..quote_len.min(offending.len())];
    let mut out = Vec::with_capacity(64 + quote.len());
    let res = match (from, to) {
        (IpAddr::V4(a), IpAddr::V4(b)) => PacketBuilder::ipv4(a.octets(), b.octets(), ttl)
            .icmpv4_raw(icmp_type, code, [0; 4])
            .write(&mut out, quote),
        (a, b) => PacketBuilder::ipv6(v6(a), v6(b), ttl)
            .icmpv6_raw(icmp_type, code, [0; 4])
            .write(&mut out, quote),
    };
    res.map(|_| out).unwrap_or_default()
}

fn ethertype(ip: &[u8]) -> [u8; 2] {
    match ip.first().map(|b| b >> 4) {
        Some(6) => [0x86, 0xdd],
        _ => [0x08, 0x00],
    }
}

/// Ethernet II framing.
pub fn ethernet(ip: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    f.extend_from_slice(&ethertype(ip));
    f.extend_from_slice(ip);
    f
}

/// Ethernet II with one 802.1Q tag.
pub fn ethernet_vlan(ip: &[u8], vlan: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x81, 0x00];
    f.extend_from_slice(&(vlan & 0x0fff).to_be_bytes());
    f.extend_from_slice(&ethertype(ip));
    f.extend_from_slice(ip);
    f
}

/// Linux cooked capture v1 (16 bytes).
pub fn sll(ip: &[u8]) -> Vec<u8> {
    let mut f = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    f.extend_from_slice(&ethertype(ip));
    f.extend_from_slice(ip);
    f
}

/// Linux cooked capture v2 (20 bytes), what `tcpdump -i any` writes.
pub fn sll2(ip: &[u8]) -> Vec<u8> {
    let mut f = ethertype(ip).to_vec();
    f.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
    f.extend_from_slice(ip);
    f
}

/// BSD NULL: the address family in little-endian (as written on x86).
pub fn null_le(ip: &[u8], family: u32) -> Vec<u8> {
    let mut f = family.to_le_bytes().to_vec();
    f.extend_from_slice(ip);
    f
}

/// OpenBSD LOOP: the address family in network byte order.
pub fn loop_be(ip: &[u8], family: u32) -> Vec<u8> {
    let mut f = family.to_be_bytes().to_vec();
    f.extend_from_slice(ip);
    f
}
