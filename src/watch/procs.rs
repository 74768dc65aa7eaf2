//! Which program made a connection attempt, or asked a DNS question: the
//! kernel's `sock:inet_sock_set_state` tracepoint fires in the connecting
//! task when a socket enters SYN_SENT, so its sample carries the right pid
//! even for a connection refused within microseconds; `fib:fib_table_lookup`
//! and `fib6:fib6_table_lookup` fire in the task whose UDP socket connects
//! to (or sends to) a resolver's port 53, with the socket's source port:
//! the program behind a DNS answer, found by the port the answer goes to.
//!
//! Read with perf_event_open on the tracepoints themselves (PERF_SAMPLE_RAW
//! and PERF_SAMPLE_TID into one ring buffer per CPU, each with a kernel-side
//! filter so that only SYN_SENT and port-53 lookups are copied), not
//! through a BPF program: the raw record already holds the addresses and
//! the sample the task, so no program has to be compiled or loaded, and
//! nothing beyond libc is needed to build (no clang, no BPF toolchain, no
//! BTF at build time). The libc crate has the system call's number but not
//! its attribute struct or ioctls: they are declared here (the kernel's
//! ABI, attribute version 5: 112 bytes).
//!
//! The kernel sets the socket's state to SYN_SENT before it picks the
//! ephemeral source port (tcp_v4_connect calls inet_hash_connect after
//! tcp_set_state), so that sample's source port is 0 unless the program
//! bound one. The socket's next change of state (to ESTABLISHED, or CLOSE
//! on a refusal or a give-up) carries the port: paired with the first by
//! the socket's address (`skaddr`), it gives the exact 4-tuple. Until a
//! socket leaves SYN_SENT (an attempt still waiting), it is matched by
//! (source, destination, port), the latest program that connected there.

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
const PERF_SAMPLE_TIME: u64 = 1 << 2;
const PERF_SAMPLE_RAW: u64 = 1 << 10;
const PERF_RECORD_LOST: u32 = 2;
const PERF_RECORD_SAMPLE: u32 = 9;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
/// `_IO('$', 5)`: this event's samples into another event's ring.
const PERF_EVENT_IOC_SET_OUTPUT: libc::c_ulong = 0x2405;
/// `_IOW('$', 6, char *)` (the generic ioctl encoding, 64-bit pointers):
/// a tracepoint filter, applied in the kernel before a sample is copied.
const PERF_EVENT_IOC_SET_FILTER: libc::c_ulong = 0x4008_2406;
/// Data pages per CPU's ring (a power of two): 256 KiB.
const PAGES: usize = 64;
const TCP_SYN_SENT: i32 = 2;
/// Attempts (and DNS questions) remembered at most, the oldest forgotten
/// first: bounded.
pub const REMEMBER: usize = 65536;

/// The program of pid `pid` now: /proc/PID/comm, its uid and user name,
/// and its cgroup where it is not the root one ("?" once it is gone).
pub fn process_of(pid: u32) -> Process {
    let command = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let uid: Option<u32> = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        });
    // cgroup v2: one line "0::/PATH"; v1 hierarchies are not read.
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("0::"))
                .map(str::to_string)
        })
        .filter(|c| !c.is_empty() && c != "/");
    Process {
        pid,
        command,
        user: uid.and_then(user_name),
        uid,
        cgroup,
    }
}

/// The name of user `uid` in the password database.
fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: all-zero is a valid passwd (null pointers, zero ids).
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r with a buffer of the length given; the result is
    // read only when it points at `pw`.
    let r = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if r != 0 || out.is_null() || pw.pw_name.is_null() {
        return None;
    }
    // SAFETY: pw_name points into `buf`, NUL-terminated by getpwuid_r.
    let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// The programs found so far: exact 4-tuples, the latest per (source,
