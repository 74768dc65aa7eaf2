//! wire: captured bytes → the few header fields synscope decides on.
//!
//! Parsing goes link layer → IP → TCP / ICMP error with etherparse's
//! checked header views (each checks its length before any field is read);
//! lengths are read laxly, so a packet cut short by the snap length still
//! yields its headers. Every path returns either a [`Packet`] or a [`Skip`] reason;
//! nothing here panics on any input (see the fixture tests below and the
//! fuzz targets).

mod link;

pub use link::LinkType;

use etherparse::{
    EtherType, Icmpv4Slice, Icmpv6Slice, IpNumber, Ipv4HeaderSlice, Ipv6ExtensionSlice,
    Ipv6ExtensionsSlice, Ipv6HeaderSlice, LaxIpSlice, TcpHeaderSlice, err::ip::LaxHeaderSliceError,
};
use std::net::IpAddr;

/// TCP flag bits as they stand in byte 13 of the TCP header.
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// One decoded packet: the IP fields the verdicts need and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit as received.
    pub ttl: u8,
    /// IPv4 identification (None for IPv6).
    pub ip_id: Option<u16>,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Tcp(Tcp),
    /// Boxed: it is rare, and inline it would double the size of every
    /// packet (a TCP packet with its timestamp fits one cache line).
    IcmpError(Box<IcmpError>),
    /// A DNS response (UDP from port 53): what a client was told about a
    /// name before any SYN. Boxed, as it is rare.
    Dns(Box<DnsAnswer>),
}

/// The gist of a DNS response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    /// The first question's name.
    pub name: String,
    /// RCODE: 0 no error, 2 server failure, 3 NXDOMAIN (no such name), ...
    pub rcode: u8,
    /// A and AAAA records in the answer section.
    pub addresses: Vec<IpAddr>,
    /// The first question's type (1 A, 28 AAAA, ...).
    pub qtype: u16,
    /// The client's UDP port (the answer's destination port, a query's
    /// source port).
    pub port: u16,
    /// The transaction id.
    pub id: u16,
    /// A response (false: a query, UDP to port 53).
    pub response: bool,
}

/// A TCP sequence number: arithmetic wraps modulo 2^32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seq(pub u32);

impl Seq {
    /// The number `n` after this one, modulo 2^32.
    pub fn plus(self, n: u32) -> Seq {
        Seq(self.0.wrapping_add(n))
    }
}

impl PartialEq<u32> for Seq {
    fn eq(&self, other: &u32) -> bool {
        self.0 == *other
    }
}

impl std::fmt::Display for Seq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tcp {
    pub sport: u16,
    pub dport: u16,
    pub seq: Seq,
    pub ack: Seq,
    /// Flag bits, see [`flags`].
    pub flags: u8,
}

impl Tcp {
    pub fn has(&self, bits: u8) -> bool {
        self.flags & bits == bits
    }

    pub fn syn(&self) -> bool {
        self.flags & flags::SYN != 0
    }

    pub fn ack_flag(&self) -> bool {
        self.flags & flags::ACK != 0
    }

    pub fn rst(&self) -> bool {
        self.flags & flags::RST != 0
    }

    /// A SYN without ACK or RST: a connection attempt (or, sent back by
    /// the server, a split handshake).
    pub fn bare_syn(&self) -> bool {
        self.syn() && !self.ack_flag() && !self.rst()
    }

    /// What this segment, sent back to a SYN whose initial sequence number
    /// was `isn`, says of it: a SYN-ACK acknowledges `isn + 1`; a RST
    /// carries `isn + 1` (the usual reset of a closed port) or `isn` (some
    /// stacks and middleboxes). The one place this rule is written.
    pub fn answer_to(&self, isn: Seq) -> Option<SynAnswer> {
        if self.syn() && self.ack_flag() && self.ack == isn.plus(1) {
            Some(SynAnswer::SynAck)
        } else if self.rst() && (self.ack == isn.plus(1) || self.ack == isn) {
            Some(SynAnswer::Reset)
        } else {
            None
        }
    }
}

/// How a segment answers a SYN (see [`Tcp::answer_to`]); a SYN-ACK ranks
/// before a RST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SynAnswer {
    SynAck,
    Reset,
}

