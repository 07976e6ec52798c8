//! The client-side request rate, shared by every request of one configuration (targets,
//! pages, retries and token requests alike).
//!
//! Requests are spaced evenly at the current rate, so no one-second window ever holds more
//! than the limit, not even right after idle time (a token bucket would allow a burst there).
//! A 429 from the API slows the whole client: every request waits out its `Retry-After`, and
//! the rate is halved (at most once a second, however many requests were throttled at once),
//! then raised again a little after each success, never above the configured limit (additive
//! increase, multiplicative decrease, as TCP does). Without a configured limit the client runs
//! unpaced until the first 429, then adapts from the rate it was sending at and returns to
//! unpaced once it is back there.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::Gauge;
use tokio::time::Instant;

/// The lowest rate a run of 429s can push the client down to: one request every 10 s.
pub const MIN_RATE: f64 = 0.1;

/// Successes it takes to climb from half the limit back to the limit is half of this.
const RECOVERY_STEPS: f64 = 32.0;

/// Throttling answers within this long of a cut count as the same event.
const CUT_SPACING: Duration = Duration::from_secs(1);

/// Paces requests; see the module documentation.
pub struct RateLimiter {
    /// The configured limit (requests per second), if any.
    limit: Option<f64>,
    state: Mutex<State>,
    /// Shows the current rate (0 while unpaced).
    gauge: Gauge,
}

struct State {
    /// Longest pause a `Retry-After` may impose (see [`RateLimiter::set_max_pause`]).
    max_pause: Duration,
    /// Current rate; `None` while unpaced.
    rate: Option<f64>,
    /// What the rate climbs back to: the limit, or the rate seen at the first 429.
    ceiling: Option<f64>,
    /// Earliest start of the next request.
    next: Instant,
    /// No request starts before this (set by `Retry-After`).
    paused_until: Instant,
    last_cut: Option<Instant>,
    /// Starts of the last second, kept while unpaced to know the rate at a first 429.
    recent: VecDeque<Instant>,
}

impl RateLimiter {
    /// A limiter holding `limit` requests per second (`None`: unpaced until throttled), whose
    /// pauses last at most `max_pause`; `gauge` shows the current rate.
    pub fn new(limit: Option<f64>, max_pause: Duration, gauge: Gauge) -> Self {
        let limit = limit.filter(|l| *l > 0.0);
        gauge.set(limit.unwrap_or(0.0));
        let now = Instant::now();
        RateLimiter {
            limit,
            state: Mutex::new(State {
                max_pause,
                rate: limit,
                ceiling: limit,
                next: now,
                paused_until: now,
                last_cut: None,
                recent: VecDeque::new(),
            }),
            gauge,
        }
    }

