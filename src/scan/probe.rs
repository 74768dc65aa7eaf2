//! The SYN probe: built with pnet_packet, with the options a real client
//! sends (MSS, SACK-permitted, timestamps, window scale) so middleboxes treat
//! it like one, and an initial sequence number that is a keyed hash of the
//! 4-tuple: any reply is checked without keeping state, and forged or stale
//! replies fail the check.

use crate::wire::Seq;
use pnet_packet::tcp::{self, MutableTcpPacket, TcpFlags, TcpOption};
use std::hash::BuildHasher;
use std::net::IpAddr;

/// TCP header with 20 bytes of options: MSS, SACK-permitted, timestamps,
/// NOP, window scale (the order Linux uses).
pub const SYN_LEN: usize = 40;

/// The per-run key of the ISN hash (std's SipHash, seeded at random).
#[derive(Debug, Clone, Default)]
pub struct IsnKey(std::collections::hash_map::RandomState);

impl IsnKey {
    pub fn new() -> Self {
        IsnKey::default()
    }

    pub fn isn(&self, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Seq {
        Seq(self.0.hash_one((src, sport, dst, dport)) as u32)
    }
}

/// Writes a SYN from `src:sport` to `dst:dport` into `buf` (at least
/// [`SYN_LEN`] bytes) with its checksum for that address pair. Returns the
/// segment.
pub fn build_syn(
    buf: &mut [u8],
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    isn: Seq,
    tsval: u32,
) -> Option<&[u8]> {
    let seg = buf.get_mut(..SYN_LEN)?;
    seg.fill(0);
    let mut p = MutableTcpPacket::new(seg)?;
    p.set_source(sport);
    p.set_destination(dport);
    p.set_sequence(isn.0);
    p.set_acknowledgement(0);
    p.set_data_offset((SYN_LEN / 4) as u8);
    p.set_flags(TcpFlags::SYN);
    p.set_window(64240);
    p.set_urgent_ptr(0);
    p.set_options(&[
        TcpOption::mss(1460),
        TcpOption::sack_perm(),
        TcpOption::timestamp(tsval, 0),
        TcpOption::nop(),
        TcpOption::wscale(7),
    ]);
    let sum = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => tcp::ipv4_checksum(&p.to_immutable(), &s, &d),
        (IpAddr::V6(s), IpAddr::V6(d)) => tcp::ipv6_checksum(&p.to_immutable(), &s, &d),
        _ => return None,
    };
    p.set_checksum(sum);
    buf.get(..SYN_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::addr;
    use crate::wire::{self, Body, LinkType, flags};

    #[test]
    fn syn_is_a_valid_segment_with_options_and_checksum() {
        let key = IsnKey::new();
        for (s, d) in [("127.0.0.1", "127.0.0.2"), ("::1", "2001:db8::2")] {
            let (src, dst) = (addr(s), addr(d));
            let isn = key.isn(src, 61000, dst, 443);
            let mut buf = [0u8; SYN_LEN];
            let seg = build_syn(&mut buf, src, 61000, dst, 443, isn, 7)
                .unwrap()
                .to_vec();
            // Wrap it in an IP header and read it back with the wire parser.
            let mut ip = Vec::new();
            let b = match (src, dst) {
                (IpAddr::V4(a), IpAddr::V4(b)) => etherparse::PacketBuilder::ipv4(
                    a.octets(),
                    b.octets(),
                    64,
                )
                .write(&mut ip, etherparse::IpNumber::TCP, &seg),
                (IpAddr::V6(a), IpAddr::V6(b)) => etherparse::PacketBuilder::ipv6(
                    a.octets(),
                    b.octets(),
                    64,
                )
                .write(&mut ip, etherparse::IpNumber::TCP, &seg),
                _ => unreachable!(),
            };
            b.unwrap();
            let p = wire::parse(LinkType::RAW, &ip).unwrap();
            let Body::Tcp(t) = p.body else { panic!() };
            assert_eq!(
                (t.sport, t.dport, t.seq, t.flags),
                (61000, 443, isn, flags::SYN)
            );
            // The checksum verifies against the pseudo-header.
            let tcp = etherparse::TcpSlice::from_slice(&seg).unwrap();
            let h = tcp.to_header();
            let want = match (src, dst) {
                (IpAddr::V4(a), IpAddr::V4(b)) => {
                    h.calc_checksum_ipv4_raw(a.octets(), b.octets(), &[])
                }
                (IpAddr::V6(a), IpAddr::V6(b)) => {
                    h.calc_checksum_ipv6_raw(a.octets(), b.octets(), &[])
                }
                _ => unreachable!(),
            };
            assert_eq!(want.unwrap(), u16::from_be_bytes([seg[16], seg[17]]));
            assert_eq!(seg[12] >> 4, 10, "data offset: 40 bytes");
            assert_eq!(&seg[20..24], &[2, 4, 0x05, 0xb4], "MSS 1460 first");
        }
        // The ISN depends on every part of the 4-tuple.
        let (a, b) = (addr("127.0.0.1"), addr("127.0.0.2"));
        assert_ne!(key.isn(a, 1, b, 2), key.isn(a, 1, b, 3));
        assert_ne!(
            key.isn(a, 1, b, 2),
            IsnKey::new().isn(a, 1, b, 2),
            "keyed per run"
        );
    }
}
