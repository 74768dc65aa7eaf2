//! The network as the run loop sees it: send a batch of SYNs, read what
//! the captures saw, wait until something is there or a deadline passes,
//! and the clock. [`RawNetwork`] is the real one (raw sockets + libpcap);
//! [`super::fake::FakeNetwork`] answers from scripted hosts, so the whole
//! loop is tested without root or packets.

use super::route::Route;
use super::send::RawSender;
use crate::error::Error;
use crate::model::CaptureStats;
use crate::source::{LiveSource, PacketSource};
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// One SYN segment on its way out.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// The source address the segment's checksum covers.
    pub source: IpAddr,
    pub target: IpAddr,
    /// The TCP segment (the kernel adds the IP header).
    pub segment: &'a [u8],
    /// TTL / hop limit; None: the system's default.
    pub ttl: Option<u8>,
}

pub trait Network {
    /// Sends the batch; returns how many went out (the rest failed and are
    /// retried by the scheduler). An error means none went out.
    fn send(&mut self, batch: &[Outgoing<'_>]) -> io::Result<usize>;
    /// How many captures there are (one per interface the probes leave by).
    fn captures(&self) -> usize;
    /// Capture `i`: a non-blocking source of what it saw.
    fn capture(&mut self, i: usize) -> &mut dyn PacketSource;
    /// The interface capture `i` listens on.
    fn device(&self, i: usize) -> &str;
    /// Each capture's kernel counters (drops) so far.
    fn capture_stats(&mut self) -> Vec<(String, CaptureStats)>;
    fn now(&self) -> Instant;
    /// Waits until `until` (or a short while: callers loop), or, if
    /// `answers`, until a capture has something.
    fn wait(&mut self, until: Instant, answers: bool);
    /// SIGINT / SIGTERM came: stop sending.
    fn interrupted(&self) -> bool;
}

/// The longest single wait: the loop looks at the clock and Ctrl-C at
/// least this often.
const MAX_WAIT: Duration = Duration::from_millis(50);

/// Raw sockets to send, one libpcap capture per interface to see.
pub struct RawNetwork {
    sender: RawSender,
    /// The TTL the sockets have now (None: the default).
    ttl: Option<u8>,
    captures: Vec<LiveSource>,
}

impl RawNetwork {
    /// Opens a capture on each interface the routes leave by, keeping what
    /// concerns their source addresses and `filter` (a BPF expression
    /// over the probes' ports), then the raw sockets. Captures come first,
    /// so the first probe is already seen.
    pub fn open(routes: &[Route], filter: &str, buffer: i32) -> Result<RawNetwork, Error> {
        let mut by_device: Vec<(String, Vec<IpAddr>)> = Vec::new();
        for r in routes {
            match by_device.iter_mut().find(|(d, _)| *d == r.device) {
                Some((_, srcs)) => {
                    if !srcs.contains(&r.source) {
                        srcs.push(r.source);
                    }
                }
                None => by_device.push((r.device.clone(), vec![r.source])),
            }
        }
        let mut captures = Vec::new();
        for (device, srcs) in &by_device {
            let hosts: Vec<String> = srcs.iter().map(|s| format!("host {s}")).collect();
            let f = format!("({}) and ({filter})", hosts.join(" or "));
            captures.push(LiveSource::open_with_buffer(device, &f, buffer)?);
        }
        let need_v4 = routes.iter().any(|r| r.target.is_ipv4());
        let need_v6 = routes.iter().any(|r| r.target.is_ipv6());
        let sender = RawSender::open(need_v4, need_v6, None).map_err(|e| Error::socket("", e))?;
        Ok(RawNetwork {
            sender,
            ttl: None,
            captures,
        })
    }

    /// The link type all captures share, if they share one (a `--write`
    /// file holds one).
    pub fn link_type(&self) -> Option<crate::wire::LinkType> {
        let first = self.captures.first()?.link_type();
        self.captures
            .iter()
            .all(|c| c.link_type() == first)
            .then_some(first)
    }
}

impl Network for RawNetwork {
    fn send(&mut self, batch: &[Outgoing<'_>]) -> io::Result<usize> {
        let mut sent = 0;
        let mut first_err = None;
        // Runs of one TTL (a scan has one; a trace sends TTL by TTL).
        let mut rest = batch;
        while let Some(first) = rest.first() {
            let n = rest.iter().take_while(|o| o.ttl == first.ttl).count();
            let (run, tail) = rest.split_at(n);
            rest = tail;
            if let Some(t) = first.ttl
                && self.ttl != Some(t)
            {
                self.sender.set_ttl(t)?;
                self.ttl = Some(t);
            }
            let segs: Vec<super::send::Segment<'_>> = run
                .iter()
                .map(|o| super::send::Segment {
                    source: o.source,
                    target: o.target,
                    ttl: o.ttl,
                    tcp: o.segment,
                })
                .collect();
            match self.sender.send(&segs) {
                Ok(k) => sent += k,
                Err(e) => first_err = first_err.or(Some(e)),
            }
        }
        match first_err {
            Some(e) if sent == 0 => Err(e),
            _ => Ok(sent),
        }
    }

    fn captures(&self) -> usize {
        self.captures.len()
    }

    fn capture(&mut self, i: usize) -> &mut dyn PacketSource {
        &mut self.captures[i]
    }

    fn device(&self, i: usize) -> &str {
        self.captures.get(i).map_or("", |c| c.device())
    }

    fn capture_stats(&mut self) -> Vec<(String, CaptureStats)> {
        self.captures
            .iter_mut()
            .map(|c| (c.device().to_string(), c.stats()))
            .collect()
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wait(&mut self, until: Instant, answers: bool) {
        let now = Instant::now();
        if until <= now {
            return;
        }
        // No capture watched: a sleep (the loop reads them when it wakes).
        let watched = if answers { &self.captures[..] } else { &[] };
        let mut fds: Vec<libc::pollfd> = watched
            .iter()
            .filter_map(|c| c.fd())
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // ppoll, not poll: a wait of a fraction of a millisecond (a capped
        // rate's next token) must not round to a 0 ms timeout, which would
        // make the loop spin.
        let d = (until - now).min(MAX_WAIT);
        let ts = libc::timespec {
            tv_sec: d.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
        };
        // SAFETY: fds is a valid array of pollfd of the given length; ts is
        // a valid timespec; no signal mask is passed.
        unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
    }

    fn interrupted(&self) -> bool {
        super::privs::interrupted()
    }
}
