use super::*;
use crate::onem2m::ResourceType;
use serde_json::json;

fn res(ty: ResourceType, ri: &str, pi: &str, srn: &str) -> Resource {
    let rn = srn.rsplit('/').next().unwrap_or(srn).to_string();
    let mut attrs = serde_json::Map::new();
    attrs.insert("ri".into(), json!(ri));
    attrs.insert("rn".into(), json!(rn));
    Resource {
        ty,
        ri: ri.into(),
        pi: pi.into(),
        rn,
        srn: srn.into(),
        owner: String::new(),
        attrs,
    }
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("sub/dir/t.db")).unwrap();
    (dir, store)
}

fn insert(store: &Store, r: Resource) -> Result<(), StoreError> {
    store.write(move |w| w.insert(&r))
}

#[test]
fn creates_its_directory_and_reads_back_what_it_wrote() {
    let (_d, store) = open();
    insert(&store, res(ResourceType::CseBase, "id-in", "", "cse-in")).unwrap();
    insert(&store, res(ResourceType::Ae, "Cae", "id-in", "cse-in/ae")).unwrap();
    let got = store.read(|r| r.get("Cae")).unwrap().unwrap();
    assert_eq!(got.srn, "cse-in/ae");
    assert_eq!(got.ty, ResourceType::Ae);
    let by_name = store.read(|r| r.get_by_srn("cse-in/ae")).unwrap().unwrap();
    assert_eq!(by_name, got);
    assert!(store.read(|r| r.get("nope")).unwrap().is_none());
}

#[test]
fn sibling_names_are_unique() {
    let (_d, store) = open();
    insert(&store, res(ResourceType::Container, "c1", "p", "cb/x")).unwrap();
    let e = insert(&store, res(ResourceType::Container, "c2", "p", "cb/x")).unwrap_err();
    assert!(matches!(e, StoreError::Conflict(ref n) if n == "x"), "{e}");
    // The failed insert left nothing behind.
    assert!(store.read(|r| r.get("c2")).unwrap().is_none());
}

#[test]
fn subtree_delete_spares_names_that_only_share_a_prefix() {
    let (_d, store) = open();
    for (ri, pi, srn) in [
        ("a", "cb", "cb/a"),
        ("a1", "a", "cb/a/x"),
        ("a2", "a1", "cb/a/x/y"),
        ("b", "cb", "cb/ab"),
        ("c", "cb", "cb/a0"),
        ("d", "cb", "cb/a-"),
    ] {
        insert(&store, res(ResourceType::Container, ri, pi, srn)).unwrap();
    }
    let a = store.read(|r| r.get("a")).unwrap().unwrap();
    let n = store.write(move |w| w.delete_subtree(&a)).unwrap();
    assert_eq!(n, 3);
    for gone in ["a", "a1", "a2"] {
        assert!(store.read(|r| r.get(gone)).unwrap().is_none(), "{gone}");
    }
    for kept in ["b", "c", "d"] {
        assert!(store.read(|r| r.get(kept)).unwrap().is_some(), "{kept}");
    }
}

#[test]
fn edge_children_are_the_newest_and_oldest_of_a_type() {
    let (_d, store) = open();
    for i in 0..5 {
        insert(
            &store,
            res(
                ResourceType::ContentInstance,
                &format!("i{i}"),
                "cnt",
                &format!("cb/cnt/i{i}"),
            ),
        )
        .unwrap();
    }
    insert(
        &store,
        res(ResourceType::Container, "sub", "cnt", "cb/cnt/sub"),
    )
    .unwrap();
    let ty = ResourceType::ContentInstance.code();
    let la = store
        .read(|r| r.edge_child("cnt", ty, true))
        .unwrap()
        .unwrap();
    let ol = store
        .read(|r| r.edge_child("cnt", ty, false))
        .unwrap()
        .unwrap();
    assert_eq!((la.ri.as_str(), ol.ri.as_str()), ("i4", "i0"));
    assert!(store
        .read(|r| r.edge_child("none", ty, true))
        .unwrap()
        .is_none());
    assert_eq!(store.read(|r| r.children("cnt", 100)).unwrap().len(), 6);
    assert_eq!(store.read(|r| r.children("cnt", 2)).unwrap().len(), 2);
}

