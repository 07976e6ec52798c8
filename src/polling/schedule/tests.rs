//! The schedule on paused time, at fleet sizes.

use super::*;
use crate::domain::TenantType;
use crate::elements::slots::{Permits, Priority};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

fn key(i: usize) -> TargetKey {
    TargetKey::new(
        format!("{i:08x}-b9d4-4000-a165-97db0000fc15"),
        TenantType::ALL[i % 4],
    )
}

fn keys(n: usize) -> Vec<TargetKey> {
    (0..n).map(key).collect()
}

#[test]
fn restored_targets_start_at_their_saved_due_times_and_overdue_ones_oldest_first() {
    let interval = Duration::from_secs(300);
    // Far enough from the clock's start that "polled hours ago" is representable.
    let now = Instant::now() + Duration::from_secs(20_000);
    let mut s = Schedule::new(interval, now);
    let ks = keys(10_000);
    assert_eq!(s.set_targets(&ks, now), 10_000);
    // Even targets: due later, at (i / 2) % 300 seconds. Odd ones: overdue, last polled
    // longer ago the higher their number.
    for (i, k) in ks.iter().enumerate() {
        if i % 2 == 0 {
            let due = now + Duration::from_secs(((i / 2) % 300) as u64 + 1);
            s.restore(
                k,
                due,
                Some(now - Duration::from_secs(10)),
                Cadence::Regular,
            );
        } else {
            s.restore(
                k,
                now,
                Some(now - Duration::from_secs(60 + i as u64)),
                Cadence::Regular,
            );
        }
    }
    // At once: exactly the overdue half, oldest data first.
    let mut overdue = Vec::new();
    while let Some(start) = s.start_next(now) {
        overdue.push(start.key);
    }
    let expected: Vec<TargetKey> = ks.iter().skip(1).step_by(2).rev().cloned().collect();
    assert_eq!(overdue, expected);
    // The others start at their own due times, never before.
    let mut started = 0;
    for second in 1..=300u64 {
        let at = now + Duration::from_secs(second);
        while let Some(start) = s.start_next(at) {
            assert_eq!(start.due, at, "{start:?}");
            started += 1;
        }
    }
    assert_eq!(started, 5_000);
    assert_eq!(s.running(), 10_000);
}

#[test]
fn offsets_are_stable_and_spread_over_the_interval() {
    let interval = Duration::from_secs(300);
    let ks = keys(10_000);
    let mut buckets = [0usize; 10];
    for k in &ks {
        let o = Schedule::offset_of(k, interval);
        assert_eq!(o, Schedule::offset_of(k, interval));
        assert!(o < interval);
        buckets[(o.as_secs() / 30) as usize] += 1;
    }
    // 1 000 expected per tenth of the interval.
    for b in buckets {
        assert!((850..1150).contains(&b), "{buckets:?}");
    }
}

/// Runs `targets` through the schedule for `rounds` intervals with polls that take `cost`
/// each and at most `window` at once; returns each target's start times.
fn simulate(
    schedule: &mut Schedule,
    start: Instant,
    window: usize,
    cost: Duration,
    until: Instant,
) -> (HashMap<TargetKey, Vec<Instant>>, usize) {
    simulate_with(schedule, start, window, cost, until, &|_, _| {
        Cadence::Regular
    })
}

/// Like [`simulate`], with each poll's outcome given by `cadence` (the target, when its
/// poll ends).
fn simulate_with(
    schedule: &mut Schedule,
    start: Instant,
    window: usize,
    cost: Duration,
    until: Instant,
    cadence: &dyn Fn(&TargetKey, Instant) -> Cadence,
) -> (HashMap<TargetKey, Vec<Instant>>, usize) {
    let mut starts: HashMap<TargetKey, Vec<Instant>> = HashMap::new();
    let mut running: BTreeSet<(Instant, TargetKey, Instant)> = BTreeSet::new();
    let mut now = start;
    let mut overruns = 0;
    while now < until {
        while running.len() < window {
            let Some(s) = schedule.start_next(now) else {
                break;
            };
            overruns += usize::from(s.overrun);
            starts.entry(s.key.clone()).or_default().push(now);
            running.insert((now + cost, s.key, now));
        }
        let next_done = running.first().map(|(t, _, _)| *t);
        let next_due = schedule.next_wake().filter(|_| running.len() < window);
        now = match (next_done, next_due) {
            (Some(a), Some(b)) => a.min(b.max(now)),
            (Some(a), None) => a,
            (None, Some(b)) => b.max(now),
            (None, None) => break,
        };
        while let Some((done, _, _)) = running.first() {
            if *done > now {
                break;
            }
            let (done, key, started) = running.pop_first().unwrap();
            let c = cadence(&key, done);
            schedule.finished(&key, started, done, c);
        }
    }
    (starts, overruns)
}

