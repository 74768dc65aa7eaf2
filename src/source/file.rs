//! Capture files (pcap and pcapng) read through libpcap.

use super::{PacketSource, RawPacket, selected};
use crate::error::Error;
use crate::wire::LinkType;
use pcap::{Capture, Offline, Precision};
use std::path::Path;

pub struct FileSource {
    cap: Capture<Offline>,
    link: LinkType,
    /// Packets read so far.
    read: u64,
    /// The user's `--filter`, asked about the packets ICMP errors quote
    /// (see [`FileSource::open`]).
    quotes: Option<pcap::BpfProgram>,
    /// The frame handed out, when a filter made it a copy.
    copy: Vec<u8>,
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
        FileSource::from_libpcap(path, filter)
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
            cap,
            link,
            read: 0,
            quotes,
            copy: Vec::new(),
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
        // SAFETY: the handle is alive as long as `self`; the call only reads
        // the handle's descriptor field.
        let fd = unsafe { pcap_get_selectable_fd(self.cap.as_ptr().cast()) };
        if fd < 0 {
            return None;
        }
        // SAFETY: lseek with SEEK_CUR and offset 0 moves nothing; it reads
        // the position of a descriptor the handle owns.
        let pos = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
        u64::try_from(pos).ok()
    }

    fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, Error> {
        if self.quotes.is_some() {
            return self.next_selected();
        }
        let read = self.read;
        match self.cap.next_packet() {
            Ok(p) => {
                self.read += 1;
                Ok(Some(RawPacket::from_pcap(&p)))
            }
            Err(e) => failed(e, read),
        }
    }
}

impl FileSource {
    /// The next frame the user's filter selects; the ICMP frames let
    /// through for their quotes that it does not select are passed over,
    /// as libpcap would have. (The frame is copied: a frame borrowed from
    /// libpcap cannot be handed out from a loop that may read the next.)
    fn next_selected(&mut self) -> Result<Option<RawPacket<'_>>, Error> {
        let (ts, len) = loop {
            match self.cap.next_packet() {
                Ok(p) => {
                    self.read += 1;
                    if !selected(self.quotes.as_ref(), self.link, p.data) {
                        continue;
                    }
                    self.copy.clear();
                    self.copy.extend_from_slice(p.data);
                    let r = RawPacket::from_pcap(&p);
                    break (r.ts, r.len);
                }
                Err(e) => return failed(e, self.read),
            }
        };
        Ok(Some(RawPacket {
            ts,
            len,
            data: &self.copy,
        }))
    }
}

/// What a failed read says: nothing more to read, or one line on why
/// (after `read` packets).
fn failed<'a>(e: pcap::Error, read: u64) -> Result<Option<RawPacket<'a>>, Error> {
    match e {
        pcap::Error::NoMorePackets => Ok(None),
        e => {
            let mut why = pcap_reason(&e);
            if why.contains("different from the type of the first interface") {
                why.push_str(
                        " (libpcap reads one link type per pcapng file: split it by interface, e.g. with tshark -r FILE -w PART -Y frame.interface_id==N)",
                    );
            }
            if read <= 1 && why.contains("bigger than snaplen") {
                // Old patched tcpdumps wrote longer record headers
                // behind the standard magic number; Wireshark's
                // readers guess which, libpcap's do not.
                why.push_str(
                        " (if an old patched tcpdump wrote it, as Red Hat 6.1's, SuSE 6.3's or Nokia IPSO's did, `editcap -F pcap FILE NEW` converts it)",
                    );
            }
            Err(Error::Read { reason: why })
        }
    }
}
