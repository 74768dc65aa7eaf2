//! Which program made a connection attempt: the kernel's
//! `sock:inet_sock_set_state` tracepoint fires in the connecting task when
//! a socket enters SYN_SENT, so its sample carries the right pid even for
//! a connection refused within microseconds.
//!
//! Read with perf_event_open on the tracepoint itself (PERF_SAMPLE_RAW and
//! PERF_SAMPLE_TID into a ring buffer per CPU), not through a BPF program:
//! the raw record already holds the 4-tuple and the sample the task, so no
//! program has to be compiled or loaded, and nothing beyond libc is needed
//! to build (no clang, no BPF toolchain, no BTF at build time). The libc
//! crate has the system call's number but not its attribute struct: it is
//! declared here (the kernel's ABI, version 5: 112 bytes).
//!
//! A limit, measured: the kernel sets the socket's state to SYN_SENT
//! before it picks the ephemeral source port (tcp_v4_connect calls
//! inet_hash_connect after tcp_set_state), so the sample's source port is
//! 0 unless the program bound one. Attempts are therefore matched by
//! (source, destination, port), the latest program that connected there:
//! two programs connecting to the same destination at the same moment can
//! be confused. Pairing the socket's address (`skaddr`) with its next state
//! change, which carries the port, is the way to exact matches.

use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};

pub use crate::model::Process;

/// (source, source port, destination, destination port) of an attempt.
pub type Tuple = (IpAddr, u16, IpAddr, u16);

#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
    config2: u64,
    branch_sample_type: u64,
    sample_regs_user: u64,
    sample_stack_user: u32,
    clockid: i32,
    sample_regs_intr: u64,
    aux_watermark: u32,
    sample_max_stack: u16,
    reserved: u16,
}

const PERF_TYPE_TRACEPOINT: u32 = 2;
const PERF_SAMPLE_TID: u64 = 1 << 1;
const PERF_SAMPLE_RAW: u64 = 1 << 10;
const PERF_RECORD_SAMPLE: u32 = 9;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
/// Data pages per CPU's ring (a power of two): 256 KiB.
const PAGES: usize = 64;
const TCP_SYN_SENT: i32 = 2;
/// Attempts remembered at most (the oldest forgotten first): bounded.
pub const REMEMBER: usize = 65536;

/// Where the tracepoint's fields lie in its raw record, from its format
/// file (this kernel's offsets).
#[derive(Debug, Clone, Copy)]
struct Layout {
    newstate: usize,
    sport: usize,
    dport: usize,
    family: usize,
    protocol: usize,
    saddr: usize,
    daddr: usize,
    saddr_v6: usize,
    daddr_v6: usize,
}

fn bytes<const N: usize>(raw: &[u8], at: usize) -> Option<[u8; N]> {
    raw.get(at..at + N)?.try_into().ok()
}

impl Layout {
    fn parse(format: &str) -> Option<Layout> {
        let off = |name: &str| -> Option<usize> {
            format.lines().find_map(|l| {
                let field = l.trim().strip_prefix("field:")?;
                let (decl, rest) = field.split_once(';')?;
                let last = decl.split_whitespace().last()?.split('[').next()?;
                if last != name {
                    return None;
                }
                rest.trim()
                    .strip_prefix("offset:")?
                    .split(';')
                    .next()?
                    .parse()
                    .ok()
            })
        };
        Some(Layout {
            newstate: off("newstate")?,
            sport: off("sport")?,
            dport: off("dport")?,
            family: off("family")?,
            protocol: off("protocol")?,
            saddr: off("saddr")?,
            daddr: off("daddr")?,
            saddr_v6: off("saddr_v6")?,
            daddr_v6: off("daddr_v6")?,
        })
    }

    /// The 4-tuple of a TCP socket entering SYN_SENT, from its raw record.
    fn syn_sent(&self, raw: &[u8]) -> Option<Tuple> {
        let u16at = |o: usize| bytes::<2>(raw, o).map(u16::from_ne_bytes);
        let state = bytes::<4>(raw, self.newstate).map(i32::from_ne_bytes)?;
        if state != TCP_SYN_SENT || u16at(self.protocol)? != 6 {
            return None;
        }
        let (s, d): (IpAddr, IpAddr) = match u16at(self.family)? {
            2 => (
                Ipv4Addr::from(bytes::<4>(raw, self.saddr)?).into(),
                Ipv4Addr::from(bytes::<4>(raw, self.daddr)?).into(),
            ),
            10 => (
                Ipv6Addr::from(bytes::<16>(raw, self.saddr_v6)?).into(),
                Ipv6Addr::from(bytes::<16>(raw, self.daddr_v6)?).into(),
            ),
            _ => return None,
        };
        // The tracepoint gives the ports in host order.
        Some((s, u16at(self.sport)?, d, u16at(self.dport)?))
    }
}

