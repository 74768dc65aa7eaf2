//! Live capture through libpcap: immediate mode, a large kernel buffer,
//! non-blocking reads (libpcap's read timeout is not reliable in immediate
//! mode on Linux, so the caller polls the file descriptor instead).

use super::RawPacket;
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

/// Kernel counters at the end of a capture.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, PartialEq, Eq)]
pub struct CaptureStats {
    pub received: u64,
    /// Dropped by the kernel because the buffer was full.
    pub dropped: u64,
    /// Dropped by the interface or its driver.
    pub if_dropped: u64,
}

impl LiveSource {
    /// Opens `device` for capture with a BPF `filter`. Errors are one line
    /// naming the device and what to do.
    pub fn open(device: &str, filter: &str) -> Result<LiveSource, String> {
        LiveSource::open_with_buffer(device, filter, DEFAULT_BUFFER_BYTES)
    }

    /// As [`LiveSource::open`], with a kernel buffer of `buffer` bytes.
    pub fn open_with_buffer(device: &str, filter: &str, buffer: i32) -> Result<LiveSource, String> {
        let inactive =
            Capture::from_device(device).map_err(|e| format!("capture on {device}: {e}"))?;
        let cap = inactive
            .immediate_mode(true)
            .buffer_size(buffer)
            .snaplen(SNAPLEN)
            .precision(Precision::Nano)
            .open()
            .map_err(|e| match e {
                pcap::Error::PcapError(ref s) if s.contains("permission") || s.contains("Operation not permitted") => {
                    format!(
                        "capture on {device}: not permitted; run synscope as root (sudo) or give it the capabilities: sudo setcap cap_net_raw,cap_net_admin+eip $(command -v synscope)"
                    )
                }
                e => format!("capture on {device}: {e}"),
            })?;
        let mut cap = cap
            .setnonblock()
            .map_err(|e| format!("capture on {device}: cannot make it non-blocking: {e}"))?;
        cap.filter(filter, true)
            .map_err(|e| format!("capture on {device}: filter {filter:?}: {e}"))?;
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

    pub fn link_type(&self) -> LinkType {
        self.link
    }

    pub fn fd(&self) -> RawFd {
        self.cap.as_raw_fd()
    }

    /// The next captured frame if one is waiting, `Ok(None)` if not.
    pub fn try_next(&mut self) -> Result<Option<RawPacket<'_>>, String> {
        match self.cap.next_packet() {
            Ok(p) => Ok(Some(RawPacket::from_pcap(&p))),
            Err(pcap::Error::TimeoutExpired) | Err(pcap::Error::NoMorePackets) => Ok(None),
            Err(e) => Err(format!("capture on {}: {e}", self.device)),
        }
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
