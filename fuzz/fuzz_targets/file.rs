//! Whole-file analysis: arbitrary bytes written as a capture file and read
//! as `synscope analyze` does: by synscope's own pcap/pcapng reader when
//! the magic number is one it knows (the seeds are pcap and pcapng files),
//! else by libpcap. It must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Write;
use synscope::analyze::{Analyzer, Options};

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir();
    let path = dir.join(format!("synscope-fuzz-{}.pcap", std::process::id()));
    if let Ok(mut f) = std::fs::File::create(&path) {
        if f.write_all(data).is_ok() {
            drop(f);
            let mut a = Analyzer::new(Options::default());
            a.add_file(&path);
            let _ = a.finish();
        }
    }
});
