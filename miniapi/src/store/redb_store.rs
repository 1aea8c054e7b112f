//! The embedded [`redb`] backend: one file, one ACID transaction per write.
//!
//! Tables: `objects` (key → JSON), `meta` (`revision`, `compacted`) and `events`
//! (revision → JSON [`StoreEvent`], the last [`HISTORY_LEN`] of them), so a watch
//! from an old resourceVersion resumes across a restart. Every commit is durable
//! before it is acknowledged (redb's default `Durability::Immediate`), so `kill -9`
//! loses nothing that a client was told was written.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use redb::{Database, ReadableTable, TableDefinition};
use serde_json::Value;

use super::hub::{WatchHub, WatchStart, HISTORY_LEN};
use super::{
    stamp_revision, EventType, KeyValue, ListResult, Store, StoreError, StoreEvent, StoreResult,
};

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");

fn backend<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// A [`Store`] in one redb file.
pub struct RedbStore {
    db: Database,
    /// Serialises writers so events are published in revision order.
    write_lock: Mutex<()>,
    hub: Arc<WatchHub>,
}

enum Op {
    Create,
    Update(Option<u64>),
    Delete(Option<u64>),
}

impl RedbStore {
    /// Open (or create) the database file and load the persisted watch history.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let db = Database::create(path).map_err(backend)?;
        let txn = db.begin_write().map_err(backend)?;
        {
            txn.open_table(OBJECTS).map_err(backend)?;
            txn.open_table(META).map_err(backend)?;
            txn.open_table(EVENTS).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;

        let read = db.begin_read().map_err(backend)?;
        let meta = read.open_table(META).map_err(backend)?;
        let current = meta
            .get("revision")
            .map_err(backend)?
            .map(|v| v.value())
            .unwrap_or(0);
        let compacted = meta
            .get("compacted")
            .map_err(backend)?
            .map(|v| v.value())
            .unwrap_or(0);
        let events = read.open_table(EVENTS).map_err(backend)?;
        let mut history = Vec::new();
        for item in events.iter().map_err(backend)? {
            let (_, v) = item.map_err(backend)?;
            match serde_json::from_slice::<StoreEvent>(v.value()) {
                Ok(e) => history.push(e),
                Err(e) => tracing::warn!("skipping corrupt history event: {e}"),
            }
        }
        drop(events);
        drop(meta);
        drop(read);
        tracing::info!(
            revision = current,
            history = history.len(),
            "opened redb store"
        );
        Ok(RedbStore {
            db,
            write_lock: Mutex::new(()),
            hub: Arc::new(WatchHub::new(current, compacted, history)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        match self.write_lock.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn decode(key: &str, bytes: &[u8]) -> StoreResult<KeyValue> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| StoreError::Corrupt(key.to_string(), e.to_string()))?;
        let mod_revision = value
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok(KeyValue {
            key: key.to_string(),
            value,
            mod_revision,
        })
    }

    /// One write transaction: check, bump the revision, write object and event.
    fn write(&self, key: &str, value: Option<Value>, op: Op) -> StoreResult<KeyValue> {
        let _guard = self.lock();
        let txn = self.db.begin_write().map_err(backend)?;
        let event;
        {
            let mut objects = txn.open_table(OBJECTS).map_err(backend)?;
            let mut meta = txn.open_table(META).map_err(backend)?;
            let mut events = txn.open_table(EVENTS).map_err(backend)?;
            let existing = match objects.get(key).map_err(backend)? {
                Some(v) => Some(Self::decode(key, v.value())?),
                None => None,
            };
            let check = |expected: Option<u64>, cur: &Option<KeyValue>| -> StoreResult<()> {
                let Some(cur) = cur else {
                    return Err(StoreError::NotFound(key.to_string()));
                };
                match expected {
                    Some(e) if e != cur.mod_revision => Err(StoreError::Conflict {
                        key: key.to_string(),
                        expected: e,
                        actual: cur.mod_revision,
                    }),
                    _ => Ok(()),
                }
            };
            let kind = match op {
                Op::Create => {
                    if existing.is_some() {
                        return Err(StoreError::AlreadyExists(key.to_string()));
                    }
                    EventType::Added
                }
                Op::Update(expected) => {
                    check(expected, &existing)?;
                    EventType::Modified
                }
                Op::Delete(expected) => {
                    check(expected, &existing)?;
                    EventType::Deleted
                }
            };
            let rev = meta
                .get("revision")
                .map_err(backend)?
                .map(|v| v.value())
                .unwrap_or(0)
                + 1;
            let prev = existing.map(|kv| kv.value);
            let mut object = match (kind, value) {
                (EventType::Deleted, _) => prev.clone().unwrap_or(Value::Null),
                (_, Some(v)) => v,
                (_, None) => Value::Null,
            };
            stamp_revision(&mut object, rev);
            if kind == EventType::Deleted {
                objects.remove(key).map_err(backend)?;
            } else {
                let bytes = serde_json::to_vec(&object).map_err(backend)?;
                objects.insert(key, bytes.as_slice()).map_err(backend)?;
            }
            meta.insert("revision", rev).map_err(backend)?;
            let ev = StoreEvent {
                revision: rev,
                kind,
                key: key.to_string(),
                object,
                prev,
            };
            let ev_bytes = serde_json::to_vec(&ev).map_err(backend)?;
            events.insert(rev, ev_bytes.as_slice()).map_err(backend)?;
            let keep = HISTORY_LEN as u64;
            if rev > keep {
                events.remove(rev - keep).map_err(backend)?;
                meta.insert("compacted", rev - keep).map_err(backend)?;
            }
            event = ev;
        }
        txn.commit().map_err(backend)?;
        let kv = KeyValue {
            key: key.to_string(),
            value: event.object.clone(),
            mod_revision: event.revision,
        };
        self.hub.publish(event);
        Ok(kv)
    }
}

impl Store for RedbStore {
    fn get(&self, key: &str) -> StoreResult<Option<KeyValue>> {
        let read = self.db.begin_read().map_err(backend)?;
        let objects = read.open_table(OBJECTS).map_err(backend)?;
        match objects.get(key).map_err(backend)? {
            Some(v) => Ok(Some(Self::decode(key, v.value())?)),
            None => Ok(None),
        }
    }

    fn list(&self, prefix: &str) -> StoreResult<ListResult> {
        let read = self.db.begin_read().map_err(backend)?;
        let meta = read.open_table(META).map_err(backend)?;
        let revision = meta
            .get("revision")
            .map_err(backend)?
            .map(|v| v.value())
            .unwrap_or(0);
        let objects = read.open_table(OBJECTS).map_err(backend)?;
        let mut items = Vec::new();
        for item in objects.range(prefix..).map_err(backend)? {
            let (k, v) = item.map_err(backend)?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            items.push(Self::decode(key, v.value())?);
        }
        Ok(ListResult { items, revision })
    }

    fn create(&self, key: &str, value: Value) -> StoreResult<KeyValue> {
        self.write(key, Some(value), Op::Create)
    }

    fn update(&self, key: &str, value: Value, expected: Option<u64>) -> StoreResult<KeyValue> {
        self.write(key, Some(value), Op::Update(expected))
    }

    fn delete(&self, key: &str, expected: Option<u64>) -> StoreResult<KeyValue> {
        self.write(key, None, Op::Delete(expected))
    }

    fn watch(&self, after_revision: u64) -> StoreResult<WatchStart> {
        self.hub.start(after_revision)
    }

    fn current_revision(&self) -> u64 {
        self.hub.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn crud_revisions_and_persistence() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.redb");
        {
            let s = RedbStore::open(&path).expect("open");
            let a = s
                .create("/r/a", json!({"metadata": {"name": "a"}}))
                .expect("create");
            assert_eq!(a.mod_revision, 1);
            assert!(matches!(
                s.create("/r/a", json!({})),
                Err(StoreError::AlreadyExists(_))
            ));
            assert!(matches!(
                s.update("/r/a", json!({}), Some(7)),
                Err(StoreError::Conflict { .. })
            ));
            let b = s
                .update("/r/a", json!({"metadata": {"name": "a"}, "x": 1}), Some(1))
                .expect("update");
            assert_eq!(b.value["metadata"]["resourceVersion"], "2");
            s.create("/r/b", json!({})).expect("create b");
            s.create("/s/c", json!({})).expect("create c");
            assert_eq!(s.list("/r/").expect("list").items.len(), 2);
            s.delete("/r/b", None).expect("delete");
        }
        let s = RedbStore::open(&path).expect("reopen");
        assert_eq!(s.current_revision(), 5);
        let w = s.watch(2).expect("watch");
        let revs: Vec<u64> = w.replay.iter().map(|e| e.revision).collect();
        assert_eq!(revs, vec![3, 4, 5]);
        assert_eq!(w.replay[2].kind, EventType::Deleted);
        assert!(s.get("/r/b").expect("get").is_none());
    }
}
