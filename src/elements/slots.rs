//! Request slots: [`Permits`] bounds the requests in flight and hands free slots out by
//! [`Priority`]. A target's priority is the order in which it started, so once a target's
//! first page is in, its remaining pages go ahead of the first pages of targets started after
//! it ("a started target finishes first"), and token requests go ahead of everything.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// The order in which waiting requests get a slot: lower first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(pub u64);

impl Priority {
    /// Token requests (and the customer list): ahead of every target's pages.
    pub const URGENT: Priority = Priority(0);
}

/// A counting semaphore whose waiters are served lowest [`Priority`] first (first come, first
/// served within a priority). Dropping a [`Permit`] hands its slot to the next waiter.
pub struct Permits {
    state: Mutex<PermitState>,
}

struct PermitState {
    available: usize,
    /// Waiters by (priority, arrival); a waiter that gave up leaves a closed sender behind,
    /// which is skipped when its turn comes.
    waiters: BTreeMap<(Priority, u64), oneshot::Sender<Permit>>,
    arrivals: u64,
}

/// One slot of [`Permits`], released on drop.
pub struct Permit {
    owner: Arc<Permits>,
}

impl Permits {
    /// A semaphore with `slots` slots.
    pub fn new(slots: usize) -> Arc<Permits> {
        Arc::new(Permits {
            state: Mutex::new(PermitState {
                available: slots,
                waiters: BTreeMap::new(),
                arrivals: 0,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PermitState> {
        // Plain counters and channels: consistent even if a holder panicked.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a slot; among waiters, the lowest `priority` is served first.
    pub async fn acquire(self: &Arc<Self>, priority: Priority) -> Permit {
        let rx = {
            let mut s = self.lock();
            if s.available > 0 {
                s.available -= 1;
                return Permit {
                    owner: self.clone(),
                };
            }
            let (tx, rx) = oneshot::channel();
            let arrival = s.arrivals;
            s.arrivals += 1;
            s.waiters.insert((priority, arrival), tx);
            rx
        };
        match rx.await {
            Ok(permit) => permit,
            // Senders are only dropped after a send: unreachable, but a fresh permit is never
            // wrong here because `release` already counted this slot as handed over.
            Err(_) => Permit {
                owner: self.clone(),
            },
        }
    }

    /// Slots free right now.
    #[cfg(test)]
    fn available(&self) -> usize {
        self.lock().available
    }

    fn release(self: &Arc<Self>) {
        let mut permit = Permit {
            owner: self.clone(),
        };
        loop {
            let waiter = {
                let mut s = self.lock();
                match s.waiters.pop_first() {
                    Some((_, tx)) => tx,
                    None => {
                        s.available += 1;
                        // Not dropped: that would release again.
                        std::mem::forget(permit);
                        return;
                    }
                }
            };
            // Outside the lock: a receiver dropped in between gives the permit back, and a
            // permit dropped inside a dead channel releases itself.
            match waiter.send(permit) {
                Ok(()) => return,
                Err(back) => permit = back,
            }
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let owner = self.owner.clone();
        owner.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn permits_go_to_the_lowest_priority_first_and_survive_cancelled_waiters() {
        let permits = Permits::new(1);
        let held = permits.acquire(Priority(5)).await;
        assert_eq!(permits.available(), 0);
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for p in [9u64, 3, 7, 3, 1] {
            let (permits, order) = (permits.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let permit = permits.acquire(Priority(p)).await;
                order.lock().unwrap().push(p);
                tokio::time::sleep(Duration::from_millis(10)).await;
                drop(permit);
            }));
            tokio::task::yield_now().await;
        }
        // A waiter that gives up does not take a slot with it.
        let cancelled = {
            let permits = permits.clone();
            tokio::spawn(async move {
                let _p = permits.acquire(Priority(0)).await;
                std::future::pending::<()>().await;
            })
        };
        tokio::task::yield_now().await;
        cancelled.abort();
        let _ = cancelled.await;
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![1, 3, 3, 7, 9]);
        assert_eq!(permits.available(), 1);
    }
}
