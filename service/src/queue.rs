//! The bounded job queue between the HTTP handlers and the prover workers. Admission reserves a slot before the
//! job is stored, so concurrent requests cannot overfill it; jobs resumed at start are queued regardless.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Job ids waiting for a worker.
pub struct JobQueue {
    state: Mutex<QueueState>,
    notify: Notify,
    capacity: usize,
}

struct QueueState {
    waiting: VecDeque<String>,
    reserved: usize,
}

/// A reserved queue slot: [`Reservation::push`] fills it; dropping it gives it back.
pub struct Reservation {
    queue: Arc<JobQueue>,
    used: bool,
}

impl JobQueue {
    /// A queue admitting at most `capacity` waiting jobs.
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(JobQueue {
            state: Mutex::new(QueueState {
                waiting: VecDeque::new(),
                reserved: 0,
            }),
            notify: Notify::new(),
            capacity,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many jobs the queue admits.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Jobs waiting for a worker.
    pub fn depth(&self) -> usize {
        self.state().waiting.len()
    }

    /// Reserves a slot, or `None` when the queue is full.
    pub fn try_reserve(self: &Arc<Self>) -> Option<Reservation> {
        let mut state = self.state();
        if state.waiting.len() + state.reserved >= self.capacity {
            return None;
        }
        state.reserved += 1;
        Some(Reservation {
            queue: self.clone(),
            used: false,
        })
    }

    /// Queues a job without a reservation (jobs resumed after a restart).
    pub fn push_resumed(&self, id: String) {
        self.state().waiting.push_back(id);
        self.notify.notify_one();
    }

    /// Waits for the next job.
    pub async fn pop(&self) -> String {
        loop {
            if let Some(id) = self.state().waiting.pop_front() {
                return id;
            }
            // `notify_one` stores a permit when nobody waits, so a push between the check and here is not lost.
            self.notify.notified().await;
        }
    }
}

impl Reservation {
    /// Queues `id` in the reserved slot.
    pub fn push(mut self, id: String) {
        let mut state = self.queue.state();
        state.reserved -= 1;
        state.waiting.push_back(id);
        drop(state);
        self.used = true;
        self.queue.notify.notify_one();
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.used {
            self.queue.state().reserved -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn admits_up_to_capacity_and_hands_jobs_out_in_order() {
        let queue = JobQueue::new(2);
        let a = queue.try_reserve().expect("first slot");
        let b = queue.try_reserve().expect("second slot");
        assert!(queue.try_reserve().is_none(), "reserved slots count as taken");
        drop(b);
        let b = queue.try_reserve().expect("a dropped reservation frees its slot");
        a.push("a".into());
        b.push("b".into());
        assert_eq!(queue.depth(), 2);
        assert!(queue.try_reserve().is_none());
        queue.push_resumed("resumed".into());
        assert_eq!(queue.depth(), 3, "resumed jobs are queued beyond the capacity");
        assert_eq!(queue.pop().await, "a");
        assert_eq!(queue.pop().await, "b");
        assert_eq!(queue.pop().await, "resumed");
        assert!(queue.try_reserve().is_some());
    }

    #[tokio::test]
    async fn a_waiting_worker_wakes_on_push() {
        let queue = JobQueue::new(4);
        let worker = tokio::spawn({
            let queue = queue.clone();
            async move { queue.pop().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        queue.try_reserve().unwrap().push("x".into());
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), worker).await;
        assert_eq!(got.expect("woken").expect("joined"), "x");
    }
}
