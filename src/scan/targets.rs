//! Scan targets: addresses, CIDR blocks and host names (every A and AAAA
//! record), narrowed to one family on request.

use ipnet::IpNet;
use std::net::{IpAddr, ToSocketAddrs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    #[default]
    Any,
    V4,
    V6,
}

impl Family {
    fn admits(self, a: &IpAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => a.is_ipv4(),
            Family::V6 => a.is_ipv6(),
        }
    }
}

/// Addresses in one scan at most (a /16, or a few large blocks).
pub const MAX_TARGETS: usize = 65_536;

/// Resolves every spec to addresses, in order, without duplicates. Errors
/// are one line naming the spec.
pub fn resolve(specs: &[String], family: Family) -> Result<Vec<IpAddr>, String> {
    let mut out: Vec<IpAddr> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for spec in specs {
        let spec = spec.trim();
        let addrs: Vec<IpAddr> = if let Ok(a) = spec
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            vec![a]
        } else if let Ok(net) = spec.parse::<IpNet>() {
            let net = net.trunc();
            let count = match net {
                IpNet::V4(v4) => 1u128 << (32 - u32::from(v4.prefix_len())),
                IpNet::V6(v6) => 1u128
                    .checked_shl(128 - u32::from(v6.prefix_len()))
                    .unwrap_or(u128::MAX),
            };
            if count > MAX_TARGETS as u128 {
                return Err(format!(
                    "{spec}: {count} addresses, more than the {MAX_TARGETS} one scan takes; split it"
                ));
            }
            // Every address of the block, as nmap does.
            match net {
                IpNet::V4(v4) => {
                    let first = u32::from(v4.network());
                    (0..count as u32)
                        .map(|i| IpAddr::from(std::net::Ipv4Addr::from(first + i)))
                        .collect()
                }
                IpNet::V6(v6) => {
                    let first = u128::from(v6.network());
                    (0..count)
                        .map(|i| IpAddr::from(std::net::Ipv6Addr::from(first + i)))
                        .collect()
                }
            }
        } else {
            let found: Vec<IpAddr> = (spec, 0u16)
                .to_socket_addrs()
                .map_err(|e| format!("{spec}: cannot resolve the name: {e}"))?
                .map(|sa| sa.ip())
                .collect();
            if found.is_empty() {
                return Err(format!("{spec}: the name has no address"));
            }
            found
        };
        let total = addrs.len();
        let kept: Vec<IpAddr> = addrs.into_iter().filter(|a| family.admits(a)).collect();
        if kept.is_empty() {
            let fam = if family == Family::V4 { "IPv4" } else { "IPv6" };
            return Err(format!(
                "{spec}: no {fam} address ({total} of the other family); drop -4/-6 or give another target"
            ));
        }
        for a in kept {
            if seen.insert(a) {
                out.push(a);
            }
        }
        if out.len() > MAX_TARGETS {
            return Err(format!(
                "more than {MAX_TARGETS} target addresses in one scan; split it"
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_blocks_and_families() {
        let r = resolve(
            &["127.0.0.1".into(), "[::1]".into(), "127.0.0.1".into()],
            Family::Any,
        )
        .unwrap();
        assert_eq!(r.len(), 2, "duplicates removed");
        let r = resolve(&["198.51.100.0/30".into()], Family::Any).unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r[3].to_string(), "198.51.100.3");
        let r = resolve(&["2001:db8::/126".into()], Family::V6).unwrap();
        assert_eq!(r.len(), 4);
        assert!(
            resolve(&["10.0.0.0/8".into()], Family::Any)
                .unwrap_err()
                .contains("split it")
        );
        assert!(
            resolve(&["127.0.0.1".into()], Family::V6)
                .unwrap_err()
                .contains("no IPv6 address")
        );
    }
}
