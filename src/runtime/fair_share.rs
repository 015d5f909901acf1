//! Fair share: at most `gstin_max_in_flight` jobs of one GSTIN in flight in this process, so one
//! GSTIN's backlog cannot take every prefetch slot while another GSTIN's command waits behind it.
//!
//! A delivery over its GSTIN's cap is set aside, not held: held, it would keep its prefetch slot,
//! and a queue head that is all one GSTIN would fill the prefetch with deliveries that cannot
//! start, so the broker would never hand out the other GSTIN's command behind them. Set aside
//! means republished through a retry tier as a benign wait (its attempt is not raised, as for a
//! rate-limit wait), then acked: the slot is free at once and the queue moves on.
//!
//! A few over-cap deliveries per GSTIN (at most the cap, and at most half of what the cap leaves
//! of the prefetch) wait here in line instead, so the busy GSTIN keeps its full cap busy between
//! set-aside copies coming back; the rest of the prefetch stays free to reach other GSTINs.
//!
//! **Pacing.** A set-aside delivery is given a time to come back: the GSTIN's next free place in
//! a schedule that hands out places at the pace its jobs finish here (the cap over the average job
//! time), so a backlog of 20,000 comes back spread over the time it takes to drain, about as fast
//! as the cap can take it. Sent back through the shortest tier instead, the whole backlog would
//! cycle through the work queue every few seconds: the queue never empties (another GSTIN's
//! command always waits behind a full pass of it) and the worker republishes the backlog over and
//! over, for as long as it lasts. The promised time travels with the copy (a header); a copy that
//! comes back early (a tier is the longest no longer than the wait) and finds the GSTIN still at
//! its cap waits out the rest of its promise, keeping its place. The schedule is a local estimate
//! only: a wrong pace costs extra set-asides or an idle slot for a while, never a message.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::sync::Notify;

#[derive(Default)]
struct Counts {
    running: usize,
    waiting: usize,
}

/// One GSTIN's pace here: how long its jobs take, and its next free place in the schedule.
struct Pace {
    /// Moving average of the GSTIN's job time (a slot's life), in seconds.
    job_secs: f64,
    /// The last place handed to a set-aside delivery; in the past when none is waiting.
    next: DateTime<Utc>,
}

#[derive(Default)]
struct Shared {
    counts: Mutex<HashMap<String, Counts>>,
    /// GSTINs with a pace; pruned of idle ones (see [`FairShare::come_back_at`]).
    paces: Mutex<HashMap<String, Pace>>,
    /// Poked whenever a slot is given back.
    freed: Notify,
}

/// A GSTIN's job time before one has finished here: short on purpose. Too short, copies come back
/// before there is room and wait again (a few more set-asides); too long, they would come back
/// late and leave the GSTIN's slots idle.
const FIRST_JOB_SECS: f64 = 0.1;
/// Places are handed out this much faster than the GSTIN's jobs finish: a copy back a little
/// late, or a job a little quick, would otherwise leave a slot idle. The surplus waits in the
/// line here or, the line full, is set aside once more.
const PACE_MARGIN: f64 = 1.25;
/// Weight of the latest job in the moving average.
const JOB_SECS_WEIGHT: f64 = 0.1;
/// A promise further ahead than this is not kept (a header anyone can write; no real schedule
/// is this long) and the copy is given a place anew.
const MAX_PROMISE_SECS: i64 = 6 * 3600;
/// Paces kept before the idle ones (no place handed out ahead of now) are dropped.
const MAX_PACES: usize = 1024;

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
    /// When the job started, for the GSTIN's pace.
    started: Instant,
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
        Slot { gstin: gstin.to_string(), shared: self.shared.clone(), started: Instant::now() }
    }

    /// When a delivery of `gstin` set aside now should come back: the rest of an earlier
    /// `promise` still ahead (a copy back early keeps its place), or else the GSTIN's next place
    /// in its schedule, one job time over the cap (a little less: [`PACE_MARGIN`]) after the last
    /// place handed out, or after now.
    pub fn come_back_at(&self, gstin: &str, promise: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
        let ahead = |p: &DateTime<Utc>| *p > now && *p - now <= chrono::Duration::seconds(MAX_PROMISE_SECS);
        if let Some(p) = promise.filter(ahead) {
            return p;
        }
        let mut paces = self.shared.paces.lock().expect("fair-share paces are never poisoned");
        if paces.len() >= MAX_PACES && !paces.contains_key(gstin) {
            paces.retain(|_, p| p.next > now);
        }
        let pace = paces.entry(gstin.to_string()).or_insert(Pace { job_secs: FIRST_JOB_SECS, next: now });
        let spacing = Duration::from_secs_f64(pace.job_secs / (self.cap as f64 * PACE_MARGIN));
        pace.next = pace.next.max(now) + spacing;
        pace.next
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let secs = self.started.elapsed().as_secs_f64();
        if let Some(p) = self.shared.paces.lock().expect("fair-share paces are never poisoned").get_mut(&self.gstin) {
            p.job_secs += JOB_SECS_WEIGHT * (secs - p.job_secs);
        }
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
    fn set_aside_deliveries_are_given_places_at_the_gstins_pace_and_keep_them() {
        let f = FairShare::new(4, 16);
        let now = Utc::now();
        // Before any job finished: 0.1 s over a cap of 4, at 5/4 the pace: 20 ms apart.
        let first = f.come_back_at("A", None, now);
        let second = f.come_back_at("A", None, now);
        assert_eq!(first - now, chrono::Duration::milliseconds(20));
        assert_eq!(second - first, chrono::Duration::milliseconds(20));
        assert_eq!(f.come_back_at("B", None, now) - now, chrono::Duration::milliseconds(20), "B has its own schedule");
        // A copy back before its place keeps it; one back after it (or without) queues anew.
        let later = now + chrono::Duration::seconds(600);
        assert_eq!(f.come_back_at("A", Some(later), now), later);
        assert_eq!(f.come_back_at("A", Some(now), now), second + chrono::Duration::milliseconds(20));
        let forged = now + chrono::Duration::days(400);
        assert_eq!(f.come_back_at("A", Some(forged), now), second + chrono::Duration::milliseconds(40), "not kept");
        // Places after a quiet spell start from now, not from the old schedule.
        let much_later = now + chrono::Duration::seconds(60);
        assert_eq!(f.come_back_at("A", None, much_later) - much_later, chrono::Duration::milliseconds(20));
    }

    #[tokio::test]
    async fn the_pace_follows_the_gstins_job_time() {
        let f = FairShare::new(2, 8);
        let now = Utc::now();
        f.come_back_at("A", None, now);
        for _ in 0..100 {
            let slot = f.enter("A").await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
            drop(slot);
        }
        // Jobs of at least 5 ms, 2 at a time: places at least 2 ms apart (from 40 ms at first).
        let far = now + chrono::Duration::seconds(60);
        let spacing = (f.come_back_at("A", None, far) - far).num_microseconds().unwrap();
        assert!((2_000..35_000).contains(&spacing), "{spacing} µs");
    }

    #[test]
    fn the_gstin_is_read_from_the_top_level() {
        assert_eq!(gstin_of(br#"{"invoice":{"x":1},"gstin":"29aagcp4821k1z3"}"#).as_deref(), Some("29AAGCP4821K1Z3"));
        assert_eq!(gstin_of(br#"{"irn":"x"}"#), None);
        assert_eq!(gstin_of(b"not json"), None);
    }
}