#[test]
fn empty_targets_come_round_every_empty_interval_and_back_at_once_when_tenants_appear() {
    let start = Instant::now();
    let (interval, empty) = (Duration::from_secs(300), Duration::from_secs(3600));
    let mut s = Schedule::new(interval, start);
    s.set_intervals(interval, empty);
    // 10 000 targets, a typical MSP fleet: Microsoft 365 (type 0) has tenants, the other
    // three types are empty. After two hours one in a hundred changes: an empty target
    // gets a tenant, a full one loses its last.
    let ks = keys(10_000);
    s.set_targets(&ks, start);
    let index = |k: &TargetKey| usize::from_str_radix(&k.customer_id[..8], 16).unwrap();
    let turn = start + Duration::from_secs(7200);
    let has_tenants = |k: &TargetKey, at: Instant| {
        let i = index(k);
        let full = i % 4 == 0;
        if at >= turn && i % 100 < 4 {
            !full
        } else {
            full
        }
    };
    let cadence = |k: &TargetKey, at: Instant| {
        if has_tenants(k, at) {
            Cadence::Regular
        } else {
            Cadence::Empty
        }
    };
    let until = start + Duration::from_secs(4 * 3600);
    let (starts, _) = simulate_with(&mut s, start, 8, Duration::from_millis(10), until, &cadence);
    let slack = interval / 2 + Duration::from_secs(1);
    let mut polls_in_third_hour = 0;
    for k in &ks {
        let times = &starts[k];
        let i = index(k);
        polls_in_third_hour += times
            .iter()
            .filter(|t| **t >= start + empty * 2 && **t < start + empty * 3)
            .count();
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            // The cadence the poll before the gap ended with.
            let expected = match cadence(k, pair[0] + Duration::from_millis(10)) {
                Cadence::Regular => interval,
                Cadence::Empty => empty,
            };
            assert!(
                gap + slack >= expected && gap <= expected + slack,
                "target {i}: {gap:?} after a poll on {expected:?}"
            );
        }
        if i % 100 < 4 && i % 4 != 0 {
            // A tenant appeared at two hours: found within one empty interval, then
            // polled every interval.
            let found = times.iter().find(|t| **t >= turn).unwrap();
            assert!(*found - turn <= empty + slack, "target {i}");
        }
    }
    // 2 500 full targets 12 times an hour, 7 500 empty ones once (give or take the ones
    // that changed): 37 500 polls instead of 120 000, 3.2x fewer.
    assert!(
        (36_000..=40_000).contains(&polls_in_third_hour),
        "{polls_in_third_hour} polls in the third hour"
    );
}

#[test]
fn new_targets_go_at_once_then_once_per_interval_at_their_offset() {
    let start = Instant::now();
    let interval = Duration::from_secs(300);
    let mut s = Schedule::new(interval, start);
    let ks = keys(10_000);
    assert_eq!(s.set_targets(&ks, start), 10_000);
    // 10 ms per poll, 4 at once: a 25 s first pass, well inside the interval.
    let (starts, overruns) = simulate(
        &mut s,
        start,
        4,
        Duration::from_millis(10),
        start + interval * 4,
    );
    assert_eq!(overruns, 0);
    for k in &ks {
        let times = &starts[k];
        // First pass inside its first 26 s, then exactly one poll per slot.
        assert!(times[0] - start <= Duration::from_secs(26));
        let offset = Schedule::offset_of(k, interval);
        assert!((4..=5).contains(&times.len()), "{}", times.len());
        for (i, t) in times.iter().enumerate().skip(1) {
            let slot_index = (*t - start - offset).as_nanos() / interval.as_nanos();
            let slot = start + offset + interval * slot_index as u32;
            // Starts at its slot, or just after when the window was full.
            assert!(*t - slot < Duration::from_millis(50), "{k:?} poll {i}");
            let gap = *t - times[i - 1];
            assert!(gap >= interval / 2 && gap <= interval * 3 / 2, "{gap:?}");
        }
    }
}

