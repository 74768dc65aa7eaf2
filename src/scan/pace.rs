//! A target's own pace, for hosts that answer only so many probes a second.
//!
//! FreeBSD and macOS send at most 200 resets a second for closed ports
//! (`net.inet.icmp.icmplim`), and SYN limits in front of servers
//! (iptables `limit` / `hashlimit`, DDoS filters) drop SYNs beyond a rate.
//! Probes sent faster than that go unanswered, however often they are sent:
//! a window does not help when the round trip is short (16 probes in flight
//! at a 0.1 ms round trip is still 160,000 a second), and the retries run
//! out. Measured in the real-world lab: a host that answered 200 resets a
//! second left 323 of 3,000 closed ports `filtered` after 7 sends each.
//!
//! The evidence is the host's own: an answer that came only on a
//! retransmission sent within the interval being measured (the try before
//! it went unanswered though the host was answering: nmap's "dropped
//! probe"), against answers on a first send. When enough are dropped and
//! far more was sent than answered, the target is paced to the rate its
//! answers came at over the interval, less a twentieth; paced, a smaller
//! share dropped sets the pace again from the new interval; an interval
//! with almost nothing dropped raises it a quarter (the limit may have been
//! a burst of congestion), and each cut after that waits twice as long
//! before the next raise (a limit that holds is not probed every 2 s). Silence alone is never evidence: a DROP rule is silent at
//! any pace, and ICMP errors are not counted (routers rate-limit those;
//! the rate-limit inference and the slow pass deal with them).
//!
//! Pure: the caller passes the time. (The idea of a per-host send delay
//! raised on dropped probes is nmap's scan_engine.cc; this measures the
//! rate instead of doubling a delay, written anew.)

use std::time::{Duration, Instant};

/// Answers on a retry that must be seen in an interval before it says
/// anything.
const DROPS_TO_ACT: u32 = 10;
/// The share of an interval's answers that came only on a retry that
/// paces an unpaced target (nmap: 0.3, 0.4 at -T4 and above); a slow lossy
/// link with 1 % loss each way stays near 0.02.
const ENTER_SHARE: f64 = 0.3;
/// The share that sets a paced target's pace again.
const PACED_SHARE: f64 = 0.1;
/// An interval shorter than this is not measured yet: unpaced, each
/// interval on its own, short, so that a limit is found within a few
/// round trips of its first drops (every probe of a host that answers 200
/// a second was sent 7 times in the first 0.6 s); paced, the interval
/// since the pace was set.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
const MIN_PACED_INTERVAL: Duration = Duration::from_millis(250);
/// A limit shows as many more sends than answers; a path that answers
/// what it is sent, late (an application-limited tail), is not paced.
const SENT_PER_ANSWER: f64 = 1.5;
/// A paced target whose interval this long dropped at most 1 in 50
/// answers gets a quarter more; each cut doubles the wait, up to the
/// longest.
const RAISE_AFTER: Duration = Duration::from_secs(2);
const LONGEST_RAISE_AFTER: Duration = Duration::from_secs(32);
const RAISE: f64 = 1.25;
/// The pace set is this much of the rate measured: a limiter's bucket that
/// refilled while it was measured shows a little more than its rate
/// (214 a second measured of a 200-a-second limit), and a pace above the
/// limit loses a probe in every few.
const BELOW: f64 = 0.95;
/// Sends a second at least, once paced.
const MIN_RATE: f64 = 1.0;

#[derive(Debug, Clone)]
pub(super) struct Pace {
    /// Sends a second; None: unpaced (the windows alone decide).
    rate: Option<f64>,
    tokens: f64,
    refilled: Instant,
    /// When the pace was last set (the start, unpaced).
    changed: Instant,
    /// The interval being measured: its start, the sends in it, the TCP
    /// answers in it, of those the ones on a first send and the ones on a
    /// retry whose previous send came after the pace was set.
    since: Instant,
    sent: u32,
    heard: u32,
    good: u32,
    dropped: u32,
    /// The slowest pace it was given, if any (for the scan's note).
    slowest: Option<f64>,
    /// How long a clean interval must be to raise the pace.
    raise_after: Duration,
}

