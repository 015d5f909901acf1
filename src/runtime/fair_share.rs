//! Fair share: at most `gstin_max_in_flight` jobs of one GSTIN in flight in this process, so one
//! GSTIN's backlog cannot take every prefetch slot while another GSTIN's command waits behind it.
//!
//! A delivery over its GSTIN's cap is set aside, not held: held, it would keep its prefetch slot,
//! and a queue head that is all one GSTIN would fill the prefetch with deliveries that cannot
//! start, so the broker would never hand out the other GSTIN's command behind them. Set aside
//! means republished through the shortest retry tier as a benign wait (its attempt is not raised,
//! as for a rate-limit wait), then acked: the slot is free at once and the queue moves on.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

pub struct FairShare {
    cap: usize,
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

/// One job's place under its GSTIN's cap; given back when dropped.
pub struct Slot {
    gstin: String,
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

impl FairShare {
    pub fn new(cap: usize) -> FairShare {
        FairShare { cap: cap.max(1), counts: Default::default() }
    }

    /// A slot for the GSTIN, or `None` when it already has `cap` jobs in flight here.
    pub fn try_enter(&self, gstin: &str) -> Option<Slot> {
        let mut counts = self.counts.lock().expect("fair-share counts are never poisoned");
        let n = counts.entry(gstin.to_string()).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Slot { gstin: gstin.to_string(), counts: self.counts.clone() })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().expect("fair-share counts are never poisoned");
        if let Some(n) = counts.get_mut(&self.gstin) {
            *n -= 1;
            // Only GSTINs with work in flight keep an entry: the map stays as small as the prefetch.
            if *n == 0 {
                counts.remove(&self.gstin);
            }
        }
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

    #[test]
    fn the_cap_is_per_gstin_and_slots_come_back() {
        let f = FairShare::new(2);
        let a1 = f.try_enter("A").unwrap();
        let _a2 = f.try_enter("A").unwrap();
        assert!(f.try_enter("A").is_none(), "A is at its cap");
        let _b = f.try_enter("B").expect("B is not held back by A");
        drop(a1);
        assert!(f.try_enter("A").is_some(), "a finished job frees its slot");
    }

    #[test]
    fn the_gstin_is_read_from_the_top_level() {
        assert_eq!(gstin_of(br#"{"invoice":{"x":1},"gstin":"29aagcp4821k1z3"}"#).as_deref(), Some("29AAGCP4821K1Z3"));
        assert_eq!(gstin_of(br#"{"irn":"x"}"#), None);
        assert_eq!(gstin_of(b"not json"), None);
    }
}
