//! Probe scheduling: which probe to send when. Pure: the caller passes the
//! time, so every timing path is tested without a network or a clock.
//!
//! Adaptive timing, after the ideas of nmap's timing.cc and TCP's own
//! congestion control (written anew here):
//! - the retransmission timeout follows the round trips seen (RFC 6298:
//!   srtt + 4·rttvar, clamped), sampled only from probes answered on their
//!   first send (Karn);
//! - a congestion window caps the probes in flight: it starts at
//!   `initial_window`, grows by one for each probe answered on its first
//!   send while below the slow-start threshold (doubling every round trip),
//!   by one per window beyond it, and halves on a loss signal (a SYN-ACK or
//!   RST that came only after a retransmission, or packets the capture
//!   lost), at most once per round trip; silence is not a loss signal (a
//!   DROP rule is silent however slowly one probes);
//! - retries follow the evidence: a probe is sent at most once more than
//!   the highest try that ever got an answer (at least twice), and never
//!   more than `1 + max_retries` times, so a host that drops everything
//!   costs two sends a port while a lossy path gets the retries it needs;
//! - `rate`, when set, is an exact cap (a token bucket) on top of that.

pub use crate::model::EngineStats;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
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
    /// The congestion window's start and its bounds.
    pub initial_window: usize,
    pub min_window: usize,
    /// Probes sent and not yet answered or given up, at most.
    pub window: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            rate: 0,
            max_retries: 6,
            adaptive_retries: true,
            initial_rto: Duration::from_millis(500),
            min_rto: Duration::from_millis(100),
            max_rto: Duration::from_millis(1250),
            initial_window: 256,
            min_window: 16,
            window: 65536,
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
            initial_rto: every,
            min_rto: every,
            max_rto: every,
            initial_window: window,
            min_window: window,
            window,
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

#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    status: Vec<Status>,
    tries: Vec<u8>,
    last_sent: Vec<Option<Instant>>,
    next_new: usize,
    in_flight: usize,
    /// (deadline, probe, try number) of every send; stale entries skipped.
    timers: BinaryHeap<Reverse<(Instant, u32, u8)>>,
    srtt: Option<Duration>,
    rttvar: Duration,
    tokens: f64,
    refilled: Instant,
    cwnd: f64,
    ssthresh: f64,
    /// When the window was last cut (one cut per round trip).
    cut_at: Option<Instant>,
    /// The highest try number that got an answer.
    best_try: u8,
    stats: EngineStats,
}

impl Engine {
    pub fn new(probes: usize, cfg: EngineConfig, now: Instant) -> Self {
        let window = cfg.window.max(1);
        Engine {
            cfg,
            status: vec![Status::Waiting; probes],
            tries: vec![0; probes],
            last_sent: vec![None; probes],
            next_new: 0,
            in_flight: 0,
            timers: BinaryHeap::new(),
            srtt: None,
            rttvar: Duration::ZERO,
            tokens: 1.0,
            refilled: now,
            cwnd: cfg.initial_window.clamp(1, window) as f64,
            ssthresh: window as f64,
            cut_at: None,
            best_try: 0,
            stats: EngineStats::default(),
        }
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// The congestion window now (probes in flight at most).
    pub fn window(&self) -> usize {
        self.cwnd as usize
    }

    /// The smoothed round trip, once one was measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// Retries allowed now: with adaptive retries, one more send than the
    /// highest try that ever got an answer (at least one retry), capped by
    /// `max_retries`. Before anything answered, a small run (at most
    /// [`SMALL_RUN`] probes: one port, a diagnosis) gets every retry: it
    /// has no evidence either way, and trying hard costs little.
    pub fn retry_limit(&self) -> u8 {
        if !self.cfg.adaptive_retries || (self.best_try == 0 && self.status.len() <= SMALL_RUN) {
            self.cfg.max_retries
        } else {
            self.best_try.max(1).min(self.cfg.max_retries)
        }
    }

    /// The current retransmission timeout.
    pub fn rto(&self) -> Duration {
        match self.srtt {
            None => self.cfg.initial_rto,
            Some(s) => (s + 4 * self.rttvar).clamp(self.cfg.min_rto, self.cfg.max_rto),
        }
    }

    fn burst(&self) -> f64 {
        // 10 ms worth of probes, at least one.
        (f64::from(self.cfg.rate) / 100.0).max(1.0)
    }

    /// Tokens worth waking up for: a millisecond's worth, at least one (so
    /// a capped scan wakes about a thousand times a second, not for every
    /// probe).
    fn batch(&self) -> f64 {
        (f64::from(self.cfg.rate) / 1000.0).clamp(1.0, self.burst())
    }

    fn refill(&mut self, now: Instant) {
        if self.cfg.rate == 0 {
            self.tokens = f64::INFINITY;
            return;
        }
        let dt = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + dt * f64::from(self.cfg.rate)).min(self.burst());
    }

    fn send(&mut self, i: usize, now: Instant, out: &mut Vec<u32>) {
        self.tokens -= 1.0;
        self.tries[i] = self.tries[i].saturating_add(1);
        self.last_sent[i] = Some(now);
        self.status[i] = Status::Sent;
        let deadline = now + self.rto();
        self.timers
            .push(Reverse((deadline, i as u32, self.tries[i])));
        out.push(i as u32);
    }

    fn room(&self) -> bool {
        (self.in_flight as f64) < self.cwnd.floor().max(1.0)
    }

