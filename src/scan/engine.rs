//! Probe scheduling: which probe to send when. Pure: the caller passes the
//! time, so every timing path is tested without a network or a clock.
//!
//! Adaptive timing, after the ideas of nmap's timing.cc and TCP's own
//! congestion control (written anew here):
//! - the retransmission timeout follows the round trips seen (RFC 6298:
//!   srtt + 4·rttvar, clamped), sampled only from probes answered on their
//!   first send (Karn);
//! - a congestion window per target caps the probes in flight: it starts
//!   at `initial_window`, grows for each probe answered on its first send
//!   (by one while below the slow-start threshold, doubling every round
//!   trip, by one per window beyond it; times the target's probes per
//!   answer, at most 50, as nmap's cc_scale: where most probes go
//!   unanswered each answer stands for many), and halves on a loss signal
//!   (a SYN-ACK or RST that came only after a retransmission, a timing
//!   ping unanswered, packets the capture lost), at most once per round
//!   trip; silence is not a loss signal (a DROP rule is silent however
//!   slowly one probes);
//! - a target whose probes mostly go unanswered gets timing pings: the SYN
//!   again to a port of it that answered, once enough of its sends timed
//!   out; their answers are round-trip samples and grow the window, so a
//!   DROP-all host with one open port is not probed at the initial pace
//!   for the whole scan;
//! - retries follow the evidence: a probe is sent at most once more than
//!   the highest try that ever got an answer (at least twice), and never
//!   more than `1 + max_retries` times, so a host that drops everything
//!   costs two sends a port while a lossy path gets the retries it needs;
//! - a target that answers only so many probes a second (a host that
//!   rate-limits its resets, a SYN limit in front of it) is paced to the
//!   rate its answers show, its retransmissions queued behind that pace
//!   (see `pace.rs`);
//! - `rate`, when set, is an exact cap (a token bucket) on top of that.

use super::pace::Pace;
pub use crate::model::EngineStats;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Probes per second at most (first sends and retransmissions); 0 = no
    /// cap (the congestion window alone paces).
    pub rate: u32,
    /// Sends after the first for an unanswered probe, at most.
    pub max_retries: u8,
    /// Retries follow the evidence (see the module): on by default; off,
    /// every silent probe gets all of `max_retries` (diagnose's slow
    /// re-probe and the trace's rounds want exactly that).
    pub adaptive_retries: bool,
    pub initial_rto: Duration,
    pub min_rto: Duration,
    pub max_rto: Duration,
    /// At least this long between two sends (a pace below one a second,
    /// for limiters that refill that slowly); None: `rate` alone.
    pub gap: Option<Duration>,
    /// The congestion window's start and its bounds.
    pub initial_window: usize,
    pub min_window: usize,
    /// Probes sent and not yet answered or given up, at most.
    pub window: usize,
    /// Pace a target that answers only so many probes a second (see
    /// `pace.rs`); off for the fixed paces.
    pub pace_targets: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            rate: 0,
            max_retries: 6,
            adaptive_retries: true,
            gap: None,
            initial_rto: Duration::from_millis(500),
            min_rto: Duration::from_millis(100),
            max_rto: Duration::from_millis(1250),
            initial_window: 256,
            min_window: 16,
            window: 65536,
            pace_targets: true,
        }
    }
}

impl EngineConfig {
    /// Exactly `per_second` probes a second, one in flight at a time, each
    /// sent `1 + retries` times at most, `every` apart: a slow, fixed pace
    /// (diagnose's re-probe of a port that may be rate-limited).
    pub fn fixed(per_second: u32, retries: u8, every: Duration, window: usize) -> EngineConfig {
        EngineConfig {
            rate: per_second,
            max_retries: retries,
            adaptive_retries: false,
            gap: None,
            initial_rto: every,
            min_rto: every,
            max_rto: every,
            initial_window: window,
            min_window: window,
            window,
            pace_targets: false,
        }
    }
}

/// Runs of at most this many probes retry fully while nothing answered.
pub const SMALL_RUN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Waiting,
    Sent,
    Answered,
    GaveUp,
}

/// One target's timing: its round trips and its congestion window (a slow
/// lossy path slows only the probes that take it).
#[derive(Debug, Clone)]
struct Group {
    srtt: Option<Duration>,
    rttvar: Duration,
    cwnd: f64,
    ssthresh: f64,
    /// When its window was last cut (one cut per round trip).
    cut_at: Option<Instant>,
    in_flight: usize,
    /// New probes that found its window full, in plan order.
    deferred: VecDeque<u32>,
    /// A probe of this target that got a SYN-ACK or RST: the port its
    /// timing pings go to.
    ping: Option<u32>,
    /// The outstanding ping's send time and deadline.
    ping_out: Option<(Instant, Instant)>,
    /// Probes launched to it since its last answer.
    quiet: u32,
    /// Its probes and pings decided (answered or given up), and of those
    /// answered (the growth scale).
    decided: u64,
    answers: u64,
    /// The highest try of its probes that got a SYN-ACK or RST (the
    /// evidence its retries follow; see [`Engine::retry_limit_of`]).
    best_try: u8,
    /// Its own pace, once its answers showed a limit.
    pace: Pace,
    /// Retransmissions due while its pace had no room: (probe, try), in
    /// order.
    resend: VecDeque<(u32, u8)>,
    /// In [`Engine::waiting`].
    listed: bool,
}

