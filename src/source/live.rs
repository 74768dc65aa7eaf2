//! Live capture through libpcap: immediate mode, a large kernel buffer,
//! non-blocking reads (libpcap's read timeout is not reliable in immediate
//! mode on Linux, so the caller polls the file descriptor instead).

use super::{PacketSource, RawPacket};
use crate::error::Error;
use crate::model::CaptureStats;
use crate::wire::LinkType;
use pcap::{Active, Capture, Precision};
use std::os::fd::{AsRawFd, RawFd};

/// Kernel capture buffer by default: room for the replies of a full-port scan.
pub const DEFAULT_BUFFER_BYTES: i32 = 64 << 20;
/// Enough for every header synscope reads, ICMPv6 quotes included.
const SNAPLEN: i32 = 256;

pub struct LiveSource {
    cap: Capture<Active>,
    link: LinkType,
    device: String,
    /// A user's filter, asked about the packets ICMP errors quote (see
    /// [`LiveSource::open_selecting`]); the frame handed out is then a copy.
    quotes: Option<pcap::BpfProgram>,
    copy: Vec<u8>,
}

impl LiveSource {
    /// Opens `device` for capture with a BPF `filter`. Errors are one line
    /// naming the device and what to do.
    pub fn open(device: &str, filter: &str) -> Result<LiveSource, Error> {
        LiveSource::open_with_buffer(device, filter, DEFAULT_BUFFER_BYTES)
    }

    /// As [`LiveSource::open`], with a kernel buffer of `buffer` bytes.
    pub fn open_with_buffer(device: &str, filter: &str, buffer: i32) -> Result<LiveSource, Error> {
        LiveSource::open_with(device, filter, buffer, None)
    }

    /// As [`LiveSource::open_with_buffer`]; `batched`: instead of handing
    /// each packet over as it comes (immediate mode, a wake-up a packet:
    /// what a scan's timing needs), the kernel fills blocks and hands one
    /// over when full or after this many milliseconds (libpcap's timeout on
    /// TPACKET_V3): under a flood, a wake-up per block, not per packet.
    pub fn open_with(
        device: &str,
        filter: &str,
        buffer: i32,
        batched: Option<i32>,
    ) -> Result<LiveSource, Error> {
        let fail = |reason: String| Error::Capture {
            device: device.to_string(),
            reason,
        };
        let inactive = Capture::from_device(device).map_err(|e| fail(e.to_string()))?;
        let inactive = match batched {
            None => inactive.immediate_mode(true),
            Some(ms) => inactive.immediate_mode(false).timeout(ms),
        };
        let cap = inactive
            .buffer_size(buffer)
            .snaplen(SNAPLEN)
            .precision(Precision::Nano)
            .open()
            .map_err(|e| match e {
                pcap::Error::PcapError(ref s)
                    if s.contains("permission") || s.contains("Operation not permitted") =>
                {
                    Error::NotPermitted {
                        op: format!("capture on {device}"),
                    }
                }
                e => fail(e.to_string()),
            })?;
        let mut cap = cap
            .setnonblock()
            .map_err(|e| fail(format!("cannot make it non-blocking: {e}")))?;
        cap.filter(filter, true)
            .map_err(|e| fail(format!("filter {filter:?}: {e}")))?;
        let link = LinkType(cap.get_datalink().0);
        Ok(LiveSource {
            cap,
            link,
            device: device.to_string(),
            quotes: None,
            copy: Vec::new(),
        })
    }

    /// A capture of what `base` selects, narrowed by the user's `filter`
    /// (tcpdump syntax) the way analyze's `--filter` is: the kernel filter
    /// is `(base) and ((filter) or icmp or icmp6)`, and an ICMP error is
    /// kept when the packet it quotes passes `filter` (a router's error
    /// has no ports of its own).
    pub fn open_selecting(
        device: &str,
        base: &str,
        filter: Option<&str>,
        buffer: i32,
        batched: Option<i32>,
    ) -> Result<LiveSource, Error> {
        let Some(f) = filter else {
            return LiveSource::open_with(device, base, buffer, batched);
        };
        let mut src = LiveSource::open_with(
            device,
            &format!("({base}) and (({f}) or icmp or icmp6)"),
            buffer,
            batched,
        )?;
        let own = src.cap.compile(f, true).map_err(|e| Error::Capture {
            device: device.to_string(),
            reason: format!("filter {f:?}: {e}"),
        })?;
        src.quotes = Some(own);
        Ok(src)
    }

    pub fn device(&self) -> &str {
        &self.device
    }

    pub fn stats(&mut self) -> CaptureStats {
        match self.cap.stats() {
            Ok(s) => CaptureStats {
                received: u64::from(s.received),
                dropped: u64::from(s.dropped),
                if_dropped: u64::from(s.if_dropped),
            },
            Err(_) => CaptureStats::default(),
        }
    }
}

impl PacketSource for LiveSource {
    fn link_type(&self) -> LinkType {
        self.link
    }

    /// The next captured frame if one is waiting, `Ok(None)` if not.
    fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, Error> {
        if self.quotes.is_some() {
            // A copy: a frame borrowed from libpcap cannot be handed out of
            // a loop that may read the next.
            let (ts, len) = loop {
                match self.cap.next_packet() {
                    Ok(p) => {
                        if !super::selected(self.quotes.as_ref(), self.link, p.data) {
                            continue;
                        }
                        self.copy.clear();
                        self.copy.extend_from_slice(p.data);
                        let r = RawPacket::from_pcap(&p, self.link);
                        break (r.ts, r.len);
                    }
                    Err(pcap::Error::TimeoutExpired) | Err(pcap::Error::NoMorePackets) => {
                        return Ok(None);
                    }
                    Err(e) => {
                        return Err(Error::Capture {
                            device: self.device.clone(),
                            reason: e.to_string(),
                        });
                    }
                }
            };
            return Ok(Some(RawPacket {
                ts,
                len,
                data: &self.copy,
                link: self.link,
            }));
        }
        match self.cap.next_packet() {
            Ok(p) => Ok(Some(RawPacket::from_pcap(&p, self.link))),
            Err(pcap::Error::TimeoutExpired) | Err(pcap::Error::NoMorePackets) => Ok(None),
            Err(e) => Err(Error::Capture {
                device: self.device.clone(),
                reason: e.to_string(),
            }),
        }
    }

    fn fd(&self) -> Option<RawFd> {
        Some(self.cap.as_raw_fd())
    }
}