struct Ring {
    fd: libc::c_int,
    base: *mut u8,
    len: usize,
    data: usize,
    size: usize,
}

/// The tracepoint, open on every CPU.
pub struct Tracer {
    rings: Vec<Ring>,
    layout: Layout,
    seen: FxHashMap<Tuple, Process>,
    /// The latest program per (source, destination, port): for an attempt
    /// whose source port is not known (one decided by its timeout).
    latest: FxHashMap<(IpAddr, IpAddr, u16), Process>,
    order: VecDeque<Tuple>,
}

const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

fn tracepoint_dir() -> Result<std::path::PathBuf, String> {
    let dir = |root: &str| std::path::Path::new(root).join("events/sock/inet_sock_set_state");
    if let Some(d) = TRACEFS
        .iter()
        .map(|r| dir(r))
        .find(|d| d.join("id").exists())
    {
        return Ok(d);
    }
    // tracefs not mounted (a fresh boot, a container): mount it where the
    // kernel documents it.
    // SAFETY: valid C strings; a failure is reported, nothing else done.
    let r = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            c"/sys/kernel/tracing".as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    let d = dir(TRACEFS[0]);
    if r == 0 && d.join("id").exists() {
        return Ok(d);
    }
    Err("the tracepoint sock:inet_sock_set_state is not there (tracefs could not be mounted at /sys/kernel/tracing)".into())
}