#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    status: Vec<Status>,
    tries: Vec<u8>,
    last_sent: Vec<Option<Instant>>,
    /// Whether a probe's send before its last came after its target's
    /// pace was last set (a byte a probe, not a time: this is written for
    /// every send of a 65,535-port scan).
    prev_fresh: Vec<bool>,
    /// Each probe's group (its target), and the groups.
    group_of: Vec<u32>,
    groups: Vec<Group>,
    /// Groups that have deferred probes or queued retransmissions (each
    /// once).
    waiting: Vec<u32>,
    /// Groups that were ever paced.
    paced: Vec<u32>,
    next_new: usize,
    in_flight: usize,
    deferred: usize,
    /// (deadline, probe, try number) of every send; stale entries skipped.
    timers: BinaryHeap<Reverse<(Instant, u32, u8)>>,
    /// Over every group: for the end wait.
    srtt: Option<Duration>,
    tokens: f64,
    refilled: Instant,
    stats: EngineStats,
}

/// A target that answers few of its probes (a DROP firewall with a port
/// or two open) gets a timing ping once this many of its sends timed out
/// since its last answer (or an eighth of its window, if more): the SYN
/// again to a port of it that answered. The ping's answer is a round-trip sample
/// and grows the window; a ping unanswered is a loss signal. (nmap's
/// timing pings, in spirit.)
const PING_EVERY: u32 = 32;

/// The window a target that has answered nothing grows to, by one for
/// each probe given up with every try silent (slow start, halved by a
/// loss signal as any window): a retransmission could still be answered
/// (loss), a probe given up cannot. Its silence
/// says nothing of the path, so it cannot be timed by answers or pings;
/// at its first window (256 probes, each held for the 500 ms initial
/// timeout) a DROP-all host with no open port, a dead address on a
/// blackholed route, took 512 sends a second: 4 minutes for `-p-`. At
/// this bound, 4,096 a second, about 2.4 Mbit/s of SYNs: 32 s, and little
/// enough for a thin link that its silence cannot measure.
const SILENT_WINDOW: f64 = 2048.0;

/// An answer grows the window by the target's probes-per-answer ratio at
/// most this much (nmap's cc_scale): where most probes get no answer, each
/// answer stands for many probes that went through.
const MAX_SCALE: f64 = 50.0;

/// New probes looked at per call before the rest waits (a run whose next
/// probes all belong to full windows does not scan the whole plan at once).
const LOOK_AHEAD: usize = 4096;

impl Engine {
    /// An engine for `probes` probes of one target.
    pub fn new(probes: usize, cfg: EngineConfig, now: Instant) -> Self {
        Engine::with_groups(vec![0; probes], cfg, now)
    }

