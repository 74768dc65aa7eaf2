//! Folding attempts into one verdict per (client, target, port): the
//! strongest evidence wins (SYN-ACK > RST > ICMP > silence, the earliest on
//! a tie), probes and attempts add up, TTLs seen are united.

use super::verdict::{self, TtlSet};
use super::{Addr, Attempt, Evidence, Hasher};
use crate::model::{Nanos, Verdict};
use hashbrown::HashTable;
use std::hash::BuildHasher;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct TripleKey {
    pub(super) client: Addr,
    pub(super) target: Addr,
    pub(super) port: u16,
    pub(super) v6: bool,
}

/// What is known of one triple so far.
#[derive(Debug, Clone)]
pub(super) struct Record {
    pub(super) key: TripleKey,
    pub(super) probes: u32,
    pub(super) attempts: u32,
    pub(super) first_syn: Nanos,
    pub(super) evidence: Option<Evidence>,
    pub(super) ttls: TtlSet,
}

/// Records from which [`Merger::verdicts`] builds on every CPU.
const PARALLEL_FROM: usize = 8192;

/// One record per triple, over any number of attempts and files.
#[derive(Debug, Default, Clone)]
pub struct Merger {
    records: Vec<Record>,
    /// Triple → index in `records`.
    index: HashTable<u32>,
    hasher: Hasher,
    /// Triples kept at most (0: no limit); attempts of others are counted
    /// in `not_kept` (a watch left running stays bounded).
    cap: usize,
    not_kept: u64,
    /// The record after the one absorbed last: a capture of repeated
    /// scans retires its attempts in the order their triples were first
    /// seen, so the next triple is most often this one, found without a
    /// hash or a probe.
    hint: usize,
}

impl Merger {
    pub fn new() -> Self {
        Merger::default()
    }

    /// A merger keeping at most `cap` triples (0: no limit).
    pub fn with_cap(cap: usize) -> Self {
        Merger {
            cap,
            ..Merger::default()
        }
    }

    /// Attempts that were not kept, their triple past the cap.
    pub fn not_kept(&self) -> u64 {
        self.not_kept
    }

    /// Room for `n` more triples.
    pub fn reserve(&mut self, n: usize) {
        self.records.reserve(n);
        let (records, hasher) = (&self.records, &self.hasher);
        self.index.reserve(n, |&j| {
            records
                .get(j as usize)
                .map_or(0, |r| hasher.hash_one(r.key))
        });
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The record of one attempt alone (what a streamed verdict shows).
    pub(super) fn record_of(a: &Attempt) -> Record {
        let (client, target, port) = a.ends();
        Record {
            key: TripleKey {
                client,
                target,
                port,
                v6: a.key.v6(),
            },
            probes: a.probes,
            attempts: 1,
            first_syn: a.first_syn,
            evidence: a.evidence,
            ttls: a.ttls,
        }
    }

    pub(super) fn absorb(&mut self, a: &Attempt) {
        self.absorb_record(Merger::record_of(a));
    }

    /// Folds another merger's records into this one (files tracked on
    /// other threads). The result does not depend on the order of merging:
    /// counts add up, TTL sets unite, and the evidence kept is the one that
    /// beats the others.
    pub fn merge(&mut self, other: Merger) {
        if self.records.is_empty() && self.cap == 0 {
            *self = other;
            return;
        }
        for r in other.records {
            self.absorb_record(r);
        }
    }

    fn absorb_record(&mut self, rec: Record) {
        let key = rec.key;
        let hinted = self.records.get(self.hint).is_some_and(|r| r.key == key);
        let (found, h) = if hinted {
            (Some(self.hint as u32), 0)
        } else {
            let h = self.hasher.hash_one(key);
            let records = &self.records;
            let found = self
                .index
                .find(h, |&i| {
                    records.get(i as usize).is_some_and(|r| r.key == key)
                })
                .copied();
            (found, h)
        };
        let records = &mut self.records;
        if let Some(i) = found
            && let Some(r) = records.get_mut(i as usize)
        {
            self.hint = i as usize + 1;
            r.probes = r.probes.saturating_add(rec.probes);
            r.attempts = r.attempts.saturating_add(rec.attempts);
            r.first_syn = r.first_syn.min(rec.first_syn);
            r.ttls.union(&rec.ttls);
            if let Some(ev) = rec.evidence
                && r.evidence.is_none_or(|cur| ev.beats(&cur))
            {
                r.evidence = Some(ev);
            }
            return;
        }
        if self.cap > 0 && records.len() >= self.cap {
            self.not_kept += u64::from(rec.attempts);
            return;
        }
        let i = u32::try_from(records.len()).unwrap_or(u32::MAX);
        records.push(rec);
        self.hint = records.len();
        let (records, hasher) = (&self.records, &self.hasher);
        self.index.insert_unique(h, i, |&j| {
            records
                .get(j as usize)
                .map_or(0, |r| hasher.hash_one(r.key))
        });
    }

    /// The verdicts so far, sorted by target, port, client.
    pub fn verdicts(&self) -> Vec<Verdict> {
        use rayon::prelude::*;
        // The keys are sorted, not the verdicts: a verdict is a few hundred
        // bytes, and a sort moves each many times. A triple's key is unique
        // here, so an unstable sort gives the one order; (family, high,
        // low) orders addresses as `IpAddr` does (client and target are of
        // one family).
        let mut order: Vec<_> = self
            .records
            .iter()
            .map(|r| {
                let k = &r.key;
                let (t, c) = (k.target.words(), k.client.words());
                ((k.v6, t, k.port, c), r)
            })
            .collect();
        // A report of 65,535 ports is built on every CPU (this runs after
        // the last packet, when the pipeline's threads are done): alone it
        // was a twentieth of a big analysis's wall time. Small ones stay
        // on this thread.
        let mut out = Vec::new();
        if order.len() < PARALLEL_FROM {
            order.sort_unstable_by_key(|(k, _)| *k);
            out.extend(order.into_iter().map(|(_, r)| verdict::build(r)));
        } else {
            order.par_sort_unstable_by_key(|(k, _)| *k);
            // Written in place: a collect of parts would copy them.
            order
                .into_par_iter()
                .map(|(_, r)| verdict::build(r))
                .collect_into_vec(&mut out);
        }
        out
    }

    /// The verdicts, sorted by target, port, client.
    pub fn into_verdicts(self) -> Vec<Verdict> {
        self.verdicts()
    }
}
