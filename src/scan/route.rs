//! Which source address and interface a target's packets leave by.

use crate::error::{Error, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};

#[derive(Debug, Clone)]
pub struct Route {
    pub target: IpAddr,
    pub source: IpAddr,
    pub device: String,
}

/// The kernel's source address for `target`: connecting a UDP socket sends
/// nothing, but makes the kernel pick the route and the address.
pub fn source_for(target: IpAddr) -> Result<IpAddr> {
    let bind: IpAddr = if target.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let s = UdpSocket::bind((bind, 0)).map_err(|source| Error::RouteSocket { target, source })?;
    s.connect((target, 9))
        .map_err(|source| Error::NoRoute { target, source })?;
    s.local_addr()
        .map(|a| a.ip())
        .map_err(|source| Error::NoSourceAddress { target, source })
}

pub fn routes(targets: &[IpAddr]) -> Result<Vec<Route>> {
    let devices = pcap::Device::list().map_err(|e| Error::Interfaces {
        reason: e.to_string(),
    })?;
    let mut out = Vec::with_capacity(targets.len());
    for &t in targets {
        let source = source_for(t)?;
        let device = if source.is_loopback() || t.is_loopback() {
            devices
                .iter()
                .find(|d| d.flags.is_loopback())
                .map(|d| d.name.clone())
                .unwrap_or_else(|| "lo".into())
        } else {
            devices
                .iter()
                .find(|d| d.addresses.iter().any(|a| a.addr == source))
                .map(|d| d.name.clone())
                .ok_or(Error::NoCaptureInterface {
                    target: t,
                    source_addr: source,
                })?
        };
        out.push(Route {
            target: t,
            source,
            device,
        });
    }
    Ok(out)
}