impl Tracer {
    /// Opens the tracepoint on every CPU (needs root, or CAP_PERFMON with
    /// tracefs readable).
    pub fn open() -> Result<Tracer, String> {
        let dir = tracepoint_dir()?;
        let read = |f: &str| {
            std::fs::read_to_string(dir.join(f))
                .map_err(|e| format!("{}: {e}", dir.join(f).display()))
        };
        let id: u64 = read("id")?
            .trim()
            .parse()
            .map_err(|_| "the tracepoint's id does not parse".to_string())?;
        let layout = Layout::parse(&read("format")?)
            .ok_or("the tracepoint's format has fields of another shape")?;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        // SAFETY: as above.
        let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) }.max(1) as i32;
        let mut t = Tracer {
            rings: Vec::new(),
            layout,
            seen: FxHashMap::default(),
            latest: FxHashMap::default(),
            order: VecDeque::new(),
        };
        for cpu in 0..cpus {
            let attr = PerfEventAttr {
                type_: PERF_TYPE_TRACEPOINT,
                size: std::mem::size_of::<PerfEventAttr>() as u32,
                config: id,
                sample_period: 1,
                sample_type: PERF_SAMPLE_TID | PERF_SAMPLE_RAW,
                wakeup_events: 1,
                ..Default::default()
            };
            // SAFETY: a valid attr for the call; pid -1 with a cpu: every
            // task on that CPU.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_perf_event_open,
                    &attr as *const PerfEventAttr,
                    -1 as libc::pid_t,
                    cpu,
                    -1 as libc::c_int,
                    PERF_FLAG_FD_CLOEXEC,
                )
            } as libc::c_int;
            if fd < 0 {
                let e = std::io::Error::last_os_error();
                // A CPU that is offline has no events; the others open.
                if cpu > 0 && e.raw_os_error() == Some(libc::ENODEV) {
                    continue;
                }
                return Err(format!(
                    "perf_event_open for the tracepoint on CPU {cpu}: {e}"
                ));
            }
            let len = page * (1 + PAGES);
            // SAFETY: mapping the event's ring as the kernel documents it.
            let base = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd,
                    0,
                )
            };
            if base == libc::MAP_FAILED {
                let e = std::io::Error::last_os_error();
                // SAFETY: our own descriptor.
                unsafe { libc::close(fd) };
                return Err(format!("mapping the tracepoint's ring: {e}"));
            }
            t.rings.push(Ring {
                fd,
                base: base.cast(),
                len,
                data: page,
                size: page * PAGES,
            });
        }
        Ok(t)
    }

    /// Reads what the rings hold: each new attempt's program remembered.
    pub fn read(&mut self) {
        let mut found: Vec<(Tuple, u32)> = Vec::new();
        for r in &self.rings {
            // SAFETY: the control page's data_head and data_tail (at 1024
            // and 1032) are u64s shared with the kernel: head read with
            // acquire, tail written with release, as the ABI asks.
            let (head, tail_at) = unsafe {
                let head = &*(r.base.add(1024) as *const AtomicU64);
                let tail = &*(r.base.add(1032) as *const AtomicU64);
                (head.load(Ordering::Acquire), tail)
            };
            let mut tail = tail_at.load(Ordering::Relaxed);
            // SAFETY: the data area is `size` bytes after the control page.
            let data = unsafe { std::slice::from_raw_parts(r.base.add(r.data), r.size) };
            // A record may wrap around the ring's end: copied out.
            let copy = |at: u64, n: usize| -> Vec<u8> {
                (0..n as u64)
                    .map(|i| data[((at + i) as usize) % r.size])
                    .collect()
            };
            while tail < head {
                let h = copy(tail, 8);
                let typ = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]);
                let size = u64::from(u16::from_ne_bytes([h[6], h[7]]));
                if size < 8 {
                    tail = head;
                    break;
                }
                if typ == PERF_RECORD_SAMPLE {
                    // pid, tid, then the raw record's size and bytes.
                    let body = copy(tail + 8, size as usize - 8);
                    let pid = bytes::<4>(&body, 0).map(u32::from_ne_bytes);
                    let raw_len = bytes::<4>(&body, 8).map(u32::from_ne_bytes);
                    if let (Some(pid), Some(n)) = (pid, raw_len)
                        && let Some(raw) = body.get(12..12 + n as usize)
                        && let Some(t) = self.layout.syn_sent(raw)
                    {
                        found.push((t, pid));
                    }
                }
                tail += size;
            }
            tail_at.store(tail, Ordering::Release);
        }
        for (t, pid) in found {
            let command = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim().to_string())
                .unwrap_or_else(|_| "?".into());
            let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("Uid:"))
                        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                });
            let p = Process { pid, command, uid };
            self.latest.insert((t.0, t.2, t.3), p.clone());
            if self.seen.insert(t, p).is_none() {
                self.order.push_back(t);
            }
            while self.order.len() > REMEMBER {
                if let Some(old) = self.order.pop_front() {
                    self.seen.remove(&old);
                    self.latest.remove(&(old.0, old.2, old.3));
                }
            }
        }
    }

    /// The program that made the attempt from `src:sport` to `dst:dport`.
    pub fn who(&self, t: &Tuple) -> Option<&Process> {
        self.seen.get(t)
    }

    /// The program that last connected from `src` to `dst:dport`.
    pub fn latest(&self, src: IpAddr, dst: IpAddr, dport: u16) -> Option<&Process> {
        self.latest.get(&(src, dst, dport))
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        for r in &self.rings {
            // SAFETY: our own mapping and descriptor, released once.
            unsafe {
                libc::munmap(r.base.cast(), r.len);
                libc::close(r.fd);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORMAT: &str = "name: inet_sock_set_state
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;
\tfield:int newstate;\toffset:20;\tsize:4;\tsigned:1;
\tfield:__u16 sport;\toffset:24;\tsize:2;\tsigned:0;
\tfield:__u16 dport;\toffset:26;\tsize:2;\tsigned:0;
\tfield:__u16 family;\toffset:28;\tsize:2;\tsigned:0;
\tfield:__u16 protocol;\toffset:30;\tsize:2;\tsigned:0;
\tfield:__u8 saddr[4];\toffset:32;\tsize:4;\tsigned:0;
\tfield:__u8 daddr[4];\toffset:36;\tsize:4;\tsigned:0;
\tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;
\tfield:__u8 daddr_v6[16];\toffset:56;\tsize:16;\tsigned:0;
";

    #[test]
    fn a_raw_record_gives_the_tuple_of_a_socket_entering_syn_sent() {
        let l = Layout::parse(FORMAT).expect("the format parses");
        let mut raw = vec![0u8; 72];
        raw[16..20].copy_from_slice(&7i32.to_ne_bytes());
        raw[20..24].copy_from_slice(&2i32.to_ne_bytes());
        raw[24..26].copy_from_slice(&40000u16.to_ne_bytes());
        raw[26..28].copy_from_slice(&8081u16.to_ne_bytes());
        raw[28..30].copy_from_slice(&2u16.to_ne_bytes());
        raw[30..32].copy_from_slice(&6u16.to_ne_bytes());
        raw[32..36].copy_from_slice(&[198, 51, 100, 2]);
        raw[36..40].copy_from_slice(&[203, 0, 113, 2]);
        assert_eq!(
            l.syn_sent(&raw),
            Some((
                "198.51.100.2".parse().unwrap(),
                40000,
                "203.0.113.2".parse().unwrap(),
                8081
            ))
        );
        // Another state, or a short record: nothing.
        raw[20..24].copy_from_slice(&1i32.to_ne_bytes());
        assert_eq!(l.syn_sent(&raw), None);
        assert_eq!(l.syn_sent(&raw[..30]), None);
    }
}