    /// An engine for probes whose targets are `group_of` (0, 1, ...: each
    /// target has its own round trips and window).
    pub fn with_groups(group_of: Vec<u32>, cfg: EngineConfig, now: Instant) -> Self {
        let window = cfg.window.max(1);
        let n_groups = group_of.iter().max().map_or(0, |m| *m as usize + 1);
        let group = Group {
            srtt: None,
            rttvar: Duration::ZERO,
            cwnd: cfg.initial_window.clamp(1, window) as f64,
            ssthresh: window as f64,
            cut_at: None,
            in_flight: 0,
            deferred: VecDeque::new(),
            ping: None,
            ping_out: None,
            quiet: 0,
            decided: 0,
            answers: 0,
            best_try: 0,
            pace: Pace::new(now),
            resend: VecDeque::new(),
            listed: false,
        };
        let probes = group_of.len();
        Engine {
            cfg,
            status: vec![Status::Waiting; probes],
            tries: vec![0; probes],
            last_sent: vec![None; probes],
            prev_fresh: vec![false; probes],
            group_of,
            groups: vec![group; n_groups],
            waiting: Vec::new(),
            paced: Vec::new(),
            next_new: 0,
            in_flight: 0,
            deferred: 0,
            timers: BinaryHeap::new(),
            srtt: None,
            tokens: 1.0,
            refilled: now,
            stats: EngineStats::default(),
        }
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// The congestion window of the first target now (probes in flight to
    /// it at most).
    pub fn window(&self) -> usize {
        self.groups.first().map_or(0, |g| g.cwnd as usize)
    }

    /// The smoothed round trip over every target, once one was measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// Retries allowed now to the first target (see
    /// [`Engine::retry_limit_of`]).
    pub fn retry_limit(&self) -> u8 {
        self.retry_limit_of(0)
    }

    /// Retries allowed now to target `g`: with adaptive retries, one more
    /// send than the highest try of its probes that got a SYN-ACK or RST
    /// (at least one retry), capped by `max_retries`. Before anything of it
    /// answered, a small run (at most [`SMALL_RUN`] probes: one port, a
    /// diagnosis) gets every retry: it has no evidence either way, and
    /// trying hard costs little.
    ///
    /// The evidence is each target's own: a lossy path to one host says
    /// nothing of the drops at another. And an ICMP error answering a
    /// retransmission is not counted: it is most often the responder's
    /// rate limiter having refilled (Linux: about one a second per peer),
    /// not a lost packet. Counted, it had every silent port of a scan of
    /// the real-world lab sent 7 times, the DROP-all hosts' too; the
    /// ports a limiter kept silent are the rate-limit inference's work
    /// ([`crate::track::infer`]), which re-probes them at the limiter's
    /// pace.
    ///
    /// A target paced to its answers gets every retry: its silence is its
    /// limit's (its retries were answered), and the tries its probes spent
    /// before the pace was found, faster than it answers, say nothing of
    /// its ports (a 200-a-second host once left a port `filtered` after 4
    /// sends in the first 0.3 s and one paced).
    fn retry_limit_of(&self, g: usize) -> u8 {
        let Some(grp) = self.groups.get(g) else {
            return self.cfg.max_retries;
        };
        let best = grp.best_try;
        if !self.cfg.adaptive_retries
            || grp.pace.slowest().is_some()
            || (best == 0 && self.status.len() <= SMALL_RUN)
        {
            self.cfg.max_retries
        } else {
            best.max(1).min(self.cfg.max_retries)
        }
    }

    /// The retransmission timeout of the first target now.
    pub fn rto(&self) -> Duration {
        self.rto_of(0)
    }

    fn rto_of(&self, g: usize) -> Duration {
        match self
            .groups
            .get(g)
            .and_then(|g| g.srtt.map(|s| (s, g.rttvar)))
        {
            None => self.cfg.initial_rto,
            Some((s, var)) => (s + 4 * var).clamp(self.cfg.min_rto, self.cfg.max_rto),
        }
    }

    /// Sends a second allowed; 0: no cap.
    fn per_sec(&self) -> f64 {
        match self.cfg.gap {
            Some(g) if !g.is_zero() => 1.0 / g.as_secs_f64(),
            _ => f64::from(self.cfg.rate),
        }
    }

    fn burst(&self) -> f64 {
        if self.cfg.gap.is_some() {
            return 1.0;
        }
        // 25 ms worth of probes, at least one.
        (self.per_sec() / 40.0).max(1.0)
    }

    /// Tokens worth waking up for: 20 ms worth, at least one (so a capped
    /// scan wakes about 50 times a second, not for every probe). Each wake
    /// costs more than its system calls: after a sleep the caches are cold
    /// for every packet of the batch, so fewer, larger batches are what
    /// keeps a capped scan's CPU near an uncapped one's (measured: waking
    /// every 5 ms cost 15 % more CPU at 10,000/s). The cap holds over any
    /// 25 ms ([`Engine::burst`]: the headroom keeps a late wake from losing
    /// tokens).
    fn batch(&self) -> f64 {
        (self.per_sec() / 50.0).clamp(1.0, self.burst())
    }

    fn refill(&mut self, now: Instant) {
        if self.per_sec() == 0.0 {
            self.tokens = f64::INFINITY;
            return;
        }
        let dt = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + dt * self.per_sec()).min(self.burst());
    }

    fn group(&self, i: usize) -> usize {
        self.group_of.get(i).map_or(0, |g| *g as usize)
    }

    fn send(&mut self, i: usize, now: Instant, out: &mut Vec<u32>) {
        self.tokens -= 1.0;
        self.tries[i] = self.tries[i].saturating_add(1);
        let g = self.group(i);
        let changed = self.groups[g].pace.changed();
        self.prev_fresh[i] = self.last_sent[i].is_some_and(|p| p >= changed);
        self.last_sent[i] = Some(now);
        self.status[i] = Status::Sent;
        self.groups[g].pace.sent();
        let rto = self.rto_of(g);
        let deadline = now + rto;
        self.timers
            .push(Reverse((deadline, i as u32, self.tries[i])));
        out.push(i as u32);
    }

    fn room(&self, g: usize) -> bool {
        self.in_flight < self.cfg.window.max(1)
            && self
                .groups
                .get(g)
                .is_some_and(|g| (g.in_flight as f64) < g.cwnd.floor().max(1.0) && g.pace.ready())
    }

    /// Group `g` has queued work: into [`Engine::waiting`], once.
    fn list(&mut self, g: usize) {
        if !self.groups[g].listed {
            self.groups[g].listed = true;
            self.waiting.push(g as u32);
        }
    }

    /// Probe `i` of group `g` is given up, every try unanswered.
    fn give_up(&mut self, i: usize, g: usize, now: Instant, out: &mut Vec<u32>) {
        self.groups[g].decided += 1;
        self.status[i] = Status::GaveUp;
        self.land(i);
        self.stats.unanswered += 1;
        self.silent(g);
        self.timed_out(g, now, out);
    }

    /// A new probe goes out (its window has room).
    fn launch(&mut self, i: usize, now: Instant, out: &mut Vec<u32>) {
        let g = self.group(i);
        self.in_flight += 1;
        self.groups[g].in_flight += 1;
        self.stats.sent += 1;
        self.send(i, now, out);
    }

    /// A send of group `g` timed out unanswered: once enough did since its
    /// last answer, a timing ping goes to the port of it that answered.
    fn timed_out(&mut self, g: usize, now: Instant, out: &mut Vec<u32>) {
        let rto = self.rto_of(g);
        let grp = &mut self.groups[g];
        grp.quiet = grp.quiet.saturating_add(1);
        if grp.quiet < PING_EVERY.max((grp.cwnd / 8.0) as u32) || grp.ping_out.is_some() {
            return;
        }
        let Some(p) = grp.ping else {
            return;
        };
        let deadline = now + rto;
        grp.ping_out = Some((now, deadline));
        grp.quiet = 0;
        self.tokens -= 1.0;
        self.stats.pings += 1;
        // Try number 0 marks a ping's timer.
        self.timers.push(Reverse((deadline, p, 0)));
        out.push(p);
    }

