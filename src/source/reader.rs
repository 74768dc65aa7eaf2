//! The reading stage, the same for every source: frames in, decoded
//! packets out. It counts every frame read and every one that does not
//! decode (by reason), collects DNS answers (each distinct one once, when
//! asked; the names they give addresses always), optionally copies every frame into a `--write` capture, and
//! hands the rest on. analyze, scan and trace all read through it.

use super::{PacketSource, PcapWriter, link_name};
use crate::error::Error;
use crate::model::{DnsEvent, InputSummary, Nanos};
use crate::wire::{self, Body, LinkType, Packet, Skip};
use indicatif::ProgressBar;
use rustc_hash::FxHashMap;
use std::collections::HashSet;
use std::net::IpAddr;

/// A DNS answer's identity: server, client, code, name, addresses.
type DnsKey = (IpAddr, IpAddr, u8, String, Vec<IpAddr>);

/// Addresses named from DNS answers, at most (memory stays bounded on a
/// capture of a busy resolver; later names are not kept).
pub const NAMES_MAX: usize = 65536;

/// Distinct DNS answers kept at most (a live watch of a busy resolver
/// stays bounded; later ones are counted only).
pub const DNS_KEPT_MAX: usize = 65536;

/// Frames between progress updates.
const PROGRESS_EVERY: u64 = 16384;

/// Why [`Reader::pump`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pumped {
    /// The source had nothing more: a file's end, or nothing waiting on a
    /// live capture.
    Drained,
    /// `limit` frames were read (more may be waiting).
    Limit,
    /// The sink asked to stop.
    Stopped,
}

/// One source's reading: its summary so far.
#[derive(Debug)]
pub struct Reader {
    sum: InputSummary,
    skipped: [u64; Skip::ALL.len()],
    keep_dns: bool,
    seen_dns: HashSet<DnsKey>,
    dns: Vec<DnsEvent>,
    /// The name each address was first given by a DNS answer (always
    /// kept, at most [`NAMES_MAX`]): the verdicts' `name`.
    names: FxHashMap<IpAddr, String>,
    /// Bytes of the source already added to a progress bar.
    shown: u64,
    /// DNS queries read, and the (client, port, id) of responses, since the
    /// last [`Reader::take_queries`] (when asked for: `watch`).
    queries: Option<Vec<DnsQuery>>,
    answered: Option<Vec<(IpAddr, u16, u16)>>,
}

/// A DNS query seen (UDP to port 53).
#[derive(Debug, Clone)]
pub struct DnsQuery {
    pub ts_ns: Nanos,
    pub client: IpAddr,
    pub server: IpAddr,
    pub client_port: u16,
    pub id: u16,
    pub name: String,
    pub qtype: u16,
}

impl Reader {
    /// A reader of a source named `name` (a file, `live:DEVICE`) of link
    /// type `link`; `keep_dns` keeps the DNS answers (for findings), else
    /// they are only counted.
    pub fn new(name: String, link: LinkType, keep_dns: bool) -> Reader {
        Reader {
            sum: InputSummary {
                file: name,
                link_type: link_name(link),
                ..Default::default()
            },
            skipped: [0; Skip::ALL.len()],
            keep_dns,
            seen_dns: HashSet::new(),
            dns: Vec::new(),
            names: FxHashMap::default(),
            shown: 0,
            queries: None,
            answered: None,
        }
    }

    /// Keep the DNS queries and which were answered, for
    /// [`Reader::take_queries`].
    pub fn keep_queries(&mut self) {
        self.queries.get_or_insert_with(Vec::new);
        self.answered.get_or_insert_with(Vec::new);
    }

    /// The queries and the answered (client, port, id) read since the
    /// last call.
    pub fn take_queries(&mut self) -> (Vec<DnsQuery>, Vec<(IpAddr, u16, u16)>) {
        (
            self.queries
                .as_mut()
                .map(std::mem::take)
                .unwrap_or_default(),
            self.answered
                .as_mut()
                .map(std::mem::take)
                .unwrap_or_default(),
        )
    }

    pub fn packets_read(&self) -> u64 {
        self.sum.packets_read
    }

