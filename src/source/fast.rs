//! Capture files read in place: pcap and pcapng parsed straight out of
//! large reads (1 MiB at a time into one buffer, records handed out as
//! slices of it), with no per-packet copy or call into libpcap.
//!
//! Our own parser rather than a crate (pcap-parser was the candidate): the
//! two formats are a few fixed headers, and what matters here is what
//! libpcap does at their edges, which this reader copies so that either
//! path gives the same report: a record longer than the file's snap length
//! is cut to it, one longer than libpcap's maximum (262,144) stops the file
//! with libpcap's words, a cut-off tail is "truncated dump file", and the
//! link-type numbers are mapped to libpcap's DLT values. Unlike libpcap it
//! reads pcapng files whose interfaces have different link types (each
//! packet carries its interface's). What it does not know (another magic
//! number: the modified pcap of old patched tcpdumps, standard input) is
//! left to libpcap; see [`super::FileSource::open`].
//!
//! Large reads rather than a memory map: the buffer is the only memory
//! the file takes (a mapped file's pages count in the reader's resident
//! size, which must stay small for a multi-gigabyte capture).

use super::RawPacket;
use crate::error::Error;
use crate::model::NANOS_PER_SEC;
use crate::wire::LinkType;
use std::io::Read;

/// Bytes asked of the file at a time.
const CHUNK: usize = 1 << 20;
/// libpcap's largest capture length (MAXIMUM_SNAPLEN): a record claiming
/// more stops the file.
const MAX_CAPLEN: u32 = 262_144;
/// Largest pcapng block read: a block claiming more stops the file, as in
/// libpcap (its limit is 16 MiB).
const MAX_BLOCK: u32 = 16 << 20;

/// What kind of file, and how its records are read.
#[derive(Debug)]
enum Kind {
    Pcap { le: bool, nanos: bool, snaplen: u32 },
    Pcapng { le: bool, ifaces: Vec<Iface> },
}

/// A pcapng interface: its link type, snap length and clock.
#[derive(Debug, Clone, Copy)]
struct Iface {
    link: LinkType,
    snaplen: u32,
    /// Timestamp units per second (if_tsresol; default microseconds).
    units: u64,
    /// Seconds added to every timestamp (if_tsoffset).
    offset_s: i64,
}

pub struct FastFile {
    file: std::fs::File,
    buf: Vec<u8>,
    /// The next unread byte of `buf`, and the end of what it holds.
    pos: usize,
    end: usize,
    eof: bool,
    /// File offset of `buf[0]`.
    base: u64,
    kind: Kind,
    /// The file's link type (pcapng: the first interface's).
    link: LinkType,
    /// The record read last.
    cur: Rec,
}

/// A record read: its time, wire length, link type, and where its
/// captured bytes lie in the buffer.
#[derive(Debug, Clone, Copy, Default)]
struct Rec {
    ts: u64,
    len: u32,
    link: LinkType,
    at: usize,
    keep: usize,
}

/// libpcap's LINKTYPE → DLT mapping, for the values that differ on Linux
/// (the upper bits of a pcap header's field are flags: masked off).
fn dlt(linktype: u32) -> LinkType {
    let t = linktype & 0x03FF_FFFF;
    LinkType(match t {
        100 => 11,
        101 => 12,
        102 => 15,
        103 => 16,
        106 => 19,
        t => t as i32,
    })
}

fn u16at(b: &[u8], at: usize, le: bool) -> u16 {
    let x = [b[at], b[at + 1]];
    if le {
        u16::from_le_bytes(x)
    } else {
        u16::from_be_bytes(x)
    }
}

fn u32at(b: &[u8], at: usize, le: bool) -> u32 {
    let x = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if le {
        u32::from_le_bytes(x)
    } else {
        u32::from_be_bytes(x)
    }
}

fn read_error(reason: String) -> Error {
    Error::Read { reason }
}

