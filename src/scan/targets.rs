//! Scan targets: addresses, CIDR blocks, nmap-style IPv4 ranges and host
//! names (every A and AAAA record, through [`crate::resolve`]), narrowed to
//! one family on request.

use crate::error::Error;
use crate::resolve::{LookupError, literal, lookup};
use ipnet::IpNet;
use std::net::IpAddr;

pub use crate::resolve::Family;

/// Addresses in one scan at most (a /16, or a few large blocks).
pub const MAX_TARGETS: usize = 65_536;

/// Why an address is no target without `--force`: it is not one host.
pub fn refusal(a: &IpAddr) -> Option<&'static str> {
    match a {
        IpAddr::V4(v4) if v4.is_unspecified() => Some("the unspecified address"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("the broadcast address"),
        IpAddr::V4(v4) if v4.is_multicast() => Some("a multicast address"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some("the unspecified address"),
        IpAddr::V6(v6) if v6.is_multicast() => Some("a multicast address"),
        _ => None,
    }
}

/// Resolves every spec to addresses, in order, without duplicates. Errors
/// name the spec. Without `force`, broadcast, multicast and unspecified
/// addresses are refused, and a block's network and broadcast addresses are
/// left out (they are not hosts).
pub fn resolve(specs: &[String], family: Family, force: bool) -> Result<Vec<IpAddr>, Error> {
    resolve_named(specs, family, force, false).map(|r| r.addresses)
}

/// (address, the host name it came from).
pub type Names = Vec<(IpAddr, String)>;

/// What a list of target specs came to.
#[derive(Debug, Default)]
pub struct Resolved {
    pub addresses: Vec<IpAddr>,
    /// The host name each address came from, where one did (the first
    /// name, when several give one address).
    pub names: Names,
    /// With `lenient`: the names that gave no address, each with why
    /// (the other targets are still scanned).
    pub unresolved: Vec<String>,
    seen: std::collections::HashSet<IpAddr>,
}

/// [`resolve`], with the names the addresses came from; `lenient`: a
/// name that does not resolve (or has no address of the family) is
/// reported in [`Resolved::unresolved`] instead of failing the whole list,
/// unless no target is left at all.
pub fn resolve_named(
    specs: &[String],
    family: Family,
    force: bool,
    lenient: bool,
) -> Result<Resolved, Error> {
    let mut r = Resolved::default();
    let mut first_err = None;
    for spec in specs {
        match resolve_one(spec, family, force, &mut r) {
            Ok(()) => {}
            Err(
                e @ (Error::Resolve { .. }
                | Error::NameHasNoAddress { .. }
                | Error::NoAddressOfFamily { .. }),
            ) if lenient => {
                r.unresolved.push(e.to_string());
                first_err.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    if r.addresses.is_empty()
        && let Some(e) = first_err
    {
        return Err(e);
    }
    Ok(r)
}

fn resolve_one(spec: &str, family: Family, force: bool, r: &mut Resolved) -> Result<(), Error> {
    let (names, out, seen) = (&mut r.names, &mut r.addresses, &mut r.seen);
    {
        let spec = spec.trim();
        let mut named = false;
        let addrs: Vec<IpAddr> = if let Some(a) = literal(spec) {
            vec![a]
        } else if let Some(range) = octet_range(spec) {
            range?
        } else if let Ok(net) = spec.parse::<IpNet>() {
            let net = net.trunc();
            let count = match net {
                IpNet::V4(v4) => 1u128 << (32 - u32::from(v4.prefix_len())),
                IpNet::V6(v6) => 1u128
                    .checked_shl(128 - u32::from(v6.prefix_len()))
                    .unwrap_or(u128::MAX),
            };
            if count > MAX_TARGETS as u128 {
                return Err(Error::BlockTooLarge {
                    spec: spec.to_string(),
                    count,
                    limit: MAX_TARGETS,
                });
            }
            // Every address of the block; without --force, an IPv4 block's
            // network and broadcast addresses are left out.
            match net {
                IpNet::V4(v4) => {
                    let first = u32::from(v4.network());
                    let skip_ends = !force && v4.prefix_len() <= 30;
                    (0..count as u32)
                        .filter(|i| !skip_ends || (*i != 0 && *i != count as u32 - 1))
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
            let found = lookup(spec).map_err(|source| match source {
                LookupError::NotAName { why } => Error::NotATarget { why },
                source => Error::Resolve {
                    spec: spec.to_string(),
                    source,
                },
            })?;
            if found.is_empty() {
                return Err(Error::NameHasNoAddress {
                    spec: spec.to_string(),
                });
            }
            named = true;
            found
        };
        if !force && let Some((a, what)) = addrs.iter().find_map(|a| Some((*a, refusal(a)?))) {
            return Err(Error::NotOneHost {
                spec: spec.to_string(),
                address: a,
                what,
            });
        }
        let total = addrs.len();
        let kept: Vec<IpAddr> = addrs.into_iter().filter(|a| family.admits(a)).collect();
        if kept.is_empty() {
            let fam = if family == Family::V4 { "IPv4" } else { "IPv6" };
            return Err(Error::NoAddressOfFamily {
                spec: spec.to_string(),
                family: fam,
                other: total,
            });
        }
        for a in kept {
            if named && !names.iter().any(|(n, _)| *n == a) {
                names.push((a, spec.to_string()));
            }
            if seen.insert(a) {
                out.push(a);
            }
        }
        if out.len() > MAX_TARGETS {
            return Err(Error::TooManyTargets { limit: MAX_TARGETS });
        }
    }
    Ok(())
}

/// An nmap-style IPv4 range: four dot-separated parts, each a number, a
/// range (`10-20`, `-20`, `10-`), a list of those (`1,5,7`) or `*`
/// (`198.51.100.10-29`, `10.0.1-3.*`). None when `spec` is not made of
/// digits, dots, dashes, commas and stars with exactly three dots: such a
/// spec is a name. One that is made of them is never a name (a top-level
/// domain is not all digits), so a typo is an error here, not a DNS query.
fn octet_range(spec: &str) -> Option<Result<Vec<IpAddr>, Error>> {
    if !spec
        .bytes()
        .all(|b| b.is_ascii_digit() || b"*.,-".contains(&b))
        || spec.bytes().filter(|b| *b == b'.').count() != 3
    {
        return None;
    }
    let bad = |why: String| Error::BadRange {
        spec: spec.to_string(),
        why,
    };
    let number = |s: &str, default: u8| -> Result<u8, Error> {
        if s.is_empty() {
            return Ok(default);
        }
        s.parse::<u8>()
            .map_err(|_| bad(format!("{s} is not a number from 0 to 255")))
    };
    let mut parts: Vec<Vec<u8>> = Vec::with_capacity(4);
    for part in spec.split('.') {
        if part.is_empty() {
            return Some(Err(bad("an empty part".into())));
        }
        let mut values: Vec<u8> = Vec::new();
        for item in part.split(',') {
            let (lo, hi) = match item.split_once('-') {
                _ if item == "*" => (0, 255),
                _ if item.is_empty() => return Some(Err(bad("an empty list item".into()))),
                None => match number(item, 0) {
                    Ok(n) => (n, n),
                    Err(e) => return Some(Err(e)),
                },
                Some((a, b)) => match (number(a, 0), number(b, 255)) {
                    (Ok(a), Ok(b)) if a <= b => (a, b),
                    (Ok(a), Ok(b)) => return Some(Err(bad(format!("{a}-{b} runs backwards")))),
                    (Err(e), _) | (_, Err(e)) => return Some(Err(e)),
                },
            };
            values.extend(lo..=hi);
        }
        values.sort_unstable();
        values.dedup();
        parts.push(values);
    }
    let count: u128 = parts.iter().map(|p| p.len() as u128).product();
    if count > MAX_TARGETS as u128 {
        return Some(Err(Error::BlockTooLarge {
            spec: spec.to_string(),
            count,
            limit: MAX_TARGETS,
        }));
    }
    let mut out = Vec::with_capacity(count as usize);
    for &a in &parts[0] {
        for &b in &parts[1] {
            for &c in &parts[2] {
                for &d in &parts[3] {
                    out.push(IpAddr::from([a, b, c, d]));
                }
            }
        }
    }
    Some(Ok(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(spec: &str, family: Family, force: bool) -> Result<Vec<IpAddr>, String> {
        resolve(&[spec.to_string()], family, force).map_err(|e| e.to_string())
    }

    #[test]
    fn addresses_blocks_and_families() {
        let x = resolve(
            &["127.0.0.1".into(), "[::1]".into(), "127.0.0.1".into()],
            Family::Any,
            false,
        )
        .unwrap();
        assert_eq!(x.len(), 2, "duplicates removed");
        let x = r("198.51.100.0/30", Family::Any, false).unwrap();
        assert_eq!(x.len(), 2, "network and broadcast left out: {x:?}");
        assert_eq!(x[1].to_string(), "198.51.100.2");
        let x = r("198.51.100.0/30", Family::Any, true).unwrap();
        assert_eq!(x.len(), 4);
        assert_eq!(x[3].to_string(), "198.51.100.3");
        assert_eq!(r("2001:db8::/126", Family::V6, false).unwrap().len(), 4);
        assert!(
            r("10.0.0.0/8", Family::Any, false)
                .unwrap_err()
                .contains("split it")
        );
        assert!(
            r("127.0.0.1", Family::V6, false)
                .unwrap_err()
                .contains("no IPv6 address")
        );
    }

    #[test]
    fn nmap_style_ranges_and_typos_are_never_names() {
        let x = r("198.51.100.10-12", Family::Any, false).unwrap();
        let s: Vec<String> = x.iter().map(ToString::to_string).collect();
        assert_eq!(s, ["198.51.100.10", "198.51.100.11", "198.51.100.12"]);
        let x = r("198.51.100-101.1,3", Family::Any, false).unwrap();
        let s: Vec<String> = x.iter().map(ToString::to_string).collect();
        assert_eq!(
            s,
            [
                "198.51.100.1",
                "198.51.100.3",
                "198.51.101.1",
                "198.51.101.3"
            ]
        );
        assert_eq!(r("198.51.100.*", Family::Any, false).unwrap().len(), 256);
        assert_eq!(r("198.51.100.250-", Family::Any, false).unwrap().len(), 6);
        assert_eq!(r("198.51.100.-2", Family::Any, false).unwrap().len(), 3);
        // A plain address still parses as one.
        assert_eq!(r("198.51.100.7", Family::Any, false).unwrap().len(), 1);
        for (typo, says) in [
            ("198.51.100.300", "300 is not a number"),
            ("198.51.100.20-10", "runs backwards"),
            ("198.51..1", "an empty part"),
            ("198.51.100.1,", "an empty list item"),
        ] {
            let e = r(typo, Family::Any, false).unwrap_err();
            assert!(
                e.contains(says) && e.contains("not an IPv4 address"),
                "{typo}: {e}"
            );
        }
        assert!(
            r("10.*.*.*", Family::Any, false)
                .unwrap_err()
                .contains("split it")
        );
        // A range with a broadcast or multicast address in it is refused
        // as such a block is.
        assert!(
            r("224.0.0.1-2", Family::Any, false)
                .unwrap_err()
                .contains("refusing to probe")
        );
    }

    #[test]
    fn non_hosts_are_refused_without_force() {
        for bad in [
            "255.255.255.255",
            "224.0.0.1",
            "0.0.0.0",
            "::",
            "ff02::1",
            "239.0.0.0/30",
        ] {
            assert!(matches!(
                resolve(&[bad.to_string()], Family::Any, false),
                Err(Error::NotOneHost { .. })
            ));
            let e = r(bad, Family::Any, false).unwrap_err();
            assert!(
                e.contains("refusing to probe") && e.contains("--force"),
                "{bad}: {e}"
            );
            assert!(r(bad, Family::Any, true).is_ok(), "{bad} with --force");
        }
    }
}
