//! Name resolution, for `scan`'s targets and `diagnose` alike: one call to
//! getaddrinfo(3), with its failures told apart (the name does not exist
//! (NXDOMAIN), it has no address, the resolver did not answer), and the
//! address family kept on request.

use serde::Serialize;
use std::ffi::{CStr, CString};
use std::io;
use std::net::IpAddr;

/// Which addresses of a name to keep (-4, -6 or both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    #[default]
    Any,
    V4,
    V6,
}

impl Family {
    pub fn admits(self, a: &IpAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => a.is_ipv4(),
            Family::V6 => a.is_ipv6(),
        }
    }
}

/// `s` as an address, with or without the brackets of `[2001:db8::1]`.
pub fn literal(s: &str) -> Option<IpAddr> {
    s.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok()
}

/// Why `s` cannot be a host name, by its syntax alone; None when it can
/// be one. Such a spec is a typo'd address, block or range (`10.0.0.300`,
/// `10.0.0.0/33`, `2001:db8::g`), and sending it to a resolver would ask
/// the DNS server about a name that cannot exist: a query to the outside
/// for a scan meant to stay on the lab. A name's labels are letters,
/// digits, `-` and `_`, 1-63 bytes each, and its last label has a letter
/// (no top-level domain is all digits, RFC 3696 section 2, and none has
/// only digits and dashes); one trailing dot (a rooted name) is allowed.
pub fn name_problem(s: &str) -> Option<String> {
    let name = s.strip_suffix('.').unwrap_or(s);
    if name.is_empty() {
        // The resolver refuses it itself, without asking any server.
        return None;
    }
    if name.contains('/') {
        return Some(format!(
            "{s} is not a valid address block (an IPv4 prefix length is 0-32, an IPv6 one 0-128), and a host name has no '/'"
        ));
    }
    if name.contains(':') {
        return Some(format!(
            "{s} is not a valid IPv6 address, and a host name has no ':'"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || *c == '-' || *c == '_' || *c == '.'))
    {
        return Some(format!(
            "{s} is not a host name: a host name has only letters, digits, '-', '_' and '.' ({c:?} is none of them)"
        ));
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return Some(format!(
            "{s} is not a host name: it has an empty part between dots"
        ));
    }
    if let Some(l) = labels.iter().find(|l| l.len() > 63) {
        return Some(format!(
            "{s} is not a host name: a part of one is at most 63 bytes ({}... has {})",
            l.chars().take(10).collect::<String>(),
            l.len()
        ));
    }
    if name.len() > 253 {
        return Some(format!(
            "{s} is not a host name: one is at most 253 bytes (this has {})",
            name.len()
        ));
    }
    if labels
        .last()
        .is_some_and(|l| !l.chars().any(|c| c.is_alphabetic()))
    {
        return Some(format!(
            "{s} is not a valid IPv4 address (four numbers from 0 to 255, dot-separated) or range (10.0.0.1-20), and a host name ends in a part with a letter"
        ));
    }
    None
}

/// Why getaddrinfo(3) gave no address. Shown, it reads as std's lookup
/// error does (`failed to lookup address information: ...`).
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// EAI_NONAME: the name does not exist (NXDOMAIN).
    #[error("failed to lookup address information: {detail}")]
    NoSuchName { detail: String },
    /// EAI_NODATA: the name exists but has no address.
    #[error("failed to lookup address information: {detail}")]
    NoAddress { detail: String },
    /// EAI_SYSTEM: a system call failed (`detail` is the resolver's word).
    #[error("{source}")]
    System { detail: String, source: io::Error },
    /// The resolver did not answer, or failed for the moment.
    #[error("failed to lookup address information: {detail}")]
    Failed { detail: String },
    /// A NUL byte cannot be passed to the resolver.
    #[error("file name contained an unexpected NUL byte")]
    Nul,
    /// Not a host name by its syntax (see [`name_problem`]): never sent to
    /// a resolver.
    #[error("{why}")]
    NotAName { why: String },
}

impl LookupError {
    /// The resolver's own words (gai_strerror(3)).
    pub fn detail(&self) -> &str {
        match self {
            LookupError::NoSuchName { detail }
            | LookupError::NoAddress { detail }
            | LookupError::System { detail, .. }
            | LookupError::Failed { detail } => detail,
            LookupError::Nul => "the name contains a NUL byte",
            LookupError::NotAName { why } => why,
        }
    }
}

/// glibc's EAI_NODATA (not in POSIX, so not in every libc crate target).
const EAI_NODATA: libc::c_int = -5;