/// Group commit: writes queued while the writer is busy go to disk in one transaction, and
/// one of them failing does not undo its neighbours.
#[test]
fn writes_queued_meanwhile_share_one_commit_and_a_failure_undoes_only_itself() {
    let (_d, store) = open();
    let before = store.commits();
    // The first write holds the writer until the others are queued behind it.
    let (started, running) = std::sync::mpsc::channel::<()>();
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let first = store.submit(move |w| {
        started.send(()).expect("test waits");
        wait.recv().expect("released");
        w.insert(&res(ResourceType::Container, "r0", "p", "cb/r0"))
    });
    running.recv().unwrap();
    let queued: Vec<_> = (1..64)
        .map(|i| {
            store.submit(move |w| {
                w.insert(&res(
                    ResourceType::Container,
                    &format!("r{i}"),
                    "p",
                    &format!("cb/r{i}"),
                ))?;
                if i % 2 == 1 {
                    return Err(StoreError::Conflict("odd".into()));
                }
                Ok(())
            })
        })
        .collect();
    go.send(()).unwrap();
    first.wait().unwrap();
    let results: Vec<_> = queued.into_iter().map(Submitted::wait).collect();
    assert_eq!(
        store.commits() - before,
        2,
        "the first write's commit, then one for the 63 queued behind it"
    );
    for (i, r) in (1..64).zip(&results) {
        assert_eq!(r.is_ok(), i % 2 == 0, "r{i}: {r:?}");
        let stored = store.read(|r| r.get(&format!("r{i}"))).unwrap();
        assert_eq!(stored.is_some(), i % 2 == 0, "r{i}");
    }
    assert!(store.read(|r| r.get("r0")).unwrap().is_some());
}

#[test]
fn a_write_that_ends_its_batch_is_committed_before_the_next_one_runs() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (_d, store) = open();
    let before = store.commits();
    let (started, running) = std::sync::mpsc::channel::<()>();
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let first = store.submit(move |_w| {
        started.send(()).expect("test waits");
        wait.recv().expect("released");
        Ok::<_, StoreError>(())
    });
    running.recv().unwrap();
    // Queued together behind the first: one changes what is kept in memory after its
    // commit, the next reads it, and a last one fails (its ending of the batch is void).
    let learned = Arc::new(AtomicBool::new(false));
    let l = learned.clone();
    let change = store.submit(move |w| {
        w.end_batch();
        w.after_commit(move || l.store(true, Ordering::SeqCst));
        Ok::<_, StoreError>(())
    });
    let l = learned.clone();
    let saw = store.submit(move |_w| Ok::<_, StoreError>(l.load(Ordering::SeqCst)));
    let failed = store.submit(|w| {
        w.end_batch();
        Err::<(), _>(StoreError::Conflict("x".into()))
    });
    let after = store.submit(|_w| Ok::<_, StoreError>(()));
    go.send(()).unwrap();
    first.wait().unwrap();
    change.wait().unwrap();
    assert!(saw.wait().unwrap(), "the write after saw the change");
    assert!(failed.wait().is_err());
    after.wait().unwrap();
    assert_eq!(
        store.commits() - before,
        3,
        "the first, the change, then the rest in one commit"
    );
}

#[test]
fn a_panicking_write_is_an_error_and_the_writer_lives_on() {
    let (_d, store) = open();
    let r: Result<(), StoreError> = store.write(|_w| panic!("boom"));
    assert!(matches!(r, Err(StoreError::Panicked(ref m)) if m == "boom"));
    insert(
        &store,
        res(ResourceType::Container, "after", "p", "cb/after"),
    )
    .unwrap();
    assert!(store.read(|r| r.get("after")).unwrap().is_some());
}

#[test]
fn writes_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let store = Store::open(&path).unwrap();
        let mut r = res(ResourceType::Container, "c", "p", "cb/c");
        r.attrs.insert("et".into(), json!("20200101T000000,000000"));
        insert(&store, r).unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert!(store.read(|r| r.get("c")).unwrap().is_some());
    let expired = store
        .read(|r| r.expired("20210101T000000,000000", 10))
        .unwrap();
    assert_eq!(expired, vec!["c".to_string()]);
    let none = store
        .read(|r| r.expired("20190101T000000,000000", 10))
        .unwrap();
    assert!(none.is_empty());
}

#[test]
fn updates_replace_attributes() {
    let (_d, store) = open();
    insert(&store, res(ResourceType::Container, "c", "p", "cb/c")).unwrap();
    let mut c = store.read(|r| r.get("c")).unwrap().unwrap();
    c.attrs.insert("mni".into(), json!(5));
    store.write(move |w| w.update(&c)).unwrap();
    assert_eq!(
        store.read(|r| r.get("c")).unwrap().unwrap().int("mni"),
        Some(5)
    );
}

#[test]
fn a_full_write_queue_refuses_at_once_instead_of_growing() {
    let (_d, store) = open();
    // Hold the writer inside a write until the queue has filled behind it.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (started_tx, started) = std::sync::mpsc::channel::<()>();
    let first = store.submit(move |_w| {
        started_tx.send(()).unwrap();
        held.recv().unwrap();
        Ok::<_, StoreError>(())
    });
    started.recv().unwrap();
    let queued: Vec<_> = (0..MAX_QUEUED)
        .map(|_| store.submit(|_w| Ok::<_, StoreError>(())))
        .collect();
    let refused = store.submit(|_w| Ok::<_, StoreError>(()));
    assert!(matches!(refused.wait(), Err(StoreError::Busy)));
    release.send(()).unwrap();
    first.wait().unwrap();
    for q in queued {
        q.wait().unwrap();
    }
    // Room again.
    store.write(|_w| Ok::<_, StoreError>(())).unwrap();
}
