//! SQLite persistence behind a small interface.
//!
//! * Reads run on a pool of read-only connections, concurrently with writes (WAL).
//! * Writes are closures sent to one writer thread, which runs everything queued at that moment
//!   in one transaction (each closure inside its own savepoint, so one failing request does not
//!   undo its neighbours) and commits once: group commit. A closure's result is handed back
//!   only after that commit returned, with `synchronous=FULL`, so an acknowledged write is on
//!   disk and survives a crash of the process or the machine.

mod resource;
mod schema;

pub use resource::Resource;

use crate::sync::lock;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// Most closures committed together; bounds the latency one commit adds to the first of them.
const MAX_BATCH: usize = 256;
/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;
/// Writes waiting for the writer at most. Admission bounds what requests queue well below
/// this; past it a write is refused at once ([`StoreError::Busy`], answered 5000) rather than
/// queued without bound.
const MAX_QUEUED: usize = 8192;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("a resource named '{0}' already exists there")]
    Conflict(String),
    #[error("stored resource {0} is corrupt: {1}")]
    Corrupt(String, String),
    #[error("cannot create the database directory {0}: {1}")]
    Directory(PathBuf, std::io::Error),
    #[error(
        "the database {0} is in use by another m2mhub (PID {1}); stop it first, or give this \
         one another storage.path"
    )]
    InUse(PathBuf, String),
    #[error("cannot lock the database {0}: {1}")]
    Lock(PathBuf, std::io::Error),
    #[error(
        "the database {0} failed its integrity check ({1}); nothing was written to it. Restore \
         it from a backup, or move it away to start with an empty one"
    )]
    Damaged(PathBuf, String),
    #[error("the store is shut down")]
    Closed,
    #[error("too many writes are waiting for the database")]
    Busy,
    #[error("a write failed unexpectedly: {0}")]
    Panicked(String),
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// Transactions committed so far (each holds a batch of writes).
    commits: Arc<AtomicU64>,
    /// `None` once the store is closed.
    writer: Mutex<Option<flume::Sender<Box<dyn Job>>>>,
    writer_thread: Mutex<Option<thread::JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    /// The lock file, held (flock) while this store is open, with our PID in it.
    _lock: std::fs::File,
}

impl Store {
    /// Opens (or creates) the database at `path`, creating its directory if needed, and starts
    /// the writer thread.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Directory(dir.to_path_buf(), e))?;
        }
        let lock = take_lock(path)?;
        let conn = Connection::open(path)?;
        // Before anything is written: a damaged file is refused, not written into.
        match schema::quick_check(&conn) {
            Ok(problems) if problems.is_empty() => {}
            Ok(problems) => return Err(StoreError::Damaged(path.into(), problems.join("; "))),
            Err(e) => return Err(StoreError::Damaged(path.into(), e.to_string())),
        }
        schema::prepare_writer(&conn)?;
        let (tx, rx) = flume::bounded::<Box<dyn Job>>(MAX_QUEUED);
        let commits = Arc::new(AtomicU64::new(0));
        let counted = commits.clone();
        let writer_thread = thread::Builder::new()
            .name("m2mhub-store".into())
            .spawn(move || writer_loop(conn, rx, &counted))
            .map_err(|e| StoreError::Panicked(e.to_string()))?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                commits,
                writer: Mutex::new(Some(tx)),
                writer_thread: Mutex::new(Some(writer_thread)),
                readers: Mutex::new(Vec::new()),
                _lock: lock,
            }),
        })
    }

    /// SQLite's full `integrity_check` (every index against its table): the problems found,
    /// none when the database is sound. Reads the whole file.
    pub fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.open_reader()?;
        Ok(schema::integrity_check(&conn)?)
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Transactions committed so far; each carries every write queued when it began.
    pub fn commits(&self) -> u64 {
        self.inner.commits.load(Ordering::Relaxed)
    }

    /// Runs `f` on a read connection. Sees every write acknowledged before the call.
    pub fn read<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Reader) -> Result<T, E>,
    ) -> Result<T, E> {
        let conn = match self.lock_readers().pop() {
            Some(c) => c,
            None => self.open_reader().map_err(StoreError::from)?,
        };
        let out = f(&Reader { conn: &conn });
        let mut idle = self.lock_readers();
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        out
    }

    fn open_reader(&self) -> rusqlite::Result<Connection> {
        let c = Connection::open_with_flags(
            &self.inner.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        schema::prepare_reader(&c)?;
        Ok(c)
    }

    fn lock_readers(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        lock(&self.inner.readers)
    }

    /// Runs `f` on the writer thread inside a transaction and returns its result once that
    /// transaction is durably committed. If `f` returns an error, its changes are rolled back.
    /// Blocks the calling thread: call it from blocking code (`spawn_blocking`).
    pub fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Writer) -> Result<T, E> + Send + 'static,
    {
        self.submit(f).wait()
    }

    /// Queues `f` for the writer and returns at once. Writes run in the order they were
    /// submitted; [`Submitted::wait`] gives the result once it is durably committed.
    pub fn submit<T, E, F>(&self, f: F) -> Submitted<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Writer) -> Result<T, E> + Send + 'static,
    {
        let (reply, rx) = flume::bounded(1);
        let job = Box::new(WriteJob {
            f: Some(f),
            out: None,
            reply,
            after_commit: Vec::new(),
            ends_batch: false,
        });
        let writer = lock(&self.inner.writer).clone();
        let refused = match writer.map(|w| w.try_send(job)) {
            Some(Ok(())) => None,
            Some(Err(flume::TrySendError::Full(_))) => Some(StoreError::Busy),
            Some(Err(flume::TrySendError::Disconnected(_))) | None => Some(StoreError::Closed),
        };
        Submitted { rx, refused }
    }

    /// Finishes every write already submitted, then closes the database (which checkpoints its
    /// WAL). Later writes fail with [`StoreError::Closed`]. Blocking.
    pub fn close(&self) {
        drop(lock(&self.inner.writer).take());
        let thread = lock(&self.inner.writer_thread).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
        self.lock_readers().clear();
    }
}

