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
    /// (source, sport, target, port) → index in `probes`.
    index: FxHashMap<(IpAddr, u16, IpAddr, u16), u32>,
    /// The seed of the order (random unless given).
    pub seed: u64,
}

impl Plan {
    /// A plan of these probes, in this order.
    pub fn new(probes: Vec<Probe>, seed: u64) -> Plan {
        let index = probes
            .iter()
            .enumerate()
            .map(|(i, p)| ((p.source, p.sport, p.target, p.port), i as u32))
            .collect();
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
        self.index
            .get(&(a.client, a.sport, a.target, a.port))
            .copied()
    }

    /// Whether this plan sends a probe with this 4-tuple.
    pub fn contains(&self, source: IpAddr, sport: u16, target: IpAddr, port: u16) -> bool {
        self.index.contains_key(&(source, sport, target, port))
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
