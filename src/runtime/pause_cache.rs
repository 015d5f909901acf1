//! Which GSTINs are paused, read from Postgres at most once per [`TTL`] per process instead of
//! once per command. A pause this process sets is seen at once; one set by another process, or
//! lifted with `einvoice-worker gstin unpause`, within [`TTL`].
use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::store::{Db, StoreError};

/// How long a read of `gstin_pauses` is trusted.
pub const TTL: Duration = Duration::from_secs(1);

/// A pause: until when, and the code of its first reason (see `runtime::guard::holds`).
pub type Pause = (DateTime<Utc>, Option<String>);

#[derive(Default)]
pub struct PauseCache {
    /// When the table was read, and what it said. The async lock makes one caller refresh while
    /// the others wait for its answer, instead of all querying at once.
    state: tokio::sync::Mutex<Option<(Instant, HashMap<String, Pause>)>>,
}

impl PauseCache {
    /// The GSTIN's pause, if it is paused now.
    pub async fn pause_of(&self, db: &Db, gstin: &str) -> Result<Option<Pause>, StoreError> {
        let mut state = self.state.lock().await;
        let map = match &mut *state {
            Some((read_at, map)) if read_at.elapsed() < TTL => map,
            stale => &mut stale.insert((Instant::now(), db.pauses_now().await?)).1,
        };
        Ok(map.get(gstin).filter(|(until, _)| *until > Utc::now()).cloned())
    }

    /// This process has just paused `gstin`: its own next command must see it.
    pub async fn note(&self, gstin: &str, pause: Pause) {
        if let Some((_, map)) = &mut *self.state.lock().await {
            map.insert(gstin.to_string(), pause);
        }
    }
}
