//! Probe scheduling: which probe to send when. Pure: the caller passes the
//! time, so every timing path is tested without a network or a clock.
//!
//! nmap-style adaptive timing: the retransmission timeout follows the round
//! trips seen (RFC 6298: srtt + 4·rttvar, clamped), sampled only from probes
//! answered on their first send (Karn); unanswered probes are sent again up
//! to `max_retries` times; a token bucket caps the rate; a window caps the
//! probes in flight.

pub use crate::model::EngineStats;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Probes per second at most (first sends and retransmissions); 0 = no cap.
    pub rate: u32,
    /// Sends after the first for an unanswered probe.
    pub max_retries: u8,
    pub initial_rto: Duration,
    pub min_rto: Duration,
    pub max_rto: Duration,
    /// Probes sent and not yet answered or given up, at most.
    pub window: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            rate: 10_000,
            max_retries: 6,
            initial_rto: Duration::from_millis(500),
            min_rto: Duration::from_millis(100),
            max_rto: Duration::from_millis(1250),
            window: 4096,
        }
    }
}

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
    stats: EngineStats,
}

impl Engine {
    pub fn new(probes: usize, cfg: EngineConfig, now: Instant) -> Self {
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
            stats: EngineStats::default(),
        }
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Retries allowed now: `max_retries`, and 4 more once retransmissions
    /// are seen to succeed for more than 1 in 10 answers (loss on the path,
    /// so silence is less telling).
    pub fn retry_limit(&self) -> u8 {
        let s = &self.stats;
        if s.answered >= 5 && s.answered_after_retry * 10 > s.answered {
            self.cfg.max_retries.saturating_add(4)
        } else {
            self.cfg.max_retries
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
        while self.next_new < self.status.len()
            && self.in_flight < self.cfg.window
            && self.tokens >= 1.0
        {
            let i = self.next_new;
            self.next_new += 1;
            self.in_flight += 1;
            self.stats.sent += 1;
            self.send(i, now, out);
        }
    }

    /// A valid reply to probe `i` arrived at `now`.
    pub fn answered(&mut self, i: u32, now: Instant) {
        let i = i as usize;
        if self.status.get(i) != Some(&Status::Sent) {
            return;
        }
        self.status[i] = Status::Answered;
        self.in_flight -= 1;
        self.stats.answered += 1;
        if self.tries[i] == 1 {
            if let Some(sent) = self.last_sent[i] {
                self.sample(now.saturating_duration_since(sent));
            }
        } else {
            self.stats.answered_after_retry += 1;
        }
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

    /// Every probe answered or given up.
    pub fn finished(&self) -> bool {
        self.next_new == self.status.len() && self.in_flight == 0
    }

    /// When `due` next has something to do (None when finished).
    pub fn next_event(&self, now: Instant) -> Option<Instant> {
        if self.finished() {
            return None;
        }
        let token_at = if self.tokens >= 1.0 || self.cfg.rate == 0 {
            now
        } else {
            // At least a microsecond: a deficit that rounds to no time at
            // all would have the caller wake at once, forever.
            now + Duration::from_secs_f64((1.0 - self.tokens) / f64::from(self.cfg.rate))
                .max(Duration::from_micros(1))
        };
        let new_ready = self.next_new < self.status.len() && self.in_flight < self.cfg.window;
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
    fn loss_seen_allows_more_retries() {
        let t0 = Instant::now();
        let cfg = EngineConfig {
            rate: 0,
            max_retries: 1,
            ..Default::default()
        };
        let mut e = Engine::new(11, cfg, t0);
        let mut out = Vec::new();
        e.due(t0, &mut out);
        assert_eq!(e.retry_limit(), 1);
        // Five answers, two of them only after a retransmission.
        e.answered(0, t0 + ms(1));
        e.answered(1, t0 + ms(1));
        e.answered(2, t0 + ms(1));
        out.clear();
        e.due(t0 + ms(500), &mut out);
        e.answered(3, t0 + ms(501));
        e.answered(4, t0 + ms(501));
        assert_eq!(e.stats().answered_after_retry, 2);
        assert_eq!(e.retry_limit(), 5, "loss seen: 4 more retries");
        // The other probes now get more than 1 + 1 sends.
        let mut t = t0 + ms(500);
        for _ in 0..20 {
            t += ms(1300);
            out.clear();
            e.due(t, &mut out);
        }
        assert!(e.finished());
        assert_eq!(
            e.stats().retransmitted,
            11 - 5 + 6 * 4 + 2,
            "{:?}",
            e.stats()
        );
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
