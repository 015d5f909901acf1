//! Fair share: at most `gstin_max_in_flight` jobs of one GSTIN in flight in this process, so one
//! GSTIN's backlog cannot take every prefetch slot while another GSTIN's command waits behind it.
//!
//! A delivery over its GSTIN's cap is set aside, not held: held, it would keep its prefetch slot,
//! and a queue head that is all one GSTIN would fill the prefetch with deliveries that cannot
//! start, so the broker would never hand out the other GSTIN's command behind them. Set aside
//! means republished through the shortest retry tier as a benign wait (its attempt is not raised,
//! as for a rate-limit wait), then acked: the slot is free at once and the queue moves on.
//!
//! A few over-cap deliveries per GSTIN (at most the cap, and at most half of what the cap leaves
//! of the prefetch) wait here in line instead, so the busy GSTIN keeps its full cap busy between
//! set-aside copies coming back; the rest of the prefetch stays free to reach other GSTINs.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use tokio::sync::Notify;

#[derive(Default)]
struct Counts {
    running: usize,
    waiting: usize,
}

#[derive(Default)]
struct Shared {
    counts: Mutex<HashMap<String, Counts>>,
    /// Poked whenever a slot is given back.
    freed: Notify,
}

pub struct FairShare {
    /// The cap is below the prefetch: off, a delivery costs neither the GSTIN's read nor a lock.
    on: bool,
    cap: usize,
    /// Deliveries of one GSTIN waiting here for a slot, keeping their prefetch slots: they start
    /// the moment a job of theirs finishes, so the GSTIN keeps its pace between set-aside copies
    /// coming back. Small enough that the cap and the waiters leave most of the prefetch free.
    wait_cap: usize,
    shared: Arc<Shared>,
}

/// One job's place under its GSTIN's cap; given back when dropped.
pub struct Slot {
    gstin: String,
    shared: Arc<Shared>,
}

impl FairShare {
    /// `cap` jobs of one GSTIN in flight, out of `prefetch` deliveries.
    pub fn new(cap: usize, prefetch: usize) -> FairShare {
        let cap = cap.max(1);
        let wait_cap = cap.min(prefetch.saturating_sub(cap) / 2);
        FairShare { on: cap < prefetch, cap, wait_cap, shared: Default::default() }
    }

    /// Whether a delivery must take a slot at all (a cap at or above the prefetch never binds).
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// A slot for the GSTIN, at once or after a short wait in line; `None` when it already has
    /// `cap` jobs in flight and its waiting line here is full (the caller sets the delivery aside).
    pub async fn enter(&self, gstin: &str) -> Option<Slot> {
        {
            let mut counts = self.shared.counts.lock().expect("fair-share counts are never poisoned");
            let c = counts.entry(gstin.to_string()).or_default();
            if c.running < self.cap {
                c.running += 1;
                return Some(self.slot(gstin));
            }
            if c.waiting >= self.wait_cap {
                return None;
            }
            c.waiting += 1;
        }
        loop {
            let freed = self.shared.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut counts = self.shared.counts.lock().expect("fair-share counts are never poisoned");
                let c = counts.entry(gstin.to_string()).or_default();
                if c.running < self.cap {
                    c.running += 1;
                    c.waiting -= 1;
                    return Some(self.slot(gstin));
                }
            }
            freed.await;
        }
    }

    fn slot(&self, gstin: &str) -> Slot {
        Slot { gstin: gstin.to_string(), shared: self.shared.clone() }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.shared.counts.lock().expect("fair-share counts are never poisoned");
        if let Some(c) = counts.get_mut(&self.gstin) {
            c.running -= 1;
            // Only GSTINs with work here keep an entry: the map stays as small as the prefetch.
            if c.running == 0 && c.waiting == 0 {
                counts.remove(&self.gstin);
            }
        }
        drop(counts);
        self.shared.freed.notify_waiters();
    }
}

/// The command's `gstin`, read without parsing the rest (every GSTIN-bound command names it at
/// the top level); `None` for a body that is not JSON or has none, which the handler answers.
pub fn gstin_of(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(borrow, default)]
        gstin: Option<std::borrow::Cow<'a, str>>,
    }
    let head: Head<'_> = serde_json::from_slice(body).ok()?;
    head.gstin.map(|g| g.trim().to_ascii_uppercase()).filter(|g| !g.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_cap_is_per_gstin_a_few_wait_and_slots_come_back() {
        // Cap 2 of prefetch 8: two more may wait in line, the fifth is set aside.
        let f = Arc::new(FairShare::new(2, 8));
        let a1 = f.enter("A").await.unwrap();
        let _a2 = f.enter("A").await.unwrap();
        let _b = f.enter("B").await.expect("B is not held back by A");
        let (f3, f4) = (f.clone(), f.clone());
        let w3 = tokio::spawn(async move { f3.enter("A").await.map(|_| ()) });
        let w4 = tokio::spawn(async move { f4.enter("A").await.map(|_| ()) });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(f.enter("A").await.is_none(), "A's line is full: set aside");
        assert!(!w3.is_finished() && !w4.is_finished(), "they wait while A is at its cap");
        drop(a1);
        w3.await.unwrap().unwrap();
        w4.await.unwrap().unwrap();
    }

    #[test]
    fn the_gstin_is_read_from_the_top_level() {
        assert_eq!(gstin_of(br#"{"invoice":{"x":1},"gstin":"29aagcp4821k1z3"}"#).as_deref(), Some("29AAGCP4821K1Z3"));
        assert_eq!(gstin_of(br#"{"irn":"x"}"#), None);
        assert_eq!(gstin_of(b"not json"), None);
    }
}