/// Takes the lock file `<database>.lock`, so that one process at a time serves a database,
/// and writes our PID into it. The lock goes with the process, however it ends.
fn take_lock(path: &Path) -> Result<std::fs::File, StoreError> {
    use std::io::{Read, Seek, Write};
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let failed = |e| StoreError::Lock(lock_path.clone(), e);
    // A lock file another user made (root running `check-db`, say) may be read-only to us:
    // the lock works on a read-only descriptor too, only our PID is not written then.
    let (mut file, writable) = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
    {
        Ok(f) => (f, true),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            (std::fs::File::open(&lock_path).map_err(failed)?, false)
        }
        Err(e) => return Err(failed(e)),
    };
    // flock(2), not File::try_lock (Rust 1.89, past our MSRV): released when the process ends.
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this function owns; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(failed(e));
        }
        let mut pid = String::new();
        let _ = file.read_to_string(&mut pid);
        let pid = pid.trim();
        let pid = if pid.is_empty() { "unknown" } else { pid };
        return Err(StoreError::InUse(
            path.into(),
            pid.chars().take(20).collect(),
        ));
    }
    if writable {
        file.set_len(0).map_err(failed)?;
        file.rewind().map_err(failed)?;
        writeln!(file, "{}", std::process::id()).map_err(failed)?;
    }
    Ok(file)
}

/// A write on its way to the disk.
pub struct Submitted<T, E> {
    rx: flume::Receiver<Result<T, E>>,
    /// Why the write was not queued.
    refused: Option<StoreError>,
}

impl<T, E: From<StoreError>> Submitted<T, E> {
    /// Blocks until the write is committed (or failed).
    pub fn wait(self) -> Result<T, E> {
        if let Some(e) = self.refused {
            return Err(e.into());
        }
        self.rx
            .recv()
            .unwrap_or_else(|_| Err(StoreError::Closed.into()))
    }

    /// Waits, without blocking the thread, until the write is committed (or failed).
    pub async fn done(self) -> Result<T, E> {
        if let Some(e) = self.refused {
            return Err(e.into());
        }
        self.rx
            .recv_async()
            .await
            .unwrap_or_else(|_| Err(StoreError::Closed.into()))
    }
}

/// Read access to the resource tree.
pub struct Reader<'c> {
    conn: &'c Connection,
}

/// Read and write access inside a write transaction.
pub struct Writer<'c> {
    reader: Reader<'c>,
    /// Run once the write is committed; dropped if it is not.
    after_commit: std::cell::RefCell<Vec<Hook>>,
    /// Commit right after this write (see [`Writer::end_batch`]).
    ends_batch: std::cell::Cell<bool>,
}

/// Something to do once a write is on disk.
type Hook = Box<dyn FnOnce() + Send>;

impl<'c> std::ops::Deref for Writer<'c> {
    type Target = Reader<'c>;
    fn deref(&self) -> &Reader<'c> {
        &self.reader
    }
}

const COLUMNS: &str = "ri, pi, rn, ty, srn, owner, attrs";

