//! Every link type's parser on arbitrary bytes: the first byte picks the
//! link type, the rest is the frame. It must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synscope::wire::{self, LinkType};

const LINKS: [i32; 10] = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276];

fuzz_target!(|data: &[u8]| {
    if let Some((&sel, frame)) = data.split_first() {
        let _ = wire::parse(LinkType(LINKS[usize::from(sel) % LINKS.len()]), frame);
    }
});
