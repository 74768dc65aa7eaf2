//! The fallback when the tracepoint cannot be opened (no root, no
//! CAP_PERFMON, a container without tracefs): the kernel's socket table,
//! read with netlink sock_diag (`ss` reads the same), and /proc/PID/fd to
//! find which process holds each socket's inode.
//!
//! Best effort, and said so: it is read after the SYN is seen, so a socket
//! already closed by then (a refusal within microseconds, a short
//! connection that went to TIME_WAIT) is not found. Written on libc alone:
//! the request and answer are two fixed structs of the kernel's ABI
//! (inet_diag_req_v2 and inet_diag_msg, declared here), so a netlink crate
//! would add a dependency for forty lines.

use super::procs::{Names, Tuple, process_of};
use rustc_hash::FxHashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// Every TCP state but LISTEN, TIME_WAIT and the half-open server ones:
/// the client sockets a program can still hold.
const STATES: u32 =
    (1 << 1) | (1 << 2) | (1 << 4) | (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 11);

#[repr(C)]
struct Request {
    // nlmsghdr
    len: u32,
    kind: u16,
    flags: u16,
    seq: u32,
    pid: u32,
    // inet_diag_req_v2
    family: u8,
    protocol: u8,
    ext: u8,
    pad: u8,
    states: u32,
    // inet_diag_sockid: ports, addresses, interface, cookie (all zero: a
    // dump matches every socket)
    id: [u8; 48],
}

/// The socket table and who holds each socket.
pub struct SocketTable {
    fd: OwnedFd,
    /// Socket inode → pid, from the last scan of /proc.
    owners: FxHashMap<u32, u32>,
}

/// One socket of the dump: its 4-tuple and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Socket {
    pub tuple: Tuple,
    pub inode: u32,
}

/// An inet_diag_msg's socket (family, ports, addresses, inode).
fn parse_msg(m: &[u8]) -> Option<Socket> {
    let family = *m.first()?;
    let port = |at: usize| Some(u16::from_be_bytes(m.get(at..at + 2)?.try_into().ok()?));
    let addr = |at: usize| -> Option<IpAddr> {
        let b: [u8; 16] = m.get(at..at + 16)?.try_into().ok()?;
        match family as libc::c_int {
            libc::AF_INET => Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]).into()),
            libc::AF_INET6 => Some(Ipv6Addr::from(b).into()),
            _ => None,
        }
    };
    let inode = u32::from_ne_bytes(m.get(68..72)?.try_into().ok()?);
    Some(Socket {
        tuple: (addr(8)?, port(4)?, addr(24)?, port(6)?),
        inode,
    })
}

