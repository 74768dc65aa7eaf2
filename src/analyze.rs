//! The offline pipeline: source → wire → track, with results merged over
//! every file of one call. Live scans feed the same [`Analyzer`].

use crate::model::Stats;
use crate::model::{Analysis, DnsEvent, InputSummary};
use crate::select::Selection;
use crate::source::{FileSource, NAMES_MAX, PacketSource, Reader};
use crate::track::{self, Merger, Tracker};
use crate::wire::{self, Skip};
use indicatif::ProgressBar;
use rustc_hash::FxHashMap;
use std::net::IpAddr;
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
    /// Keep the DNS answers (for `--findings`), each distinct one once;
    /// otherwise they are only counted.
    pub keep_dns: bool,
}

/// Runs capture files through the tracker, merging verdicts per
/// (client, target, port) across them; the selection applies at the end.
#[derive(Debug)]
pub struct Analyzer {
    opts: Options,
    dns: Vec<DnsEvent>,
    /// Names the captures' DNS answers gave addresses (the first file's
    /// first, at most [`NAMES_MAX`]).
    names: FxHashMap<IpAddr, String>,
    merged: Merger,
    inputs: Vec<InputSummary>,
    progress: Option<indicatif::ProgressBar>,
    jobs: usize,
}

/// From a decoding thread to one tracking thread, per file: the file's
/// start, batches of that tracker's packets, then the end of the file (the
/// file's summary goes to tracker 0 only).
enum Msg {
    /// The time of the file's first tracked packet, before any batch.
    Start(u64),
    Packets(Batch),
    /// The time of the file's latest tracked packet (0: none).
    End {
        latest: u64,
        summary: Option<Box<Decoded>>,
    },
}

/// One file, read: its summary (the trackers add the counters) and its DNS
/// answers.
struct Decoded {
    sum: InputSummary,
    dns: Vec<DnsEvent>,
    names: FxHashMap<IpAddr, String>,
}

impl Default for Analyzer {
    fn default() -> Self {
        Analyzer::new(Options::default())
    }
}

impl Analyzer {
    pub fn new(opts: Options) -> Self {
        Analyzer {
            opts,
            dns: Vec::new(),
            names: FxHashMap::default(),
            merged: Merger::new(),
            inputs: Vec::new(),
            progress: None,
            jobs: 1,
        }
    }

    /// Advance `bar` by the bytes of each file read (its length should be
    /// the files' total size).
    pub fn with_progress(mut self, bar: indicatif::ProgressBar) -> Self {
        self.progress = Some(bar);
        self
    }

    /// Decode up to `jobs` files at once in [`Analyzer::add_files`].
    pub fn with_jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    /// Reads one capture file to its end (or its first unreadable byte).
    pub fn add_file(&mut self, path: &Path) {
        self.add_files(&[path.to_path_buf()]);
    }