impl FastFile {
    /// Opens `path` if it is a pcap or pcapng file this reader knows;
    /// `Ok(None)` if it is something else (libpcap is asked then).
    pub fn open(path: &std::path::Path) -> Result<Option<FastFile>, Error> {
        let file = std::fs::File::open(path).map_err(|e| read_error(e.to_string()))?;
        let mut f = FastFile {
            file,
            buf: vec![0; CHUNK],
            pos: 0,
            end: 0,
            eof: false,
            base: 0,
            kind: Kind::Pcap {
                le: true,
                nanos: false,
                snaplen: 0,
            },
            link: LinkType(0),
            cur: Rec::default(),
        };
        if !f.fill(24)? {
            return Ok(None);
        }
        let m = &f.buf[..4];
        let pcap = match m {
            [0xd4, 0xc3, 0xb2, 0xa1] => Some((true, false)),
            [0xa1, 0xb2, 0xc3, 0xd4] => Some((false, false)),
            [0x4d, 0x3c, 0xb2, 0xa1] => Some((true, true)),
            [0xa1, 0xb2, 0x3c, 0x4d] => Some((false, true)),
            _ => None,
        };
        if let Some((le, nanos)) = pcap {
            let h = &f.buf[..24];
            // libpcap reads version 2 (and the 1.x of very old files).
            if u16at(h, 4, le) > 2 {
                return Ok(None);
            }
            let snaplen = u32at(h, 16, le);
            f.link = dlt(u32at(h, 20, le));
            f.kind = Kind::Pcap {
                le,
                nanos,
                // libpcap takes a zero or absurd snap length as its maximum.
                snaplen: if snaplen == 0 || snaplen > MAX_CAPLEN {
                    MAX_CAPLEN
                } else {
                    snaplen
                },
            };
            f.pos = 24;
            return Ok(Some(f));
        }
        if m == [0x0a, 0x0d, 0x0d, 0x0a] {
            let le = match &f.buf[8..12] {
                [0x4d, 0x3c, 0x2b, 0x1a] => true,
                [0x1a, 0x2b, 0x3c, 0x4d] => false,
                _ => return Ok(None),
            };
            f.kind = Kind::Pcapng {
                le,
                ifaces: Vec::new(),
            };
            // The first interface's link type is the file's: read ahead to
            // it (the blocks before it are read again by next_packet).
            f.link = f.first_link()?.unwrap_or(LinkType(1));
            return Ok(Some(f));
        }
        Ok(None)
    }

    pub fn link_type(&self) -> LinkType {
        self.link
    }

    /// Bytes of the file consumed so far.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Makes `buf[pos..]` hold at least `n` bytes if the file has them:
    /// false at the end of the file with fewer. Called for every record:
    /// the check is inlined, the read is not (as one function, its
    /// prologue alone was a tenth of analyze's samples).
    #[inline]
    fn fill(&mut self, n: usize) -> Result<bool, Error> {
        if self.end - self.pos >= n {
            return Ok(true);
        }
        self.refill(n)
    }

