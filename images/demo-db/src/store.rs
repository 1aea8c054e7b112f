//! The data: databases of collections of JSON documents, each collection an append-only
//! JSON-lines file `DBPATH/DB/COLLECTION.jsonl`, every write fsync'd, reloaded at start.
//!
//! Storing a document whose `_id` is already there replaces it (mongo's `save()`): the
//! file keeps both lines and the last one wins when the file is read back. A torn last
//! line (a crash mid-write) is dropped with a warning.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use thiserror::Error;

use crate::objectid::new_object_id;

/// What the store can fail with.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A database or collection name that is not allowed.
    #[error("invalid {kind} name {name:?}: use letters, digits, '_', '-' and '.', at most 64, not starting with '.'")]
    InvalidName {
        /// "database" or "collection".
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// A document that is not a JSON object.
    #[error("a document must be a JSON object")]
    NotAnObject,
    /// Reading or writing the data directory failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io { what, path: path.to_path_buf(), source }
}

/// Checks a database or collection name.
pub fn validate_name(kind: &'static str, name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && !name.contains("..")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidName { kind, name: name.to_string() })
    }
}

struct Collection {
    docs: Vec<Value>,
    /// The canonical JSON of each `_id`, to its index in `docs`.
    by_id: HashMap<String, usize>,
    file: File,
    path: PathBuf,
}

impl Collection {
    fn open(path: PathBuf) -> Result<Self, StoreError> {
        let mut docs = Vec::new();
        let mut by_id = HashMap::new();
        if path.exists() {
            let f = File::open(&path).map_err(io("opening", &path))?;
            let lines: Vec<String> = BufReader::new(f)
                .lines()
                .collect::<Result<_, _>>()
                .map_err(io("reading", &path))?;
            let last = lines.len().saturating_sub(1);
            for (n, line) in lines.iter().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Value>(line) {
                    Ok(doc @ Value::Object(_)) => upsert(&mut docs, &mut by_id, doc),
                    Ok(_) | Err(_) if n == last => {
                        tracing::warn!(file = %path.display(), line = n + 1, "dropping a torn last line");
                    }
                    Ok(_) | Err(_) => {
                        tracing::warn!(file = %path.display(), line = n + 1, "skipping a line that is not a JSON object");
                    }
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(io("opening", &path))?;
        // A torn last line has no newline; start the next record on a line of its own.
        let len = file.metadata().map_err(io("reading", &path))?.len();
        let mut c = Self { docs, by_id, file, path };
        if len > 0 && !ends_with_newline(&c.path)? {
            c.file.write_all(b"\n").map_err(io("writing", &c.path))?;
        }
        Ok(c)
    }

    fn save(&mut self, doc: Value) -> Result<(), StoreError> {
        let mut line = serde_json::to_vec(&doc).map_err(|e| StoreError::Io {
            what: "encoding a document for",
            path: self.path.clone(),
            source: e.into(),
        })?;
        line.push(b'\n');
        self.file.write_all(&line).map_err(io("writing", &self.path))?;
        self.file.sync_data().map_err(io("syncing", &self.path))?;
        upsert(&mut self.docs, &mut self.by_id, doc);
        Ok(())
    }
}

fn ends_with_newline(path: &Path) -> Result<bool, StoreError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path).map_err(io("opening", path))?;
    f.seek(SeekFrom::End(-1)).map_err(io("reading", path))?;
    let mut b = [0u8; 1];
    f.read_exact(&mut b).map_err(io("reading", path))?;
    Ok(b[0] == b'\n')
}

fn id_key(doc: &Value) -> Option<String> {
    doc.get("_id").map(|id| id.to_string())
}

fn upsert(docs: &mut Vec<Value>, by_id: &mut HashMap<String, usize>, doc: Value) {
    match id_key(&doc) {
        Some(key) => match by_id.get(&key) {
            Some(&i) => docs[i] = doc,
            None => {
                by_id.insert(key, docs.len());
                docs.push(doc);
            }
        },
        None => docs.push(doc),
    }
}

/// A page of a collection, as the REST API returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The documents.
    pub rows: Vec<Value>,
    /// How many were skipped.
    pub offset: usize,
}

/// All databases under one data directory.
pub struct Store {
    dir: PathBuf,
    collections: BTreeMap<(String, String), Collection>,
}

impl Store {
    /// Opens (creating it if missing) the data directory and loads every collection.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let mut store = Self { dir: dir.to_path_buf(), collections: BTreeMap::new() };
        for db in fs::read_dir(dir).map_err(io("listing", dir))? {
            let db = db.map_err(io("listing", dir))?;
            let db_name = db.file_name().to_string_lossy().into_owned();
            if !db.path().is_dir() || validate_name("database", &db_name).is_err() {
                continue;
            }
            let db_path = db.path();
            for coll in fs::read_dir(&db_path).map_err(io("listing", &db_path))? {
                let coll = coll.map_err(io("listing", &db_path))?;
                let file_name = coll.file_name().to_string_lossy().into_owned();
                let Some(coll_name) = file_name.strip_suffix(".jsonl") else { continue };
                if validate_name("collection", coll_name).is_err() {
                    continue;
                }
                let c = Collection::open(coll.path())?;
                tracing::info!(db = %db_name, collection = %coll_name, documents = c.docs.len(), "loaded");
                store.collections.insert((db_name.clone(), coll_name.to_string()), c);
            }
        }
        Ok(store)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn collection(&mut self, db: &str, coll: &str) -> Result<&mut Collection, StoreError> {
        use std::collections::btree_map::Entry;
        validate_name("database", db)?;
        validate_name("collection", coll)?;
        match self.collections.entry((db.to_string(), coll.to_string())) {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(e) => {
                let db_dir = self.dir.join(db);
                fs::create_dir_all(&db_dir).map_err(io("creating", &db_dir))?;
                let c = Collection::open(db_dir.join(format!("{coll}.jsonl")))?;
                // The new file's directory entry must survive a crash too.
                if let Ok(d) = File::open(&db_dir) {
                    let _ = d.sync_all();
                }
                Ok(e.insert(c))
            }
        }
    }

