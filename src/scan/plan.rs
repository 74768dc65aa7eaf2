//! What a run will probe: each probe's 4-tuple (and TTL), in the order it
//! goes out, and the way back from an answer to its probe.

use super::pick_source_port;
use crate::select::PortSet;
use crate::track::Answer;
use rand::{RngExt, SeedableRng, seq::SliceRandom};
use rustc_hash::FxHashMap;
use std::net::IpAddr;

/// One SYN to send (and send again while it is not answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub source: IpAddr,
    pub sport: u16,
    pub target: IpAddr,
    pub port: u16,
    /// TTL / hop limit; None: the system's default.
    pub ttl: Option<u8>,
}

/// The probes of one run, in sending order.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub probes: Vec<Probe>,
    index: Index,
    /// The seed of the order (random unless given).
    pub seed: u64,
}

/// A (source, sport, target) with at least this many ports gets a table
/// indexed by port (256 KiB; at most 64 bytes per probe).
const DENSE_FROM: usize = 4096;

/// No probe at this slot of a dense table.
const NONE: u32 = u32::MAX;

/// (source, sport, target, port) → index in `probes`. Every captured
/// answer is looked up here: a hash table of 4-tuples costs two cache
/// misses a lookup once it outgrows the caches (a `-p-` scan: 65,535
/// entries of 48 bytes), which a capped scan, its caches cold after each
/// sleep, pays on every answer. So a triple with many ports gets a table
/// indexed by the port (one miss into 256 KiB), the rest a hash table.
#[derive(Debug, Clone, Default)]
struct Index {
    triples: FxHashMap<(IpAddr, u16, IpAddr), u32>,
    dense: Vec<Box<[u32]>>,
    sparse: FxHashMap<(IpAddr, u16, IpAddr, u16), u32>,
}

impl Index {
    fn new(probes: &[Probe]) -> Index {
        let mut counts: FxHashMap<(IpAddr, u16, IpAddr), usize> = FxHashMap::default();
        for p in probes {
            *counts.entry((p.source, p.sport, p.target)).or_default() += 1;
        }
        let mut index = Index::default();
        for (triple, n) in counts {
            if n >= DENSE_FROM {
                index.triples.insert(triple, index.dense.len() as u32);
                index.dense.push(vec![NONE; 1 << 16].into_boxed_slice());
            }
        }
        for (i, p) in probes.iter().enumerate() {
            match index.triples.get(&(p.source, p.sport, p.target)) {
                Some(&t) => index.dense[t as usize][usize::from(p.port)] = i as u32,
                None => {
                    index
                        .sparse
                        .insert((p.source, p.sport, p.target, p.port), i as u32);
                }
            }
        }
        index
    }

    fn get(&self, source: IpAddr, sport: u16, target: IpAddr, port: u16) -> Option<u32> {
        if !self.dense.is_empty()
            && let Some(&t) = self.triples.get(&(source, sport, target))
        {
            let i = self.dense[t as usize][usize::from(port)];
            return (i != NONE).then_some(i);
        }
        self.sparse.get(&(source, sport, target, port)).copied()
    }
}

impl Plan {
    /// A plan of these probes, in this order.
    pub fn new(probes: Vec<Probe>, seed: u64) -> Plan {
        let index = Index::new(&probes);
        Plan {
            probes,
            index,
            seed,
        }
    }

    /// A scan: every target × port (or shard `(i, n)` of them), in random
    /// order (or the order `seed` gives), from one source port (`sport`, or
    /// one picked outside the kernel's ephemeral range), each from the
    /// source address `source_of` names for its target (targets without
    /// one are left out). Returns the plan and the source port.
    pub fn scan(
        targets: &[IpAddr],
        ports: &PortSet,
        shard: Option<(u32, u32)>,
        seed: Option<u64>,
        sport: Option<u16>,
        ttl: Option<u8>,
        source_of: impl Fn(IpAddr) -> Option<IpAddr>,
    ) -> (Plan, u16) {
        let seed = seed.unwrap_or_else(|| rand::rng().random());
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let sport = sport.unwrap_or_else(|| pick_source_port(&mut rng));
        let mut pairs = pairs(targets, ports, shard);
        pairs.shuffle(&mut rng);
        // The ports most often open go first (in their random order), as
        // nmap does: a host's first answers, found early, give its round
        // trip and a port to time against (see engine), where a random
        // order would leave a mostly-silent host on the initial timeout
        // for a third of the scan.
        pairs.sort_by_key(|(_, p)| !OFTEN_OPEN.contains(p));
        let probes = pairs
            .into_iter()
            .filter_map(|(target, port)| {
                Some(Probe {
                    source: source_of(target)?,
                    sport,
                    target,
                    port,
                    ttl,
                })
            })
            .collect();
        (Plan::new(probes, seed), sport)
    }

