//! model: the words every stage speaks. The packet clock, the verdicts and
//! the results of an analysis, a scan and a trace. Plain data, no I/O; the
//! bottom of the pipeline, importing nothing of synscope's own.

mod analysis;
mod scan;
mod session;
mod trace;
mod verdict;

pub use analysis::{Analysis, DnsEvent, InputSummary, Stats, Summary};
pub use scan::{CaptureStats, EngineStats, ScanInfo};
pub use session::{AfterHandshake, Event, EventKind, printable};
pub use trace::{Hop, HopKind, PortTrace};
pub use verdict::{Inferred, Process, Reason, State, Triple, Verdict, hops_from_ttl};

/// Nanoseconds since the Unix epoch, from the packet headers: the only
/// clock verdicts are decided by.
pub type Nanos = u64;

pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// The JSON report's version (docs/JSON.md); bump it on any incompatible
/// change.
pub const SCHEMA_VERSION: u32 = 1;

/// 65520 → "65,520".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