    /// Reads up to `limit` frames from `src`: each is copied to `tee` if
    /// given, decoded, and (unless it is a DNS answer) handed to `sink`,
    /// which returns false to stop. `bar` advances by the file bytes read.
    /// An error is the source's: what was read before it still counts.
    pub fn pump<S: PacketSource + ?Sized>(
        &mut self,
        src: &mut S,
        limit: usize,
        mut tee: Option<&mut PcapWriter>,
        bar: Option<&ProgressBar>,
        mut sink: impl FnMut(Nanos, Packet) -> bool,
    ) -> Result<Pumped, Error> {
        let mut outcome = Pumped::Limit;
        for _ in 0..limit {
            if bar.is_some() && self.sum.packets_read.is_multiple_of(PROGRESS_EVERY) {
                self.show(src, bar);
            }
            let p = match src.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => {
                    outcome = Pumped::Drained;
                    break;
                }
                Err(e) => {
                    self.show(src, bar);
                    return Err(e);
                }
            };
            self.sum.packets_read += 1;
            if let Some(w) = tee.as_deref_mut() {
                w.write(p.ts, p.len, p.data);
            }
            match wire::parse(p.link, p.data) {
                Ok(Packet {
                    src,
                    dst,
                    body: Body::Dns(a),
                    ..
                }) => self.dns_answer(p.ts, src, dst, *a),
                Ok(pkt) => {
                    if !sink(p.ts, pkt) {
                        outcome = Pumped::Stopped;
                        break;
                    }
                }
                Err(s) => self.skipped[s.index()] += 1,
            }
        }
        self.show(src, bar);
        Ok(outcome)
    }

    fn dns_answer(&mut self, ts: Nanos, server: IpAddr, client: IpAddr, a: wire::DnsAnswer) {
        if !a.response {
            // A query: skipped, as any frame synscope does not track (only
            // a live watch's capture keeps them: its client is the sender).
            self.skipped[Skip::NotTcp.index()] += 1;
            if let Some(q) = self.queries.as_mut()
                && q.len() < DNS_KEPT_MAX
            {
                q.push(DnsQuery {
                    ts_ns: ts,
                    client: server,
                    server: client,
                    client_port: a.port,
                    id: a.id,
                    name: a.name,
                    qtype: a.qtype,
                });
            }
            return;
        }
        if let Some(q) = self.answered.as_mut()
            && q.len() < DNS_KEPT_MAX
        {
            q.push((client, a.port, a.id));
        }
        self.sum.dns += 1;
        for addr in &a.addresses {
            if self.names.len() >= NAMES_MAX {
                break;
            }
            self.names.entry(*addr).or_insert_with(|| a.name.clone());
        }
        if !self.keep_dns || self.dns.len() >= DNS_KEPT_MAX {
            return;
        }
        let key = (server, client, a.rcode, a.name, a.addresses);
        if !self.seen_dns.contains(&key) {
            self.dns.push(DnsEvent {
                ts_ns: ts,
                server,
                client,
                name: key.3.clone(),
                rcode: key.2,
                addresses: key.4.clone(),
                qtype: a.qtype,
                client_port: a.port,
                answered: true,
                process: None,
            });
            self.seen_dns.insert(key);
        }
    }

    fn show<S: PacketSource + ?Sized>(&mut self, src: &S, bar: Option<&ProgressBar>) {
        // No bar, no lseek.
        if let Some(bar) = bar
            && let Some(at) = src.offset()
            && at > self.shown
        {
            bar.inc(at - self.shown);
            self.shown = at;
        }
    }

    /// The DNS answers kept so far (each distinct one once).
    pub fn dns_events(&self) -> &[DnsEvent] {
        &self.dns
    }

    /// The names DNS answers gave to addresses so far (taken: the reader
    /// keeps none after this).
    pub fn take_names(&mut self) -> FxHashMap<IpAddr, String> {
        std::mem::take(&mut self.names)
    }

    /// The source's summary (skips folded in by reason) and the DNS
    /// answers kept. The tracker's counters are the caller's to add.
    pub fn finish(self) -> (InputSummary, Vec<DnsEvent>) {
        let mut sum = self.sum;
        for s in Skip::ALL {
            let n = self.skipped[s.index()];
            if n > 0 {
                sum.skipped += n;
                sum.skipped_by_reason.insert(s.as_str(), n);
            }
        }
        (sum, self.dns)
    }
}
