//! Capture files (pcap and pcapng): read in place by [`FastFile`] when it
//! knows the format, else (standard input, the variants it does not know)
//! through libpcap. Filters are libpcap's either way: compiled once per
//! link type and run on each frame (pcap_offline_filter, the kernel-free
//! path), so a filter selects the same frames whichever reader reads.

use super::fast::FastFile;
use super::{PacketSource, RawPacket, selected};
use crate::error::Error;
use crate::wire::LinkType;
use pcap::{Capture, Offline, Precision};
use std::path::Path;

/// Which reader reads the file.
enum Backend {
    Fast(Box<FastFile>),
    Libpcap(Capture<Offline>),
}

/// The programs of a `--filter` for one link type: the widened one that
/// keeps ICMP errors (`(F) or icmp or icmp6`), and F itself for the
/// packets they quote.
struct Programs {
    link: LinkType,
    wide: pcap::BpfProgram,
    own: pcap::BpfProgram,
}

pub struct FileSource {
    backend: Backend,
    link: LinkType,
    /// Packets read so far.
    read: u64,
    /// The user's `--filter`, asked about the packets ICMP errors quote
    /// (see [`FileSource::open`]) (libpcap's reader).
    quotes: Option<pcap::BpfProgram>,
    /// The frame handed out, when a filter made it a copy.
    copy: Vec<u8>,
    /// The fast reader's filter: its text, and its programs per link type
    /// met (a pcapng file may hold several).
    filter: Option<String>,
    programs: Vec<Programs>,
}

/// Whether the fast reader may read files (`SYNSCOPE_READER=libpcap`
/// makes every file go through libpcap: to compare the two).
fn fast_allowed() -> bool {
    std::env::var_os("SYNSCOPE_READER").is_none_or(|v| v != "libpcap")
}

impl FileSource {
    /// Opens a pcap or pcapng file with nanosecond timestamps (libpcap
    /// scales microsecond files up) and an optional BPF filter.
    /// The error is one line, without the file name (callers add it).
    /// `-` is standard input (`tcpdump -w - | synscope analyze -`), as for
    /// tcpdump and tshark.
    pub fn open(path: &Path, filter: Option<&str>) -> Result<FileSource, Error> {
        if path == Path::new("-") {
            return FileSource::from_libpcap(path, filter);
        }
        let unreadable = |reason: String| Error::Read { reason };
        let meta = std::fs::metadata(path).map_err(|e| unreadable(io_reason(&e)))?;
        if meta.is_dir() {
            return Err(unreadable("is a directory, not a capture file".into()));
        }
        if meta.len() == 0 {
            return Err(unreadable("empty file, not a capture".into()));
        }
        if path.to_str().is_none() {
            return Err(unreadable(
                "file name is not valid UTF-8; rename or link it".into(),
            ));
        }
        if fast_allowed()
            && let Some(fast) = FastFile::open(path)?
        {
            let link = fast.link_type();
            let mut src = FileSource {
                backend: Backend::Fast(Box::new(fast)),
                link,
                read: 0,
                quotes: None,
                copy: Vec::new(),
                filter: filter.map(str::to_string),
                programs: Vec::new(),
            };
            // A filter that does not compile for the file's link type is
            // said at once, as libpcap's reader does.
            if filter.is_some() {
                src.programs_for(link)?;
            }
            return Ok(src);
        }
        FileSource::from_libpcap(path, filter)
    }

    /// The filter's programs for `link`, compiled the first time.
    fn programs_for(&mut self, link: LinkType) -> Result<usize, Error> {
        if let Some(i) = self.programs.iter().position(|p| p.link == link) {
            return Ok(i);
        }
        let f = self.filter.as_deref().unwrap_or("");
        let bad = |e: pcap::Error| Error::Read {
            reason: format!("bad --filter {f:?}: {}", pcap_reason(&e)),
        };
        let dead = Capture::dead(pcap::Linktype(link.0)).map_err(bad)?;
        let wide = dead
            .compile(&format!("({f}) or icmp or icmp6"), true)
            .map_err(bad)?;
        let own = dead.compile(f, true).map_err(bad)?;
        self.programs.push(Programs { link, wide, own });
        Ok(self.programs.len() - 1)
    }

