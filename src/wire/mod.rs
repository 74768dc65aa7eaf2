//! wire: captured bytes → the few header fields synscope decides on.
//!
//! Parsing goes link layer → IP → TCP / ICMP error with etherparse's lax
//! slicers, so a packet cut short by the snap length still yields its
//! headers. Every path returns either a [`Packet`] or a [`Skip`] reason;
//! nothing here panics on any input (see the fixture tests below and the
//! fuzz targets).

mod link;

pub use link::LinkType;

use etherparse::{
    IpNumber, LaxIpSlice, LaxNetSlice, LaxSlicedPacket, TransportSlice,
    err::ip::LaxHeaderSliceError,
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
    IcmpError(IcmpError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tcp {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    /// Flag bits, see [`flags`].
    pub flags: u8,
}

impl Tcp {
    pub fn has(&self, bits: u8) -> bool {
        self.flags & bits == bits
    }
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
    pub seq: Option<u32>,
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
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::UnsupportedLink => "unsupported-link",
            Skip::NotIp => "not-ip",
            Skip::NotTcp => "not-tcp",
            Skip::Fragment => "fragment",
            Skip::Malformed => "malformed",
        }
    }
}

const ICMP4_DEST_UNREACH: u8 = 3;
const ICMP4_TIME_EXCEEDED: u8 = 11;
const ICMP6_DEST_UNREACH: u8 = 1;
const ICMP6_TIME_EXCEEDED: u8 = 3;

/// Decodes one captured frame of the given link type.
pub fn parse(link: LinkType, data: &[u8]) -> Result<Packet, Skip> {
    let sliced = link::slice(link, data)?;
    decode(&sliced)
}

fn decode(sliced: &LaxSlicedPacket<'_>) -> Result<Packet, Skip> {
    let (src, dst, ttl, ip_id, payload) = match &sliced.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                h.ttl(),
                Some(h.identification()),
                v4.payload(),
            )
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                h.hop_limit(),
                None,
                v6.payload(),
            )
        }
        Some(LaxNetSlice::Arp(_)) => return Err(Skip::NotIp),
        None => {
            // The link layer was read but no IP header followed: either the
            // frame carries another protocol or the IP header is broken.
            return Err(match &sliced.stop_err {
                Some(_) => Skip::Malformed,
                None => Skip::NotIp,
            });
        }
    };
    let body = match &sliced.transport {
        Some(TransportSlice::Tcp(t)) => {
            // Byte 13 holds the classic flags; etherparse has read the whole
            // header, so the index exists.
            let flags = t.slice().get(13).copied().unwrap_or(0);
            Body::Tcp(Tcp {
                sport: t.source_port(),
                dport: t.destination_port(),
                seq: t.sequence_number(),
                ack: t.acknowledgment_number(),
                flags,
            })
        }
        Some(TransportSlice::Icmpv4(i)) => {
            let t = i.type_u8();
            if t != ICMP4_DEST_UNREACH && t != ICMP4_TIME_EXCEEDED {
                return Err(Skip::NotTcp);
            }
            Body::IcmpError(IcmpError {
                v6: false,
                icmp_type: t,
                code: i.code_u8(),
                quoted: quoted(i.payload())?,
            })
        }
        Some(TransportSlice::Icmpv6(i)) => {
            let t = i.type_u8();
            if t != ICMP6_DEST_UNREACH && t != ICMP6_TIME_EXCEEDED {
                return Err(Skip::NotTcp);
            }
            Body::IcmpError(IcmpError {
                v6: true,
                icmp_type: t,
                code: i.code_u8(),
                quoted: quoted(i.payload())?,
            })
        }
        Some(_) => return Err(Skip::NotTcp),
        None => {
            if payload.fragmented {
                return Err(Skip::Fragment);
            }
            let n = payload.ip_number;
            return Err(
                if n == IpNumber::TCP || n == IpNumber::ICMP || n == IpNumber::IPV6_ICMP {
                    // The transport header was cut short or is impossible.
                    Skip::Malformed
                } else {
                    Skip::NotTcp
                },
            );
        }
    };
    Ok(Packet {
        src,
        dst,
        ttl,
        ip_id,
        body,
    })
}

/// Reads the packet quoted by an ICMP error: its IP header (v4 or v6, with
/// extension headers) and the first 4 to 8 bytes of its TCP header.
fn quoted(data: &[u8]) -> Result<Quoted, Skip> {
    let (ip, _) = LaxIpSlice::from_slice(data).map_err(|e| match e {
        LaxHeaderSliceError::Len(_) | LaxHeaderSliceError::Content(_) => Skip::Malformed,
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
        return Err(Skip::Malformed);
    };
    let seq = tcp
        .get(4..8)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
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
