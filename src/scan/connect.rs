//! Unprivileged probes: plain TCP connect() with IP_RECVERR / IPV6_RECVERR,
//! so the ICMP error that ends a failed connect (its type, code and the
//! address of the router or host that sent it) is read from the socket's
//! error queue instead of being lost in one errno.
//!
//! What this mode cannot see: TTLs and hop distances (so a reset forged on
//! the path looks like the host's own), the number of SYNs the kernel sent,
//! and anything else on the wire.

use crate::error::Error;
use crate::model::Verdict;
use crate::track::{self, EvidenceKind, Outcome};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Connections in flight at once.
const PARALLEL: usize = 256;

const IP_RECVERR: libc::c_int = 11;
const IPV6_RECVERR: libc::c_int = 25;
const SO_EE_ORIGIN_ICMP: u8 = 2;
const SO_EE_ORIGIN_ICMP6: u8 = 3;

/// An ICMP error read from a socket's error queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedIcmp {
    pub v6: bool,
    pub icmp_type: u8,
    pub code: u8,
    pub offender: Option<IpAddr>,
}

fn enable_recverr(s: &Socket, v6: bool) -> io::Result<()> {
    let one: libc::c_int = 1;
    let (level, name) = if v6 {
        (libc::IPPROTO_IPV6, IPV6_RECVERR)
    } else {
        (libc::IPPROTO_IP, IP_RECVERR)
    };
    // SAFETY: a valid socket and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads one entry of the error queue, if it holds an ICMP error.
pub fn read_error_queue(s: &Socket) -> Option<QueuedIcmp> {
    let mut data = [0u8; 64];
    let mut control = [0u8; 512];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: an all-zero msghdr is valid; we point it at our buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = control.len();
    // SAFETY: msg points at live buffers of the sizes given.
    let n = unsafe {
        libc::recvmsg(
            s.as_raw_fd(),
            &mut msg,
            libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return None;
    }
    // SAFETY: CMSG_* walk the control buffer recvmsg filled, within
    // msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let (level, ty) = ((*c).cmsg_level, (*c).cmsg_type);
            let ok = (level == libc::IPPROTO_IP && ty == IP_RECVERR)
                || (level == libc::IPPROTO_IPV6 && ty == IPV6_RECVERR);
            let len = (*c).cmsg_len as usize;
            let hdr = libc::CMSG_LEN(0) as usize;
            if ok && len >= hdr + std::mem::size_of::<libc::sock_extended_err>() {
                let p = libc::CMSG_DATA(c);
                let ee: libc::sock_extended_err =
                    std::ptr::read_unaligned(p as *const libc::sock_extended_err);
                if ee.ee_origin == SO_EE_ORIGIN_ICMP || ee.ee_origin == SO_EE_ORIGIN_ICMP6 {
                    // SO_EE_OFFENDER: the sockaddr right after the struct.
                    let off = p.add(std::mem::size_of::<libc::sock_extended_err>());
                    let room = len - hdr - std::mem::size_of::<libc::sock_extended_err>();
                    let offender = if room >= std::mem::size_of::<libc::sockaddr_in6>()
                        && i32::from(std::ptr::read_unaligned(off as *const libc::sa_family_t))
                            == libc::AF_INET6
                    {
                        let sin6: libc::sockaddr_in6 =
                            std::ptr::read_unaligned(off as *const libc::sockaddr_in6);
                        Some(IpAddr::from(sin6.sin6_addr.s6_addr))
                    } else if room >= std::mem::size_of::<libc::sockaddr_in>()
                        && i32::from(std::ptr::read_unaligned(off as *const libc::sa_family_t))
                            == libc::AF_INET
                    {
                        let sin: libc::sockaddr_in =
                            std::ptr::read_unaligned(off as *const libc::sockaddr_in);
                        Some(IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes()))
                    } else {
                        None
                    };
                    return Some(QueuedIcmp {
                        v6: ee.ee_origin == SO_EE_ORIGIN_ICMP6,
                        icmp_type: ee.ee_type,
                        code: ee.ee_code,
                        offender,
                    });
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    None
}

struct Pending {
    sock: Socket,
    target: IpAddr,
    port: u16,
    started: Instant,
    started_ns: u64,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The verdict of one connect(), by the tracker's rules: `answer` is what
/// decided it (kind and sender), None for silence.
fn verdict(p: &Pending, answer: Option<(EvidenceKind, Option<IpAddr>)>) -> Verdict {
    let client = p
        .sock
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.ip())
        .unwrap_or(p.target);
    let mut v = Verdict::silent(client, p.target, p.port);
    v.probes = 1;
    v.attempts = 1;
    v.first_probe_ns = p.started_ns;
    if let Some((kind, responder)) = answer {
        let rtt = p.started.elapsed().as_nanos() as u64;
        let outcome = Outcome {
            kind,
            responder,
            // connect() sees no TTL, and no IP header at all.
            ttl: None,
            ip_id: None,
            at: now_ns(),
            rtt,
            // One SYN as far as synscope knows (the kernel's retries are
            // not seen).
            since_syn: rtt,
        };
        track::decide(&mut v, &outcome);
    }
    v
}

/// connect() to every (target, port), `PARALLEL` at a time; silence for
/// `timeout` is `filtered`.
pub fn connect_scan(probes: &[(IpAddr, u16)], timeout: Duration) -> Result<Vec<Verdict>, Error> {
    let mut out = Vec::with_capacity(probes.len());
    let mut queue = probes.iter().copied();
    let mut pending: Vec<Pending> = Vec::new();
    loop {
        while pending.len() < PARALLEL {
            let Some((target, port)) = queue.next() else {
                break;
            };
            let v6 = target.is_ipv6();
            let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
            let fail = |source| Error::Connect {
                target,
                port,
                source,
            };
            let sock = Socket::new(domain, Type::STREAM, Some(Protocol::TCP)).map_err(fail)?;
            sock.set_nonblocking(true).map_err(fail)?;
            enable_recverr(&sock, v6).map_err(fail)?;
            let p = Pending {
                sock,
                target,
                port,
                started: Instant::now(),
                started_ns: now_ns(),
            };
            match p
                .sock
                .connect(&SockAddr::from(SocketAddr::new(target, port)))
            {
                Ok(()) => out.push(verdict(&p, Some((EvidenceKind::SynAck, Some(target))))),
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => pending.push(p),
                Err(e) => return Err(fail(e)),
            }
        }
        if pending.is_empty() {
            break;
        }
        let mut fds: Vec<libc::pollfd> = pending
            .iter()
            .map(|p| libc::pollfd {
                fd: p.sock.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            })
            .collect();
        // SAFETY: fds is a valid array of pollfd.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 20) };
        let mut keep = Vec::with_capacity(pending.len());
        for (p, fd) in pending.into_iter().zip(fds) {
            if fd.revents != 0 {
                let icmp = read_error_queue(&p.sock);
                let err = p.sock.take_error().ok().flatten();
                let answer = match (icmp, err) {
                    (Some(i), _) => Some((
                        EvidenceKind::Icmp {
                            v6: i.v6,
                            icmp_type: i.icmp_type,
                            code: i.code,
                        },
                        i.offender,
                    )),
                    (None, None) => Some((EvidenceKind::SynAck, Some(p.target))),
                    (None, Some(e)) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                        Some((EvidenceKind::Reset, Some(p.target)))
                    }
                    // Reset once established: the SYN got its SYN-ACK (a
                    // reset of the SYN itself is ECONNREFUSED), and the
                    // server or a SYN proxy reset the connection before
                    // this poll saw it. What follows the handshake is
                    // diagnose's to tell.
                    (None, Some(e)) if e.raw_os_error() == Some(libc::ECONNRESET) => {
                        Some((EvidenceKind::SynAck, Some(p.target)))
                    }
                    (None, Some(_)) => None,
                };
                let v = verdict(&p, answer);
                out.push(v);
            } else if p.started.elapsed() >= timeout {
                out.push(verdict(&p, None));
            } else {
                keep.push(p);
            }
        }
        pending = keep;
    }
    out.sort_by_key(|v| (v.target, v.port));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::State;
    use std::net::TcpListener;

    #[test]
    fn loopback_open_and_refused_without_privileges() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = l.local_addr().unwrap().port();
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let v = connect_scan(&[(lo, open), (lo, closed)], Duration::from_secs(2)).unwrap();
        let by = |p: u16| v.iter().find(|x| x.port == p).unwrap();
        assert_eq!(by(open).state, State::Open);
        assert_eq!(by(closed).state, State::Refused);
        assert_eq!(by(closed).responder, Some(lo));
        assert_eq!(by(closed).ttl, None, "connect mode sees no TTL");
    }
}