/// An ICMP error (ICMPv4 type 3 / 11, ICMPv6 type 1 / 3) quoting a TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpError {
    pub v6: bool,
    pub icmp_type: u8,
    pub code: u8,
    pub quoted: Quoted,
}

/// What the ICMP error quotes of the offending packet: its addresses and the
/// first 8 bytes of its TCP header (RFC 792 promises no more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    /// Present when the quote holds at least 8 TCP bytes.
    pub seq: Option<Seq>,
}

/// Why a packet was not decoded into a [`Packet`]. Counted, never fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    /// The file's link type is not one synscope decodes.
    UnsupportedLink,
    /// Not IPv4 / IPv6 (ARP, LLDP, ...).
    NotIp,
    /// IP but neither TCP nor an ICMP error quoting TCP.
    NotTcp,
    /// A non-first IP fragment: no transport header to read.
    Fragment,
    /// Headers cut short or impossible (bad lengths, bad offsets).
    Malformed,
    /// The capture's snap length cut the packet before the headers
    /// synscope reads (a TCP header's first 14 bytes, or the IP header and
    /// ports an ICMP error quotes): take captures with `-s 0` or at least
    /// 128 bytes.
    Truncated,
}

impl Skip {
    /// Every reason, in the order of their discriminants.
    pub const ALL: [Skip; 6] = [
        Skip::UnsupportedLink,
        Skip::NotIp,
        Skip::NotTcp,
        Skip::Fragment,
        Skip::Malformed,
        Skip::Truncated,
    ];

    /// Its place in [`Skip::ALL`] (for counting in arrays).
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Skip::UnsupportedLink => "unsupported-link",
            Skip::NotIp => "not-ip",
            Skip::NotTcp => "not-tcp",
            Skip::Fragment => "fragment",
            Skip::Malformed => "malformed",
            Skip::Truncated => "truncated",
        }
    }
}

const ICMP4_DEST_UNREACH: u8 = 3;
const ICMP4_TIME_EXCEEDED: u8 = 11;
const ICMP6_DEST_UNREACH: u8 = 1;
const ICMP6_TIME_EXCEEDED: u8 = 3;

/// Decodes one captured frame of the given link type.
pub fn parse(link: LinkType, data: &[u8]) -> Result<Packet, Skip> {
    let (ether_type, net) = link::network(link, data)?;
    match ether_type {
        EtherType::IPV4 => ipv4(net),
        EtherType::IPV6 => ipv6(net),
        _ => Err(Skip::NotIp),
    }
}

/// For a frame carrying an ICMP or ICMPv6 error: the frame as the packet
/// it quotes would have been captured (the same link header, then the
/// quoted datagram in place of the error), so a capture filter written
/// for the probes can be asked whether the error is about one of them.
/// None for anything else.
pub fn quoted_frame(link: LinkType, data: &[u8]) -> Option<Vec<u8>> {
    let (ether_type, net) = link::network(link, data).ok()?;
    let payload = match ether_type {
        EtherType::IPV4 => {
            let h = Ipv4HeaderSlice::from_slice(net).ok()?;
            if h.protocol() != IpNumber::ICMP || h.fragments_offset().value() != 0 {
                return None;
            }
            let i = Icmpv4Slice::from_slice(net.get(h.slice().len()..)?).ok()?;
            if i.type_u8() != ICMP4_DEST_UNREACH && i.type_u8() != ICMP4_TIME_EXCEEDED {
                return None;
            }
            i.payload()
        }
        EtherType::IPV6 => {
            let (ip, _) = LaxIpSlice::from_slice(net).ok()?;
            let p = ip.payload();
            if p.ip_number != IpNumber::IPV6_ICMP || p.fragmented {
                return None;
            }
            let i = Icmpv6Slice::from_slice(p.payload).ok()?;
            if i.type_u8() != ICMP6_DEST_UNREACH && i.type_u8() != ICMP6_TIME_EXCEEDED {
                return None;
            }
            i.payload()
        }
        _ => return None,
    };
    // The link header: everything before the network layer.
    let link_len = (net.as_ptr() as usize).checked_sub(data.as_ptr() as usize)?;
    let mut frame = Vec::with_capacity(link_len + payload.len());
    frame.extend_from_slice(data.get(..link_len)?);
    frame.extend_from_slice(payload);
    Some(frame)
}

