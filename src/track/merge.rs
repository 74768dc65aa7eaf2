//! Folding per-attempt verdicts into one verdict per (client, target, port).

use super::{Addr, Triple, Verdict, merge_into};
use rustc_hash::FxHashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct TripleKey {
    client: Addr,
    target: Addr,
    port: u16,
}

impl From<Triple> for TripleKey {
    fn from(t: Triple) -> Self {
        TripleKey {
            client: t.client.into(),
            target: t.target.into(),
            port: t.port,
        }
    }
}

/// One verdict per triple, from any number of attempts, files or runs:
/// the strongest evidence wins (see [`merge_into`]).
#[derive(Debug, Default)]
pub struct Merger {
    map: FxHashMap<TripleKey, Verdict>,
}

impl Merger {
    pub fn new() -> Self {
        Merger::default()
    }

    pub fn add(&mut self, v: Verdict) {
        match self.map.entry(v.triple().into()) {
            std::collections::hash_map::Entry::Occupied(mut e) => merge_into(e.get_mut(), v),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(v);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The verdicts, sorted by target, port, client.
    pub fn into_sorted(self) -> Vec<Verdict> {
        let mut v: Vec<Verdict> = self.map.into_values().collect();
        v.sort_by_key(|v| (v.target, v.port, v.client));
        v
    }
}
