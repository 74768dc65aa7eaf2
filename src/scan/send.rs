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
    /// A second sending thread with sockets of its own: a large batch is
    /// sent half here, half there, at once. Most of a probe's cost is the
    /// kernel's, done in the sending call (the route, the device, and on a
    /// virtual link the whole path there and back), so two sending
    /// threads on two CPUs nearly halve the time a large batch takes.
    /// None on one CPU.
    twin: Option<Twin>,
    /// The TTL of IPv4 probes that ask for none.
    default_ttl: u8,
}

/// One probe to send: a TCP segment whose checksum covers `source` and
/// `target`.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    pub source: IpAddr,
    pub target: IpAddr,
    /// IPv4 TTL; None: the system's default. (IPv6: the socket's.)
    pub ttl: Option<u8>,
    pub tcp: &'a [u8],
}

/// An IPv4 header as the kernel would write it for a TCP segment (don't
/// fragment; identification and checksum 0, which an IPPROTO_RAW send
/// fills in).
fn ipv4_header(
    out: &mut Vec<u8>,
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    ttl: u8,
    tcp_len: usize,
) {
    let total = u16::try_from(20 + tcp_len).unwrap_or(u16::MAX);
    out.extend_from_slice(&[0x45, 0]);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0x40, 0, ttl, 6, 0, 0]);
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&dst.octets());
}

/// The system's default IPv4 TTL (64 where it cannot be read).
fn default_ttl() -> u8 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_default_ttl")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(64)
}

/// Batches at least this large are split between the two threads.
const SPLIT_AT: usize = 128;

/// Half a batch, owned (the segments are copied: a few kilobytes).
struct Job {
    bytes: Vec<u8>,
    /// (destination, start, end) in `bytes`.
    segs: Vec<(IpAddr, usize, usize)>,
}

/// The second sending thread: it sends each job on its sockets and says
/// how it went. It ends when the sender is dropped.
struct Twin {
    sockets: std::sync::Arc<(Option<Socket>, Option<Socket>)>,
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    done: std::sync::mpsc::Receiver<io::Result<usize>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Twin {
    fn start(v4: bool, v6: bool, ttl: Option<u8>) -> io::Result<Twin> {
        let sockets = std::sync::Arc::new((
            if v4 { Some(open(false, ttl)?) } else { None },
            if v6 { Some(open(true, ttl)?) } else { None },
        ));
        let (jobs, inbox) = std::sync::mpsc::channel::<Job>();
        let (outbox, done) = std::sync::mpsc::channel();
        let mine = std::sync::Arc::clone(&sockets);
        let thread = std::thread::Builder::new()
            .name("synscope-send".into())
            .spawn(move || {
                for job in inbox {
                    let batch: Vec<(IpAddr, &[u8])> = job
                        .segs
                        .iter()
                        .map(|&(ip, a, b)| (ip, &job.bytes[a..b]))
                        .collect();
                    if outbox.send(send_one(&mine.0, &mine.1, &batch)).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Twin {
            sockets,
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        })
    }

    /// Hands `batch` to the thread; [`Twin::wait`] gets the result.
    fn hand(&self, batch: &[(IpAddr, &[u8])]) -> bool {
        let mut job = Job {
            bytes: Vec::with_capacity(batch.iter().map(|(_, s)| s.len()).sum()),
            segs: Vec::with_capacity(batch.len()),
        };
        for (ip, seg) in batch {
            let a = job.bytes.len();
            job.bytes.extend_from_slice(seg);
            job.segs.push((*ip, a, job.bytes.len()));
        }
        self.jobs.as_ref().is_some_and(|j| j.send(job).is_ok())
    }

    fn wait(&self) -> io::Result<usize> {
        self.done
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("the sending thread ended")))
    }
}

impl Drop for Twin {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop.
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// IPv4 goes out on an IPPROTO_RAW socket (we write the IP header, the
/// kernel fills its checksum and identification): such a socket is
/// send-only, where a raw TCP socket would get (and have to filter out) a
/// copy of every TCP packet the host receives. IPv6 has no such socket
/// without writing the whole IPv6 header: its raw TCP socket drops every
/// copy with a BPF filter instead.
fn open(v6: bool, ttl: Option<u8>) -> io::Result<Socket> {
    let s = if v6 {
        let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::TCP))?;
        // BPF "ret #0": accept nothing.
        s.attach_filter(&[SockFilter::new(0x06, 0, 0, 0)])?;
        s
    } else {
        Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(libc::IPPROTO_RAW)),
        )?
    };
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
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(RawSender {
            v4: if v4 { Some(open(false, ttl)?) } else { None },
            v6: if v6 { Some(open(true, ttl)?) } else { None },
            twin: if cpus >= 2 {
                Some(Twin::start(v4, v6, ttl)?)
            } else {
                None
            },
            default_ttl: ttl.unwrap_or_else(default_ttl),
        })
    }

    /// Sets the TTL / hop limit of what is sent from now on.
    pub fn set_ttl(&self, ttl: u8) -> io::Result<()> {
        let twin = self.twin.as_ref().map(|t| &*t.sockets);
        for (v4, v6) in [Some((&self.v4, &self.v6)), twin.map(|(a, b)| (a, b))]
            .into_iter()
            .flatten()
        {
            if let Some(s) = v4 {
                s.set_ttl_v4(u32::from(ttl))?;
            }
            if let Some(s) = v6 {
                s.set_unicast_hops_v6(u32::from(ttl))?;
            }
        }
        Ok(())
    }
}