/// IPv4: checked header view, then the transport bytes up to the total
/// length (or the captured end, when the snap length cut the packet or the
/// length field is impossible, as TSO captures carry 0 there).
fn ipv4(net: &[u8]) -> Result<Packet, Skip> {
    let h = Ipv4HeaderSlice::from_slice(net).map_err(|_| Skip::Malformed)?;
    if h.fragments_offset().value() != 0 {
        return Err(Skip::Fragment);
    }
    let hlen = h.slice().len();
    let total = usize::from(h.total_len());
    let end = if total >= hlen && total <= net.len() {
        total
    } else {
        net.len()
    };
    let rest = net.get(hlen..end).ok_or(Skip::Malformed)?;
    let cut = total > net.len();
    let body = transport(h.protocol(), rest, false, cut)?;
    Ok(Packet {
        src: IpAddr::V4(h.source_addr()),
        dst: IpAddr::V4(h.destination_addr()),
        ttl: h.ttl(),
        ip_id: Some(h.identification()),
        body,
    })
}

/// IPv6: fixed header, extension headers, then the transport bytes.
fn ipv6(net: &[u8]) -> Result<Packet, Skip> {
    let h = Ipv6HeaderSlice::from_slice(net).map_err(|_| Skip::Malformed)?;
    let plen = usize::from(h.payload_length());
    let avail = net.len().saturating_sub(40);
    // A zero payload length (jumbogram) or one beyond the captured bytes:
    // take what was captured.
    let end = 40
        + if plen == 0 || plen > avail {
            avail
        } else {
            plen
        };
    let mut rest = net.get(40..end).ok_or(Skip::Malformed)?;
    let cut = plen > avail;
    let mut next = h.next_header();
    if next != IpNumber::TCP && next != IpNumber::IPV6_ICMP {
        let (exts, n, r) = Ipv6ExtensionsSlice::from_slice(next, rest).map_err(|_| short(cut))?;
        if exts.is_fragmenting_payload() {
            let first = exts.into_iter().any(|e| {
                matches!(e, Ipv6ExtensionSlice::Fragment(f) if f.fragment_offset().value() == 0)
            });
            if !first {
                return Err(Skip::Fragment);
            }
        }
        next = n;
        rest = r;
    }
    let body = transport(next, rest, true, cut)?;
    Ok(Packet {
        src: IpAddr::V6(h.source_addr()),
        dst: IpAddr::V6(h.destination_addr()),
        ttl: h.hop_limit(),
        ip_id: None,
        body,
    })
}

/// Why headers could not be read: cut by the snap length (`cut`: the IP
/// header says the packet was longer than what was captured), or malformed.
fn short(cut: bool) -> Skip {
    if cut {
        Skip::Truncated
    } else {
        Skip::Malformed
    }
}

/// The first 14 bytes of a TCP header whose options the snap length cut
/// (tcpdump's old default of 68 bytes cuts a SYN's options): ports,
/// numbers and flags are all there.
fn tcp_prefix(rest: &[u8]) -> Option<Tcp> {
    let b = rest.get(..14)?;
    if b[12] >> 4 < 5 {
        // A data offset below 5 words is impossible, cut or not.
        return None;
    }
    let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    Some(Tcp {
        sport: u16_at(0),
        dport: u16_at(2),
        seq: Seq(u32_at(4)),
        ack: Seq(u32_at(8)),
        flags: b[13],
    })
}

fn transport(proto: IpNumber, rest: &[u8], v6: bool, cut: bool) -> Result<Body, Skip> {
    match (proto, v6) {
        (IpNumber::TCP, _) => match TcpHeaderSlice::from_slice(rest) {
            Ok(t) => {
                // Byte 13 holds the classic flags; the checked view holds at
                // least 20 bytes, so the index exists.
                let flags = t.slice().get(13).copied().unwrap_or(0);
                Ok(Body::Tcp(Tcp {
                    sport: t.source_port(),
                    dport: t.destination_port(),
                    seq: Seq(t.sequence_number()),
                    ack: Seq(t.acknowledgment_number()),
                    flags,
                }))
            }
            Err(_) if cut => tcp_prefix(rest).map(Body::Tcp).ok_or(Skip::Truncated),
            Err(_) => Err(Skip::Malformed),
        },
        (IpNumber::ICMP, false) => {
            let i = Icmpv4Slice::from_slice(rest).map_err(|_| short(cut))?;
            icmp_error(false, i.type_u8(), i.code_u8(), i.payload(), cut)
        }
        (IpNumber::IPV6_ICMP, true) => {
            let i = Icmpv6Slice::from_slice(rest).map_err(|_| short(cut))?;
            icmp_error(true, i.type_u8(), i.code_u8(), i.payload(), cut)
        }
        (IpNumber::UDP, _) => dns(rest),
        _ => Err(Skip::NotTcp),
    }
}