/// destination, port), and DNS questions by their socket's source port.
/// Bounded: [`REMEMBER`] of each, the oldest forgotten first.
#[derive(Debug, Default)]
pub struct Names {
    tcp: FxHashMap<Tuple, Process>,
    latest: FxHashMap<(IpAddr, IpAddr, u16), Process>,
    order: VecDeque<Tuple>,
    udp: FxHashMap<(bool, u16), Process>,
    udp_order: VecDeque<(bool, u16)>,
}

impl Names {
    /// A connection attempt's program (source port 0: not known yet).
    pub fn tcp(&mut self, t: Tuple, p: Process) {
        self.latest.insert((t.0, t.2, t.3), p.clone());
        if self.tcp.insert(t, p).is_none() {
            self.order.push_back(t);
        }
        while self.order.len() > REMEMBER {
            if let Some(old) = self.order.pop_front() {
                self.tcp.remove(&old);
                self.latest.remove(&(old.0, old.2, old.3));
            }
        }
    }

    /// A socket's exact 4-tuple, known once it left SYN_SENT (the latest
    /// program per destination is left as it is).
    pub fn exact(&mut self, t: Tuple, p: Process) {
        if self.tcp.insert(t, p).is_none() {
            self.order.push_back(t);
        }
        while self.order.len() > REMEMBER {
            if let Some(old) = self.order.pop_front() {
                self.tcp.remove(&old);
            }
        }
    }

    /// The program whose UDP socket on port `sport` asks a resolver.
    pub fn dns(&mut self, v6: bool, sport: u16, p: Process) {
        if self.udp.insert((v6, sport), p).is_none() {
            self.udp_order.push_back((v6, sport));
        }
        while self.udp_order.len() > REMEMBER {
            if let Some(old) = self.udp_order.pop_front() {
                self.udp.remove(&old);
            }
        }
    }

    /// The program that made the attempt from `src:sport` (when known) to
    /// `dst:dport`: the exact socket, else the latest program that
    /// connected from `src` to `dst:dport`.
    pub fn attempt(
        &self,
        src: IpAddr,
        sport: Option<u16>,
        dst: IpAddr,
        dport: u16,
    ) -> Option<&Process> {
        sport
            .and_then(|s| self.tcp.get(&(src, s, dst, dport)))
            .or_else(|| self.latest.get(&(src, dst, dport)))
    }

    /// The program a DNS answer to `client:port` went to.
    pub fn asker(&self, client: IpAddr, port: u16) -> Option<&Process> {
        self.udp.get(&(client.is_ipv6(), port))
    }

    /// Whether an exact 4-tuple is known.
    pub fn knows(&self, t: &Tuple) -> bool {
        self.tcp.contains_key(t)
    }
}

/// Offsets of a tracepoint's fields in its raw record, from its format
/// file.
fn offset(format: &str, name: &str) -> Option<usize> {
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
}