impl SocketTable {
    pub fn open() -> std::io::Result<SocketTable> {
        // SAFETY: plain socket(2); the descriptor is owned at once.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(SocketTable {
            // SAFETY: a descriptor we just opened and nobody else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            owners: FxHashMap::default(),
        })
    }

    /// The client TCP sockets of one family open now.
    fn dump(&self, family: u8) -> std::io::Result<Vec<Socket>> {
        let req = Request {
            len: std::mem::size_of::<Request>() as u32,
            kind: SOCK_DIAG_BY_FAMILY,
            flags: (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
            seq: 1,
            pid: 0,
            family,
            protocol: libc::IPPROTO_TCP as u8,
            ext: 0,
            pad: 0,
            states: STATES,
            id: [0; 48],
        };
        // SAFETY: sending the request's bytes on our socket (the kernel's
        // netlink address is all zero).
        let sent = unsafe {
            let mut to: libc::sockaddr_nl = std::mem::zeroed();
            to.nl_family = libc::AF_NETLINK as u16;
            libc::sendto(
                self.fd.as_raw_fd(),
                (&req as *const Request).cast(),
                req.len as usize,
                0,
                (&to as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if sent < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: receiving into our buffer, at most its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut at = 0usize;
            let got = &buf[..n as usize];
            while at + 16 <= got.len() {
                let len = u32::from_ne_bytes(got[at..at + 4].try_into().unwrap_or([0; 4]));
                let kind = u16::from_ne_bytes([got[at + 4], got[at + 5]]);
                let len = len as usize;
                if len < 16 || at + len > got.len() {
                    break;
                }
                match kind {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        // A message cut before its errno is an I/O error.
                        let errno = got
                            .get(at + 16..at + 20)
                            .and_then(|b| b.try_into().ok())
                            .map_or(libc::EIO, |b| -i32::from_ne_bytes(b));
                        return Err(std::io::Error::from_raw_os_error(errno));
                    }
                    _ => out.extend(parse_msg(&got[at + 16..at + len])),
                }
                // Messages are aligned to 4 bytes.
                at += (len + 3) & !3;
            }
            if n == 0 {
                return Ok(out);
            }
        }
    }

    /// Which process holds each socket inode: every /proc/PID/fd read (those
    /// of other users need CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE, which
    /// watch keeps for this when it drops root).
    fn scan_owners(&mut self) {
        self.owners.clear();
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        for p in procs.flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
                continue;
            };
            for f in fds.flatten() {
                if let Ok(l) = std::fs::read_link(f.path())
                    && let Some(ino) = l
                        .to_str()
                        .and_then(|s| s.strip_prefix("socket:["))
                        .and_then(|s| s.strip_suffix(']'))
                        .and_then(|s| s.parse::<u32>().ok())
                {
                    self.owners.insert(ino, pid);
                }
            }
        }
    }

    /// Names the attempts `syns` (4-tuples seen leaving this host) from the
    /// sockets open now, into `names`; returns how many were not found
    /// (their sockets were closed already, or held by a process it cannot
    /// read).
    pub fn name(&mut self, syns: &[Tuple], names: &mut Names) -> usize {
        let wanted: Vec<&Tuple> = syns.iter().filter(|t| !names.knows(t)).collect();
        if wanted.is_empty() {
            return 0;
        }
        let mut open: FxHashMap<Tuple, u32> = FxHashMap::default();
        for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
            for s in self.dump(family).unwrap_or_default() {
                open.insert(s.tuple, s.inode);
            }
        }
        let mut missing = 0;
        let mut scanned = false;
        for t in wanted {
            let Some(&ino) = open.get(t) else {
                missing += 1;
                continue;
            };
            if !self.owners.contains_key(&ino) && !scanned {
                self.scan_owners();
                scanned = true;
            }
            match self.owners.get(&ino) {
                Some(&pid) => names.tcp(*t, process_of(pid)),
                None => missing += 1,
            }
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inet_diag_message_gives_the_socket() {
        let mut m = vec![0u8; 72];
        m[0] = libc::AF_INET as u8;
        m[1] = 2;
        m[4..6].copy_from_slice(&40000u16.to_be_bytes());
        m[6..8].copy_from_slice(&9000u16.to_be_bytes());
        m[8..12].copy_from_slice(&[198, 51, 100, 2]);
        m[24..28].copy_from_slice(&[203, 0, 113, 2]);
        m[68..72].copy_from_slice(&4242u32.to_ne_bytes());
        let s = parse_msg(&m).expect("a socket");
        assert_eq!(
            s.tuple,
            (
                "198.51.100.2".parse().unwrap(),
                40000,
                "203.0.113.2".parse().unwrap(),
                9000
            )
        );
        assert_eq!(s.inode, 4242);
        assert_eq!(parse_msg(&m[..60]), None);
        m[0] = 99;
        assert_eq!(parse_msg(&m), None);
    }

    #[test]
    fn the_socket_table_holds_a_connecting_socket_of_this_process() {
        // A socket of our own, listening on loopback, and one connected to
        // it: the dump finds the client, and its inode is ours.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let to = l.local_addr().unwrap();
        let c = std::net::TcpStream::connect(to).unwrap();
        let from = c.local_addr().unwrap();
        let mut t = SocketTable::open().unwrap();
        let mut names = Names::default();
        let tuple = (from.ip(), from.port(), to.ip(), to.port());
        assert_eq!(t.name(&[tuple], &mut names), 0);
        let p = names
            .attempt(from.ip(), Some(from.port()), to.ip(), to.port())
            .expect("named");
        assert_eq!(p.pid, std::process::id());
    }
}