#[test]
fn after_the_first_pass_no_second_carries_more_than_twice_the_average() {
    let start = Instant::now();
    let interval = Duration::from_secs(300);
    let mut s = Schedule::new(interval, start);
    let ks = keys(10_000);
    s.set_targets(&ks, start);
    let (starts, _) = simulate(
        &mut s,
        start,
        64,
        Duration::from_millis(5),
        start + interval * 3,
    );
    let mut per_second: HashMap<u64, usize> = HashMap::new();
    for t in starts.values().flatten() {
        let second = (*t - start).as_secs();
        if second >= interval.as_secs() {
            *per_second.entry(second).or_default() += 1;
        }
    }
    let average = ks.len() as f64 / interval.as_secs_f64();
    let max = per_second.values().copied().max().unwrap();
    assert!(
        (max as f64) <= 2.0 * average,
        "busiest second {max}, average {average}"
    );
}

#[test]
fn behind_schedule_every_target_completes_each_round_oldest_data_first() {
    let start = Instant::now();
    let interval = Duration::from_secs(60);
    let mut s = Schedule::new(interval, start);
    let ks = keys(10_000);
    s.set_targets(&ks, start);
    // One poll at a time, 15 ms each: a round needs 150 s, two and a half intervals.
    let until = start + Duration::from_secs(150 * 4);
    let (starts, overruns) = simulate(&mut s, start, 1, Duration::from_millis(15), until);
    assert!(
        overruns > 0,
        "polls more than an interval late are overruns"
    );
    // Every target ran in every round: 4 rounds, none twice in one, none starved.
    for k in &ks {
        let n = starts[k].len();
        assert!((4..=5).contains(&n), "{k:?}: {n}");
        for pair in starts[k].windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= Duration::from_secs(149) && gap <= Duration::from_secs(151),
                "{gap:?}"
            );
        }
    }
    // Oldest data first: the round order repeats the first pass's order.
    let mut first: Vec<(&TargetKey, Instant)> = starts.iter().map(|(k, t)| (k, t[0])).collect();
    let mut second: Vec<(&TargetKey, Instant)> = starts.iter().map(|(k, t)| (k, t[1])).collect();
    first.sort_by_key(|(_, t)| *t);
    second.sort_by_key(|(_, t)| *t);
    let a: Vec<_> = first.iter().map(|(k, _)| *k).collect();
    let b: Vec<_> = second.iter().map(|(k, _)| *k).collect();
    assert_eq!(a, b);
}

/// What happened to the request slots, in order, with the (paused) time.
#[derive(Debug, Clone, Copy)]
enum Event {
    /// Target `seq` asked for its pages after the first.
    Rest(u64, Instant),
    /// A slot went to target `seq`.
    Grant(u64, Instant),
}

#[tokio::test(start_paused = true)]
async fn a_started_target_finishes_first_and_the_first_pass_runs_at_the_limit() {
    const TARGETS: usize = 10_000;
    const SLOTS: usize = 4;
    let latency = Duration::from_millis(10);
    let start = Instant::now();
    let permits = Permits::new(SLOTS);
    let events = Arc::new(Mutex::new(Vec::new()));
    let mut schedule = Schedule::new(Duration::from_secs(3600), start);
    let ks = keys(TARGETS);
    schedule.set_targets(&ks, start);
    // One in ten targets has 5 pages, the rest one.
    let pages_of = |k: &TargetKey| {
        if k.customer_id.starts_with('0') && k.customer_id.as_bytes()[7] == b'0' {
            5
        } else {
            1
        }
    };
    let requests: usize = ks.iter().map(pages_of).sum();
    let mut running = tokio::task::JoinSet::new();
    let mut seq = 0u64;
    let mut done = 0;
    let mut spans: HashMap<u64, (Instant, Instant, usize)> = HashMap::new();
    while done < TARGETS {
        while running.len() < 2 * SLOTS {
            let Some(s) = schedule.start_next(Instant::now()) else {
                break;
            };
            seq += 1;
            let (permits, events, pages, me) =
                (permits.clone(), events.clone(), pages_of(&s.key), seq);
            running.spawn(async move {
                let began = Instant::now();
                // Answers take 10 to 16 ms, so targets finish out of step.
                let took = latency + Duration::from_millis(me % 7);
                let page = |permits: Arc<Permits>, events: Arc<Mutex<Vec<Event>>>| async move {
                    let p = permits.acquire(Priority(me)).await;
                    events
                        .lock()
                        .unwrap()
                        .push(Event::Grant(me, Instant::now()));
                    tokio::time::sleep(took).await;
                    drop(p);
                };
                page(permits.clone(), events.clone()).await;
                if pages > 1 {
                    events.lock().unwrap().push(Event::Rest(me, Instant::now()));
                    futures_util::future::join_all(
                        (1..pages).map(|_| page(permits.clone(), events.clone())),
                    )
                    .await;
                }
                (s.key, me, began, Instant::now(), pages)
            });
        }
        let (key, me, began, ended, pages) = running.join_next().await.unwrap().unwrap();
        schedule.finished(&key, began, ended, Cadence::Regular);
        spans.insert(me, (began, ended, pages));
        done += 1;
    }
    // As fast as the slots allow: every slot busy all the time.
    let took = Instant::now() - start;
    let mean = latency + Duration::from_millis(3);
    let ideal = mean * (requests.div_ceil(SLOTS)) as u32;
    assert!(took <= ideal.mul_f64(1.01), "{took:?} vs {ideal:?}");
    // Once a target asked for its remaining pages, no target started after it got a slot
    // until all of them had one. (The slot its first page frees, at that same instant, may
    // already have gone to the next in line.)
    let events = events.lock().unwrap().clone();
    let mut checked = 0;
    for (i, e) in events.iter().enumerate() {
        let Event::Rest(me, asked) = *e else { continue };
        let mut left = spans[&me].2 - 1;
        for later in &events[i + 1..] {
            if left == 0 {
                break;
            }
            match *later {
                Event::Grant(who, _) if who == me => left -= 1,
                Event::Grant(who, at) if at > asked => {
                    assert!(who < me, "target {who} went ahead of {me}")
                }
                _ => {}
            }
        }
        assert_eq!(left, 0);
        checked += 1;
    }
    assert!(checked >= TARGETS / 20, "{checked} multi-page targets");
    // So a 5-page target takes little more than its own pages' time.
    for (began, ended, pages) in spans.values() {
        if *pages == 5 {
            assert!(*ended - *began <= latency * 20, "{:?}", *ended - *began);
        }
    }
}