/// Where inet_sock_set_state's fields lie (this kernel's offsets).
#[derive(Debug, Clone, Copy)]
struct Layout {
    skaddr: usize,
    oldstate: usize,
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
        let off = |name: &str| offset(format, name);
        Some(Layout {
            skaddr: off("skaddr")?,
            oldstate: off("oldstate")?,
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

    /// A TCP socket's change of state to or from SYN_SENT: the socket's
    /// address, the old and new states, and its 4-tuple.
    fn change(&self, raw: &[u8]) -> Option<Change> {
        let u16at = |o: usize| bytes::<2>(raw, o).map(u16::from_ne_bytes);
        let old = bytes::<4>(raw, self.oldstate).map(i32::from_ne_bytes)?;
        let new = bytes::<4>(raw, self.newstate).map(i32::from_ne_bytes)?;
        if (new != TCP_SYN_SENT && old != TCP_SYN_SENT) || u16at(self.protocol)? != 6 {
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
        Some(Change {
            socket: bytes::<8>(raw, self.skaddr).map(u64::from_ne_bytes)?,
            enters: new == TCP_SYN_SENT,
            // The tracepoint gives the ports in host order.
            tuple: (s, u16at(self.sport)?, d, u16at(self.dport)?),
        })
    }

    /// The 4-tuple of a TCP socket entering SYN_SENT, from its raw record.
    #[cfg(test)]
    fn syn_sent(&self, raw: &[u8]) -> Option<Tuple> {
        self.change(raw).filter(|c| c.enters).map(|c| c.tuple)
    }
}

/// A socket entering SYN_SENT (its source port 0 unless bound: the kernel
/// picks it after), or leaving it (the port known).
#[derive(Debug, Clone, Copy)]
struct Change {
    socket: u64,
    enters: bool,
    tuple: Tuple,
}

/// Where a route lookup tracepoint (fib or fib6) keeps the protocol and
/// ports.
#[derive(Debug, Clone, Copy)]
struct FibLayout {
    v6: bool,
    proto: usize,
    sport: usize,
    dport: usize,
}

impl FibLayout {
    fn parse(format: &str, v6: bool) -> Option<FibLayout> {
        Some(FibLayout {
            v6,
            proto: offset(format, "proto")?,
            sport: offset(format, "sport")?,
            dport: offset(format, "dport")?,
        })
    }

    /// The source port of a UDP socket's lookup of a route to port 53.
    fn dns_port(&self, raw: &[u8]) -> Option<u16> {
        let u16at = |o: usize| bytes::<2>(raw, o).map(u16::from_ne_bytes);
        if *raw.get(self.proto)? != 17 || u16at(self.dport)? != 53 {
            return None;
        }
        u16at(self.sport).filter(|&p| p != 0)
    }
}

struct Ring {
    fd: libc::c_int,
    base: *mut u8,
    len: usize,
    data: usize,
    size: usize,
}

/// The tracepoints, open on every CPU.
pub struct Tracer {
    rings: Vec<Ring>,
    /// Events whose samples go to a ring of another (closed at the end).
    redirected: Vec<libc::c_int>,
    /// The tracepoints' ids (a raw record's first field).
    state_id: u16,
    layout: Layout,
    fib: Vec<(u16, FibLayout)>,
    pairing: Pairing,
    /// Samples the kernel could not write (a ring was full).
    pub lost: u64,
}

const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

fn tracefs() -> Result<&'static str, String> {
    let has = |root: &str| std::path::Path::new(root).join("events").is_dir();
    if let Some(r) = TRACEFS.iter().find(|r| has(r)) {
        return Ok(r);
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
    if r == 0 && has(TRACEFS[0]) {
        return Ok(TRACEFS[0]);
    }
    Err("tracefs is not mounted and could not be mounted at /sys/kernel/tracing".into())
}

/// A tracepoint's id and format file.
fn tracepoint(root: &str, event: &str) -> Result<(u64, String), String> {
    let dir = std::path::Path::new(root).join("events").join(event);
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{}: {e}", dir.join(f).display()))
    };
    let id = read("id")?
        .trim()
        .parse()
        .map_err(|_| format!("the tracepoint {event}'s id does not parse"))?;
    Ok((id, read("format")?))
}

/// Opens tracepoint `id` on `cpu`, every task, with `filter` applied in
/// the kernel.
fn open_event(id: u64, cpu: i32, filter: &std::ffi::CStr) -> std::io::Result<libc::c_int> {
    let attr = PerfEventAttr {
        type_: PERF_TYPE_TRACEPOINT,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config: id,
        sample_period: 1,
        sample_type: PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_RAW,
        wakeup_events: 1,
        ..Default::default()
    };
    // SAFETY: a valid attr for the call; pid -1 with a cpu: every task on
    // that CPU.
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
        return Err(std::io::Error::last_os_error());
    }
    // A filter the kernel refuses leaves every sample coming: correct
    // (the records are checked here too), only more to read.
    // SAFETY: our descriptor and a NUL-terminated string.
    unsafe { libc::ioctl(fd, PERF_EVENT_IOC_SET_FILTER as _, filter.as_ptr()) };
    Ok(fd)
}

impl Tracer {
    /// Opens the tracepoints on every CPU (needs root, or CAP_PERFMON with
    /// tracefs readable). The route lookups (DNS questions' programs) are
    /// optional: `dns` tells whether they opened.
    pub fn open() -> Result<Tracer, String> {
        let root = tracefs()?;
        let (id, format) = tracepoint(root, "sock/inet_sock_set_state")?;
        let layout = Layout::parse(&format)
            .ok_or("the tracepoint inet_sock_set_state has fields of another shape")?;
        let mut fib = Vec::new();
        for (event, v6) in [
            ("fib/fib_table_lookup", false),
            ("fib6/fib6_table_lookup", true),
        ] {
            if let Ok((id, f)) = tracepoint(root, event)
                && let Some(l) = FibLayout::parse(&f, v6)
            {
                fib.push((id, l));
            }
        }
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        // SAFETY: as above.
        let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) }.max(1) as i32;
        let mut t = Tracer {
            rings: Vec::new(),
            redirected: Vec::new(),
            state_id: id as u16,
            layout,
            fib: Vec::new(),
            pairing: Pairing::default(),
            lost: 0,
        };
        let mut fib_ok = !fib.is_empty();
        for cpu in 0..cpus {
            let fd = match open_event(
                id,
                cpu,
                c"(newstate == 2 || oldstate == 2) && protocol == 6",
            ) {
                Ok(fd) => fd,
                // A CPU that is offline has no events; the others open.
                Err(e) if cpu > 0 && e.raw_os_error() == Some(libc::ENODEV) => continue,
                Err(e) => {
                    return Err(format!(
                        "perf_event_open for the tracepoint on CPU {cpu}: {e}"
                    ));
                }
            };
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
            for (fid, _) in &fib {
                if !fib_ok {
                    break;
                }
                match open_event(*fid, cpu, c"proto == 17 && dport == 53") {
                    // SAFETY: two of our descriptors; the result checked.
                    Ok(f) if unsafe { libc::ioctl(f, PERF_EVENT_IOC_SET_OUTPUT as _, fd) } == 0 => {
                        t.redirected.push(f)
                    }
                    other => {
                        if let Ok(f) = other {
                            // SAFETY: our own descriptor.
                            unsafe { libc::close(f) };
                        }
                        fib_ok = false;
                    }
                }
            }
        }
        if fib_ok {
            t.fib = fib.into_iter().map(|(i, l)| (i as u16, l)).collect();
        } else {
            for f in t.redirected.drain(..) {
                // SAFETY: our own descriptors, closed once.
                unsafe { libc::close(f) };
            }
        }
        Ok(t)
    }

    /// Whether DNS questions can be named (the route lookup tracepoints
    /// opened).
    pub fn names_dns(&self) -> bool {
        !self.fib.is_empty()
    }

    /// What the rings hold, each sample's program read from /proc now.
    fn collect(&mut self) -> Vec<(Found, Process)> {
        let mut found: Vec<(u64, Raw, u32)> = Vec::new();
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
                let body = copy(tail + 8, size as usize - 8);
                if typ == PERF_RECORD_LOST {
                    // id, then the number of samples lost.
                    self.lost += bytes::<8>(&body, 8).map_or(0, u64::from_ne_bytes);
                } else if typ == PERF_RECORD_SAMPLE {
                    // pid, tid, the time, then the raw record's size and
                    // bytes.
                    let pid = bytes::<4>(&body, 0).map(u32::from_ne_bytes);
                    let time = bytes::<8>(&body, 8).map_or(0, u64::from_ne_bytes);
                    let raw_len = bytes::<4>(&body, 16).map(u32::from_ne_bytes);
                    if let (Some(pid), Some(n)) = (pid, raw_len)
                        && let Some(raw) = body.get(20..20 + n as usize)
                        && let Some(event) = bytes::<2>(raw, 0).map(u16::from_ne_bytes)
                    {
                        if event == self.state_id {
                            if let Some(c) = self.layout.change(raw) {
                                found.push((time, Raw::Change(c), pid));
                            }
                        } else if let Some((_, l)) = self.fib.iter().find(|(i, _)| *i == event)
                            && let Some(port) = l.dns_port(raw)
                        {
                            found.push((time, Raw::Dns(l.v6, port), pid));
                        }
                    }
                }
                tail += size;
            }
            tail_at.store(tail, Ordering::Release);
        }
        // Each pid's program read once a pass.
        let mut of: FxHashMap<u32, Process> = FxHashMap::default();
        self.pairing.pair(found, &mut |pid| {
            of.entry(pid).or_insert_with(|| process_of(pid)).clone()
        })
    }

    /// The rings' descriptors, to wait on.
    fn fds(&self) -> Vec<libc::c_int> {
        self.rings.iter().map(|r| r.fd).collect()
    }
}

