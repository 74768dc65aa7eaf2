//! The probe table's index: 4-tuple hash → ring sequence number, open
//! addressing with linear probing, 8 bytes a slot (a 31-bit tag of the hash
//! and the sequence number). Nothing is ever removed: an entry goes stale
//! when its attempt leaves the ring (a removal would be a cache miss per
//! attempt), an insert may reuse a stale slot on its way, and the table is
//! rebuilt from the ring when half its slots are used. Unlike a general
//! hash table it can be asked to prefetch a hash's slot ahead of the
//! lookup: the tracker does, a few packets ahead, so that the misses of a
//! table too large for the cache overlap instead of adding up.

const EMPTY: u64 = 0;

#[derive(Debug)]
pub(super) struct Index {
    slots: Vec<u64>,
    mask: usize,
    used: usize,
}

/// The tag kept of a hash: its top 31 bits, and a 1 above them (so that no
/// entry is ever EMPTY).
fn tag(h: u64) -> u64 {
    ((h >> 33) | (1 << 31)) << 32
}

impl Index {
    pub(super) fn new() -> Index {
        Index::with_slots(1024)
    }

    fn with_slots(n: usize) -> Index {
        let n = n.next_power_of_two().max(16);
        // Written, not `vec![EMPTY; n]`: calloc's zero pages would be
        // mapped on the first probe's read and copied on the insert's write.
        let mut slots = Vec::with_capacity(n);
        slots.resize(n, EMPTY);
        Index {
            slots,
            mask: n - 1,
            used: 0,
        }
    }

    /// Whether an insert would fill more than half the slots (time to
    /// rebuild, see [`Index::rebuilt`]).
    pub(super) fn full(&self) -> bool {
        (self.used + 1) * 2 > self.slots.len()
    }

    /// Emptied, with room for `live` entries and as many again. Its slots
    /// are cleared in place when that is its size (the usual case: a table
    /// in a steady state): a fresh allocation of zeroed pages faulted twice
    /// per page on the inserts (read, then copy on write, with a TLB flush
    /// on the other CPU each time), 3 % of analyze's samples.
    pub(super) fn rebuild(&mut self, live: usize) {
        let n = (live * 4).max(1024).next_power_of_two();
        if n == self.slots.len() {
            self.slots.fill(EMPTY);
            self.used = 0;
        } else {
            *self = Index::with_slots(n);
        }
    }

    /// The sequence number of the entry of hash `h` that `is` accepts.
    #[inline]
    pub(super) fn find(&self, h: u64, is: impl Fn(u32) -> bool) -> Option<u32> {
        let t = tag(h);
        let mut i = (h as usize) & self.mask;
        loop {
            let e = *self.slots.get(i)?;
            if e == EMPTY {
                return None;
            }
            if e & !0xFFFF_FFFF == t && is(e as u32) {
                return Some(e as u32);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Puts `seq` under hash `h`; a slot whose entry `stale` says is gone is
    /// taken on the way. The caller rebuilds when [`Index::full`].
    #[inline]
    pub(super) fn insert(&mut self, h: u64, seq: u32, stale: impl Fn(u32) -> bool) {
        let v = tag(h) | u64::from(seq);
        let mut i = (h as usize) & self.mask;
        // At most every slot once (the table is never full: see `full`).
        for _ in 0..self.slots.len() {
            let Some(e) = self.slots.get_mut(i) else {
                return;
            };
            if *e == EMPTY {
                *e = v;
                self.used += 1;
                return;
            }
            if stale(*e as u32) {
                *e = v;
                return;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Asks the CPU to bring hash `h`'s first slot into the cache.
    #[inline]
    pub(super) fn prefetch(&self, h: u64) {
        #[cfg(target_arch = "x86_64")]
        if let Some(s) = self.slots.get((h as usize) & self.mask) {
            // SAFETY: a prefetch is a hint; the pointer is to a live slot.
            unsafe {
                std::arch::x86_64::_mm_prefetch(
                    (s as *const u64).cast::<i8>(),
                    std::arch::x86_64::_MM_HINT_T0,
                )
            };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = h;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_was_put_reuses_stale_slots_and_says_when_full() {
        let mut x = Index::new();
        // Two hashes on the same slot, and a third elsewhere.
        let (a, b, c) = (5u64 | (7 << 40), 5u64 | (9 << 40), 6u64);
        x.insert(a, 1, |_| false);
        x.insert(b, 2, |_| false);
        x.insert(c, 3, |_| false);
        assert_eq!(x.find(a, |_| true), Some(1));
        assert_eq!(x.find(b, |_| true), Some(2));
        assert_eq!(x.find(c, |_| true), Some(3));
        // The tag tells a and b apart; the predicate tells entries of one tag.
        assert_eq!(x.find(b, |s| s == 1), None);
        assert_eq!(x.find(99, |_| true), None);
        // With 1 stale, a new entry takes its slot, and b is still found
        // past it.
        x.insert(a | (1 << 50), 4, |s| s == 1);
        assert_eq!(x.used, 3);
        assert_eq!(x.find(b, |_| true), Some(2));
        assert_eq!(x.find(a | (1 << 50), |_| true), Some(4));
        let mut n = 0;
        while !x.full() {
            x.insert(1000 + n, n as u32, |_| false);
            n += 1;
        }
        assert!(x.used * 2 <= x.slots.len() && (x.used + 1) * 2 > x.slots.len());
    }
}