impl Pace {
    pub(super) fn new(now: Instant) -> Pace {
        Pace {
            rate: None,
            tokens: 1.0,
            refilled: now,
            changed: now,
            since: now,
            sent: 0,
            heard: 0,
            good: 0,
            dropped: 0,
            slowest: None,
            raise_after: RAISE_AFTER,
        }
    }

    /// The slowest pace it ever had.
    pub(super) fn slowest(&self) -> Option<f64> {
        self.slowest
    }

    /// At most 25 ms of sends at once, at least one.
    fn burst(rate: f64) -> f64 {
        (rate / 40.0).max(1.0)
    }

    pub(super) fn refill(&mut self, now: Instant) {
        let Some(rate) = self.rate else {
            return;
        };
        let dt = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + dt * rate).min(Pace::burst(rate));
    }

    /// Whether a send may go now (after [`Pace::refill`]).
    pub(super) fn ready(&self) -> bool {
        self.rate.is_none() || self.tokens >= 1.0
    }

    /// When a send may go, if not now.
    pub(super) fn ready_at(&self, now: Instant) -> Option<Instant> {
        let rate = self.rate?;
        let since = now.saturating_duration_since(self.refilled).as_secs_f64();
        let have = (self.tokens + since * rate).min(Pace::burst(rate));
        // The 20 ms of sends the loop wakes for, at most a burst.
        let want = (rate / 50.0).clamp(1.0, Pace::burst(rate));
        (have < want).then(|| {
            now + Duration::from_secs_f64((want - have) / rate).max(Duration::from_micros(1))
        })
    }

    /// A probe (not a timing ping) goes out.
    pub(super) fn sent(&mut self) {
        if self.rate.is_some() {
            self.tokens -= 1.0;
        }
        self.sent = self.sent.saturating_add(1);
    }

    /// When the pace was last set (the start, unpaced).
    pub(super) fn changed(&self) -> Instant {
        self.changed
    }

    /// A SYN-ACK or RST answered a probe at `now`: on its first send, or on
    /// a retry (`fresh`: whose previous send came after
    /// [`Pace::changed`]). Returns the new pace when it changed.
    pub(super) fn answered(&mut self, now: Instant, first: bool, fresh: bool) -> Option<f64> {
        self.heard = self.heard.saturating_add(1);
        if first {
            self.good = self.good.saturating_add(1);
        } else if fresh {
            // Its try before went unanswered at this pace.
            self.dropped = self.dropped.saturating_add(1);
        }
        let elapsed = now.saturating_duration_since(self.since);
        let min = if self.rate.is_some() {
            MIN_PACED_INTERVAL
        } else {
            MIN_INTERVAL
        };
        if elapsed < min {
            return None;
        }
        let answers = f64::from(self.good) + f64::from(self.dropped);
        let share = if self.rate.is_some() {
            PACED_SHARE
        } else {
            ENTER_SHARE
        };
        // Paced, the limit is known: drops alone say the pace is above it.
        let limited = self.dropped >= DROPS_TO_ACT
            && f64::from(self.dropped) > share * answers
            && (self.rate.is_some()
                || f64::from(self.sent) >= SENT_PER_ANSWER * f64::from(self.heard));
        let new = if limited {
            let measured = BELOW * f64::from(self.heard) / elapsed.as_secs_f64();
            if self.rate.is_some() {
                self.raise_after = (self.raise_after * 2).min(LONGEST_RAISE_AFTER);
            }
            Some(
                measured
                    .min(self.rate.unwrap_or(f64::INFINITY))
                    .max(MIN_RATE),
            )
        } else if elapsed >= self.raise_after && f64::from(self.dropped) * 50.0 <= answers {
            self.rate.map(|r| r * RAISE)
        } else {
            None
        };
        let Some(rate) = new else {
            if self.rate.is_none() {
                // Unpaced, each interval on its own: a burst of answers at
                // the start (a limiter's full bucket) does not dilute the
                // drops that follow it, nor inflate the rate measured.
                self.restart(now);
            }
            return None;
        };
        self.rate = Some(rate);
        self.slowest = Some(self.slowest.map_or(rate, |s| s.min(rate)));
        self.tokens = self.tokens.min(Pace::burst(rate));
        self.refilled = now;
        self.changed = now;
        self.restart(now);
        Some(rate)
    }

    /// A new interval from `now`.
    fn restart(&mut self, now: Instant) {
        self.since = now;
        self.sent = 0;
        self.heard = 0;
        self.good = 0;
        self.dropped = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_host_answering_most_probes_only_on_retries_is_paced_to_its_answers() {
        let t0 = Instant::now();
        let mut p = Pace::new(t0);
        // 1,000 sends at once; answers every 5 ms, 3 in 5 only on a retry.
        for _ in 0..1000 {
            p.sent();
        }
        let rate = (0..100u64)
            .find_map(|k| p.answered(t0 + ms(5 * k), k % 5 < 2, true))
            .expect("paced");
        // Measured over the first 100 ms interval: 21 answers, less a
        // twentieth.
        assert!((180.0..=210.0).contains(&rate), "{rate}");
        assert_eq!(p.rate, Some(rate));
    }

    #[test]
    fn silence_and_a_path_that_answers_what_it_is_sent_are_not_paced() {
        let t0 = Instant::now();
        // Lossy but answering: 1,000 sends, 990 answers, 20 on retries.
        let mut p = Pace::new(t0);
        for _ in 0..1000 {
            p.sent();
        }
        for k in 0..990u64 {
            assert_eq!(p.answered(t0 + ms(k), k % 50 != 0, true), None);
        }
        // Many answers on retries, but no more sent than answered (the
        // tail of a scan, late answers): not a limit.
        let mut p = Pace::new(t0);
        for k in 0..90u64 {
            p.sent();
            assert_eq!(p.answered(t0 + ms(10 * k), k % 2 == 0, true), None);
        }
        // Retries answered whose try before came before the pace was set:
        // not drops at this pace.
        let mut p = Pace::new(t0);
        for _ in 0..1000 {
            p.sent();
        }
        for k in 0..100u64 {
            assert_eq!(p.answered(t0 + ms(200 + 5 * k), false, false), None);
        }
    }

    #[test]
    fn a_paced_target_slows_on_more_drops_and_speeds_up_when_clean() {
        let t0 = Instant::now();
        let mut p = Pace::new(t0);
        for _ in 0..1000 {
            p.sent();
        }
        // Each interval until its change: half the answers on retries.
        let interval = |p: &mut Pace, start: Instant, every: u64, first: &dyn Fn(u64) -> bool| {
            (1..=1000u64).find_map(|k| {
                let at = start + ms(every * k);
                p.answered(at, first(k), true).map(|r| (r, at))
            })
        };
        let (first, at) = interval(&mut p, t0, 5, &|k| k % 2 == 0).expect("paced");
        assert!((180.0..=200.0).contains(&first), "{first}");
        // Paced: 1 in 7 of the next interval's answers on retries, at 100
        // a second.
        for _ in 0..300 {
            p.sent();
        }
        let (second, at) = interval(&mut p, at, 10, &|k| k % 7 != 0).expect("paced again");
        assert!((90.0..=100.0).contains(&second), "{first} {second}");
        // Clean: a quarter more, after 4 s (the cut doubled the wait).
        let (third, raised) = interval(&mut p, at, 10, &|_| true).expect("raised");
        assert_eq!(third, second * RAISE);
        assert_eq!(raised - at, Duration::from_secs(4));
        assert_eq!(p.slowest(), Some(second));
    }

    #[test]
    fn tokens_hold_the_pace() {
        let t0 = Instant::now();
        let mut p = Pace::new(t0);
        p.rate = Some(200.0);
        p.tokens = 0.0;
        p.refill(t0);
        assert!(!p.ready());
        // 20 ms of sends at 200 a second: 4 tokens, woken for in 20 ms.
        assert_eq!(p.ready_at(t0), Some(t0 + ms(20)));
        p.refill(t0 + ms(20));
        let mut n = 0;
        while p.ready() {
            p.sent();
            n += 1;
        }
        assert_eq!(n, 4);
        // Unpaced: always ready, never waited for.
        let q = Pace::new(t0);
        assert!(q.ready() && q.ready_at(t0).is_none());
    }
}