/// Every address of `host` (A and AAAA), in the resolver's order, as
/// getaddrinfo(3) gives them: std's lookup hides the error codes that tell
/// NXDOMAIN from a resolver timeout.
pub fn lookup(host: &str) -> Result<Vec<IpAddr>, LookupError> {
    let c = CString::new(host).map_err(|_| LookupError::Nul)?;
    if let Some(why) = name_problem(host) {
        return Err(LookupError::NotAName { why });
    }
    // SAFETY: an all-zero addrinfo is a valid "no hints" value.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: valid C string, hints and out-pointer.
    let rc = unsafe { libc::getaddrinfo(c.as_ptr(), std::ptr::null(), &hints, &mut res) };
    if rc != 0 {
        // Read first: errno is what EAI_SYSTEM means.
        let os = io::Error::last_os_error();
        // SAFETY: gai_strerror returns a static string.
        let detail = unsafe { CStr::from_ptr(libc::gai_strerror(rc)) }
            .to_string_lossy()
            .into_owned();
        return Err(match rc {
            libc::EAI_NONAME => LookupError::NoSuchName { detail },
            EAI_NODATA => LookupError::NoAddress { detail },
            libc::EAI_SYSTEM => LookupError::System { detail, source: os },
            _ => LookupError::Failed { detail },
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
            out.extend(ip);
        }
        p = ai.ai_next;
    }
    // SAFETY: res came from a successful getaddrinfo.
    unsafe { libc::freeaddrinfo(res) };
    Ok(out)
}

/// What resolving one name gave, each failure its own outcome.
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
    /// Not a host name by its syntax ([`name_problem`]): no resolver was
    /// asked.
    NotAName { detail: String },
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
            Resolution::NotAName { detail } => {
                format!("{detail}. No resolver was asked and no packet was sent.")
            }
            Resolution::ResolverFailed { detail } => format!(
                "Resolution failed: the resolver did not answer ({detail}). No packet was sent: check /etc/resolv.conf and the DNS server."
            ),
        }
    }
}

/// Resolves `host` (or takes it as an address), keeping `family`; each
/// address once.
pub fn resolve(host: &str, family: Family) -> Resolution {
    if let Some(a) = literal(host) {
        return if family.admits(&a) {
            Resolution::Literal { addresses: vec![a] }
        } else {
            Resolution::NoAddress {
                other_family: vec![a],
            }
        };
    }
    match lookup(host) {
        Ok(all) => {
            let mut seen = std::collections::HashSet::new();
            let (addresses, other_family): (Vec<IpAddr>, Vec<IpAddr>) = all
                .into_iter()
                .filter(|a| seen.insert(*a))
                .partition(|a| family.admits(a));
            if addresses.is_empty() {
                Resolution::NoAddress { other_family }
            } else {
                Resolution::Resolved {
                    addresses,
                    other_family,
                }
            }
        }
        Err(LookupError::NoSuchName { .. }) => Resolution::NoSuchName,
        Err(LookupError::NoAddress { .. }) => Resolution::NoAddress {
            other_family: Vec::new(),
        },
        Err(LookupError::NotAName { why }) => Resolution::NotAName { detail: why },
        Err(e) => Resolution::ResolverFailed {
            detail: e.detail().to_string(),
        },
    }
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

    #[test]
    fn what_cannot_be_a_name_is_never_looked_up() {
        for name in [
            "localhost",
            "example.org",
            "example.org.",
            "_dmarc.example.com",
            "xn--bcher-kva.example",
            "web-1.lab",
            "b\u{fc}cher.example",
        ] {
            assert_eq!(name_problem(name), None, "{name}");
        }
        for (spec, says) in [
            ("10.0.0.300", "not a valid IPv4 address"),
            ("10.0.0.1-5", "or range"),
            ("1.2.3.4.5", "not a valid IPv4 address"),
            ("5", "not a valid IPv4 address"),
            ("10.0.0.0/33", "not a valid address block"),
            ("2001:db8::g", "not a valid IPv6 address"),
            ("a..b", "an empty part"),
            ("foo bar.example", "' ' is none of them"),
            ("host,example", "',' is none of them"),
        ] {
            let why = name_problem(spec).unwrap_or_else(|| panic!("{spec} passed"));
            assert!(why.starts_with(spec) && why.contains(says), "{spec}: {why}");
            // Refused before getaddrinfo is called: no query for it.
            assert!(
                matches!(lookup(spec), Err(LookupError::NotAName { .. })),
                "{spec}"
            );
            assert!(matches!(
                resolve(spec, Family::Any),
                Resolution::NotAName { .. }
            ));
        }
        let long = format!("{}.example", "a".repeat(64));
        assert!(name_problem(&long).unwrap().contains("at most 63 bytes"));
    }

    #[test]
    fn lookup_errors_read_as_std_does() {
        use std::net::ToSocketAddrs;
        let e = lookup("a\0b").unwrap_err();
        let std = ("a\0b", 0u16).to_socket_addrs().unwrap_err();
        assert_eq!(e.to_string(), std.to_string());
        assert_eq!(e.detail(), "the name contains a NUL byte");
        // An empty name fails in the resolver itself, with no DNS asked.
        let std = ("", 0u16).to_socket_addrs().unwrap_err();
        assert_eq!(lookup("").unwrap_err().to_string(), std.to_string());
        let std: Vec<IpAddr> = ("localhost", 0u16)
            .to_socket_addrs()
            .unwrap()
            .map(|a| a.ip())
            .collect();
        assert_eq!(lookup("localhost").unwrap(), std);
        let e = LookupError::NoSuchName {
            detail: "Name or service not known".into(),
        };
        assert_eq!(
            e.to_string(),
            "failed to lookup address information: Name or service not known"
        );
    }
}
