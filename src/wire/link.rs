//! Link layers: find where the IP packet starts in a captured frame.
//!
//! Values are libpcap's DLT_ numbers as `pcap_datalink()` reports them for a
//! file (libpcap maps the file's LINKTYPE_ value to the DLT_ value, e.g.
//! LINKTYPE_RAW 101 → DLT_RAW 12; both are accepted).

use super::Skip;
use etherparse::{
    EtherType, Ethernet2Header, Ethernet2HeaderSlice, LinuxSllProtocolType, LinuxSllSlice,
    SingleVlanHeader, SingleVlanHeaderSlice,
};

/// A capture's link type (libpcap DLT / LINKTYPE number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LinkType(pub i32);

impl LinkType {
    pub const NULL: LinkType = LinkType(0);
    pub const ETHERNET: LinkType = LinkType(1);
    pub const RAW: LinkType = LinkType(12);
    pub const RAW_OPENBSD: LinkType = LinkType(14);
    pub const LINKTYPE_RAW: LinkType = LinkType(101);
    pub const LOOP: LinkType = LinkType(108);
    pub const LINUX_SLL: LinkType = LinkType(113);
    pub const IPV4: LinkType = LinkType(228);
    pub const IPV6: LinkType = LinkType(229);
    pub const LINUX_SLL2: LinkType = LinkType(276);

    /// Whether synscope decodes this link type at all.
    pub fn is_supported(self) -> bool {
        matches!(
            self,
            LinkType::NULL
                | LinkType::ETHERNET
                | LinkType::RAW
                | LinkType::RAW_OPENBSD
                | LinkType::LINKTYPE_RAW
                | LinkType::LOOP
                | LinkType::LINUX_SLL
                | LinkType::IPV4
                | LinkType::IPV6
                | LinkType::LINUX_SLL2
        )
    }

    /// The name of a link type synscope decodes (None for the others:
    /// the capture library that read the file knows their names).
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            LinkType::NULL => "NULL",
            LinkType::ETHERNET => "EN10MB (Ethernet)",
            LinkType::RAW | LinkType::RAW_OPENBSD | LinkType::LINKTYPE_RAW => "RAW",
            LinkType::LOOP => "LOOP",
            LinkType::LINUX_SLL => "LINUX_SLL",
            LinkType::IPV4 => "IPV4",
            LinkType::IPV6 => "IPV6",
            LinkType::LINUX_SLL2 => "LINUX_SLL2",
            _ => return None,
        })
    }
}

/// Address families that BSD, macOS and Linux write in NULL / LOOP headers.
const AF_INET: u32 = 2;
const AF_INET6_LINUX: u32 = 10;
const AF_INET6_BSD: u32 = 24;
const AF_INET6_FREEBSD: u32 = 28;
const AF_INET6_DARWIN: u32 = 30;

const SLL2_HEADER_LEN: usize = 20;
const NULL_HEADER_LEN: usize = 4;

/// Finds the network layer: its EtherType and bytes.
pub(super) fn network(link: LinkType, data: &[u8]) -> Result<(EtherType, &[u8]), Skip> {
    match link {
        LinkType::ETHERNET => {
            let eth = Ethernet2HeaderSlice::from_slice(data).map_err(|_| Skip::Malformed)?;
            let mut et = eth.ether_type();
            let mut rest = data.get(Ethernet2Header::LEN..).ok_or(Skip::Malformed)?;
            // Up to three VLAN tags (802.1Q, 802.1ad, QinQ).
            for _ in 0..3 {
                if et != EtherType::VLAN_TAGGED_FRAME
                    && et != EtherType::PROVIDER_BRIDGING
                    && et != EtherType::VLAN_DOUBLE_TAGGED_FRAME
                {
                    break;
                }
                let tag = SingleVlanHeaderSlice::from_slice(rest).map_err(|_| Skip::Malformed)?;
                et = tag.ether_type();
                rest = rest.get(SingleVlanHeader::LEN..).ok_or(Skip::Malformed)?;
            }
            Ok((et, rest))
        }
        LinkType::RAW
        | LinkType::RAW_OPENBSD
        | LinkType::LINKTYPE_RAW
        | LinkType::IPV4
        | LinkType::IPV6 => by_version(data),
        LinkType::LINUX_SLL => {
            let sll = LinuxSllSlice::from_slice(data).map_err(|_| Skip::Malformed)?;
            match sll.protocol_type() {
                LinuxSllProtocolType::EtherType(et) => Ok((et, sll.payload_slice())),
                _ => Err(Skip::NotIp),
            }
        }
        LinkType::LINUX_SLL2 => {
            // etherparse has no SLL2. Its 20-byte header starts with the
            // protocol type (big endian), then reserved, interface index,
            // ARPHRD type, packet type, address length and 8 address bytes.
            let (header, payload) = split(data, SLL2_HEADER_LEN)?;
            let proto = u16::from_be_bytes([header[0], header[1]]);
            Ok((EtherType(proto), payload))
        }
        LinkType::NULL | LinkType::LOOP => {
            // The family is in the writer's byte order (NULL) or network
            // order (LOOP); writers disagree, so accept either.
            let (header, payload) = split(data, NULL_HEADER_LEN)?;
            let bytes = [header[0], header[1], header[2], header[3]];
            let family = match u32::from_le_bytes(bytes) {
                f if f <= 0xffff => f,
                _ => u32::from_be_bytes(bytes),
            };
            match family {
                AF_INET | AF_INET6_LINUX | AF_INET6_BSD | AF_INET6_FREEBSD | AF_INET6_DARWIN => {
                    by_version(payload)
                }
                _ => Err(Skip::NotIp),
            }
        }
        _ => Err(Skip::UnsupportedLink),
    }
}

fn split(data: &[u8], at: usize) -> Result<(&[u8], &[u8]), Skip> {
    if data.len() < at {
        Err(Skip::Malformed)
    } else {
        Ok(data.split_at(at))
    }
}

/// Raw IP: the version nibble says which.
fn by_version(data: &[u8]) -> Result<(EtherType, &[u8]), Skip> {
    match data.first().map(|b| b >> 4) {
        Some(4) => Ok((EtherType::IPV4, data)),
        Some(6) => Ok((EtherType::IPV6, data)),
        Some(_) => Err(Skip::NotIp),
        None => Err(Skip::Malformed),
    }
}