    /// Appends to `out` the probes to send at `now`: retransmissions that
    /// are due, then new probes, within the rate and the window.
    pub fn due(&mut self, now: Instant, out: &mut Vec<u32>) {
        self.refill(now);
        while let Some(&Reverse((deadline, i, try_no))) = self.timers.peek() {
            if deadline > now {
                break;
            }
            let i = i as usize;
            if self.status.get(i) != Some(&Status::Sent) || self.tries[i] != try_no {
                self.timers.pop();
                continue;
            }
            if self.tries[i] > self.retry_limit() {
                self.timers.pop();
                self.status[i] = Status::GaveUp;
                self.in_flight -= 1;
                self.stats.unanswered += 1;
                continue;
            }
            if self.tokens < 1.0 {
                return;
            }
            self.timers.pop();
            self.stats.retransmitted += 1;
            self.send(i, now, out);
        }
        while self.next_new < self.status.len() && self.room() && self.tokens >= 1.0 {
            let i = self.next_new;
            self.next_new += 1;
            self.in_flight += 1;
            self.stats.sent += 1;
            self.send(i, now, out);
        }
    }

    /// A valid reply to probe `i` arrived at `now`: a SYN-ACK or RST
    /// (`tcp`), or an ICMP error (which routers rate-limit: one that comes
    /// late says nothing of congestion).
    pub fn answered_by(&mut self, i: u32, now: Instant, tcp: bool) {
        let i = i as usize;
        if self.status.get(i) != Some(&Status::Sent) {
            return;
        }
        self.status[i] = Status::Answered;
        self.in_flight -= 1;
        self.stats.answered += 1;
        self.best_try = self.best_try.max(self.tries[i]);
        if self.tries[i] == 1 {
            if let Some(sent) = self.last_sent[i] {
                self.sample(now.saturating_duration_since(sent));
            }
            self.grow();
        } else {
            self.stats.answered_after_retry += 1;
            if tcp {
                self.lost(now);
            }
        }
    }

    /// [`Engine::answered_by`] for a SYN-ACK or RST.
    pub fn answered(&mut self, i: u32, now: Instant) {
        self.answered_by(i, now, true);
    }

    fn grow(&mut self) {
        let max = self.cfg.window.max(1) as f64;
        if self.cwnd < self.ssthresh {
            self.cwnd += 1.0;
        } else {
            self.cwnd += 1.0 / self.cwnd;
        }
        self.cwnd = self.cwnd.min(max);
    }

    /// A loss signal at `now` (an answer only to a retransmission, packets
    /// the capture lost): the window halves, once per round trip.
    pub fn lost(&mut self, now: Instant) {
        let rtt = self.srtt.unwrap_or(self.cfg.initial_rto);
        if self
            .cut_at
            .is_some_and(|t| now.saturating_duration_since(t) < rtt)
        {
            return;
        }
        self.cut_at = Some(now);
        let floor = self.cfg.min_window.max(1) as f64;
        self.ssthresh = (self.cwnd / 2.0).max(floor);
        self.cwnd = self.ssthresh;
    }

    fn sample(&mut self, r: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(s) => {
                let diff = s.abs_diff(r);
                self.rttvar = self.rttvar * 3 / 4 + diff / 4;
                self.srtt = Some(s * 7 / 8 + r / 8);
            }
        }
    }

    /// Whether probe `i` went out at least once.
    pub fn was_sent(&self, i: u32) -> bool {
        self.tries.get(i as usize).is_some_and(|t| *t > 0)
    }

    /// When probe `i` was first sent... (for the end wait: its last send).
    pub fn last_sent(&self, i: u32) -> Option<Instant> {
        self.last_sent.get(i as usize).copied().flatten()
    }

    /// Every probe answered or given up.
    pub fn finished(&self) -> bool {
        self.next_new == self.status.len() && self.in_flight == 0
    }

    /// When `due` next has something to do (None when finished).
    pub fn next_event(&self, now: Instant) -> Option<Instant> {
        if self.finished() {
            return None;
        }
        let want = self.batch();
        let token_at = if self.cfg.rate == 0 || self.tokens >= want {
            now
        } else {
            // At least a microsecond: a deficit that rounds to no time at
            // all would have the caller wake at once, forever.
            now + Duration::from_secs_f64((want - self.tokens) / f64::from(self.cfg.rate))
                .max(Duration::from_micros(1))
        };
        let new_ready = self.next_new < self.status.len() && self.room();
        let timer = self.timers.peek().map(|Reverse((d, _, _))| *d);
        let mut next = timer;
        if new_ready {
            next = Some(next.map_or(token_at, |t| t.min(token_at)));
        }
        next.map(|t| t.max(token_at))
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
        assert_eq!(out.len(), 98, "the first retransmissions");
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
        e.best_try = 5;
        assert_eq!(e.retry_limit(), 1);
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
        let cfg = EngineConfig {
            rate: 1000,
            ..Default::default()
        };
        let mut e = Engine::new(100, cfg, t0);
        let mut out = Vec::new();
        let mut t = t0;
        // Over 50 ms at 1000/s: about 50 sends (plus the initial burst).
        while t < t0 + ms(50) {
            e.due(t, &mut out);
            t = e.next_event(t).unwrap().max(t + Duration::from_micros(100));
        }
        assert!((45..=62).contains(&out.len()), "{} sends", out.len());
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
}