    /// Stores `doc` (a JSON object) in `db.coll`, giving it an `_id` (`{"$oid": …}`) if it
    /// has none; a document with the same `_id` is replaced. Returns the `_id`.
    pub fn save(&mut self, db: &str, coll: &str, doc: Value) -> Result<Value, StoreError> {
        let Value::Object(mut obj) = doc else { return Err(StoreError::NotAnObject) };
        let id = match obj.get("_id") {
            Some(id) => id.clone(),
            None => {
                let mut oid = Map::new();
                oid.insert("$oid".to_string(), Value::String(new_object_id()));
                Value::Object(oid)
            }
        };
        // `_id` first, as mongo shows it.
        let mut ordered = Map::new();
        ordered.insert("_id".to_string(), id.clone());
        obj.remove("_id");
        ordered.extend(obj);
        self.collection(db, coll)?.save(Value::Object(ordered))?;
        Ok(id)
    }

    /// Documents of `db.coll` matching every `(field, value)` filter (a string field
    /// equal to the value, or any field whose JSON text is the value), after skipping
    /// `skip`, at most `limit` (0: no limit). A missing collection is empty.
    pub fn find(&self, db: &str, coll: &str, filters: &[(String, String)], skip: usize, limit: usize) -> Result<Page, StoreError> {
        validate_name("database", db)?;
        validate_name("collection", coll)?;
        let Some(c) = self.collections.get(&(db.to_string(), coll.to_string())) else {
            return Ok(Page { rows: Vec::new(), offset: skip });
        };
        let matching = c.docs.iter().filter(|d| filters.iter().all(|(f, v)| field_matches(d, f, v)));
        let rows: Vec<Value> = if limit == 0 {
            matching.skip(skip).cloned().collect()
        } else {
            matching.skip(skip).take(limit).cloned().collect()
        };
        Ok(Page { rows, offset: skip })
    }

    /// `(database, collection, documents)` for every collection, sorted.
    pub fn collections(&self) -> Vec<(String, String, usize)> {
        self.collections.iter().map(|((d, c), coll)| (d.clone(), c.clone(), coll.docs.len())).collect()
    }

    /// Bytes on disk of a database's collection files.
    pub fn size_on_disk(&self, db: &str) -> u64 {
        self.collections
            .iter()
            .filter(|((d, _), _)| d == db)
            .filter_map(|(_, c)| c.file.metadata().ok().map(|m| m.len()))
            .sum()
    }
}

fn field_matches(doc: &Value, field: &str, want: &str) -> bool {
    let mut v = doc;
    for part in field.split('.') {
        match v.get(part) {
            Some(next) => v = next,
            None => return false,
        }
    }
    match v {
        Value::String(s) => s == want,
        other => serde_json::from_str::<Value>(want).is_ok_and(|w| *other == w),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn saves_finds_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Store::open(dir.path()).unwrap();
            let id = s.save("test", "people", json!({"name": "Viktor"})).unwrap();
            assert!(id["$oid"].is_string());
            s.save("test", "people", json!({"_id": "a", "name": "Ana", "age": 30})).unwrap();
            s.save("test", "people", json!({"_id": "a", "name": "Ana", "age": 31})).unwrap();
            s.save("other", "things", json!({"x": {"y": 1}})).unwrap();
            assert_eq!(s.find("test", "people", &[], 0, 0).unwrap().rows.len(), 2);
        }
        let s = Store::open(dir.path()).unwrap();
        let all = s.find("test", "people", &[], 0, 0).unwrap().rows;
        assert_eq!(all.len(), 2);
        assert_eq!(all[0]["name"], "Viktor");
        assert_eq!(all[1], json!({"_id": "a", "name": "Ana", "age": 31}));
        let f = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert_eq!(s.find("test", "people", &f("name", "Ana"), 0, 0).unwrap().rows.len(), 1);
        assert_eq!(s.find("test", "people", &f("age", "31"), 0, 0).unwrap().rows.len(), 1);
        assert_eq!(s.find("other", "things", &f("x.y", "1"), 0, 0).unwrap().rows.len(), 1);
        assert_eq!(s.find("test", "people", &[], 1, 1).unwrap().rows[0]["_id"], "a");
        assert!(s.find("test", "nothing", &[], 0, 0).unwrap().rows.is_empty());
        assert_eq!(s.collections().len(), 2);
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_writing_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("test")).unwrap();
        fs::write(dir.path().join("test/people.jsonl"), b"{\"_id\":1,\"name\":\"a\"}\n{\"_id\":2,\"na").unwrap();
        {
            let mut s = Store::open(dir.path()).unwrap();
            assert_eq!(s.find("test", "people", &[], 0, 0).unwrap().rows.len(), 1);
            s.save("test", "people", json!({"_id": 3})).unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        let ids: Vec<Value> = s.find("test", "people", &[], 0, 0).unwrap().rows.iter().map(|d| d["_id"].clone()).collect();
        assert_eq!(ids, [json!(1), json!(3)]);
    }

    #[test]
    fn rejects_bad_names_and_non_objects() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        assert!(s.save("../etc", "x", json!({})).is_err());
        assert!(s.save("db", "a/b", json!({})).is_err());
        assert!(s.save("db", ".hidden", json!({})).is_err());
        assert!(matches!(s.save("db", "c", json!([1])), Err(StoreError::NotAnObject)));
    }
}