    /// Caps later pauses at `max_pause`; a pause already under way runs its course.
    pub fn set_max_pause(&self, max_pause: Duration) {
        self.lock().max_pause = max_pause;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent across a panic in another holder (plain numbers).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the next request may start.
    pub async fn acquire(&self) {
        loop {
            let slot = {
                let mut s = self.lock();
                let now = Instant::now();
                let start = now.max(s.paused_until);
                match s.rate {
                    Some(rate) => {
                        let slot = start.max(s.next);
                        s.next = slot + spacing(rate);
                        slot
                    }
                    None => {
                        while s.recent.front().is_some_and(|t| now - *t >= CUT_SPACING) {
                            s.recent.pop_front();
                        }
                        if s.recent.len() < 100_000 {
                            s.recent.push_back(start);
                        }
                        start
                    }
                }
            };
            tokio::time::sleep_until(slot).await;
            // A 429 may have paused the client while this request waited for its slot.
            if self.lock().paused_until <= Instant::now() {
                return;
            }
        }
    }

    /// The API answered 429: pause every request for `retry_after` (capped) and cut the rate.
    pub fn throttled(&self, retry_after: Option<Duration>) {
        let mut s = self.lock();
        let now = Instant::now();
        if let Some(wait) = retry_after {
            let until = now + wait.min(s.max_pause);
            if until > s.paused_until {
                s.paused_until = until;
                // Requests scheduled before the pause start after it, still spaced.
                s.next = s.next.max(until);
            }
        }
        if s.last_cut.is_some_and(|t| now - t < CUT_SPACING) {
            return;
        }
        s.last_cut = Some(now);
        let current = match s.rate {
            Some(rate) => rate,
            None => {
                // Unpaced so far: start from what was actually sent in the last second.
                let sent = s.recent.iter().filter(|t| now - **t < CUT_SPACING).count() as f64;
                s.recent.clear();
                s.ceiling = Some(sent.max(1.0));
                sent.max(1.0)
            }
        };
        let rate = (current / 2.0).max(MIN_RATE);
        s.rate = Some(rate);
        s.next = s.next.max(now);
        self.gauge.set(rate);
        tracing::warn!(
            requests_per_second = rate,
            pause_ms = retry_after.map(|d| d.min(s.max_pause).as_millis() as u64),
            "API is throttling (429); slowing every request down"
        );
    }

    /// A request succeeded: raise a cut rate a little, back towards the ceiling.
    pub fn succeeded(&self) {
        let mut s = self.lock();
        let (Some(rate), Some(ceiling)) = (s.rate, s.ceiling) else {
            return;
        };
        if rate >= ceiling {
            return;
        }
        let raised = rate + ceiling / RECOVERY_STEPS;
        if raised >= ceiling {
            // Back where it was: the configured limit, or unpaced if there is none.
            s.rate = self.limit;
            s.ceiling = self.limit;
            self.gauge.set(self.limit.unwrap_or(0.0));
        } else {
            s.rate = Some(raised);
            self.gauge.set(raised);
        }
    }

    /// The current rate in requests per second; `None` while unpaced.
    pub fn rate(&self) -> Option<f64> {
        self.lock().rate
    }
}

/// The gap between request starts at `rate` per second, rounded up to the nanosecond so that
/// `rate` gaps never fit in one second (at 3/s, 333 333 333 ns would let a fourth start in).
fn spacing(rate: f64) -> Duration {
    Duration::from_nanos((1e9 / rate).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(limit: Option<f64>) -> RateLimiter {
        let gauge = Gauge::new("g", "g").unwrap();
        RateLimiter::new(limit, Duration::from_secs(60), gauge)
    }

    /// Most starts within any half-open one-second window.
    fn max_per_second(starts: &[Instant]) -> usize {
        starts
            .iter()
            .map(|a| {
                starts
                    .iter()
                    .filter(|b| **b >= *a && **b - *a < Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    async fn starts(l: &RateLimiter, n: usize) -> Vec<Instant> {
        let mut v = Vec::new();
        for _ in 0..n {
            l.acquire().await;
            v.push(Instant::now());
        }
        v
    }

    #[tokio::test(start_paused = true)]
    async fn no_window_holds_more_than_the_limit_even_after_idle() {
        let l = limiter(Some(4.0));
        let mut all = starts(&l, 10).await;
        tokio::time::sleep(Duration::from_secs(30)).await; // idle: a token bucket would refill
        all.extend(starts(&l, 10).await);
        assert_eq!(max_per_second(&all), 4);
        // Evenly spaced: 10 requests take 9 gaps of 250 ms.
        assert_eq!(all[9] - all[0], Duration::from_millis(2250));
        assert_eq!(all[19] - all[10], Duration::from_millis(2250));
    }

    #[test]
    fn rate_gaps_never_fit_in_one_second() {
        for rate in [3u32, 7, 9, 33, 99_991] {
            let gaps = spacing(f64::from(rate)) * rate;
            assert!(gaps >= Duration::from_secs(1), "{rate}/s: {gaps:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn limits_that_do_not_divide_a_second_hold_too() {
        for limit in [3.0, 7.0, 9.0, 0.7, 33.0] {
            let l = limiter(Some(limit));
            let all = starts(&l, 40).await;
            assert!(
                max_per_second(&all) <= (limit as usize).max(1),
                "limit {limit}: {} in one second",
                max_per_second(&all)
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_the_limit() {
        let l = std::sync::Arc::new(limiter(Some(5.0)));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let l = l.clone();
                tokio::spawn(async move {
                    l.acquire().await;
                    Instant::now()
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.unwrap());
        }
        assert_eq!(max_per_second(&all), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_everyone_and_halves_the_rate_then_it_recovers() {
        let l = limiter(Some(8.0));
        starts(&l, 3).await;
        let t0 = Instant::now();
        l.throttled(Some(Duration::from_secs(3)));
        // Several requests throttled together cut the rate once.
        l.throttled(Some(Duration::from_secs(3)));
        assert_eq!(l.rate(), Some(4.0));
        let after = starts(&l, 5).await;
        assert!(
            after[0] - t0 >= Duration::from_secs(3),
            "{:?}",
            after[0] - t0
        );
        assert_eq!(after[4] - after[0], Duration::from_secs(1)); // 4 gaps of 250 ms
                                                                 // A later 429 cuts again, never below the floor.
        tokio::time::sleep(Duration::from_secs(2)).await;
        l.throttled(None);
        assert_eq!(l.rate(), Some(2.0));
        for _ in 0..200 {
            tokio::time::advance(Duration::from_secs(2)).await;
            l.throttled(None);
        }
        assert_eq!(l.rate(), Some(MIN_RATE));
        // Successes raise it step by step, never above the limit.
        l.succeeded();
        assert_eq!(l.rate(), Some(MIN_RATE + 8.0 / RECOVERY_STEPS));
        for _ in 0..100 {
            l.succeeded();
        }
        assert_eq!(l.rate(), Some(8.0));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_capped() {
        let gauge = Gauge::new("g", "g").unwrap();
        let l = RateLimiter::new(Some(100.0), Duration::from_secs(5), gauge.clone());
        assert_eq!(gauge.get(), 100.0);
        let t0 = Instant::now();
        l.throttled(Some(Duration::from_secs(3600)));
        assert_eq!(gauge.get(), 50.0);
        l.acquire().await;
        assert_eq!(Instant::now() - t0, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn unpaced_until_throttled_then_back_to_unpaced() {
        let gauge = Gauge::new("g", "g").unwrap();
        let l = RateLimiter::new(None, Duration::from_secs(60), gauge.clone());
        let t0 = Instant::now();
        starts(&l, 20).await;
        assert_eq!(Instant::now(), t0, "no pacing without a limit");
        assert_eq!(gauge.get(), 0.0);
        l.throttled(None);
        // 20 requests in the last second: continue at half that.
        assert_eq!(l.rate(), Some(10.0));
        assert_eq!(gauge.get(), 10.0);
        let paced = starts(&l, 11).await;
        assert_eq!(paced[10] - paced[0], Duration::from_secs(1));
        for _ in 0..RECOVERY_STEPS as usize {
            l.succeeded();
        }
        assert_eq!(l.rate(), None);
        assert_eq!(gauge.get(), 0.0);
    }
}
