//! The offline pipeline: source → wire → track, with results merged over
//! every file of one call. Live scans feed the same [`Analyzer`].

use crate::select::Selection;
use crate::source::{FileSource, PacketSource};
use crate::track::{self, Merger, State, Stats, Tracker, Verdict};
use crate::wire::{self, Skip};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;

/// Batches queued between the reader and the tracker at most (bounds
/// memory: a few MiB).
const BATCHES_IN_FLIGHT: usize = 4;
const BATCH_PACKETS: usize = 32768;

/// Decoded packets on their way from the reader to the tracker.
#[derive(Default)]
struct Batch {
    packets: Vec<(u64, wire::Packet)>,
}

impl Batch {
    fn cleared(mut self) -> Batch {
        self.packets.clear();
        self
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub track: track::Config,
    pub selection: Selection,
    /// BPF filter applied by libpcap when reading files.
    pub filter: Option<String>,
}

/// What happened to one input.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InputSummary {
    pub file: String,
    pub link_type: String,
    pub packets_read: u64,
    pub skipped: u64,
    pub skipped_by_reason: BTreeMap<&'static str, u64>,
    /// DNS responses seen (they go to `Analysis::dns`, not the tracker).
    pub dns: u64,
    #[serde(flatten)]
    pub stats: Stats,
    /// Why the input could not be read, or why reading stopped early.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Totals over all inputs and results: the JSON `summary`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub dns: u64,
    pub open: u64,
    pub refused: u64,
    pub filtered: u64,
    pub unreachable: u64,
    pub packets_read: u64,
    pub skipped: u64,
    pub unsolicited: u64,
    pub syns: u64,
    pub retransmissions: u64,
    pub replies: u64,
    pub other_tcp: u64,
    pub evicted: u64,
}

/// A DNS response seen in a capture.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DnsEvent {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The resolver that answered, and whom.
    pub server: std::net::IpAddr,
    pub client: std::net::IpAddr,
    pub name: String,
    /// 0 no error, 2 server failure, 3 NXDOMAIN, 5 refused, ...
    pub rcode: u8,
    pub addresses: Vec<std::net::IpAddr>,
}

#[derive(Debug, Clone, Default)]
pub struct Analysis {
    /// Sorted by target, port, client.
    pub results: Vec<Verdict>,
    /// DNS responses in the inputs, in capture order.
    pub dns: Vec<DnsEvent>,
    pub inputs: Vec<InputSummary>,
    pub summary: Summary,
}

impl Analysis {
    /// An analysis of these results (sorted) from these inputs, with the
    /// summary computed from both.
    pub fn from_parts(results: Vec<Verdict>, inputs: Vec<InputSummary>) -> Analysis {
        let mut summary = Summary::default();
        for v in &results {
            match v.state {
                State::Open => summary.open += 1,
                State::Refused => summary.refused += 1,
                State::Filtered => summary.filtered += 1,
                State::Unreachable => summary.unreachable += 1,
            }
        }
        for i in &inputs {
            summary.packets_read += i.packets_read;
            summary.dns += i.dns;
            summary.skipped += i.skipped;
            summary.unsolicited += i.stats.unsolicited;
            summary.syns += i.stats.syns;
            summary.retransmissions += i.stats.retransmissions;
            summary.replies += i.stats.replies;
            summary.other_tcp += i.stats.other_tcp;
            summary.evicted += i.stats.evicted;
        }
        Analysis {
            results,
            dns: Vec::new(),
            inputs,
            summary,
        }
    }

    /// Inputs that could not be read in full.
    pub fn errors(&self) -> impl Iterator<Item = &InputSummary> {
        self.inputs.iter().filter(|i| i.error.is_some())
    }
}

/// Runs any number of sources through the tracker, merging verdicts per
/// (client, target, port) across them; the selection applies at the end.
#[derive(Debug, Default)]
pub struct Analyzer {
    opts: Options,
    dns: Vec<DnsEvent>,
    merged: Merger,
    inputs: Vec<InputSummary>,
}

impl Analyzer {
    pub fn new(opts: Options) -> Self {
        Analyzer {
            opts,
            dns: Vec::new(),
            merged: Merger::new(),
            inputs: Vec::new(),
        }
    }

    /// Reads a capture file to its end (or its first unreadable byte).
    pub fn add_file(&mut self, path: &Path) {
        let name = path.display().to_string();
        match FileSource::open(path, self.opts.filter.as_deref()) {
            Ok(mut src) => self.add_source(&name, &mut src),
            Err(e) => self.inputs.push(InputSummary {
                file: name,
                error: Some(e),
                ..Default::default()
            }),
        }
    }

