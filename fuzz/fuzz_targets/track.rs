//! The probe table fed arbitrary packet sequences: each record is a time
//! step (2 bytes), a link type selector (1 byte), a length (1 byte) and that
//! many frame bytes. Decoded packets go to the tracker with the running
//! clock (steps may go backwards); it must never panic, keep its counters
//! whole, and finish with a verdict for every triple it opened.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synscope::track::{Config, Tracker};
use synscope::wire::{self, Body, LinkType};

const LINKS: [i32; 4] = [1, 12, 113, 276];

fuzz_target!(|data: &[u8]| {
    let mut t = Tracker::new(Config {
        timeout: 1_000_000,
        max_attempts: 64,
        // A few triples kept: the cap's path is fuzzed too.
        max_triples: 16,
    });
    let mut ts: u64 = 1 << 40;
    let mut rest = data;
    let mut handed = 0u64;
    while rest.len() >= 4 {
        let step = i16::from_le_bytes([rest[0], rest[1]]);
        let link = LinkType(LINKS[usize::from(rest[2]) % LINKS.len()]);
        let len = usize::from(rest[3]).min(rest.len() - 4);
        let frame = &rest[4..4 + len];
        rest = &rest[4 + len..];
        ts = ts.wrapping_add_signed(i64::from(step) * 1000);
        if let Ok(p) = wire::parse(link, frame) {
            if !matches!(p.body, Body::Dns(_)) {
                handed += 1;
            }
            t.observe(ts, &p);
        }
    }
    let (merged, s) = t.finish();
    assert_eq!(s.syns + s.replies + s.unsolicited + s.other_tcp, handed);
    assert!(merged.len() as u64 <= s.syns);
});
