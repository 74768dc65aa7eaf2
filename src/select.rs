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
/// file's header for where the order comes from): `--top-ports` where
/// nmap's frequency table is not installed.
const TOP_PORTS: &str = include_str!("scan/top-ports.txt");

/// Where nmap keeps nmap-services: `$NMAPDIR` alone when set (as nmap
/// looks there first), else the usual install places.
fn nmap_services() -> Option<String> {
    let dirs: Vec<std::path::PathBuf> = match std::env::var_os("NMAPDIR") {
        Some(d) => vec![d.into()],
        None => vec!["/usr/share/nmap".into(), "/usr/local/share/nmap".into()],
    };
    dirs.iter()
        .find_map(|d| std::fs::read_to_string(d.join("nmap-services")).ok())
}

/// The TCP ports of an nmap-services table (`name port/proto frequency`),
/// most often found open first (its measured open frequency; ties by port
/// number): the order nmap's own --top-ports takes.
pub fn by_frequency(text: &str) -> Vec<u16> {
    let mut ports: Vec<(f64, u16)> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (_, spec, freq) = (w.next()?, w.next()?, w.next()?);
            let (port, proto) = spec.split_once('/')?;
            let freq: f64 = freq.parse().ok()?;
            (proto == "tcp" && freq.is_finite()).then_some((freq, port.parse().ok()?))
        })
        .filter(|(_, p)| *p > 0)
        .collect();
    ports.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut seen = std::collections::HashSet::new();
    ports.retain(|(_, p)| seen.insert(*p));
    ports.into_iter().map(|(_, p)| p).collect()
}

impl PortSet {
    /// The first `n` of the most common ports: nmap's measured order where
    /// nmap is installed (its nmap-services, read here, not shipped: its
    /// licence is not ours), else synscope's own list; an error if that
    /// list is shorter.
    pub fn top(n: usize) -> Result<PortSet, String> {
        PortSet::top_in(n, nmap_services().as_deref())
    }

    /// [`PortSet::top`] with nmap-services' text given (None: not
    /// installed).
    pub fn top_in(n: usize, nmap_services: Option<&str>) -> Result<PortSet, String> {
        let (list, from) = match nmap_services.map(by_frequency) {
            Some(l) if !l.is_empty() => (l, "nmap's nmap-services"),
            _ => (
                TOP_PORTS
                    .lines()
                    .filter(|l| !l.starts_with('#'))
                    .filter_map(|l| l.split_whitespace().next()?.parse().ok())
                    .collect(),
                "synscope's list of common service ports; nmap's nmap-services, with the measured order of thousands, was not found: install nmap (or nmap-common), or set NMAPDIR",
            ),
        };
        if n == 0 || n > list.len() {
            return Err(format!("--top-ports takes 1 to {} ({from})", list.len()));
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
    fn top_ports_come_from_the_shipped_list_without_nmap() {
        let p = PortSet::top_in(3, None).unwrap();
        assert_eq!(p.iter().collect::<Vec<_>>(), vec![22, 80, 443]);
        let all = PortSet::top_in(100, None).unwrap();
        assert_eq!(all.len(), 100, "no duplicates in the first 100");
        assert!(PortSet::top_in(0, None).is_err());
        let e = PortSet::top_in(1000, None).unwrap_err();
        assert!(e.contains("--top-ports takes 1 to"), "{e}");
        assert!(e.contains("install nmap"), "{e}");
    }

    #[test]
    fn top_ports_follow_nmaps_measured_order() {
        // nmap-services' layout, frequencies made up for the test.
        let table = "# comment\n\
            ftp\t21/tcp\t0.197667\t# File Transfer\n\
            http\t80/tcp\t0.484143\n\
            domain\t53/udp\t0.213496\n\
            ssh\t22/tcp\t0.182286\n\
            https\t443/tcp\t0.208669\n\
            rare\t9999/tcp\t0.000000\n\
            broken\tline\n";
        assert_eq!(by_frequency(table), vec![80, 443, 21, 22, 9999]);
        let p = PortSet::top_in(2, Some(table)).unwrap();
        assert_eq!(p.iter().collect::<Vec<_>>(), vec![80, 443]);
        let e = PortSet::top_in(6, Some(table)).unwrap_err();
        assert_eq!(e, "--top-ports takes 1 to 5 (nmap's nmap-services)");
        // A table with no TCP line is no table: the shipped list.
        assert_eq!(
            PortSet::top_in(139, Some("x 53/udp 0.5\n")).unwrap().len(),
            139
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