    /// Reads any packet source to its end.
    pub fn add_source(&mut self, name: &str, src: &mut dyn PacketSource) {
        let link = src.link_type();
        let mut sum = InputSummary {
            file: name.to_string(),
            link_type: link.name(),
            ..Default::default()
        };
        if !link.is_supported() {
            // Count what is skipped, but read no further than needed.
            let mut n = 0u64;
            let mut read_err = None;
            loop {
                match src.next_packet() {
                    Ok(Some(_)) => n += 1,
                    Ok(None) => break,
                    Err(e) => {
                        read_err = Some(e);
                        break;
                    }
                }
            }
            sum.packets_read = n;
            sum.skipped = n;
            if n > 0 {
                sum.skipped_by_reason
                    .insert(Skip::UnsupportedLink.as_str(), n);
            }
            sum.error = Some(format!(
                "{} is not a link type synscope decodes (it reads Ethernet, Linux SLL/SLL2, raw IP, NULL/LOOP); {n} packets skipped{}",
                link.name(),
                read_err.map(|e| format!(", then: {e}")).unwrap_or_default()
            ));
            self.inputs.push(sum);
            return;
        }
        // Two stages on two threads: this one reads (libpcap) and decodes,
        // a worker tracks. Packets cross in batches whose buffers go back to
        // the reader for reuse.
        let tracker = Tracker::resume(self.opts.track, std::mem::take(&mut self.merged));
        let (full_tx, full_rx) = mpsc::sync_channel::<Batch>(BATCHES_IN_FLIGHT);
        let (empty_tx, empty_rx) = mpsc::channel::<Batch>();
        let dns = &mut self.dns;
        let (tracker, skipped) = std::thread::scope(|scope| {
            let worker = scope.spawn(move || {
                let mut tracker = tracker;
                for batch in full_rx {
                    for (ts, p) in &batch.packets {
                        tracker.observe(*ts, p);
                    }
                    // The reader may be gone already; then the batch is dropped.
                    let _ = empty_tx.send(batch.cleared());
                }
                tracker
            });
            let mut batch = Batch::default();
            let mut skipped = [0u64; 5];
            loop {
                match src.next_packet() {
                    Ok(Some(p)) => {
                        sum.packets_read += 1;
                        match wire::parse(link, p.data) {
                            Ok(wire::Packet {
                                src,
                                dst,
                                body: wire::Body::Dns(a),
                                ..
                            }) => {
                                sum.dns += 1;
                                dns.push(DnsEvent {
                                    ts_ns: p.ts,
                                    server: src,
                                    client: dst,
                                    name: a.name,
                                    rcode: a.rcode,
                                    addresses: a.addresses,
                                });
                            }
                            Ok(pkt) => batch.packets.push((p.ts, pkt)),
                            Err(s) => skipped[skip_index(s)] += 1,
                        }
                        if batch.packets.len() >= BATCH_PACKETS {
                            let next = empty_rx.try_recv().unwrap_or_default();
                            if full_tx.send(std::mem::replace(&mut batch, next)).is_err() {
                                break;
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        sum.error = Some(format!("stopped after packet {}: {e}", sum.packets_read));
                        break;
                    }
                }
            }
            if !batch.packets.is_empty() {
                let _ = full_tx.send(batch);
            }
            drop(full_tx);
            match worker.join() {
                Ok(t) => (t, skipped),
                // The worker only tracks, which does not panic; should it,
                // the panic is carried on as it was.
                Err(p) => std::panic::resume_unwind(p),
            }
        });
        let (merged, stats) = tracker.finish();
        self.merged = merged;
        sum.stats = stats;
        for s in [
            Skip::UnsupportedLink,
            Skip::NotIp,
            Skip::NotTcp,
            Skip::Fragment,
            Skip::Malformed,
        ] {
            let n = skipped[skip_index(s)];
            sum.skipped += n;
            if n > 0 {
                sum.skipped_by_reason.insert(s.as_str(), n);
            }
        }
        self.inputs.push(sum);
    }

    pub fn finish(self) -> Analysis {
        let sel = &self.opts.selection;
        let results: Vec<Verdict> = self
            .merged
            .into_verdicts()
            .into_iter()
            .filter(|v| sel.admits(v.client, v.target, v.port))
            .collect();
        let mut a = Analysis::from_parts(results, self.inputs);
        a.dns = self.dns;
        a
    }
}

fn skip_index(s: Skip) -> usize {
    match s {
        Skip::UnsupportedLink => 0,
        Skip::NotIp => 1,
        Skip::NotTcp => 2,
        Skip::Fragment => 3,
        Skip::Malformed => 4,
    }
}
