//! Stage (a): name resolution, with its failures told apart: the name does
//! not exist (NXDOMAIN), it has no address of the wanted family, the
//! resolver did not answer, or it resolved.

use serde::Serialize;
use std::ffi::{CStr, CString};
use std::net::IpAddr;

use crate::scan::targets::Family;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Resolution {
    /// The target was an address: nothing to resolve.
    Literal { addresses: Vec<IpAddr> },
    Resolved {
        addresses: Vec<IpAddr>,
        other_family: Vec<IpAddr>,
    },
    /// NXDOMAIN: the name does not exist.
    NoSuchName,
    /// The name exists but has no address (of the wanted family).
    NoAddress { other_family: Vec<IpAddr> },
    /// The resolver did not answer, or failed for the moment.
    ResolverFailed { detail: String },
}

impl Resolution {
    pub fn addresses(&self) -> &[IpAddr] {
        match self {
            Resolution::Literal { addresses } | Resolution::Resolved { addresses, .. } => addresses,
            _ => &[],
        }
    }

    /// One sentence for the report.
    pub fn describe(&self, name: &str) -> String {
        let list = |a: &[IpAddr]| {
            a.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Resolution::Literal { addresses } => {
                format!("{name} is an address: {}.", list(addresses))
            }
            Resolution::Resolved {
                addresses,
                other_family,
            } if other_family.is_empty() => {
                format!("{name} resolved to {}.", list(addresses))
            }
            Resolution::Resolved {
                addresses,
                other_family,
            } => format!(
                "{name} resolved to {} (and {}, of the family left out).",
                list(addresses),
                list(other_family)
            ),
            Resolution::NoSuchName => format!(
                "Resolution failed: {name} does not exist (NXDOMAIN). No packet was sent to any host: check the name's spelling and the DNS search domain."
            ),
            Resolution::NoAddress { other_family } if other_family.is_empty() => {
                format!("Resolution failed: {name} exists but has no address. No packet was sent.")
            }
            Resolution::NoAddress { other_family } => format!(
                "Resolution failed for the family asked: {name} has only {} of the other family. No packet was sent: drop -4/-6, or fix the record.",
                list(other_family)
            ),
            Resolution::ResolverFailed { detail } => format!(
                "Resolution failed: the resolver did not answer ({detail}). No packet was sent: check /etc/resolv.conf and the DNS server."
            ),
        }
    }
}

/// Resolves `host` (or takes it as an address), keeping `family`.
pub fn resolve(host: &str, family: Family) -> Resolution {
    let keep = |a: &IpAddr| match family {
        Family::Any => true,
        Family::V4 => a.is_ipv4(),
        Family::V6 => a.is_ipv6(),
    };
    if let Ok(a) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return if keep(&a) {
            Resolution::Literal { addresses: vec![a] }
        } else {
            Resolution::NoAddress {
                other_family: vec![a],
            }
        };
    }
    match getaddrinfo(host) {
        Ok(all) => {
            let (addresses, other_family): (Vec<IpAddr>, Vec<IpAddr>) =
                all.into_iter().partition(|a| keep(a));
            if addresses.is_empty() {
                Resolution::NoAddress { other_family }
            } else {
                Resolution::Resolved {
                    addresses,
                    other_family,
                }
            }
        }
        Err(Gai::NoName) => Resolution::NoSuchName,
        Err(Gai::NoData) => Resolution::NoAddress {
            other_family: Vec::new(),
        },
        Err(Gai::Other(detail)) => Resolution::ResolverFailed { detail },
    }
}

enum Gai {
    NoName,
    NoData,
    Other(String),
}

/// glibc's EAI_NODATA (not in POSIX, so not in every libc crate target).
const EAI_NODATA: libc::c_int = -5;

/// getaddrinfo(3) through libc: std's lookup hides the error codes that
/// tell NXDOMAIN from a resolver timeout.
fn getaddrinfo(host: &str) -> Result<Vec<IpAddr>, Gai> {
    let c = CString::new(host).map_err(|_| Gai::Other("the name contains a NUL byte".into()))?;
    // SAFETY: an all-zero addrinfo is a valid "no hints" value.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: valid C string, hints and out-pointer.
    let rc = unsafe { libc::getaddrinfo(c.as_ptr(), std::ptr::null(), &hints, &mut res) };
    if rc != 0 {
        return Err(match rc {
            libc::EAI_NONAME => Gai::NoName,
            EAI_NODATA => Gai::NoData,
            _ => {
                // SAFETY: gai_strerror returns a static string.
                let msg = unsafe { CStr::from_ptr(libc::gai_strerror(rc)) };
                Gai::Other(msg.to_string_lossy().into_owned())
            }
        });
    }
    let mut out = Vec::new();
    let mut p = res;
    while !p.is_null() {
        // SAFETY: p walks the list getaddrinfo returned, until null.
        let ai = unsafe { &*p };
        if !ai.ai_addr.is_null() {
            // SAFETY: ai_addr points at a sockaddr of ai_addrlen bytes of the
            // family in sa_family.
            let ip = unsafe {
                match i32::from((*ai.ai_addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(ai.ai_addr as *const libc::sockaddr_in);
                        Some(IpAddr::from(
                            u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                        ))
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(ai.ai_addr as *const libc::sockaddr_in6);
                        Some(IpAddr::from(sin6.sin6_addr.s6_addr))
                    }
                    _ => None,
                }
            };
            if let Some(ip) = ip
                && !out.contains(&ip)
            {
                out.push(ip);
            }
        }
        p = ai.ai_next;
    }
    // SAFETY: res came from a successful getaddrinfo.
    unsafe { libc::freeaddrinfo(res) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_need_no_resolver() {
        assert_eq!(
            resolve("203.0.113.2", Family::Any),
            Resolution::Literal {
                addresses: vec!["203.0.113.2".parse().unwrap()]
            }
        );
        assert!(matches!(
            resolve("[2001:db8::1]", Family::V4),
            Resolution::NoAddress { .. }
        ));
        assert!(
            resolve("2001:db8::1", Family::V4)
                .describe("2001:db8::1")
                .contains("No packet was sent")
        );
    }
}
