//! The same store tests against both backends: the embedded redb file and a real etcd
//! (started here, inside the sandbox). CRUD with revisions, optimistic concurrency,
//! prefix lists (past one etcd page), watch replay and live events, read-modify-write
//! from several threads, reopen/restart with watch resume, and a compacted revision.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::etcd::Etcd;
use miniapi::store::{
    EtcdStore, EventType, RedbStore, SharedStore, Store, StoreError, StoreEvent, WatchStart,
};
use serde_json::{json, Value};

fn obj(name: &str) -> Value {
    json!({"kind": "ConfigMap", "metadata": {"name": name}, "data": {"n": "0"}})
}

/// Replayed then live events after `after`, until `n` have been seen (bounded wait).
fn collect(start: WatchStart, after: u64, n: usize) -> Vec<Arc<StoreEvent>> {
    let mut out: Vec<Arc<StoreEvent>> = start
        .replay
        .into_iter()
        .filter(|e| e.revision > after)
        .collect();
    let mut last = out.last().map(|e| e.revision).unwrap_or(after);
    let mut live = start.live;
    let deadline = Instant::now() + Duration::from_secs(10);
    while out.len() < n && Instant::now() < deadline {
        match live.try_recv() {
            Ok(e) if e.revision > last => {
                last = e.revision;
                out.push(e);
            }
            Ok(_) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    out
}

fn crud(s: &dyn Store) {
    let base = s.current_revision();
    let a = s.create("/r/a", obj("a")).expect("create a");
    assert!(a.mod_revision > base);
    assert_eq!(
        a.value["metadata"]["resourceVersion"],
        a.mod_revision.to_string()
    );
    assert!(matches!(
        s.create("/r/a", obj("a")),
        Err(StoreError::AlreadyExists(_))
    ));
    let got = s.get("/r/a").expect("get").expect("a exists");
    assert_eq!(got.mod_revision, a.mod_revision);
    assert_eq!(
        got.value["metadata"]["resourceVersion"],
        a.mod_revision.to_string()
    );
    assert_eq!(got.value["data"]["n"], "0");

    match s.update("/r/a", obj("a"), Some(a.mod_revision + 1000)) {
        Err(StoreError::Conflict {
            expected, actual, ..
        }) => {
            assert_eq!(expected, a.mod_revision + 1000);
            assert_eq!(actual, a.mod_revision);
        }
        other => panic!("stale update: {other:?}"),
    }
    let mut v = obj("a");
    v["data"]["n"] = json!("1");
    let b = s.update("/r/a", v, Some(a.mod_revision)).expect("update");
    assert!(b.mod_revision > a.mod_revision);
    assert_eq!(
        s.get("/r/a").expect("get").expect("a").value["data"]["n"],
        "1"
    );
    assert!(matches!(
        s.update("/r/missing", obj("m"), None),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.update("/r/missing", obj("m"), Some(3)),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.delete("/r/missing", None),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.delete("/r/a", Some(a.mod_revision)),
        Err(StoreError::Conflict { .. })
    ));

    let bb = s.create("/r/b", obj("b")).expect("create b");
    let c = s.create("/s/c", obj("c")).expect("create c");
    let list = s.list("/r/").expect("list");
    let keys: Vec<&str> = list.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/r/a", "/r/b"]);
    assert!(
        list.revision >= c.mod_revision,
        "{} < {}",
        list.revision,
        c.mod_revision
    );
    assert_eq!(list.items[1].mod_revision, bb.mod_revision);

    let gone = s.delete("/r/b", Some(bb.mod_revision)).expect("delete b");
    assert!(gone.mod_revision > c.mod_revision);
    assert_eq!(gone.value["metadata"]["name"], "b");
    assert_eq!(
        gone.value["metadata"]["resourceVersion"],
        gone.mod_revision.to_string()
    );
    assert!(s.get("/r/b").expect("get b").is_none());
    assert!(s.current_revision() >= gone.mod_revision);
    // A deleted key can be created again.
    s.create("/r/b", obj("b")).expect("re-create b");
}

fn watch(s: &dyn Store) {
    let base = s.current_revision();
    let live = s.watch(0).expect("watch from now");
    let x = s.create("/w/x", obj("x")).expect("create");
    let mut v = obj("x");
    v["data"]["n"] = json!("2");
    let x2 = s.update("/w/x", v, Some(x.mod_revision)).expect("update");
    let d = s.delete("/w/x", None).expect("delete");
    let revs = [x.mod_revision, x2.mod_revision, d.mod_revision];

    for (what, start) in [
        ("live", live),
        ("replay", s.watch(base).expect("watch from base")),
    ] {
        let evs = collect(start, base, 3);
        let got: Vec<(u64, EventType)> = evs
            .iter()
            .filter(|e| e.key == "/w/x")
            .map(|e| (e.revision, e.kind))
            .collect();
        assert_eq!(
            got,
            [
                (revs[0], EventType::Added),
                (revs[1], EventType::Modified),
                (revs[2], EventType::Deleted)
            ],
            "{what}"
        );
        let m = &evs[1];
        assert_eq!(m.object["data"]["n"], "2", "{what}");
        assert_eq!(
            m.prev.as_ref().expect("prev on MODIFIED")["data"]["n"],
            "0",
            "{what}"
        );
        let del = &evs[2];
        assert_eq!(del.object["metadata"]["name"], "x", "{what}");
        assert_eq!(
            del.object["metadata"]["resourceVersion"],
            revs[2].to_string(),
            "{what}"
        );
        assert!(del.prev.is_some(), "{what}");
    }

    // A watch from a list's revision sees only what came after the list.
    s.create("/w/y", obj("y")).expect("create y");
    let list = s.list("/w/").expect("list");
    let w = s.watch(list.revision).expect("watch from list");
    let z = s.create("/w/z", obj("z")).expect("create z");
    let evs = collect(w, list.revision, 1);
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(evs[0].key, "/w/z");
    assert_eq!(evs[0].revision, z.mod_revision);
}

fn big_list(s: &dyn Store) {
    // More than one etcd page (500 keys).
    for i in 0..620 {
        s.create(&format!("/m/{i:04}"), obj(&format!("m{i}")))
            .expect("create");
    }
    let list = s.list("/m/").expect("list");
    assert_eq!(list.items.len(), 620);
    let keys: Vec<String> = list.items.iter().map(|kv| kv.key.clone()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert!(list.items.iter().all(|kv| kv.mod_revision <= list.revision));
}

/// Four threads increment one counter with read-modify-write and retry on Conflict:
/// no increment is lost.
fn compare_and_swap(s: &SharedStore) {
    s.create("/cas/n", json!({"metadata": {"name": "n"}, "n": 0}))
        .expect("create counter");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut conflicts = 0;
                for _ in 0..15 {
                    loop {
                        let cur = s.get("/cas/n").expect("get").expect("counter");
                        let mut v = cur.value.clone();
                        v["n"] = json!(v["n"].as_u64().expect("n") + 1);
                        match s.update("/cas/n", v, Some(cur.mod_revision)) {
                            Ok(_) => break,
                            Err(StoreError::Conflict { .. }) => conflicts += 1,
                            Err(e) => panic!("update: {e}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let n = s.get("/cas/n").expect("get").expect("counter").value["n"].clone();
    assert_eq!(n, json!(60));
}

fn suite(s: SharedStore) {
    crud(s.as_ref());
    watch(s.as_ref());
    big_list(s.as_ref());
    compare_and_swap(&s);
}

/// Writes, reopen, then everything is there and a watch from before resumes.
fn resume_after_reopen(open: &dyn Fn() -> SharedStore) {
    let (before, mut revs) = {
        let s = open();
        // (0 would mean "from now on": start from a real revision.)
        s.create("/seed", obj("seed")).expect("seed");
        let before = s.current_revision();
        let revs: Vec<u64> = (0..3)
            .map(|i| {
                s.create(&format!("/p/{i}"), obj(&format!("p{i}")))
                    .expect("create")
                    .mod_revision
            })
            .collect();
        (before, revs)
    };
    let s = open();
    assert!(s.current_revision() >= revs[2]);
    let list = s.list("/p/").expect("list");
    assert_eq!(list.items.len(), 3);
    let w = s.watch(before).expect("watch from before the reopen");
    let after = s.create("/p/9", obj("p9")).expect("create after reopen");
    revs.push(after.mod_revision);
    let got: Vec<u64> = collect(w, before, 4)
        .iter()
        .filter(|e| e.key.starts_with("/p/"))
        .map(|e| e.revision)
        .collect();
    assert_eq!(got, revs);
}

#[test]
fn redb_backend() {
    let dir = tempfile::tempdir().expect("tmp");
    let s: SharedStore = Arc::new(RedbStore::open(&dir.path().join("a.redb")).expect("open"));
    suite(s);
    let path = dir.path().join("b.redb");
    resume_after_reopen(&|| Arc::new(RedbStore::open(&path).expect("reopen")) as SharedStore);
}

fn etcd_store(etcd: &Etcd, prefix: &str) -> SharedStore {
    Arc::new(EtcdStore::connect(&[etcd.endpoint()], prefix).expect("connect to etcd"))
}

#[test]
fn etcd_backend() {
    let dir = tempfile::tempdir().expect("tmp");
    let etcd = Etcd::start(&dir.path().join("etcd"));
    suite(etcd_store(&etcd, "/t1"));
    // Another prefix in the same etcd sees none of the first one's keys.
    let other = etcd_store(&etcd, "/t2");
    assert!(other.list("/r/").expect("list").items.is_empty());
    assert!(other.get("/r/a").expect("get").is_none());
    resume_after_reopen(&|| etcd_store(&etcd, "/t3"));
}

#[test]
fn etcd_survives_an_etcd_restart_and_reports_compaction() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("etcd");
    let mut etcd = Etcd::start(&data);
    let s = etcd_store(&etcd, "");
    let first = s.create("/registry/x/a", obj("a")).expect("create");
    let mut names = BTreeMap::new();
    names.insert("a", first.mod_revision);
    drop(s);

    // etcd itself restarts on the same data dir (a new port): the data is there.
    drop(etcd);
    etcd = Etcd::start(&data);
    let s = etcd_store(&etcd, "");
    assert!(s.get("/registry/x/a").expect("get").is_some());
    let b = s.create("/registry/x/b", obj("b")).expect("create b");
    let c = s.create("/registry/x/c", obj("c")).expect("create c");

    // Compact up to c: a watch from before it is "too old"; from c on it works.
    etcd.compact(&c.mod_revision.to_string());
    let s = etcd_store(&etcd, "");
    match s.watch(b.mod_revision - 1) {
        Err(StoreError::Compacted { requested, oldest }) => {
            assert_eq!(requested, b.mod_revision - 1);
            assert!(oldest > b.mod_revision, "oldest {oldest}");
        }
        Err(e) => panic!("watch from a compacted revision: {e}"),
        Ok(_) => panic!("watch from a compacted revision succeeded"),
    }
    let w = s
        .watch(c.mod_revision)
        .expect("watch from the compaction point");
    let d = s.create("/registry/x/d", obj("d")).expect("create d");
    let evs = collect(w, c.mod_revision, 1);
    assert_eq!(evs.first().map(|e| e.revision), Some(d.mod_revision));
    assert!(Path::new(&etcd.data_dir).exists());
}
