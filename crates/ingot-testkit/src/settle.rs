//! Waiting until a simulator's asynchronous deliveries settled: a count of queued jobs
//! and a notification when one finishes, shared by the WooCommerce and Shopify
//! simulators' webhook workers.
//!
//! A job is counted ([`Pending::add`]) *before* it is queued and uncounted
//! ([`Pending::done`]) after it was delivered (or dropped); [`Pending::settled`] returns
//! once the count is zero. Because the count goes up under the mutation that queued the
//! job, a test that mutates and then awaits `settled()` always sees that job finished.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Jobs queued and not yet finished.
#[derive(Default)]
pub(crate) struct Pending {
    count: AtomicUsize,
    notify: tokio::sync::Notify,
}

impl Pending {
    /// One more job queued.
    pub(crate) fn add(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    /// One job finished (delivered, failed or dropped).
    pub(crate) fn done(&self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Returns when no job is pending.
    pub(crate) async fn settled(&self) {
        loop {
            let notified = self.notify.notified();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}
