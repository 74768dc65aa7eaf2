//! Selectors: which clients, targets and ports a report covers.

use ipnet::IpNet;
use std::net::IpAddr;
use std::str::FromStr;

/// An address or a CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrSpec(pub IpNet);

impl FromStr for AddrSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(net) = IpNet::from_str(s) {
            return Ok(AddrSpec(net.trunc()));
        }
        match IpAddr::from_str(s.trim_start_matches('[').trim_end_matches(']')) {
            Ok(a) => Ok(AddrSpec(IpNet::from(a))),
            Err(_) => Err(format!(
                "{s:?} is not an IP address or CIDR block (e.g. 192.0.2.7, 2001:db8::/32)"
            )),
        }
    }
}

/// A set of TCP ports in nmap's syntax: `22,80,8000-8100`, `-` or `1-65535` for all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSet {
    /// Sorted, non-overlapping inclusive ranges.
    ranges: Vec<(u16, u16)>,
}

/// synscope's list of common service ports, most useful first (see the
/// file's header for where the order comes from).
const TOP_PORTS: &str = include_str!("scan/top-ports.txt");

impl PortSet {
    /// The first `n` ports of synscope's common-service list, or an error
    /// if the list is shorter.
    pub fn top(n: usize) -> Result<PortSet, String> {
        let list: Vec<u16> = TOP_PORTS
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        if n == 0 || n > list.len() {
            return Err(format!(
                "--top-ports takes 1 to {} (synscope's list of common service ports)",
                list.len()
            ));
        }
        Ok(PortSet::from_ports(&list[..n]))
    }

    /// These ports (0 is left out: it cannot be probed).
    pub fn from_ports(ports: &[u16]) -> PortSet {
        PortSet::from_ranges(ports.iter().filter(|&&p| p > 0).map(|&p| (p, p)).collect())
    }

    /// Inclusive ranges, sorted and merged where they touch.
    fn from_ranges(mut ranges: Vec<(u16, u16)>) -> PortSet {
        ranges.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
        for (a, b) in ranges {
            match merged.last_mut() {
                Some(last) if u32::from(a) <= u32::from(last.1) + 1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        PortSet { ranges: merged }
    }

    pub fn all() -> Self {
        PortSet {
            ranges: vec![(1, 65535)],
        }
    }

    pub fn contains(&self, port: u16) -> bool {
        self.ranges.iter().any(|&(a, b)| a <= port && port <= b)
    }

    pub fn len(&self) -> usize {
        self.ranges
            .iter()
            .map(|&(a, b)| usize::from(b) - usize::from(a) + 1)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Every port, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.ranges.iter().flat_map(|&(a, b)| a..=b)
    }
}

impl FromStr for PortSet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "-" {
            return Ok(PortSet::all());
        }
        let port = |p: &str, whole: &str| -> Result<u16, String> {
            match p.trim().parse::<u16>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!(
                    "bad port {whole:?} in {s:?}: ports are 1-65535, written like 22,80,8000-8100"
                )),
            }
        };
        let mut ranges = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(format!(
                    "empty port in {s:?}: write ports like 22,80,8000-8100"
                ));
            }
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => {
                    let a = if a.trim().is_empty() {
                        1
                    } else {
                        port(a, part)?
                    };
                    let b = if b.trim().is_empty() {
                        65535
                    } else {
                        port(b, part)?
                    };
                    (a, b)
                }
                None => {
                    let p = port(part, part)?;
                    (p, p)
                }
            };
            if a > b {
                return Err(format!("port range {part:?} runs backwards in {s:?}"));
            }
            ranges.push((a, b));
        }
        Ok(PortSet::from_ranges(ranges))
    }
}

/// What a report covers; an empty list means "any".
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub clients: Vec<AddrSpec>,
    pub targets: Vec<AddrSpec>,
    pub ports: Option<PortSet>,
}

impl Selection {
    pub fn admits(&self, client: IpAddr, target: IpAddr, port: u16) -> bool {
        let any = |specs: &[AddrSpec], a: IpAddr| {
            specs.is_empty() || specs.iter().any(|s| s.0.contains(&a))
        };
        any(&self.clients, client)
            && any(&self.targets, target)
            && self.ports.as_ref().is_none_or(|p| p.contains(port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_like_nmap() {
        let p: PortSet = "80,22,8000-8002,81".parse().unwrap();
        assert_eq!(
            p.iter().collect::<Vec<_>>(),
            vec![22, 80, 81, 8000, 8001, 8002]
        );
        assert_eq!(p.len(), 6);
        assert_eq!("-".parse::<PortSet>().unwrap().len(), 65535);
        assert_eq!("-1024".parse::<PortSet>().unwrap().len(), 1024);
        assert_eq!("65000-".parse::<PortSet>().unwrap().len(), 536);
        assert!("0".parse::<PortSet>().is_err());
        assert!("70000".parse::<PortSet>().is_err());
        assert!("90-80".parse::<PortSet>().is_err());
        assert!("80,,81".parse::<PortSet>().is_err());
        assert!("http".parse::<PortSet>().is_err());
    }

    #[test]
    fn top_ports_come_from_the_shipped_list() {
        let p = PortSet::top(3).unwrap();
        assert_eq!(p.iter().collect::<Vec<_>>(), vec![22, 80, 443]);
        let all = PortSet::top(100).unwrap();
        assert_eq!(all.len(), 100, "no duplicates in the first 100");
        assert!(PortSet::top(0).is_err());
        assert!(
            PortSet::top(100_000)
                .unwrap_err()
                .contains("--top-ports takes 1 to")
        );
    }

    #[test]
    fn selection_matches_cidrs() {
        let sel = Selection {
            clients: vec![],
            targets: vec![
                "203.0.113.0/24".parse().unwrap(),
                "2001:db8::1".parse().unwrap(),
            ],
            ports: Some("80".parse().unwrap()),
        };
        let c: IpAddr = "198.51.100.2".parse().unwrap();
        assert!(sel.admits(c, "203.0.113.9".parse().unwrap(), 80));
        assert!(!sel.admits(c, "203.0.113.9".parse().unwrap(), 81));
        assert!(sel.admits(c, "2001:db8::1".parse().unwrap(), 80));
        assert!(!sel.admits(c, "2001:db8::2".parse().unwrap(), 80));
        assert!("nonsense".parse::<AddrSpec>().is_err());
        assert!("[::1]".parse::<AddrSpec>().is_ok());
    }
}