/// A sample as read: a socket's change of state, or a DNS question's
/// route lookup (its source port).
enum Raw {
    Change(Change),
    Dns(bool, u16),
}

/// Sockets entering SYN_SENT paired with their leaving it, which carries
/// the source port.
#[derive(Default)]
struct Pairing {
    /// Sockets seen entering SYN_SENT, by address, with their program
    /// (bounded).
    pending: FxHashMap<u64, Process>,
    /// Changes out of SYN_SENT read before their entry: tried once more.
    orphans: Vec<Change>,
}

impl Pairing {
    /// The samples of one read (time, sample, pid), each named: a socket
    /// leaving SYN_SENT is its connecting program's (the change may run in
    /// a softirq, in whatever task was there). The rings are read one CPU
    /// after another, so in time order a socket enters SYN_SENT before it
    /// leaves it; a change out of SYN_SENT whose entry is not read yet (on
    /// a ring read earlier, written since) is tried again on the next read.
    fn pair(
        &mut self,
        mut found: Vec<(u64, Raw, u32)>,
        resolve: &mut dyn FnMut(u32) -> Process,
    ) -> Vec<(Found, Process)> {
        found.sort_by_key(|(t, _, _)| *t);
        let mut out = Vec::new();
        let retry = std::mem::take(&mut self.orphans);
        let again = retry.into_iter().map(|c| (Raw::Change(c), 0, true));
        let now = found.into_iter().map(|(_, f, p)| (f, p, false));
        for (f, pid, retried) in now.chain(again) {
            match f {
                Raw::Change(c) if c.enters => {
                    let p = resolve(pid);
                    if self.pending.len() >= REMEMBER {
                        self.pending.clear();
                    }
                    self.pending.insert(c.socket, p.clone());
                    out.push((Found::Tcp(c.tuple), p));
                }
                Raw::Change(c) => match self.pending.remove(&c.socket) {
                    Some(p) => out.push((Found::Exact(c.tuple), p)),
                    None if !retried && self.orphans.len() < 4096 => self.orphans.push(c),
                    None => {}
                },
                Raw::Dns(v6, port) => {
                    let p = resolve(pid);
                    out.push((Found::Dns(v6, port), p));
                }
            }
        }
        out
    }
}