    /// A probe leaves the window (answered or given up).
    fn land(&mut self, i: usize) {
        let g = self.group(i);
        self.in_flight -= 1;
        self.groups[g].in_flight -= 1;
    }

    /// Appends to `out` the probes to send at `now`: retransmissions that
    /// are due, then new probes, within the rate and the windows.
    pub fn due(&mut self, now: Instant, out: &mut Vec<u32>) {
        self.refill(now);
        for &g in &self.paced {
            self.groups[g as usize].pace.refill(now);
        }
        while let Some(&Reverse((deadline, i, try_no))) = self.timers.peek() {
            if deadline > now {
                break;
            }
            let i = i as usize;
            if try_no == 0 {
                // A ping's deadline: unanswered, it is a loss signal.
                self.timers.pop();
                let g = self.group(i);
                if self.groups[g].ping_out.is_some_and(|(_, d)| d == deadline) {
                    self.groups[g].ping_out = None;
                    self.groups[g].decided += 1;
                    self.cut(g, now);
                }
                continue;
            }
            if self.status.get(i) != Some(&Status::Sent) || self.tries[i] != try_no {
                self.timers.pop();
                continue;
            }
            let g = self.group(i);
            if self.tries[i] > self.retry_limit_of(g) {
                self.timers.pop();
                self.give_up(i, g, now, out);
                continue;
            }
            if !self.groups[g].pace.ready() || !self.groups[g].resend.is_empty() {
                // Behind its target's pace, in order.
                self.timers.pop();
                self.groups[g].resend.push_back((i as u32, try_no));
                self.list(g);
                continue;
            }
            if self.tokens < 1.0 {
                return;
            }
            self.timers.pop();
            self.stats.retransmitted += 1;
            self.send(i, now, out);
            self.timed_out(g, now, out);
        }
        // Retransmissions that waited for their target's pace, then
        // probes that waited for its window, first.
        let mut k = 0;
        while k < self.waiting.len() && self.tokens >= 1.0 {
            let g = self.waiting[k] as usize;
            while self.tokens >= 1.0 && self.groups[g].pace.ready() {
                let Some((i, try_no)) = self.groups[g].resend.pop_front() else {
                    break;
                };
                let i = i as usize;
                if self.status.get(i) != Some(&Status::Sent) || self.tries[i] != try_no {
                    // Answered while it waited.
                    continue;
                }
                if self.tries[i] > self.retry_limit_of(g) {
                    self.give_up(i, g, now, out);
                    continue;
                }
                self.stats.retransmitted += 1;
                self.send(i, now, out);
                self.timed_out(g, now, out);
            }
            while self.groups[g].resend.is_empty() && self.room(g) && self.tokens >= 1.0 {
                let Some(i) = self.groups[g].deferred.pop_front() else {
                    break;
                };
                self.deferred -= 1;
                self.launch(i as usize, now, out);
            }
            if self.groups[g].deferred.is_empty() && self.groups[g].resend.is_empty() {
                self.groups[g].listed = false;
                self.waiting.swap_remove(k);
            } else {
                k += 1;
            }
        }
        let mut looked = 0;
        while self.next_new < self.status.len()
            && self.in_flight < self.cfg.window.max(1)
            && self.tokens >= 1.0
            && looked < LOOK_AHEAD
        {
            let i = self.next_new;
            self.next_new += 1;
            let g = self.group(i);
            if self.room(g) {
                self.launch(i, now, out);
            } else {
                looked += 1;
                self.list(g);
                self.groups[g].deferred.push_back(i as u32);
                self.deferred += 1;
            }
        }
    }

    /// A valid reply to probe `i` arrived at `now`: a SYN-ACK or RST
    /// (`tcp`), or an ICMP error (which routers rate-limit: one that comes
    /// late says nothing of congestion).
    pub fn answered_by(&mut self, i: u32, now: Instant, tcp: bool) {
        let idx = i;
        let i = i as usize;
        let g = self.group(i);
        if self.status.get(i) != Some(&Status::Sent) {
            // A timing ping's answer (its port answered before).
            let grp = &mut self.groups[g];
            if let (Some(p), Some((sent, _))) = (grp.ping, grp.ping_out)
                && p == idx
                && tcp
            {
                grp.ping_out = None;
                grp.answers += 1;
                grp.decided += 1;
                self.sample(g, now.saturating_duration_since(sent));
                self.grow(g);
            }
            return;
        }
        self.status[i] = Status::Answered;
        self.land(i);
        self.stats.answered += 1;
        let try_no = self.tries[i];
        let pace = self.cfg.pace_targets;
        let last = self.last_sent[i];
        let prev_fresh = self.prev_fresh[i];
        let grp = &mut self.groups[g];
        if tcp {
            grp.best_try = grp.best_try.max(try_no);
            if pace
                // The try before went out at this pace: it was sent after
                // the pace was set, and so was the last (no change since).
                && grp
                    .pace
                    .answered(
                        now,
                        try_no == 1,
                        prev_fresh && last.is_some_and(|l| l >= grp.pace.changed()),
                    )
                    .is_some()
                && !self.paced.contains(&(g as u32))
            {
                self.paced.push(g as u32);
            }
        }
        grp.quiet = 0;
        grp.answers += 1;
        grp.decided += 1;
        if tcp && grp.ping.is_none() {
            grp.ping = Some(idx);
        }
        if self.tries[i] == 1 {
            if let Some(sent) = self.last_sent[i] {
                self.sample(g, now.saturating_duration_since(sent));
            }
            self.grow(g);
        } else {
            self.stats.answered_after_retry += 1;
            if tcp {
                self.cut(g, now);
            }
        }
    }

