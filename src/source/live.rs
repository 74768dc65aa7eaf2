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
}

impl LiveSource {
    /// Opens `device` for capture with a BPF `filter`. Errors are one line
    /// naming the device and what to do.
    pub fn open(device: &str, filter: &str) -> Result<LiveSource, Error> {
        LiveSource::open_with_buffer(device, filter, DEFAULT_BUFFER_BYTES)
    }

    /// As [`LiveSource::open`], with a kernel buffer of `buffer` bytes.
    pub fn open_with_buffer(device: &str, filter: &str, buffer: i32) -> Result<LiveSource, Error> {
        let fail = |reason: String| Error::Capture {
            device: device.to_string(),
            reason,
        };
        let inactive = Capture::from_device(device).map_err(|e| fail(e.to_string()))?;
        let cap = inactive
            .immediate_mode(true)
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
        })
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
        match self.cap.next_packet() {
            Ok(p) => Ok(Some(RawPacket::from_pcap(&p))),
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