    /// Reads capture files. Up to `jobs` threads read and decode files (a
    /// file each) and as many track, each the attempts of one partition of
    /// the flows ([`track::partition`]). Trackers take the files in the
    /// order of their first packets and follow them across files, so an
    /// attempt whose SYN ends one file of a rotation (`tcpdump -C` / `-G`)
    /// and whose answer starts the next is matched; a file that starts
    /// before the files so far end (a capture of its own, of the same
    /// time) starts new trackers. Summaries are kept in the order of
    /// `paths`; the result does not depend on `jobs`.
    pub fn add_files(&mut self, paths: &[std::path::PathBuf]) {
        use std::sync::Mutex;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let filter = self.opts.filter.as_deref();
        // The order of their first packets (unreadable and empty files
        // first: they only report).
        let first: Vec<Option<u64>> = if paths.len() == 1 {
            // One file: no order to find, and no need to open it twice.
            vec![Some(0)]
        } else {
            paths.iter().map(|p| first_packet(p, filter)).collect()
        };
        let mut order: Vec<usize> = (0..paths.len()).collect();
        order.sort_by_key(|&i| (first[i].is_some(), first[i].unwrap_or(0), i));
        let parts = self.jobs;
        let wiring = Wiring::new(order.len());
        let pool: Mutex<Vec<Batch>> = Mutex::new(Vec::new());
        let next = AtomicUsize::new(0);
        let workers = self.jobs.min(order.len());
        let (opts, bar) = (&self.opts, self.progress.as_ref());
        let cfg = self.opts.track;
        let batch_len = (BATCH_PACKETS / parts).max(4096);
        let (order, pool, wiring) = (&order, &pool, &wiring);
        let tracked: Vec<Tracked> = std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    // Files are claimed in tracking order, so the file the
                    // trackers wait for is always being read.
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = order.get(k).and_then(|&i| paths.get(i)) else {
                            break;
                        };
                        let txs = wiring.connect(k, parts);
                        decode_file(opts, path, &txs, pool, bar, batch_len);
                    }
                });
            }
            let wiring = &wiring;
            let trackers: Vec<_> = (0..parts)
                .map(|p| scope.spawn(move || track_files(cfg, wiring, p, pool)))
                .collect();
            trackers
                .into_iter()
                .map(|t| match t.join() {
                    Ok(t) => t,
                    // Tracking does not panic; should it, the panic is
                    // carried on as it was.
                    Err(p) => std::panic::resume_unwind(p),
                })
                .collect()
        });
        // Merged in partition order, files in the order of `paths`.
        let mut decoded: Vec<Option<Decoded>> = paths.iter().map(|_| None).collect();
        let mut stats: Vec<Stats> = vec![Stats::default(); paths.len()];
        for t in tracked {
            self.merged.merge(t.merged);
            for (k, s) in t.stats.iter().enumerate() {
                if let Some(slot) = order.get(k).and_then(|&i| stats.get_mut(i)) {
                    *slot = slot.plus(s);
                }
            }
            for (k, d) in t.decoded {
                if let Some(slot) = order.get(k).and_then(|&i| decoded.get_mut(i)) {
                    *slot = Some(d);
                }
            }
        }
        for (i, d) in decoded.into_iter().enumerate() {
            if let Some(mut d) = d {
                d.sum.stats = stats.get(i).copied().unwrap_or_default();
                self.dns.append(&mut d.dns);
                for (addr, name) in d.names {
                    if self.names.len() >= NAMES_MAX {
                        break;
                    }
                    self.names.entry(addr).or_insert(name);
                }
                self.inputs.push(d.sum);
            }
        }
    }

    pub fn finish(self) -> Analysis {
        if let Some(bar) = &self.progress {
            bar.finish_and_clear();
        }
        let sel = &self.opts.selection;
        let mut results = self.merged.into_verdicts();
        // A target the capture's DNS answers named carries that name, as a
        // scanned name does.
        for v in &mut results {
            if v.name.is_none() {
                v.name = self.names.get(&v.target).cloned();
            }
        }
        // Over every verdict of a host, before the selection, so a
        // selection shows what the whole capture says of its ports.
        track::infer::annotate(&mut results);
        let all = results.len();
        // In place: a filtered collect moved every verdict (2 ms of a
        // 65,535-port report).
        results.retain(|v| sel.admits(v.client, v.target, v.port));
        let unselected = (all - results.len()) as u64;
        let mut a = Analysis::from_parts(results, self.inputs);
        a.dns = self.dns;
        a.unselected = unselected;
        a
    }
}

/// The time of a file's first packet (through the filter), if it has one.
/// Standard input cannot be read twice: it goes first among the readable.
fn first_packet(path: &Path, filter: Option<&str>) -> Option<u64> {
    if path == Path::new("-") {
        return Some(0);
    }
    let mut src = FileSource::open(path, filter).ok()?;
    src.next_packet().ok().flatten().map(|p| p.ts)
}

/// The channels from the file being decoded to each tracker, made when a
/// decoder takes the file (not before: memory stays the same for a
/// hundred thousand files), and handed to the trackers as they get there.
struct Wiring {
    /// receivers[k][p]: file k (in tracking order) to tracker p; empty
    /// until a decoder takes file k.
    receivers: std::sync::Mutex<Vec<Vec<Option<mpsc::Receiver<Msg>>>>>,
    made: std::sync::Condvar,
}

impl Wiring {
    fn new(files: usize) -> Self {
        Wiring {
            receivers: std::sync::Mutex::new((0..files).map(|_| Vec::new()).collect()),
            made: std::sync::Condvar::new(),
        }
    }

    fn files(&self) -> usize {
        self.receivers.lock().map_or(0, |r| r.len())
    }

    /// A decoder takes file `k`: one channel to each of `parts` trackers.
    fn connect(&self, k: usize, parts: usize) -> Vec<mpsc::SyncSender<Msg>> {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..parts)
            .map(|_| {
                let (tx, rx) = mpsc::sync_channel::<Msg>(BATCHES_IN_FLIGHT);
                (tx, Some(rx))
            })
            .unzip();
        if let Ok(mut r) = self.receivers.lock()
            && let Some(slot) = r.get_mut(k)
        {
            *slot = rxs;
        }
        self.made.notify_all();
        txs
    }

    /// Tracker `part`'s channel from file `k`, once a decoder has taken it
    /// (files are taken in order, so it comes).
    fn take(&self, k: usize, part: usize) -> Option<mpsc::Receiver<Msg>> {
        let mut r = self.receivers.lock().ok()?;
        while r.get(k)?.is_empty() {
            r = self.made.wait(r).ok()?;
        }
        r.get_mut(k)?.get_mut(part)?.take()
    }
}

/// What one tracking thread gives back: its verdicts, its counters per
/// file (in tracking order), and the file summaries it was handed.
struct Tracked {
    merged: Merger,
    stats: Vec<Stats>,
    decoded: Vec<(usize, Decoded)>,
}