    /// [`Engine::answered_by`] for a SYN-ACK or RST.
    pub fn answered(&mut self, i: u32, now: Instant) {
        self.answered_by(i, now, true);
    }

    /// An answer on a first send (or a ping's): the window grows, by one
    /// (slow start) or one per window, times the target's probes per
    /// answer (at most [`MAX_SCALE`]).
    fn grow(&mut self, g: usize) {
        let max = self.cfg.window.max(1) as f64;
        let g = &mut self.groups[g];
        let scale = (g.decided as f64 / g.answers.max(1) as f64).clamp(1.0, MAX_SCALE);
        if g.cwnd < g.ssthresh {
            g.cwnd += scale;
        } else {
            g.cwnd += scale / g.cwnd;
        }
        g.cwnd = g.cwnd.min(max);
    }

    /// A probe of target `g` given up, every try silent: if the target
    /// never answered anything, its window grows by one (see
    /// [`SILENT_WINDOW`]).
    fn silent(&mut self, g: usize) {
        let window = self.cfg.window.max(1) as f64;
        let grp = &mut self.groups[g];
        if grp.answers > 0 || grp.cwnd >= SILENT_WINDOW {
            return;
        }
        grp.cwnd += if grp.cwnd < grp.ssthresh {
            1.0
        } else {
            1.0 / grp.cwnd
        };
        grp.cwnd = grp.cwnd.min(SILENT_WINDOW).min(window);
    }

    /// A loss signal for target group `g`: its window halves, once per
    /// round trip.
    fn cut(&mut self, g: usize, now: Instant) {
        let floor = self.cfg.min_window.max(1) as f64;
        let initial = self.cfg.initial_rto;
        let g = &mut self.groups[g];
        let rtt = g.srtt.unwrap_or(initial);
        if g.cut_at
            .is_some_and(|t| now.saturating_duration_since(t) < rtt)
        {
            return;
        }
        g.cut_at = Some(now);
        g.ssthresh = (g.cwnd / 2.0).max(floor);
        g.cwnd = g.ssthresh;
    }

    /// A loss signal for the whole run (packets the capture lost): every
    /// window halves, once per round trip.
    pub fn lost(&mut self, now: Instant) {
        for g in 0..self.groups.len() {
            self.cut(g, now);
        }
    }

    fn sample(&mut self, g: usize, r: Duration) {
        let update = |srtt: &mut Option<Duration>, var: &mut Duration| match *srtt {
            None => {
                *srtt = Some(r);
                *var = r / 2;
            }
            Some(s) => {
                let diff = s.abs_diff(r);
                *var = *var * 3 / 4 + diff / 4;
                *srtt = Some(s * 7 / 8 + r / 8);
            }
        };
        let grp = &mut self.groups[g];
        update(&mut grp.srtt, &mut grp.rttvar);
        let mut var = Duration::ZERO;
        update(&mut self.srtt, &mut var);
    }

    /// Whether probe `i` went out at least once.
    pub fn was_sent(&self, i: u32) -> bool {
        self.tries.get(i as usize).is_some_and(|t| *t > 0)
    }

    /// Every probe answered or given up.
    pub fn finished(&self) -> bool {
        self.next_new == self.status.len() && self.in_flight == 0 && self.deferred == 0
    }

    /// Whether an answer that comes before [`Engine::next_event`] should
    /// wake the loop. Not while it waits for the rate's tokens with probes
    /// still to send: an answer frees room in a window, but sending waits
    /// for the tokens all the same, and the answer is read at the wake
    /// with its capture timestamp (on a slow path, whose answers trickle
    /// in, a capped scan woke for nearly each one: 1,085 wakes in 0.7 s
    /// for 3,000 ports at 5,000/s). With only answers and timeouts left,
    /// an answer may end the run: it wakes the loop.
    pub fn wake_on_answers(&self) -> bool {
        let short = self.per_sec() > 0.0 && self.tokens < self.batch();
        let to_send = self.next_new < self.status.len() || self.deferred > 0;
        !(short && to_send)
    }

    /// When `due` next has something to do (None when finished).
    pub fn next_event(&self, now: Instant) -> Option<Instant> {
        if self.finished() {
            return None;
        }
        let want = self.batch();
        let token_at = if self.per_sec() == 0.0 || self.tokens >= want {
            now
        } else {
            // At least a microsecond: a deficit that rounds to no time at
            // all would have the caller wake at once, forever.
            now + Duration::from_secs_f64((want - self.tokens) / self.per_sec())
                .max(Duration::from_micros(1))
        };
        let global_room = self.in_flight < self.cfg.window.max(1);
        let mut next = self.timers.peek().map(|Reverse((d, _, _))| *d);
        let mut at = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if global_room && self.next_new < self.status.len() {
            at(token_at);
        }
        // Queued work: when its target's pace lets it go.
        for &g in &self.waiting {
            let Some(grp) = self.groups.get(g as usize) else {
                continue;
            };
            let window = global_room && (grp.in_flight as f64) < grp.cwnd.floor().max(1.0);
            if !grp.resend.is_empty() || (window && !grp.deferred.is_empty()) {
                at(grp.pace.ready_at(now).unwrap_or(now));
            }
        }
        next.map(|t| t.max(token_at))
    }