#[test]
fn a_target_removed_and_added_again_while_it_runs_is_not_started_twice() {
    let start = Instant::now();
    let interval = Duration::from_secs(60);
    let mut s = Schedule::new(interval, start);
    let ks = keys(1);
    s.set_targets(&ks, start);
    let run = s.start_next(start).unwrap();
    // A reload drops it, another brings it back, all while its poll runs.
    s.set_targets([], start);
    assert_eq!(s.len(), 0);
    assert_eq!(s.set_targets(&ks, start), 1);
    assert_eq!(s.start_next(start + interval), None, "still running");
    // When the old poll ends, it is due at once (it is new to the plan).
    let end = start + Duration::from_secs(1);
    s.finished(&run.key, start, end, Cadence::Regular);
    assert_eq!(s.due_of(&run.key), Some(end));
    assert_eq!(s.start_next(end).map(|n| n.key), Some(run.key));
}

#[test]
fn a_running_target_is_never_handed_out_twice_and_removed_ones_are_forgotten() {
    let start = Instant::now();
    let interval = Duration::from_secs(10);
    let mut s = Schedule::new(interval, start);
    let ks = keys(3);
    s.set_targets(&ks, start);
    let a = s.start_next(start).unwrap();
    let b = s.start_next(start).unwrap();
    let c = s.start_next(start).unwrap();
    assert_eq!(s.start_next(start + interval * 5), None, "all running");
    assert_eq!(s.running(), 3);
    // A reload drops `b` while it runs and adds a new target, due at once.
    let new = key(99);
    let later = start + Duration::from_secs(1);
    assert_eq!(s.set_targets([&a.key, &c.key, &new], later), 1, "one added");
    assert_eq!(s.due_of(&b.key), None, "removed");
    s.finished(&b.key, start, later, Cadence::Regular);
    assert_eq!(s.due_of(&b.key), None);
    assert_eq!(s.len(), 3);
    assert_eq!(s.start_next(later).unwrap().key, new);
    s.finished(&a.key, start, later, Cadence::Regular);
    // Its first slot at least half an interval after it started.
    let offset = Schedule::offset_of(&a.key, interval);
    let slot = if offset >= interval / 2 {
        start + offset
    } else {
        start + offset + interval
    };
    assert_eq!(s.due_of(&a.key), Some(slot));
    // A shorter interval moves idle targets to their new slots.
    s.set_intervals(Duration::from_secs(4), Duration::from_secs(4));
    let due = s.due_of(&a.key).unwrap();
    let offset = Schedule::offset_of(&a.key, Duration::from_secs(4));
    assert!(due >= start + Duration::from_secs(2) && due < start + Duration::from_secs(6));
    assert_eq!(
        (due - start - offset).as_nanos() % Duration::from_secs(4).as_nanos(),
        0
    );
}