    /// [`FastFile::fill`] when the buffer is short: reads more.
    #[cold]
    #[inline(never)]
    fn refill(&mut self, n: usize) -> Result<bool, Error> {
        if self.eof {
            return Ok(false);
        }
        // What is left to the front, then read until `n` or the end.
        self.buf.copy_within(self.pos..self.end, 0);
        self.base += self.pos as u64;
        self.end -= self.pos;
        self.pos = 0;
        if self.buf.len() < n {
            self.buf.resize(n.next_power_of_two(), 0);
        }
        while self.end < n || self.end < self.buf.len() / 2 {
            match self.file.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(k) => self.end += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_error(e.to_string())),
            }
        }
        Ok(self.end - self.pos >= n)
    }

    /// A pcapng file's first interface's link type, without consuming
    /// anything.
    fn first_link(&mut self) -> Result<Option<LinkType>, Error> {
        let Kind::Pcapng { le, .. } = self.kind else {
            return Ok(None);
        };
        let mut at = 0usize;
        // Blocks before the first IDB are few (the SHB, perhaps comments).
        for _ in 0..64 {
            if !self.fill(at + 12)? {
                return Ok(None);
            }
            let b = &self.buf[self.pos + at..];
            let (kind, len) = (u32at(b, 0, le), u32at(b, 4, le));
            if !(12..=MAX_BLOCK).contains(&len) {
                return Ok(None);
            }
            if kind == 1 {
                return Ok(Some(dlt(u32::from(u16at(b, 8, le)))));
            }
            at += len as usize;
        }
        Ok(None)
    }

    /// The next frame, or None at the end of the file.
    #[inline]
    pub fn next(&mut self) -> Result<Option<RawPacket<'_>>, Error> {
        // The record as returned, not read back from `cur`: the store and
        // reload of a just-written record stalled every packet (a fifth of
        // the reading stage's own samples).
        let r = match self.kind {
            Kind::Pcap { .. } => self.next_pcap()?,
            Kind::Pcapng { .. } => self.next_pcapng()?,
        };
        Ok(r.map(|r| {
            self.cur = r;
            self.packet(r)
        }))
    }

    /// Reads the next record ([`FastFile::current`] is then it): false at
    /// the end of the file.
    pub fn advance(&mut self) -> Result<bool, Error> {
        let r = match self.kind {
            Kind::Pcap { .. } => self.next_pcap()?,
            Kind::Pcapng { .. } => self.next_pcapng()?,
        };
        match r {
            Some(r) => {
                self.cur = r;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The record read last.
    pub fn current(&self) -> RawPacket<'_> {
        self.packet(self.cur)
    }

    #[inline]
    fn packet(&self, r: Rec) -> RawPacket<'_> {
        RawPacket {
            ts: r.ts,
            len: r.len,
            data: self.buf.get(r.at..r.at + r.keep).unwrap_or(&[]),
            link: r.link,
        }
    }

    /// Makes the next `n` bytes (a record's or block's header) readable:
    /// false at a clean end of the file, libpcap's words (`truncated`,
    /// "tried to read N{unit} bytes, only got M") when it stops inside.
    fn header(&mut self, n: usize, truncated: &str, unit: &str) -> Result<bool, Error> {
        if self.fill(n)? {
            return Ok(true);
        }
        match self.end - self.pos {
            0 => Ok(false),
            left => Err(read_error(format!(
                "{truncated}; tried to read {n}{unit} bytes, only got {left}"
            ))),
        }
    }

    fn next_pcap(&mut self) -> Result<Option<Rec>, Error> {
        let Kind::Pcap { le, nanos, snaplen } = self.kind else {
            return Ok(None);
        };
        if !self.header(16, "truncated dump file", " header")? {
            return Ok(None);
        }
        let h = &self.buf[self.pos..self.pos + 16];
        let (sec, frac) = (u64::from(u32at(h, 0, le)), u64::from(u32at(h, 4, le)));
        let (caplen, len) = (u32at(h, 8, le), u32at(h, 12, le));
        // libpcap's words: past its maximum, the file is damaged.
        if caplen > MAX_CAPLEN {
            return Err(read_error(format!(
                "invalid packet capture length {caplen}, bigger than snaplen of {snaplen}"
            )));
        }
        let n = caplen as usize;
        if !self.fill(16 + n)? {
            let got = self.end - self.pos - 16;
            return Err(read_error(format!(
                "truncated dump file; tried to read {caplen} captured bytes, only got {got}"
            )));
        }
        let ts = sec.saturating_mul(NANOS_PER_SEC).saturating_add(if nanos {
            frac
        } else {
            frac.saturating_mul(1000)
        });
        let start = self.pos + 16;
        self.pos = start + n;
        // A record longer than the file's snap length is cut to it, as
        // libpcap does.
        Ok(Some(Rec {
            ts,
            len,
            link: self.link,
            at: start,
            keep: n.min(snaplen as usize),
        }))
    }

    fn next_pcapng(&mut self) -> Result<Option<Rec>, Error> {
        loop {
            let Kind::Pcapng { le, .. } = self.kind else {
                return Ok(None);
            };
            if !self.header(12, "truncated pcapng dump file", "")? {
                return Ok(None);
            }
            // A new section may change the byte order.
            let b = &self.buf[self.pos..];
            let le = if b[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
                match &b[8..12] {
                    [0x4d, 0x3c, 0x2b, 0x1a] => true,
                    [0x1a, 0x2b, 0x3c, 0x4d] => false,
                    _ => {
                        return Err(read_error(
                            "pcapng section header with an unknown byte-order magic".into(),
                        ));
                    }
                }
            } else {
                le
            };
            let kind = u32at(b, 0, le);
            let total = u32at(b, 4, le);
            if total < 12 || !total.is_multiple_of(4) {
                return Err(read_error(format!(
                    "block in pcapng dump file has a length of {total} < 12 or not a multiple of 4"
                )));
            }
            if total > MAX_BLOCK {
                return Err(read_error(format!(
                    "pcapng block size {total} > maximum {MAX_BLOCK}"
                )));
            }
            let n = total as usize;
            if !self.fill(n)? {
                let got = self.end - self.pos;
                return Err(read_error(format!(
                    "truncated pcapng dump file; tried to read {n} bytes, only got {got}"
                )));
            }
            let start = self.pos;
            self.pos += n;
            let body = &self.buf[start + 8..start + n - 4];
            match kind {
                // Section header: a new section, its interfaces anew.
                0x0A0D_0D0A => {
                    if body.len() < 16 || u16at(body, 4, le) != 1 {
                        return Err(read_error(
                            "unsupported pcapng section version (libpcap reads 1.x)".into(),
                        ));
                    }
                    self.kind = Kind::Pcapng {
                        le,
                        ifaces: Vec::new(),
                    };
                }
                // Interface description.
                1 => {
                    if body.len() < 8 {
                        return Err(read_error("interface description block too short".into()));
                    }
                    let iface = Iface {
                        link: dlt(u32::from(u16at(body, 0, le))),
                        snaplen: match u32at(body, 4, le) {
                            0 => MAX_CAPLEN,
                            s => s.min(MAX_CAPLEN),
                        },
                        units: 1_000_000,
                        offset_s: 0,
                    };
                    let iface = options(&body[8..], le, iface)?;
                    if let Kind::Pcapng { ifaces, .. } = &mut self.kind {
                        ifaces.push(iface);
                    }
                }
                // Enhanced packet, or the obsolete packet block.
                6 | 2 => {
                    if body.len() < 20 {
                        return Err(read_error("packet block too short".into()));
                    }
                    let id = if kind == 6 {
                        u32at(body, 0, le)
                    } else {
                        u32::from(u16at(body, 0, le))
                    };
                    let high = u64::from(u32at(body, 4, le));
                    let low = u64::from(u32at(body, 8, le));
                    let caplen = u32at(body, 12, le);
                    let len = u32at(body, 16, le);
                    let Some(iface) = self.iface(id) else {
                        return Err(read_error(format!(
                            "a packet arrived on interface {id}, but there's no interface description for it"
                        )));
                    };
                    if caplen > MAX_CAPLEN {
                        return Err(read_error(format!(
                            "invalid packet capture length {caplen}, bigger than maximum of {MAX_CAPLEN}"
                        )));
                    }
                    if 20 + caplen as usize > body.len() {
                        return Err(read_error(format!(
                            "block of type {kind} in pcapng dump file is too short for its captured length {caplen}"
                        )));
                    }
                    return Ok(Some(Rec {
                        ts: stamp((high << 32) | low, iface),
                        len,
                        link: iface.link,
                        at: start + 8 + 20,
                        keep: (caplen as usize).min(iface.snaplen as usize),
                    }));
                }
                // Simple packet: no interface id (the first), no time.
                3 => {
                    if body.len() < 4 {
                        return Err(read_error("simple packet block too short".into()));
                    }
                    let Some(iface) = self.iface(0) else {
                        return Err(read_error(
                            "a simple packet arrived, but there's no interface description".into(),
                        ));
                    };
                    let len = u32at(body, 0, le);
                    let keep = (len as usize)
                        .min(iface.snaplen as usize)
                        .min(body.len() - 4);
                    return Ok(Some(Rec {
                        ts: 0,
                        len,
                        link: iface.link,
                        at: start + 12,
                        keep,
                    }));
                }
                // Name resolution, statistics, journal, custom, unknown:
                // nothing to read.
                _ => {}
            }
        }
    }

    fn iface(&self, id: u32) -> Option<Iface> {
        match &self.kind {
            Kind::Pcapng { ifaces, .. } => ifaces.get(id as usize).copied(),
            Kind::Pcap { .. } => None,
        }
    }
}

