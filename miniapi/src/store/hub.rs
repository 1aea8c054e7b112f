//! The watch hub: a bounded in-memory history of recent [`StoreEvent`]s plus a
//! broadcast channel for live ones.
//!
//! Writers call [`WatchHub::publish`] after each commit, in revision order (the
//! backend serialises its writers). A watcher calls [`WatchHub::start`] with the
//! revision it has seen; it gets the events after that revision from history and a
//! receiver for what follows, with no gap and no duplicate, because both are taken
//! under the same lock that publishing holds.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

use super::{StoreError, StoreEvent, StoreResult};

/// How many events the history keeps (and how many the redb backend persists).
pub const HISTORY_LEN: usize = 10_000;
const CHANNEL_CAPACITY: usize = 16_384;

/// What a new watcher gets: past events to replay, then a live receiver.
pub struct WatchStart {
    /// Events after the requested revision, oldest first.
    pub replay: Vec<Arc<StoreEvent>>,
    /// Live events (revisions greater than the last replayed one).
    pub live: broadcast::Receiver<Arc<StoreEvent>>,
    /// The store revision when the watch started.
    pub revision: u64,
}

struct HubState {
    history: VecDeque<Arc<StoreEvent>>,
    /// Every event with a revision <= compacted is gone from history.
    compacted: u64,
    current: u64,
}

/// History + broadcast of store events.
pub struct WatchHub {
    state: Mutex<HubState>,
    sender: broadcast::Sender<Arc<StoreEvent>>,
}

impl WatchHub {
    /// A hub at `current` revision, with `history` (oldest first) already recorded and
    /// everything at or below `compacted` forgotten.
    pub fn new(current: u64, compacted: u64, history: Vec<StoreEvent>) -> Self {
        let (sender, _) = broadcast::channel(CHANNEL_CAPACITY);
        let mut h: VecDeque<Arc<StoreEvent>> = history.into_iter().map(Arc::new).collect();
        while h.len() > HISTORY_LEN {
            h.pop_front();
        }
        let compacted = match h.front() {
            Some(first) => compacted.max(first.revision.saturating_sub(1)),
            None => compacted.max(current),
        };
        WatchHub {
            state: Mutex::new(HubState {
                history: h,
                compacted,
                current,
            }),
            sender,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Record and broadcast one committed event.
    pub fn publish(&self, event: StoreEvent) {
        let ev = Arc::new(event);
        let mut st = self.lock();
        st.current = st.current.max(ev.revision);
        st.history.push_back(ev.clone());
        while st.history.len() > HISTORY_LEN {
            if let Some(old) = st.history.pop_front() {
                st.compacted = old.revision;
            }
        }
        // No receivers is fine.
        let _ = self.sender.send(ev);
    }

    /// The latest published revision.
    pub fn current(&self) -> u64 {
        self.lock().current
    }

    /// Start a watch after `after` (0 means "from now on").
    pub fn start(&self, after: u64) -> StoreResult<WatchStart> {
        let st = self.lock();
        let live = self.sender.subscribe();
        if after == 0 || after >= st.current {
            return Ok(WatchStart {
                replay: Vec::new(),
                live,
                revision: st.current,
            });
        }
        if after < st.compacted {
            return Err(StoreError::Compacted {
                requested: after,
                oldest: st.compacted + 1,
            });
        }
        let replay = st
            .history
            .iter()
            .filter(|e| e.revision > after)
            .cloned()
            .collect();
        Ok(WatchStart {
            replay,
            live,
            revision: st.current,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventType;
    use serde_json::json;

    fn ev(rev: u64) -> StoreEvent {
        StoreEvent {
            revision: rev,
            kind: EventType::Added,
            key: format!("/k/{rev}"),
            object: json!({}),
            prev: None,
        }
    }

    #[test]
    fn replays_then_goes_live() {
        let hub = WatchHub::new(0, 0, vec![]);
        hub.publish(ev(1));
        hub.publish(ev(2));
        let mut w = hub.start(1).expect("start");
        assert_eq!(w.replay.len(), 1);
        assert_eq!(w.replay[0].revision, 2);
        hub.publish(ev(3));
        assert_eq!(w.live.try_recv().map(|e| e.revision).ok(), Some(3));
    }

    #[test]
    fn too_old_is_compacted() {
        let hub = WatchHub::new(100, 50, (51..=100).map(ev).collect());
        assert!(hub.start(60).is_ok());
        assert!(matches!(hub.start(10), Err(StoreError::Compacted { .. })));
    }
}
