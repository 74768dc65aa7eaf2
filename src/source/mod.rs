//! source: where packets come from (a capture file, a live interface, or a
//! fixture in memory), behind one small trait so the rest of the pipeline
//! is the same for all of them and is tested without root or files.

mod fast;
mod file;
pub mod inputs;
mod live;
mod memory;
mod reader;
mod writer;

pub use file::FileSource;
pub use live::LiveSource;

/// The live capture's default kernel buffer, in bytes.
pub fn live_default_buffer() -> i32 {
    live::DEFAULT_BUFFER_BYTES
}

/// Whether `filter` is a BPF expression libpcap can compile (for
/// Ethernet frames: a filter that names another link's fields fails on
/// the files of that link alone, and says so there); the error says
/// libpcap's words.
pub fn check_filter(filter: &str) -> Result<(), String> {
    let cap = pcap::Capture::dead(pcap::Linktype::ETHERNET)
        .map_err(|e| format!("cannot check --filter {filter:?}: {e}"))?;
    cap.compile(filter, true).map(|_| ()).map_err(|e| {
        let why = match e {
            pcap::Error::PcapError(s) => s,
            other => other.to_string(),
        };
        format!("bad --filter {filter:?}: {why}")
    })
}

/// The kernel capture buffer for a scan of `probes` probes: 1 KiB a probe
/// (more than all its packets: the SYN, its retries, the answer), between
/// 2 MiB and [`live_default_buffer`]. The kernel allocates and zeroes it
/// when the capture opens: 64 MiB for a one-port scan costs it about as
/// much as the scan itself.
pub fn live_buffer_for(probes: usize) -> i32 {
    let want = probes
        .saturating_mul(1024)
        .clamp(2 << 20, live_default_buffer() as usize);
    i32::try_from(want).unwrap_or(live_default_buffer())
}
pub use memory::MemorySource;
pub use reader::{DnsQuery, NAMES_MAX, Pumped, Reader};
pub use writer::PcapWriter;

use crate::error::Error;
use crate::model::{NANOS_PER_SEC, Nanos};
use crate::wire::LinkType;
use std::os::fd::RawFd;

/// A link type's name for reports: synscope's own for the types it
/// decodes, libpcap's for the rest.
pub fn link_name(link: LinkType) -> String {
    match link.name() {
        Some(n) => n.to_string(),
        None => match pcap::Linktype(link.0).get_name() {
            Ok(name) => format!("link type {} ({name})", link.0),
            Err(_) => format!("link type {}", link.0),
        },
    }
}

/// One captured frame, borrowed from its source until the next call.
#[derive(Debug, Clone, Copy)]
pub struct RawPacket<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts: Nanos,
    /// Length on the wire (may exceed `data.len()` when the snap length cut it).
    pub len: u32,
    pub data: &'a [u8],
    /// The frame's link type (a pcapng file's interfaces may differ).
    pub link: LinkType,
}

impl<'a> RawPacket<'a> {
    /// A frame as libpcap hands it over, opened with nanosecond precision
    /// (libpcap then puts nanoseconds in `tv_usec`).
    pub(crate) fn from_pcap(p: &pcap::Packet<'a>, link: LinkType) -> RawPacket<'a> {
        let sec = u64::try_from(p.header.ts.tv_sec).unwrap_or(0);
        let frac = u64::try_from(p.header.ts.tv_usec).unwrap_or(0);
        RawPacket {
            ts: sec.saturating_mul(NANOS_PER_SEC).saturating_add(frac),
            len: p.header.len,
            data: p.data,
            link,
        }
    }
}

/// A stream of captured frames of one link type: a file, a live capture
/// or frames in memory. Every reader of packets (analyze, scan, trace)
/// takes them through [`Reader`].
pub trait PacketSource {
    fn link_type(&self) -> LinkType;
    /// The next frame. `Ok(None)`: the end of a file, or, for a live
    /// capture (non-blocking), nothing waiting now. `Err` when the rest of
    /// the source cannot be read (the frames before it are still good).
    fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, Error>;
    /// Bytes of the underlying file read so far, where there is a file.
    fn offset(&self) -> Option<u64> {
        None
    }
    /// A live capture's descriptor, to wait on with poll(2) until a frame
    /// is there; None for sources that never wait (files, memory).
    fn fd(&self) -> Option<RawFd> {
        None
    }
}

/// Whether a frame the widened filter (`(F) or icmp or icmp6`) let through
/// is one the user's filter `f` selects: itself, or the packet an ICMP
/// error quotes.
pub(crate) fn selected(f: Option<&pcap::BpfProgram>, link: LinkType, data: &[u8]) -> bool {
    let Some(f) = f else {
        return true;
    };
    f.filter(data) || crate::wire::quoted_frame(link, data).is_some_and(|q| f.filter(&q))
}