/// A sample: an attempt's socket entering SYN_SENT, or a DNS question's
/// route lookup.
enum Found {
    Tcp(Tuple),
    /// The exact 4-tuple, known as the socket left SYN_SENT.
    Exact(Tuple),
    Dns(bool, u16),
}

impl Found {
    fn name(self, p: Process, names: &mut Names) {
        match self {
            Found::Tcp(t) => names.tcp(t, p),
            Found::Exact(t) => names.exact(t, p),
            Found::Dns(v6, port) => names.dns(v6, port, p),
        }
    }
}

// SAFETY: the rings are mappings of the whole process, and the tracer is
// used by one thread at a time (behind the mutex of `Reading`).
unsafe impl Send for Tracer {}

/// The tracer read on a thread of its own, woken by each sample: a program
/// that connects and exits within milliseconds (curl refused) is read from
/// /proc while it still runs, whatever the capture's pace.
/// The tracer and the samples read from it, not yet drained.
type Shared = std::sync::Arc<std::sync::Mutex<(Tracer, Vec<(Found, Process)>)>>;

pub struct Reading {
    shared: Shared,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    names_dns: bool,
}

impl Reading {
    pub fn start(t: Tracer) -> Reading {
        use std::sync::atomic::AtomicBool;
        use std::sync::{Arc, Mutex};
        let fds = t.fds();
        let names_dns = t.names_dns();
        let shared = Arc::new(Mutex::new((t, Vec::new())));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (shared.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("tracepoint".into())
            .spawn(move || {
                let mut polls: Vec<libc::pollfd> = fds
                    .iter()
                    .map(|&fd| libc::pollfd {
                        fd,
                        events: libc::POLLIN,
                        revents: 0,
                    })
                    .collect();
                while !st.load(Ordering::Relaxed) {
                    // SAFETY: valid pollfds for the call; 50 ms at most,
                    // so a stop is seen.
                    unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, 50) };
                    let mut g = s.lock().unwrap_or_else(|e| e.into_inner());
                    let more = g.0.collect();
                    g.1.extend(more);
                    // Bounded if nobody drains (it is drained every pass).
                    if g.1.len() > REMEMBER {
                        let over = g.1.len() - REMEMBER;
                        g.1.drain(..over);
                    }
                }
            })
            .ok();
        Reading {
            shared,
            stop,
            thread,
            names_dns,
        }
    }

    /// Everything read so far (and what the rings hold now) into `names`.
    pub fn drain(&self, names: &mut Names) {
        let mut g = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let more = g.0.collect();
        g.1.extend(more);
        for (f, p) in g.1.drain(..) {
            f.name(p, names);
        }
    }

    pub fn names_dns(&self) -> bool {
        self.names_dns
    }

    /// Samples the kernel could not write (a ring was full).
    pub fn lost(&self) -> u64 {
        self.shared.lock().map_or(0, |g| g.0.lost)
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        for f in &self.redirected {
            // SAFETY: our own descriptors, closed once.
            unsafe { libc::close(*f) };
        }
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

    #[test]
    fn a_socket_leaving_syn_sent_gives_its_program_the_exact_tuple() {
        let (c, t): (IpAddr, IpAddr) = (
            "198.51.100.2".parse().unwrap(),
            "203.0.113.2".parse().unwrap(),
        );
        let change = |socket, enters, sport| {
            Raw::Change(Change {
                socket,
                enters,
                tuple: (c, sport, t, 9000),
            })
        };
        let mut resolve = |pid: u32| Process {
            pid,
            command: format!("p{pid}"),
            uid: None,
            user: None,
            cgroup: None,
        };
        let mut pairing = Pairing::default();
        let mut names = Names::default();
        // Two programs connect to the same destination; the second's entry
        // read after the first's exit, which came out of time order (a
        // ring read earlier), and the first's exit in a softirq (pid 0).
        let out = pairing.pair(
            vec![
                (30, change(0xb, true, 0), 200),
                (10, change(0xa, true, 0), 100),
                (40, change(0xa, false, 40001), 0),
            ],
            &mut resolve,
        );
        for (f, p) in out {
            f.name(p, &mut names);
        }
        assert_eq!(
            names.attempt(c, Some(40001), t, 9000).map(|p| p.pid),
            Some(100)
        );
        // The latest program per destination is the second one.
        assert_eq!(
            names.attempt(c, Some(40002), t, 9000).map(|p| p.pid),
            Some(200)
        );
        // The second's exit read before its entry (next read): paired.
        let out = pairing.pair(vec![(50, change(0xc, false, 40003), 0)], &mut resolve);
        assert!(out.is_empty());
        let out = pairing.pair(vec![(45, change(0xc, true, 0), 300)], &mut resolve);
        for (f, p) in out {
            f.name(p, &mut names);
        }
        assert_eq!(
            names.attempt(c, Some(40003), t, 9000).map(|p| p.pid),
            Some(300)
        );
    }
}
