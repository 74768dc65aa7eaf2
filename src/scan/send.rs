//! Sending probes: raw TCP sockets, many segments per system call.
//!
//! pnet builds the segments (probe.rs), but its transport channel sends one
//! packet per `sendto` and cannot batch; at full-port-scan rates that syscall
//! is the cost, so this sends with `sendmmsg` (libc) on raw sockets opened
//! with socket2. The sockets also get a drop-everything BPF filter: a raw
//! TCP socket would otherwise receive a copy of every TCP packet the host
//! gets, which the capture already sees.

use socket2::{Domain, Protocol, SockAddr, SockFilter, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

/// Segments per `sendmmsg` call at most.
pub const BATCH: usize = 256;

pub struct RawSender {
    v4: Option<Socket>,
    v6: Option<Socket>,
}

fn open(v6: bool, ttl: Option<u8>) -> io::Result<Socket> {
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let s = Socket::new(domain, Type::RAW, Some(Protocol::TCP))?;
    // BPF "ret #0": accept nothing.
    s.attach_filter(&[SockFilter::new(0x06, 0, 0, 0)])?;
    let _ = s.set_send_buffer_size(4 << 20);
    if let Some(t) = ttl {
        if v6 {
            s.set_unicast_hops_v6(u32::from(t))?;
        } else {
            s.set_ttl_v4(u32::from(t))?;
        }
    }
    Ok(s)
}

impl RawSender {
    /// Raw sockets for the families asked; fails with PermissionDenied
    /// without root or CAP_NET_RAW.
    pub fn open(v4: bool, v6: bool, ttl: Option<u8>) -> io::Result<RawSender> {
        Ok(RawSender {
            v4: if v4 { Some(open(false, ttl)?) } else { None },
            v6: if v6 { Some(open(true, ttl)?) } else { None },
        })
    }

    /// Sets the TTL / hop limit of what is sent from now on.
    pub fn set_ttl(&self, ttl: u8) -> io::Result<()> {
        if let Some(s) = &self.v4 {
            s.set_ttl_v4(u32::from(ttl))?;
        }
        if let Some(s) = &self.v6 {
            s.set_unicast_hops_v6(u32::from(ttl))?;
        }
        Ok(())
    }

    fn send_family(&self, v6: bool, batch: &[(IpAddr, &[u8])]) -> io::Result<usize> {
        let sock = if v6 { &self.v6 } else { &self.v4 };
        let Some(sock) = sock else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "no socket for this family",
            ));
        };
        let mut sent = 0;
        for chunk in batch.chunks(BATCH) {
            let addrs: Vec<SockAddr> = chunk
                .iter()
                .map(|(ip, _)| SockAddr::from(SocketAddr::new(*ip, 0)))
                .collect();
            let mut iovs: Vec<libc::iovec> = chunk
                .iter()
                .map(|(_, seg)| libc::iovec {
                    iov_base: seg.as_ptr() as *mut libc::c_void,
                    iov_len: seg.len(),
                })
                .collect();
            let mut msgs: Vec<libc::mmsghdr> = (0..chunk.len())
                .map(|i| {
                    // SAFETY: an all-zero msghdr is a valid empty header.
                    let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
                    h.msg_name = addrs[i].as_ptr() as *mut libc::c_void;
                    h.msg_namelen = addrs[i].len();
                    h.msg_iov = &mut iovs[i];
                    h.msg_iovlen = 1;
                    libc::mmsghdr {
                        msg_hdr: h,
                        msg_len: 0,
                    }
                })
                .collect();
            let mut off = 0;
            while off < msgs.len() {
                // SAFETY: msgs[off..] are initialised headers whose name and
                // iovec pointers stay valid (addrs, iovs, chunk) for the call.
                let n = unsafe {
                    libc::sendmmsg(
                        sock.as_raw_fd(),
                        msgs[off..].as_mut_ptr(),
                        (msgs.len() - off) as libc::c_uint,
                        0,
                    )
                };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    if sent == 0 && off == 0 {
                        return Err(e);
                    }
                    // Partial: the rest is retried by the scheduler.
                    return Ok(sent + off);
                }
                if n == 0 {
                    break;
                }
                off += n as usize;
            }
            sent += off;
        }
        Ok(sent)
    }
}

impl RawSender {
    /// Sends each (destination, TCP segment); returns how many went out
    /// (the rest failed and are retried by the scheduler). The test seam
    /// is one level up: [`super::net::Network`].
    pub fn send(&mut self, batch: &[(IpAddr, &[u8])]) -> io::Result<usize> {
        // One family per call keeps the batches whole; mixed scans split.
        let (v4, v6): (Vec<_>, Vec<_>) = batch.iter().copied().partition(|(ip, _)| ip.is_ipv4());
        let mut sent = 0;
        let mut first_err = None;
        for (is_v6, part) in [(false, v4), (true, v6)] {
            if part.is_empty() {
                continue;
            }
            match self.send_family(is_v6, &part) {
                Ok(n) => sent += n,
                Err(e) => first_err = first_err.or(Some(e)),
            }
        }
        match first_err {
            Some(e) if sent == 0 => Err(e),
            _ => Ok(sent),
        }
    }
}