    /// The targets (groups) paced to their answers: each with the slowest
    /// pace it had (sends a second) and its number of probes.
    pub fn paced(&self) -> Vec<(u32, f64, usize)> {
        if self.paced.is_empty() {
            return Vec::new();
        }
        let mut probes = vec![0usize; self.groups.len()];
        for &g in &self.group_of {
            if let Some(n) = probes.get_mut(g as usize) {
                *n += 1;
            }
        }
        self.paced
            .iter()
            .filter_map(|&g| {
                let slowest = self.groups.get(g as usize)?.pace.slowest()?;
                Some((g, slowest, probes.get(g as usize).copied().unwrap_or(0)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn sends_then_retransmits_then_gives_up() {
        let t0 = Instant::now();
        let cfg = EngineConfig {
            rate: 0,
            max_retries: 2,
            adaptive_retries: false,
            ..Default::default()
        };
        let mut e = Engine::new(2, cfg, t0);
        let mut out = Vec::new();
        e.due(t0, &mut out);
        assert_eq!(out, vec![0, 1]);
        e.answered(0, t0 + ms(10));
        out.clear();
        e.due(t0 + ms(100), &mut out);
        assert!(out.is_empty(), "nothing due before the timeout");
        // RTO after one 10 ms sample: 10 + 4·5 = 30 ms, clamped to 100 ms;
        // but probe 1 was sent with the initial 500 ms.
        e.due(t0 + ms(500), &mut out);
        assert_eq!(out, vec![1]);
        out.clear();
        e.due(t0 + ms(600), &mut out);
        assert_eq!(out, vec![1], "second retry after the (now 100 ms) RTO");
        out.clear();
        e.due(t0 + ms(700), &mut out);
        assert!(out.is_empty());
        assert!(e.finished(), "gave up after 1 + 2 sends");
        let s = e.stats();
        assert_eq!(
            (s.sent, s.retransmitted, s.answered, s.unanswered),
            (2, 2, 1, 1)
        );
    }

    #[test]
    fn late_answer_after_retry_counts_as_loss_and_no_rtt_sample() {
        let t0 = Instant::now();
        let mut e = Engine::new(
            1,
            EngineConfig {
                rate: 0,
                ..Default::default()
            },
            t0,
        );
        let mut out = Vec::new();
        e.due(t0, &mut out);
        e.due(t0 + ms(500), &mut out);
        assert_eq!(out, vec![0, 0]);
        e.answered(0, t0 + ms(510));
        assert_eq!(e.stats().answered_after_retry, 1);
        assert_eq!(
            e.rto(),
            ms(500),
            "Karn: no sample from a retransmitted probe"
        );
        e.answered(0, t0 + ms(520));
        assert_eq!(e.stats().answered, 1, "a second answer changes nothing");
    }

    #[test]
    fn rto_follows_the_rtt() {
        let t0 = Instant::now();
        let mut e = Engine::new(
            100,
            EngineConfig {
                rate: 0,
                ..Default::default()
            },
            t0,
        );
        let mut out = Vec::new();
        e.due(t0, &mut out);
        for i in 0..100 {
            e.answered(i, t0 + ms(200));
        }
        // srtt → 200 ms, rttvar → small: RTO a little over 200 ms.
        let rto = e.rto();
        assert!(rto >= ms(200) && rto < ms(400), "{rto:?}");
    }

    /// Drives `e` against a host that answers at most `per_sec` probes a
    /// second (a token bucket of `per_sec` at once, the round trip `rtt`):
    /// each send answered if the bucket has a token when it arrives. Runs
    /// until finished or `limit`; returns the time taken and the sends.
    fn against_a_limiter(
        e: &mut Engine,
        t0: Instant,
        per_sec: f64,
        rtt: Duration,
        limit: Duration,
    ) -> (Duration, u32) {
        let (mut tokens, mut refilled) = (per_sec, t0);
        let mut now = t0;
        let mut sends = 0u32;
        let mut answers: VecDeque<(Instant, u32)> = VecDeque::new();
        let mut out = Vec::new();
        while !e.finished() && now < t0 + limit {
            while let Some(&(at, i)) = answers.front() {
                if at > now {
                    break;
                }
                answers.pop_front();
                e.answered(i, at);
            }
            out.clear();
            e.due(now, &mut out);
            for &i in &out {
                sends += 1;
                let at = now + rtt;
                tokens = (tokens + at.saturating_duration_since(refilled).as_secs_f64() * per_sec)
                    .min(per_sec);
                refilled = refilled.max(at);
                if tokens >= 1.0 {
                    tokens -= 1.0;
                    answers.push_back((at, i));
                }
            }
            let next = e.next_event(now).unwrap_or(now + ms(10));
            let next = answers.front().map_or(next, |&(at, _)| next.min(at));
            now = next.max(now + Duration::from_micros(1));
        }
        (now - t0, sends)
    }

    #[test]
    fn a_host_that_answers_so_many_a_second_is_paced_and_every_probe_answered() {
        let t0 = Instant::now();
        let mut e = Engine::new(1000, EngineConfig::default(), t0);
        let (took, sends) = against_a_limiter(&mut e, t0, 100.0, ms(1), Duration::from_secs(60));
        let s = e.stats();
        assert_eq!((s.answered, s.unanswered), (1000, 0), "{s:?}");
        // 900 answers beyond the first 100 at 100 a second: 9 s at best.
        assert!(
            took >= Duration::from_secs(9) && took < Duration::from_secs(12),
            "{took:?}"
        );
        let paced = e.paced();
        assert_eq!(paced.len(), 1);
        assert_eq!(e.retry_limit(), 6, "a paced target gets every retry");
        assert!((85.0..=115.0).contains(&paced[0].1), "{paced:?}");
        // Retransmissions wait behind the pace: the sends are not many
        // more than the probes (the first burst's silent ones once more).
        assert!(sends < 2500, "{sends} sends {s:?}");
        // Unpaced (the fixed pace of a re-probe has no such evidence
        // counted): the same host leaves most ports silent.
        let cfg = EngineConfig {
            pace_targets: false,
            ..EngineConfig::default()
        };
        let mut e = Engine::new(1000, cfg, t0);
        against_a_limiter(&mut e, t0, 100.0, ms(1), Duration::from_secs(60));
        assert!(e.stats().unanswered > 100, "{:?}", e.stats());
        assert!(e.paced().is_empty());
    }

    #[test]
    fn retries_follow_the_evidence() {
        let t0 = Instant::now();
        let mut e = Engine::new(100, EngineConfig::default(), t0);
        let mut out = Vec::new();
        e.due(t0, &mut out);
        assert_eq!(out.len(), 100);
        assert_eq!(e.retry_limit(), 1, "nothing answered yet: one retry");
        let small = Engine::new(SMALL_RUN, EngineConfig::default(), t0);
        assert_eq!(
            small.retry_limit(),
            6,
            "a small run, no evidence: every retry"
        );
        // Two answers on the first send: silent probes get two sends.
        e.answered(0, t0 + ms(1));
        e.answered(1, t0 + ms(1));
        assert_eq!(e.retry_limit(), 1);
        let mut t = t0;
        out.clear();
        e.due(t + ms(500), &mut out);
        // The first retransmissions, and a timing ping (32 sends timed out
        // since the last answer) to the port that answered first.
        assert_eq!(out.len(), 99);
        assert_eq!(out.iter().filter(|&&i| i >= 2).count(), 98);
        assert_eq!(out.iter().filter(|&&i| i == 0).count(), 1);
        assert_eq!(e.stats().pings, 1);
        // One answer to a retransmission: loss, so one retry more.
        e.answered(2, t0 + ms(501));
        assert_eq!(e.retry_limit(), 2);
        for _ in 0..20 {
            t += ms(200);
            out.clear();
            e.due(t, &mut out);
        }
        assert!(e.finished());
        // 97 silent probes, 3 sends each; probe 2 answered on its second.
        assert_eq!(e.stats().sent + e.stats().retransmitted, 100 + 98 + 97);
        // Never past max_retries.
        let cfg = EngineConfig {
            max_retries: 1,
            ..Default::default()
        };
        let mut e = Engine::new(1, cfg, t0);
        e.due(t0, &mut out);
        e.groups[0].best_try = 5;
        assert_eq!(e.retry_limit(), 1);
    }

    #[test]
    fn retry_evidence_is_each_targets_own_and_tcp_only() {
        let t0 = Instant::now();
        let groups: Vec<u32> = (0..100).map(|i| u32::from(i >= 50)).collect();
        let mut e = Engine::with_groups(groups, EngineConfig::default(), t0);
        let mut out = Vec::new();
        e.due(t0, &mut out);
        assert_eq!(out.len(), 100);
        out.clear();
        e.due(t0 + ms(500), &mut out);
        assert!(out.contains(&3) && out.contains(&53), "{out:?}");
        // Target 0: an ICMP error answers a retransmission (a rate limiter
        // that refilled): no evidence of loss, no more retries.
        e.answered_by(3, t0 + ms(501), false);
        assert_eq!(e.retry_limit_of(0), 1);
        // Target 1: a RST answers one: loss on its path, one retry more
        // for it, and for it alone.
        e.answered_by(53, t0 + ms(501), true);
        assert_eq!(e.retry_limit_of(1), 2);
        assert_eq!(e.retry_limit_of(0), 1);
        let mut t = t0 + ms(500);
        for _ in 0..40 {
            t += ms(200);
            out.clear();
            e.due(t, &mut out);
        }
        assert!(e.finished());
        let sends: Vec<u8> = e.tries.clone();
        // Target 0's silent probes: two sends each; target 1's: three.
        assert!(
            sends[..50]
                .iter()
                .enumerate()
                .all(|(i, &n)| i == 3 || n == 2),
            "{sends:?}"
        );
        assert!(
            sends[50..]
                .iter()
                .enumerate()
                .all(|(i, &n)| i == 3 || n == 3),
            "{sends:?}"
        );
    }

    #[test]
    fn the_window_grows_with_answers_and_halves_on_loss() {
        let t0 = Instant::now();
        let cfg = EngineConfig {
            initial_window: 4,
            min_window: 2,
            ..Default::default()
        };
        let mut e = Engine::new(1000, cfg, t0);
        let mut out = Vec::new();
        e.due(t0, &mut out);
        assert_eq!(out.len(), 4, "the initial window");
        // Slow start: each answer on a first send widens it by one.
        for (k, &i) in out.clone().iter().enumerate() {
            e.answered(i, t0 + ms(1 + k as u64));
        }
        assert_eq!(e.window(), 8);
        out.clear();
        e.due(t0 + ms(5), &mut out);
        assert_eq!(out.len(), 8);
        for &i in &out {
            e.answered(i, t0 + ms(6));
        }
        assert_eq!(e.window(), 16);
        // A RST that answers only a retransmission: loss; the window halves,
        // once per round trip however many such answers come.
        out.clear();
        e.due(t0 + ms(7), &mut out);
        let (a, b) = (out[0], out[1]);
        let rto = e.rto();
        out.clear();
        e.due(t0 + ms(7) + rto, &mut out);
        assert!(out.contains(&a) && out.contains(&b));
        e.answered(a, t0 + ms(8) + rto);
        assert_eq!(e.window(), 8);
        e.answered(b, t0 + ms(8) + rto);
        assert_eq!(e.window(), 8, "one cut per round trip");
        // An ICMP error answering a retransmission is a rate limit, not loss.
        let c = out[2];
        e.answered_by(c, t0 + ms(9) + rto, false);
        assert_eq!(e.window(), 8);
        // Never below the floor.
        for k in 0..20 {
            e.lost(t0 + Duration::from_secs(10 + k));
        }
        assert_eq!(e.window(), 2);
    }

    #[test]
    fn rate_cap_spreads_sends() {
        let t0 = Instant::now();
        // Windows that never fill: only the cap paces.
        let cfg = EngineConfig {
            rate: 1000,
            initial_window: 5000,
            window: 5000,
            ..Default::default()
        };
        let mut e = Engine::new(5000, cfg, t0);
        let mut out = Vec::new();
        let mut sent_at = Vec::new();
        let mut t = t0;
        let mut wakes = 0;
        // One second at 1000/s: about 1000 sends, in batches of 20 ms.
        while t < t0 + ms(1000) {
            let before = out.len();
            e.due(t, &mut out);
            sent_at.extend(std::iter::repeat_n(t, out.len() - before));
            wakes += 1;
            t = e.next_event(t).unwrap().max(t + Duration::from_micros(100));
        }
        assert!((950..=1025).contains(&out.len()), "{} sends", out.len());
        assert!(
            wakes <= 60,
            "{wakes} wakes: a capped scan wakes every 20 ms"
        );
        // The cap holds over any 25 ms: at most rate x 25 ms + the burst.
        for (k, s) in sent_at.iter().enumerate() {
            let within = sent_at[k..]
                .iter()
                .take_while(|u| **u < *s + ms(25))
                .count();
            assert!(within <= 50, "{within} sends within 25 ms");
        }
    }

    #[test]
    fn window_caps_probes_in_flight() {
        let t0 = Instant::now();
        let cfg = EngineConfig {
            rate: 0,
            window: 3,
            initial_window: 3,
            ..Default::default()
        };
        let mut e = Engine::new(10, cfg, t0);
        let mut out = Vec::new();
        e.due(t0, &mut out);
        assert_eq!(out.len(), 3);
        e.answered(1, t0 + ms(1));
        e.due(t0 + ms(1), &mut out);
        assert_eq!(out, vec![0, 1, 2, 3]);
    }

    #[test]
    fn each_target_has_its_own_window() {
        let t0 = Instant::now();
        let cfg = EngineConfig {
            initial_window: 2,
            min_window: 1,
            ..Default::default()
        };
        // Probes alternate between targets 0 and 1; target 1 is lossy.
        let groups: Vec<u32> = (0..40).map(|i| i % 2).collect();
        let mut e = Engine::with_groups(groups, cfg, t0);
        let mut out = Vec::new();
        e.due(t0, &mut out);
        assert_eq!(out, vec![0, 1, 2, 3], "two in flight to each");
        // Target 1's probe 1 answers only its retransmission: its window
        // halves; target 0's does not.
        for i in [0u32, 2] {
            e.answered(i, t0 + ms(1));
        }
        out.clear();
        e.due(t0 + ms(1), &mut out);
        assert_eq!(
            out,
            vec![4, 6, 8, 10],
            "target 0 grew to 4, target 1 is full"
        );
        out.clear();
        e.due(t0 + ms(501), &mut out);
        assert!(out.contains(&1) && out.contains(&3));
        e.answered(1, t0 + ms(502));
        assert_eq!(e.groups[1].cwnd as usize, 1);
        assert_eq!(e.groups[0].cwnd as usize, 4);
        // The deferred probes of target 1 wait for its room, in order.
        assert!(e.groups[1].deferred.iter().all(|i| i % 2 == 1));
        let mut t = t0 + ms(502);
        for _ in 0..200 {
            t += ms(50);
            out.clear();
            e.due(t, &mut out);
            for &i in &out {
                e.answered(i, t + ms(1));
            }
        }
        assert!(e.finished(), "{:?}", e.stats());
        assert_eq!(e.stats().sent, 40);
    }
}