    fn from_libpcap(path: &Path, filter: Option<&str>) -> Result<FileSource, Error> {
        let unreadable = |reason: String| Error::Read { reason };
        let mut cap = Capture::from_file_with_precision(path, Precision::Nano).map_err(|e| {
            unreadable(format!(
                "not a readable pcap/pcapng capture: {}",
                pcap_reason(&e)
            ))
        })?;
        let mut quotes = None;
        if let Some(f) = filter {
            let bad =
                |e: pcap::Error| unreadable(format!("bad --filter {f:?}: {}", pcap_reason(&e)));
            // The user's filter selects probes; the ICMP errors about them
            // come from other addresses and carry the probe's ports only in
            // their quote. libpcap keeps every ICMP error too, and the
            // filter is then asked about each error's quoted packet.
            let own = cap.compile(f, true).map_err(bad)?;
            cap.filter(&format!("({f}) or icmp or icmp6"), true)
                .map_err(bad)?;
            quotes = Some(own);
        }
        let link = LinkType(cap.get_datalink().0);
        Ok(FileSource {
            backend: Backend::Libpcap(cap),
            link,
            read: 0,
            quotes,
            copy: Vec::new(),
            filter: None,
            programs: Vec::new(),
        })
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn pcap_reason(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(s) => s.clone(),
        other => other.to_string(),
    }
}

// libpcap's own call, not bound by the pcap crate: the descriptor of the
// file an offline handle reads (its stdio FILE's fileno).
unsafe extern "C" {
    fn pcap_get_selectable_fd(p: *mut libc::c_void) -> libc::c_int;
}

impl PacketSource for FileSource {
    fn link_type(&self) -> LinkType {
        self.link
    }

    /// How far into the file libpcap has read (its stdio buffer runs a few
    /// KiB ahead of the packets handed out): for progress bars.
    fn offset(&self) -> Option<u64> {
        let cap = match &self.backend {
            Backend::Fast(f) => return Some(f.offset()),
            Backend::Libpcap(cap) => cap,
        };
        // SAFETY: the handle is alive as long as `self`; the call only reads
        // the handle's descriptor field.
        let fd = unsafe { pcap_get_selectable_fd(cap.as_ptr().cast()) };
        if fd < 0 {
            return None;
        }
        // SAFETY: lseek with SEEK_CUR and offset 0 moves nothing; it reads
        // the position of a descriptor the handle owns.
        let pos = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
        u64::try_from(pos).ok()
    }

    // Inlined where the caller knows the type (analyze's reading stage):
    // its fast path is a record's whole cost.
    #[inline]
    fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, Error> {
        if matches!(self.backend, Backend::Fast(_)) {
            return if self.filter.is_some() {
                self.next_filtered()
            } else {
                let read = self.read;
                let Backend::Fast(f) = &mut self.backend else {
                    return Ok(None);
                };
                let p = f.next().map_err(|e| explained(e, read))?;
                self.read += u64::from(p.is_some());
                Ok(p)
            };
        }
        if self.quotes.is_some() {
            return self.next_selected();
        }
        let read = self.read;
        let link = self.link;
        let Backend::Libpcap(cap) = &mut self.backend else {
            return Ok(None);
        };
        match cap.next_packet() {
            Ok(p) => {
                self.read += 1;
                Ok(Some(RawPacket::from_pcap(&p, link)))
            }
            Err(e) => failed(e, read),
        }
    }
}

/// libpcap's kernel-free filter, called with the frame's real wire length
/// (the pcap crate's `BpfProgram::filter` says the captured length is the
/// wire length, which a `len`/`greater` filter would see).
mod offline {
    #[repr(C)]
    struct Program {
        len: libc::c_uint,
        insns: *const pcap::BpfInstruction,
    }
    #[repr(C)]
    struct Header {
        ts: libc::timeval,
        caplen: u32,
        len: u32,
    }
    unsafe extern "C" {
        fn pcap_offline_filter(p: *const Program, h: *const Header, pkt: *const u8) -> libc::c_int;
    }