/// An ICMP(v6) message: a destination-unreachable or time-exceeded error
/// quoting TCP, or not one synscope reads.
fn icmp_error(v6: bool, icmp_type: u8, code: u8, payload: &[u8], cut: bool) -> Result<Body, Skip> {
    let (unreach, exceeded) = if v6 {
        (ICMP6_DEST_UNREACH, ICMP6_TIME_EXCEEDED)
    } else {
        (ICMP4_DEST_UNREACH, ICMP4_TIME_EXCEEDED)
    };
    if icmp_type != unreach && icmp_type != exceeded {
        return Err(Skip::NotTcp);
    }
    Ok(Body::IcmpError(Box::new(IcmpError {
        v6,
        icmp_type,
        code,
        quoted: quoted(payload, cut)?,
    })))
}

/// A DNS response carried over UDP from port 53, read with simple-dns.
fn dns(udp: &[u8]) -> Result<Body, Skip> {
    let u = etherparse::UdpSlice::from_slice_lax(udp).map_err(|_| Skip::Malformed)?;
    if u.source_port() != 53 && u.destination_port() != 53 {
        return Err(Skip::NotTcp);
    }
    let p = simple_dns::Packet::parse(u.payload()).map_err(|_| Skip::NotTcp)?;
    let response = p.has_flags(simple_dns::PacketFlag::RESPONSE);
    // Responses from port 53; queries to it.
    if response != (u.source_port() == 53) || (!response && u.destination_port() != 53) {
        return Err(Skip::NotTcp);
    }
    let Some(q) = p.questions.first() else {
        return Err(Skip::NotTcp);
    };
    let mut addresses = Vec::new();
    for rr in &p.answers {
        match &rr.rdata {
            simple_dns::rdata::RData::A(a) => {
                addresses.push(IpAddr::from(std::net::Ipv4Addr::from(a.address)))
            }
            simple_dns::rdata::RData::AAAA(a) => {
                addresses.push(IpAddr::from(std::net::Ipv6Addr::from(a.address)))
            }
            _ => {}
        }
    }
    Ok(Body::Dns(Box::new(DnsAnswer {
        name: q.qname.to_string(),
        rcode: p.rcode() as u8,
        addresses,
        qtype: u16::from(q.qtype),
        port: if response {
            u.destination_port()
        } else {
            u.source_port()
        },
        id: p.id(),
        response,
    })))
}

/// Reads the packet quoted by an ICMP error: its IP header (v4 or v6, with
/// extension headers) and the first 4 to 8 bytes of its TCP header.
/// `cut`: the ICMP packet itself was cut by the snap length.
fn quoted(data: &[u8], cut: bool) -> Result<Quoted, Skip> {
    let (ip, _) = LaxIpSlice::from_slice(data).map_err(|e| match e {
        LaxHeaderSliceError::Len(_) => short(cut),
        LaxHeaderSliceError::Content(_) => Skip::Malformed,
    })?;
    let payload = ip.payload();
    if payload.ip_number != IpNumber::TCP {
        return Err(Skip::NotTcp);
    }
    if payload.fragmented {
        return Err(Skip::Fragment);
    }
    let tcp = payload.payload;
    let port =
        |i: usize| -> Option<u16> { Some(u16::from_be_bytes([*tcp.get(i)?, *tcp.get(i + 1)?])) };
    let (Some(sport), Some(dport)) = (port(0), port(2)) else {
        return Err(short(cut));
    };
    let seq = tcp
        .get(4..8)
        .map(|b| Seq(u32::from_be_bytes([b[0], b[1], b[2], b[3]])));
    Ok(Quoted {
        src: ip.source_addr(),
        dst: ip.destination_addr(),
        sport,
        dport,
        seq,
    })
}

#[cfg(test)]
mod tests;