impl Reader<'_> {
    fn one(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Option<Resource>, StoreError> {
        let row = self
            .conn
            .prepare_cached(sql)?
            .query_row(params, resource::from_row)
            .optional()?;
        row.transpose()
    }

    fn many(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Resource>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params, resource::from_row)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r??);
        }
        Ok(out)
    }

    pub fn get(&self, ri: &str) -> Result<Option<Resource>, StoreError> {
        self.one(
            &format!("SELECT {COLUMNS} FROM resource WHERE ri = ?1"),
            [ri],
        )
    }

    /// Looks a resource up by its structured name (`cse-in/ae/cnt`).
    pub fn get_by_srn(&self, srn: &str) -> Result<Option<Resource>, StoreError> {
        self.one(
            &format!("SELECT {COLUMNS} FROM resource WHERE srn = ?1"),
            [srn],
        )
    }

    /// Direct children, oldest first, at most `limit`.
    pub fn children(&self, pi: &str, limit: usize) -> Result<Vec<Resource>, StoreError> {
        self.many(
            &format!("SELECT {COLUMNS} FROM resource WHERE pi = ?1 ORDER BY seq LIMIT ?2"),
            rusqlite::params![pi, limit as i64],
        )
    }

    /// Direct children, oldest first, that `keep` accepts, until `max_count` are taken or
    /// the next would pass `max_bytes` of stored representation (a child is weighed before
    /// it is read; the first is taken whatever its size). Returns them, and whether a child
    /// was left out for either limit.
    pub fn children_within(
        &self,
        pi: &str,
        max_count: usize,
        max_bytes: usize,
        keep: impl FnMut(&Resource) -> bool,
    ) -> Result<(Vec<Resource>, bool), StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS}, length(CAST(attrs AS BLOB)) FROM resource WHERE pi = ?1 ORDER BY seq"
        ))?;
        let rows = stmt.query(rusqlite::params![pi])?;
        take_within(rows, max_count, max_bytes, keep)
    }

    /// The descendants of the resource named `srn` in tree order (by structured name: a
    /// parent before its descendants), that `keep` accepts, with the same limits as
    /// [`children_within`](Self::children_within).
    pub fn subtree_within(
        &self,
        srn: &str,
        max_count: usize,
        max_bytes: usize,
        keep: impl FnMut(&Resource) -> bool,
    ) -> Result<(Vec<Resource>, bool), StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS}, length(CAST(attrs AS BLOB)) FROM resource \
             WHERE srn > ?1 AND srn < ?2 ORDER BY srn"
        ))?;
        let rows = stmt.query(rusqlite::params![format!("{srn}/"), format!("{srn}0")])?;
        take_within(rows, max_count, max_bytes, keep)
    }

    /// Direct children of type `ty`, oldest first (an index range scan).
    pub fn children_of_type(&self, pi: &str, ty: u16) -> Result<Vec<Resource>, StoreError> {
        self.many(
            &format!("SELECT {COLUMNS} FROM resource WHERE pi = ?1 AND ty = ?2 ORDER BY seq"),
            rusqlite::params![pi, ty],
        )
    }

    /// The newest (`latest`) or oldest direct child of type `ty`: one index probe, whatever the
    /// number of children.
    pub fn edge_child(
        &self,
        pi: &str,
        ty: u16,
        latest: bool,
    ) -> Result<Option<Resource>, StoreError> {
        let order = if latest { "DESC" } else { "ASC" };
        self.one(
            &format!(
                "SELECT {COLUMNS} FROM resource WHERE pi = ?1 AND ty = ?2 ORDER BY seq {order} LIMIT 1"
            ),
            rusqlite::params![pi, ty],
        )
    }

    /// Visits the descendants of the resource named `srn` in tree order (by structured name),
    /// only those of the types in `tys` when it is not empty, until `visit` returns `false`.
    pub fn walk_subtree(
        &self,
        srn: &str,
        tys: &[u16],
        mut visit: impl FnMut(Resource) -> bool,
    ) -> Result<(), StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM resource WHERE srn > ?1 AND srn < ?2");
        if !tys.is_empty() {
            let list: Vec<String> = tys.iter().map(u16::to_string).collect();
            sql.push_str(&format!(" AND ty IN ({})", list.join(",")));
        }
        sql.push_str(" ORDER BY srn");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(rusqlite::params![format!("{srn}/"), format!("{srn}0")])?;
        while let Some(row) = rows.next()? {
            if !visit(resource::from_row(row)??) {
                break;
            }
        }
        Ok(())
    }

    /// Visits every resource of type `ty` (through the `(ty, srn)` index: resources of
    /// other types, however many, are not read).
    pub fn walk_type(&self, ty: u16, mut visit: impl FnMut(Resource)) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM resource WHERE ty = ?1 ORDER BY srn"
        ))?;
        let mut rows = stmt.query([ty])?;
        while let Some(row) = rows.next()? {
            visit(resource::from_row(row)??);
        }
        Ok(())
    }

    /// Every registered originator and the credential that registered it.
    pub fn bindings(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT originator, credential FROM binding")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Resource IDs whose expiration time is at or before `now` (a canonical timestamp).
    pub fn expired(&self, now: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT ri FROM resource WHERE et IS NOT NULL AND et <= ?1 ORDER BY et LIMIT ?2",
        )?;
        let rows = stmt.query_map(rusqlite::params![now, limit as i64], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl Writer<'_> {
    /// Stores a new resource. A sibling with the same name gives [`StoreError::Conflict`].
    pub fn insert(&self, r: &Resource) -> Result<(), StoreError> {
        let attrs = serde_json::to_string(&r.attrs)
            .map_err(|e| StoreError::Corrupt(r.ri.clone(), e.to_string()))?;
        let res = self.reader.conn.prepare_cached(
            "INSERT INTO resource (ri, pi, rn, ty, srn, owner, et, attrs) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(rusqlite::params![r.ri, r.pi, r.rn, r.ty.code(), r.srn, r.owner, r.et(), attrs]);
        match res {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::Conflict(r.rn.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces the stored attributes of an existing resource.
    pub fn update(&self, r: &Resource) -> Result<(), StoreError> {
        let attrs = serde_json::to_string(&r.attrs)
            .map_err(|e| StoreError::Corrupt(r.ri.clone(), e.to_string()))?;
        self.reader
            .conn
            .prepare_cached("UPDATE resource SET attrs = ?2, et = ?3 WHERE ri = ?1")?
            .execute(rusqlite::params![r.ri, attrs, r.et()])?;
        Ok(())
    }

    /// Runs `f` once this write is committed (before its result is handed back), and never if
    /// it is not: the place to update what is kept in memory beside the database.
    pub fn after_commit(&self, f: impl FnOnce() + Send + 'static) {
        self.after_commit.borrow_mut().push(Box::new(f));
    }

    /// Commits right after this write, and runs its [after-commit](Self::after_commit) work,
    /// before any later write runs: for a write that changes what later writes are decided by
    /// (access control policies), so that none of them decides on the state before it.
    pub fn end_batch(&self) {
        self.ends_batch.set(true);
    }

    /// Records that `credential` registered `originator` (an AE-ID, or a CSE-ID `/id-mn`).
    pub fn bind(&self, originator: &str, credential: &str) -> Result<(), StoreError> {
        self.reader
            .conn
            .prepare_cached(
                "INSERT OR REPLACE INTO binding (originator, credential) VALUES (?1, ?2)",
            )?
            .execute(rusqlite::params![originator, credential])?;
        Ok(())
    }

    /// Forgets who registered `originator`.
    pub fn unbind(&self, originator: &str) -> Result<(), StoreError> {
        self.reader
            .conn
            .prepare_cached("DELETE FROM binding WHERE originator = ?1")?
            .execute([originator])?;
        Ok(())
    }

    /// Deletes a resource and everything below it; returns how many resources went.
    pub fn delete_subtree(&self, r: &Resource) -> Result<usize, StoreError> {
        let n = self
            .reader
            .conn
            .prepare_cached("DELETE FROM resource WHERE ri = ?1 OR (srn > ?2 AND srn < ?3)")?
            .execute(rusqlite::params![
                r.ri,
                format!("{}/", r.srn),
                format!("{}0", r.srn)
            ])?;
        Ok(n)
    }
}

/// Takes resources from `rows` (the columns, then the stored size) that `keep` accepts,
/// until `max_count` are taken or the next would pass `max_bytes`: each is weighed before it
/// is read, and the first always fits, so that a partial answer is never empty. Returns
/// them, and whether one was left out for either limit.
fn take_within(
    mut rows: rusqlite::Rows<'_>,
    max_count: usize,
    max_bytes: usize,
    mut keep: impl FnMut(&Resource) -> bool,
) -> Result<(Vec<Resource>, bool), StoreError> {
    let (mut taken, mut bytes) = (Vec::new(), 0usize);
    while let Some(row) = rows.next()? {
        let size = row.get::<_, i64>(7)?.max(0) as usize;
        let full = taken.len() >= max_count
            || (!taken.is_empty() && bytes.saturating_add(size) > max_bytes);
        if full {
            return Ok((taken, true));
        }
        let res = resource::from_row(row)??;
        if keep(&res) {
            bytes += size;
            taken.push(res);
        }
    }
    Ok((taken, false))
}

/// A write waiting for the writer thread.
trait Job: Send {
    /// Runs inside a savepoint; `false` means roll the savepoint back.
    fn run(&mut self, conn: &Connection) -> bool;
    /// After a successful [`run`](Job::run): the batch must be committed before the next job.
    fn ends_batch(&self) -> bool;
    /// Called after the transaction ended; `commit` says whether it reached the disk.
    fn finish(self: Box<Self>, commit: Result<(), String>);
}

struct WriteJob<F, T, E> {
    f: Option<F>,
    out: Option<Result<T, E>>,
    reply: flume::Sender<Result<T, E>>,
    after_commit: Vec<Hook>,
    ends_batch: bool,
}

impl<F, T, E> Job for WriteJob<F, T, E>
where
    T: Send,
    E: From<StoreError> + Send,
    F: FnOnce(&Writer) -> Result<T, E> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(f) = self.f.take() else { return false };
        let writer = Writer {
            reader: Reader { conn },
            after_commit: Default::default(),
            ends_batch: Default::default(),
        };
        let out = catch_unwind(AssertUnwindSafe(|| f(&writer))).unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(StoreError::Panicked(msg).into())
        });
        let ok = out.is_ok();
        if ok {
            self.after_commit = writer.after_commit.into_inner();
            self.ends_batch = writer.ends_batch.get();
        }
        self.out = Some(out);
        ok
    }

    fn ends_batch(&self) -> bool {
        self.ends_batch
    }

    fn finish(self: Box<Self>, commit: Result<(), String>) {
        if commit.is_ok() {
            for hook in self.after_commit {
                hook();
            }
        }
        let out = match (commit, self.out) {
            (Ok(()), Some(out)) => out,
            (_, Some(Err(e))) => Err(e),
            (Err(e), _) => Err(StoreError::Panicked(format!("commit failed: {e}")).into()),
            (Ok(()), None) => Err(StoreError::Closed.into()),
        };
        // The requester may have gone away; nothing to do then.
        let _ = self.reply.send(out);
    }
}

fn writer_loop(conn: Connection, rx: flume::Receiver<Box<dyn Job>>, commits: &AtomicU64) {
    // Jobs taken from the queue that a batch ended before (Writer::end_batch), in order.
    let mut waiting: Vec<Box<dyn Job>> = Vec::new();
    loop {
        if waiting.is_empty() {
            match rx.recv() {
                Ok(first) => waiting.push(first),
                Err(_) => return,
            }
        }
        let room = MAX_BATCH.saturating_sub(waiting.len());
        waiting.extend(rx.try_iter().take(room));
        let mut batch = std::mem::take(&mut waiting);
        let (commit, ran) = run_batch(&conn, &mut batch);
        waiting = batch.split_off(ran);
        match &commit {
            Ok(()) => {
                commits.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::error!(error = %e, jobs = batch.len(), "database commit failed"),
        }
        for job in batch {
            job.finish(commit.clone());
        }
    }
}

/// Runs a batch in one transaction, each job in a savepoint of its own, up to the first job
/// that [ends the batch](Writer::end_batch); returns the commit's outcome and how many jobs
/// it covers (the rest wait for the next batch). The transaction and savepoint statements
/// are prepared once (rusqlite's `Transaction` parses them every time: a tenth of the
/// writer's time, measured with perf).
fn run_batch(conn: &Connection, batch: &mut [Box<dyn Job>]) -> (Result<(), String>, usize) {
    let step = |sql: &str| {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    if let Err(e) = step("BEGIN IMMEDIATE") {
        return (Err(e), batch.len());
    }
    let mut covered = batch.len();
    let ran = (|| {
        for (i, job) in batch.iter_mut().enumerate() {
            step("SAVEPOINT job")?;
            let ok = job.run(conn);
            if !ok {
                step("ROLLBACK TO job")?;
            }
            step("RELEASE job")?;
            if ok && job.ends_batch() {
                covered = i + 1;
                break;
            }
        }
        step("COMMIT")
    })();
    if ran.is_err() && !conn.is_autocommit() {
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            tracing::error!(error = %e, "cannot roll back a failed batch");
        }
    }
    (ran, covered)
}

#[cfg(test)]
mod tests;