/// One tracking thread: the packets of its partition, file after file
/// (`rxs` in tracking order). A file whose first tracked packet is earlier
/// than the latest of the files before it starts a new tracker; every
/// partition is told both times, so all decide alike.
fn track_files(
    cfg: track::Config,
    wiring: &Wiring,
    part: usize,
    pool: &std::sync::Mutex<Vec<Batch>>,
) -> Tracked {
    let files = wiring.files();
    let mut out = Tracked {
        merged: Merger::new(),
        stats: Vec::with_capacity(files),
        decoded: Vec::new(),
    };
    let mut tracker = Tracker::new(cfg);
    let mut latest: u64 = 0;
    for k in 0..files {
        let mut before = tracker.stats();
        // Nothing comes from a file whose channel cannot be had (a
        // poisoned lock): it counts nothing.
        let rx = wiring.take(k, part);
        for msg in rx.iter().flat_map(|rx| rx.iter()) {
            match msg {
                Msg::Start(ts) => {
                    if ts < latest {
                        let done = std::mem::replace(&mut tracker, Tracker::new(cfg));
                        out.merged.merge(done.finish().0);
                        before = Stats::default();
                    }
                }
                Msg::Packets(batch) => {
                    tracker.observe_all(&batch.packets);
                    if let Ok(mut pool) = pool.lock() {
                        pool.push(batch.cleared());
                    }
                }
                Msg::End { latest: l, summary } => {
                    latest = latest.max(l);
                    if let Some(d) = summary {
                        out.decoded.push((k, *d));
                    }
                }
            }
        }
        out.stats.push(tracker.stats().since(&before));
    }
    out.merged.merge(tracker.finish().0);
    out
}

/// Reads and decodes one file into `txs` (one sender per tracker): batches
/// of each tracker's packets, then the end of the file, with the file's
/// summary for tracker 0. Batch buffers come from `pool`.
fn decode_file(
    opts: &Options,
    path: &Path,
    txs: &[mpsc::SyncSender<Msg>],
    pool: &std::sync::Mutex<Vec<Batch>>,
    bar: Option<&ProgressBar>,
    batch_len: usize,
) {
    let mut d = Decoded {
        sum: InputSummary {
            file: path.display().to_string(),
            ..Default::default()
        },
        dns: Vec::new(),
        names: FxHashMap::default(),
    };
    let parts = txs.len();
    let mut latest = 0;
    match FileSource::open(path, opts.filter.as_deref()) {
        Err(e) => d.sum.error = Some(e.to_string()),
        Ok(mut src) => {
            let link = src.link_type();
            d.sum.link_type = crate::source::link_name(link);
            if !link.is_supported() {
                count_unsupported(&mut src, &mut d.sum);
            } else {
                let mut started = false;
                let mut reader = Reader::new(d.sum.file.clone(), link, opts.keep_dns);
                let fresh = || {
                    pool.lock()
                        .ok()
                        .and_then(|mut p| p.pop())
                        .unwrap_or_default()
                };
                let mut batches: Vec<Batch> = (0..parts).map(|_| fresh()).collect();
                let read = reader.pump(&mut src, usize::MAX, None, bar, |ts, pkt| {
                    if !started {
                        started = true;
                        for tx in txs {
                            let _ = tx.send(Msg::Start(ts));
                        }
                    }
                    latest = latest.max(ts);
                    let p = track::partition(&pkt, parts);
                    let (Some(batch), Some(tx)) = (batches.get_mut(p), txs.get(p)) else {
                        return false;
                    };
                    batch.packets.push((ts, pkt));
                    if batch.packets.len() >= batch_len {
                        let full = std::mem::replace(batch, fresh());
                        return tx.send(Msg::Packets(full)).is_ok();
                    }
                    true
                });
                let error = read
                    .err()
                    .map(|e| format!("stopped after packet {}: {e}", reader.packets_read()));
                for (batch, tx) in batches.into_iter().zip(txs) {
                    if !batch.packets.is_empty() {
                        let _ = tx.send(Msg::Packets(batch));
                    }
                }
                d.names = reader.take_names();
                (d.sum, d.dns) = reader.finish();
                d.sum.error = error;
            }
        }
    }
    // Trackers leave only at the end; a send to one that is gone drops
    // the message with it.
    let mut summary = Some(Box::new(d));
    for tx in txs {
        let _ = tx.send(Msg::End {
            latest,
            summary: summary.take(),
        });
    }
}

/// A link type synscope does not decode: count what is skipped, and say so.
fn count_unsupported(src: &mut dyn PacketSource, sum: &mut InputSummary) {
    let link = src.link_type();
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
        crate::source::link_name(link),
        read_err.map(|e| format!(", then: {e}")).unwrap_or_default()
    ));
}