fn send_family(sock: &Option<Socket>, batch: &[(IpAddr, &[u8])]) -> io::Result<usize> {
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

impl RawSender {
    /// Sends each TCP segment, from its source to its target (IPv4 with
    /// its TTL, or the system's default; IPv6 with the sockets' hop limit,
    /// see [`RawSender::set_ttl`]); returns how many went out (the rest
    /// failed and are retried by the scheduler). The test seam is one
    /// level up: [`super::net::Network`].
    pub fn send(&mut self, segs: &[Segment<'_>]) -> io::Result<usize> {
        // IPv4: the IP header goes in front (IPPROTO_RAW).
        let mut bytes = Vec::with_capacity(segs.iter().map(|s| 20 + s.tcp.len()).sum());
        let mut spans = Vec::with_capacity(segs.len());
        for sg in segs {
            if let (IpAddr::V4(src), IpAddr::V4(dst)) = (sg.source, sg.target) {
                let a = bytes.len();
                ipv4_header(
                    &mut bytes,
                    src,
                    dst,
                    sg.ttl.unwrap_or(self.default_ttl),
                    sg.tcp.len(),
                );
                bytes.extend_from_slice(sg.tcp);
                spans.push(Some((a, bytes.len())));
            } else {
                spans.push(None);
            }
        }
        let batch: Vec<(IpAddr, &[u8])> = segs
            .iter()
            .zip(&spans)
            .map(|(sg, span)| match span {
                Some((a, b)) => (sg.target, &bytes[*a..*b]),
                None => (sg.target, sg.tcp),
            })
            .collect();
        self.send_packets(&batch)
    }

    fn send_packets(&mut self, batch: &[(IpAddr, &[u8])]) -> io::Result<usize> {
        if batch.len() >= SPLIT_AT
            && let Some(twin) = &self.twin
        {
            let (mine, theirs) = batch.split_at(batch.len() / 2);
            if twin.hand(theirs) {
                let a = send_one(&self.v4, &self.v6, mine);
                let b = twin.wait();
                // As one call would: what went out, or the error if
                // nothing did.
                return match (a, b) {
                    (Ok(x), Ok(y)) => Ok(x + y),
                    (Ok(x), Err(_)) | (Err(_), Ok(x)) if x > 0 => Ok(x),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                };
            }
        }
        send_one(&self.v4, &self.v6, batch)
    }
}

fn send_one(
    sock4: &Option<Socket>,
    sock6: &Option<Socket>,
    batch: &[(IpAddr, &[u8])],
) -> io::Result<usize> {
    // One family per call keeps the batches whole; mixed scans split.
    let (v4, v6): (Vec<_>, Vec<_>) = batch.iter().copied().partition(|(ip, _)| ip.is_ipv4());
    let mut sent = 0;
    let mut first_err = None;
    for (sock, part) in [(sock4, v4), (sock6, v6)] {
        if part.is_empty() {
            continue;
        }
        match send_family(sock, &part) {
            Ok(n) => sent += n,
            Err(e) => first_err = first_err.or(Some(e)),
        }
    }
    match first_err {
        Some(e) if sent == 0 => Err(e),
        _ => Ok(sent),
    }
}