    /// Whether `prog` accepts `data` (captured) of a frame `len` long.
    pub fn accepts(prog: &pcap::BpfProgram, data: &[u8], len: u32) -> bool {
        let insns = prog.get_instructions();
        let p = Program {
            len: insns.len() as libc::c_uint,
            insns: insns.as_ptr(),
        };
        let h = Header {
            ts: libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
            caplen: data.len() as u32,
            len: len.max(data.len() as u32),
        };
        // SAFETY: a program of `len` instructions that outlive the call,
        // a header, and `caplen` readable bytes.
        unsafe { pcap_offline_filter(&p, &h, data.as_ptr()) > 0 }
    }
}

impl FileSource {
    /// The fast reader's next frame the filter selects (its widened program
    /// first, as libpcap's reader would run it; then the quotes of the
    /// ICMP errors it let through). No copy: the frame is a slice of the
    /// reader's buffer.
    fn next_filtered(&mut self) -> Result<Option<RawPacket<'_>>, Error> {
        loop {
            let link = {
                let Backend::Fast(f) = &mut self.backend else {
                    return Ok(None);
                };
                if !f.advance().map_err(|e| explained(e, self.read))? {
                    return Ok(None);
                }
                f.current().link
            };
            self.read += 1;
            let i = self.programs_for(link)?;
            let (Backend::Fast(f), Some(prog)) = (&self.backend, self.programs.get(i)) else {
                return Ok(None);
            };
            let p = f.current();
            if offline::accepts(&prog.wide, p.data, p.len)
                && selected(Some(&prog.own), link, p.data)
            {
                break;
            }
        }
        let Backend::Fast(f) = &self.backend else {
            return Ok(None);
        };
        Ok(Some(f.current()))
    }

    /// The next frame the user's filter selects; the ICMP frames let
    /// through for their quotes that it does not select are passed over,
    /// as libpcap would have. (The frame is copied: a frame borrowed from
    /// libpcap cannot be handed out from a loop that may read the next.)
    fn next_selected(&mut self) -> Result<Option<RawPacket<'_>>, Error> {
        let (ts, len) = loop {
            let Backend::Libpcap(cap) = &mut self.backend else {
                return Ok(None);
            };
            match cap.next_packet() {
                Ok(p) => {
                    self.read += 1;
                    if !selected(self.quotes.as_ref(), self.link, p.data) {
                        continue;
                    }
                    self.copy.clear();
                    self.copy.extend_from_slice(p.data);
                    let r = RawPacket::from_pcap(&p, self.link);
                    break (r.ts, r.len);
                }
                Err(e) => return failed(e, self.read),
            }
        };
        Ok(Some(RawPacket {
            ts,
            len,
            data: &self.copy,
            link: self.link,
        }))
    }
}

/// A read error of either reader, with what to do where there is
/// something (after `read` packets).
fn explained(e: Error, read: u64) -> Error {
    match e {
        Error::Read { reason } => Error::Read {
            reason: explain(reason, read),
        },
        e => e,
    }
}

/// What a failed read says: nothing more to read, or one line on why
/// (after `read` packets).
fn failed<'a>(e: pcap::Error, read: u64) -> Result<Option<RawPacket<'a>>, Error> {
    match e {
        pcap::Error::NoMorePackets => Ok(None),
        e => Err(Error::Read {
            reason: explain(pcap_reason(&e), read),
        }),
    }
}

/// libpcap's words and what to do about them.
fn explain(mut why: String, read: u64) -> String {
    if why.contains("different from the type of the first interface") {
        why.push_str(
            " (libpcap reads one link type per pcapng file: split it by interface, e.g. with tshark -r FILE -w PART -Y frame.interface_id==N)",
        );
    }
    if read <= 1 && why.contains("bigger than snaplen") {
        // Old patched tcpdumps wrote longer record headers behind the
        // standard magic number; Wireshark's readers guess which, libpcap's
        // do not (nor synscope's own).
        why.push_str(
            " (if an old patched tcpdump wrote it, as Red Hat 6.1's, SuSE 6.3's or Nokia IPSO's did, `editcap -F pcap FILE NEW` converts it)",
        );
    }
    why
}