    pub fn len(&self) -> usize {
        self.probes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.probes.is_empty()
    }

    /// The probe an answer (from the tracker) answered, if it is one of ours.
    pub fn index_of(&self, a: &Answer) -> Option<u32> {
        self.index.get(a.client, a.sport, a.target, a.port)
    }

    /// Whether this plan sends a probe with this 4-tuple.
    pub fn contains(&self, source: IpAddr, sport: u16, target: IpAddr, port: u16) -> bool {
        self.index.get(source, sport, target, port).is_some()
    }
}

/// Ports most often found open on servers (web, ssh, mail, remote
/// desktop, databases, DNS, file sharing): probed first.
pub const OFTEN_OPEN: [u16; 24] = [
    80, 443, 22, 21, 23, 25, 53, 110, 143, 3389, 445, 139, 135, 3306, 8080, 8443, 993, 995, 587,
    5432, 5900, 111, 1723, 6379,
];

/// Every target × port, or shard `(i, n)` of them (see [`shard`]).
pub fn pairs(targets: &[IpAddr], ports: &PortSet, shard: Option<(u32, u32)>) -> Vec<(IpAddr, u16)> {
    let mut pairs: Vec<(IpAddr, u16)> = Vec::with_capacity(targets.len() * ports.len());
    for t in targets {
        for p in ports.iter() {
            pairs.push((*t, p));
        }
    }
    match shard {
        Some((i, n)) => self::shard(pairs, i, n),
        None => pairs,
    }
}

/// Shard `i` of `n` (1-based) of a probe list: the list is put in a fixed
/// order first (address, then port), then every n-th probe from the i-th
/// on is kept. The shards of 1..=n are disjoint and together the whole
/// list, with no coordinator.
pub fn shard(mut probes: Vec<(IpAddr, u16)>, i: u32, n: u32) -> Vec<(IpAddr, u16)> {
    if n <= 1 {
        return probes;
    }
    probes.sort_unstable();
    probes.dedup();
    probes
        .into_iter()
        .enumerate()
        .filter(|(k, _)| (*k as u64) % u64::from(n) == u64::from(i.saturating_sub(1)))
        .map(|(_, p)| p)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_finds_every_probe_dense_or_sparse() {
        let src: IpAddr = "192.0.2.1".parse().unwrap();
        let big: IpAddr = "192.0.2.2".parse().unwrap();
        let small: IpAddr = "2001:db8::2".parse().unwrap();
        let probe = |target, port| Probe {
            source: src,
            sport: 40000,
            target,
            port,
            ttl: None,
        };
        let mut probes: Vec<Probe> = (1..=5000).map(|p| probe(big, p)).collect();
        probes.extend([22, 80, 443].map(|p| probe(small, p)));
        let plan = Plan::new(probes.clone(), 0);
        assert_eq!(plan.index.dense.len(), 1, "the 5,000-port target is dense");
        for (i, p) in probes.iter().enumerate() {
            assert_eq!(
                plan.index.get(p.source, p.sport, p.target, p.port),
                Some(i as u32)
            );
        }
        // Ports, source ports, sources and targets not probed are not found.
        assert!(!plan.contains(src, 40000, big, 5001));
        assert!(!plan.contains(src, 40000, big, 0));
        assert!(!plan.contains(src, 40001, big, 80));
        assert!(!plan.contains(big, 40000, big, 80));
        assert!(!plan.contains(src, 40000, small, 8080));
        assert!(!plan.contains(src, 40000, src, 80));
    }
}