/// A timestamp in an interface's units, as nanoseconds since the epoch.
fn stamp(t: u64, iface: Iface) -> u64 {
    // The two usual clocks by constants (a multiply, not a division).
    let (secs, nanos) = match iface.units {
        1_000_000 => (t / 1_000_000, (t % 1_000_000) * 1000),
        NANOS_PER_SEC => (t / NANOS_PER_SEC, t % NANOS_PER_SEC),
        u => (
            t / u,
            ((u128::from(t % u) * u128::from(NANOS_PER_SEC)) / u128::from(u)) as u64,
        ),
    };
    if iface.offset_s == 0 {
        return secs.saturating_mul(NANOS_PER_SEC).saturating_add(nanos);
    }
    let secs = (secs as i64).saturating_add(iface.offset_s).max(0) as u64;
    secs.saturating_mul(NANOS_PER_SEC).saturating_add(nanos)
}

/// An interface's options: if_tsresol (9) and if_tsoffset (14).
fn options(mut o: &[u8], le: bool, mut iface: Iface) -> Result<Iface, Error> {
    while o.len() >= 4 {
        let (code, len) = (u16at(o, 0, le), usize::from(u16at(o, 2, le)));
        if code == 0 {
            break;
        }
        let padded = (len + 3) & !3;
        if 4 + padded > o.len() {
            break;
        }
        let v = &o[4..4 + len];
        match (code, len) {
            (9, 1) => {
                let r = v[0];
                let exp = u32::from(r & 0x7f);
                let units = if r & 0x80 == 0 {
                    10u64.checked_pow(exp)
                } else {
                    1u64.checked_shl(exp)
                };
                match units {
                    Some(u) if u > 0 => iface.units = u,
                    _ => {
                        return Err(read_error(format!("if_tsresol {r:#x} is out of range")));
                    }
                }
            }
            (14, 8) => {
                let x: [u8; 8] = v.try_into().unwrap_or([0; 8]);
                iface.offset_s = if le {
                    i64::from_le_bytes(x)
                } else {
                    i64::from_be_bytes(x)
                };
            }
            _ => {}
        }
        o = &o[4 + padded..];
    }
    Ok(iface)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("synscope-fast-{}-{name}", std::process::id()));
        std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
        p
    }

    /// A record as the tests see it: time, wire length, link, bytes.
    type Got = (u64, u32, LinkType, Vec<u8>);

    fn all(p: &std::path::Path) -> (Vec<Got>, Option<String>) {
        let mut f = FastFile::open(p).unwrap().expect("a format it reads");
        let mut out = Vec::new();
        loop {
            match f.next() {
                Ok(Some(r)) => out.push((r.ts, r.len, r.link, r.data.to_vec())),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e.to_string())),
            }
        }
    }

    fn pcap(le: bool, nanos: bool, snaplen: u32, recs: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let w32 =
            |v: &mut Vec<u8>, x: u32| v.extend(if le { x.to_le_bytes() } else { x.to_be_bytes() });
        let mut v = Vec::new();
        w32(&mut v, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
        let (maj, min) = if le {
            ([2, 0], [4, 0])
        } else {
            ([0, 2], [0, 4])
        };
        v.extend(maj);
        v.extend(min);
        w32(&mut v, 0);
        w32(&mut v, 0);
        w32(&mut v, snaplen);
        w32(&mut v, 101);
        for (sec, frac, data) in recs {
            w32(&mut v, *sec);
            w32(&mut v, *frac);
            w32(&mut v, data.len() as u32);
            w32(&mut v, data.len() as u32 + 10);
            v.extend(*data);
        }
        v
    }

    #[test]
    fn pcap_in_both_byte_orders_and_resolutions() {
        for le in [true, false] {
            for nanos in [false, true] {
                let v = pcap(le, nanos, 65535, &[(10, 5, b"abcd"), (11, 7, b"xy")]);
                let p = file(&format!("p{le}{nanos}"), &v);
                let (got, err) = all(&p);
                let unit = if nanos { 1 } else { 1000 };
                assert_eq!(err, None);
                assert_eq!(
                    got,
                    vec![
                        (
                            10_000_000_000 + 5 * unit,
                            14,
                            LinkType(12),
                            b"abcd".to_vec()
                        ),
                        (11_000_000_000 + 7 * unit, 12, LinkType(12), b"xy".to_vec()),
                    ],
                    "le {le} nanos {nanos}"
                );
            }
        }
    }

    #[test]
    fn records_longer_than_the_snap_length_are_cut_and_tails_are_truncated() {
        let v = pcap(true, false, 2, &[(1, 0, b"abcd")]);
        let (got, err) = all(&file("snap", &v));
        assert_eq!((got[0].3.clone(), err), (b"ab".to_vec(), None));
        // A cut in the second record's header, then in its data.
        let v = pcap(true, false, 65535, &[(1, 0, b"abcd"), (2, 0, b"efgh")]);
        let (got, err) = all(&file("cut1", &v[..v.len() - 10]));
        assert_eq!(got.len(), 1);
        assert_eq!(
            err.as_deref(),
            Some("truncated dump file; tried to read 16 header bytes, only got 10")
        );
        let (_, err) = all(&file("cut2", &v[..v.len() - 2]));
        assert_eq!(
            err.as_deref(),
            Some("truncated dump file; tried to read 4 captured bytes, only got 2")
        );
    }

    #[test]
    fn records_larger_than_a_read_are_read_whole() {
        let big = vec![7u8; 200_000];
        let recs: Vec<(u32, u32, &[u8])> = (0..12).map(|i| (i, 0, &big[..])).collect();
        let v = pcap(true, false, 262_144, &recs);
        let (got, err) = all(&file("big", &v));
        assert_eq!(err, None);
        assert_eq!(got.len(), 12);
        assert!(got.iter().all(|r| r.3 == big));
    }

    /// pcapng blocks, little-endian.
    fn block(v: &mut Vec<u8>, kind: u32, body: &[u8]) {
        let pad = (4 - body.len() % 4) % 4;
        let total = (12 + body.len() + pad) as u32;
        v.extend(kind.to_le_bytes());
        v.extend(total.to_le_bytes());
        v.extend(body);
        v.extend(std::iter::repeat_n(0, pad));
        v.extend(total.to_le_bytes());
    }

    fn shb(v: &mut Vec<u8>) {
        let mut b = Vec::new();
        b.extend(0x1A2B_3C4Du32.to_le_bytes());
        b.extend([1, 0, 0, 0]);
        b.extend((-1i64).to_le_bytes());
        block(v, 0x0A0D_0D0A, &b);
    }

    fn idb(v: &mut Vec<u8>, link: u16, tsresol: Option<u8>) {
        let mut b = Vec::new();
        b.extend(link.to_le_bytes());
        b.extend([0, 0]);
        b.extend(0u32.to_le_bytes());
        if let Some(r) = tsresol {
            b.extend(9u16.to_le_bytes());
            b.extend(1u16.to_le_bytes());
            b.extend([r, 0, 0, 0]);
            b.extend([0, 0, 0, 0]);
        }
        block(v, 1, &b);
    }

    fn epb(v: &mut Vec<u8>, iface: u32, t: u64, data: &[u8]) {
        let mut b = Vec::new();
        b.extend(iface.to_le_bytes());
        b.extend(((t >> 32) as u32).to_le_bytes());
        b.extend((t as u32).to_le_bytes());
        b.extend((data.len() as u32).to_le_bytes());
        b.extend((data.len() as u32).to_le_bytes());
        b.extend(data);
        block(v, 6, &b);
    }

    #[test]
    fn pcapng_with_two_link_types_clocks_and_simple_packets() {
        let mut v = Vec::new();
        shb(&mut v);
        idb(&mut v, 1, None);
        idb(&mut v, 101, Some(9));
        block(&mut v, 0x0BAD, b"unknown");
        epb(&mut v, 0, 1_500_000, b"eth");
        epb(&mut v, 1, 2_000_000_123, b"raw ip");
        // A simple packet: the first interface, no time.
        let mut spb = 3u32.to_le_bytes().to_vec();
        spb.extend(b"spb");
        block(&mut v, 3, &spb);
        let p = file("ng", &v);
        assert_eq!(
            FastFile::open(&p).unwrap().unwrap().link_type(),
            LinkType(1)
        );
        let (got, err) = all(&p);
        assert_eq!(err, None);
        assert_eq!(
            got,
            vec![
                (1_500_000_000, 3, LinkType(1), b"eth".to_vec()),
                (2_000_000_123, 6, LinkType(12), b"raw ip".to_vec()),
                (0, 3, LinkType(1), b"spb".to_vec()),
            ]
        );
        // A packet of an interface never described stops the file.
        let mut w = Vec::new();
        shb(&mut w);
        idb(&mut w, 1, None);
        epb(&mut w, 3, 0, b"x");
        let (_, err) = all(&file("ng-noif", &w));
        assert!(err.unwrap().contains("no interface description"));
    }

    #[test]
    fn what_it_does_not_know_is_left_to_libpcap() {
        // The modified pcap of Alexey Kuznetzov's patches, and text.
        let mut v = pcap(true, false, 65535, &[]);
        v[..4].copy_from_slice(&0xa1b2_cd34u32.to_le_bytes());
        assert!(FastFile::open(&file("kuz", &v)).unwrap().is_none());
        assert!(
            FastFile::open(&file("text", b"hello, this is no capture"))
                .unwrap()
                .is_none()
        );
    }
}
