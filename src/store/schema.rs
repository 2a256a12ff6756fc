//! The table layout and connection settings.

use rusqlite::Connection;

const VERSION: i64 = 2;

/// One table holds the whole tree. `seq` orders siblings by creation (latest/oldest instance),
/// `srn` is the structured name (unique; a subtree is a range of it), `attrs` the resource's
/// JSON representation.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS resource (
    seq   INTEGER PRIMARY KEY,
    ri    TEXT NOT NULL UNIQUE,
    pi    TEXT NOT NULL,
    rn    TEXT NOT NULL,
    ty    INTEGER NOT NULL,
    srn   TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    et    TEXT,
    attrs TEXT NOT NULL
);
-- A name is unique under its parent through srn (parent's srn / rn); version 1 also had a
-- (pi, rn) index, which cost a page write per insert for nothing.
DROP INDEX IF EXISTS resource_parent_name;
CREATE INDEX IF NOT EXISTS resource_parent_type ON resource (pi, ty, seq);
CREATE INDEX IF NOT EXISTS resource_type_name ON resource (ty, srn);
CREATE INDEX IF NOT EXISTS resource_expiry ON resource (et) WHERE et IS NOT NULL;
-- Version 2: which credential registered each AE (by AE-ID) and remote CSE (by CSE-ID), so
-- that the binding of an identity to its originators survives a restart.
CREATE TABLE IF NOT EXISTS binding (
    originator TEXT PRIMARY KEY,
    credential TEXT NOT NULL
);
";

pub fn prepare_writer(conn: &Connection) -> rusqlite::Result<()> {
    // WAL lets readers run beside the writer; synchronous=FULL makes every commit durable
    // before it returns (NORMAL would lose acknowledged writes on power loss).
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "busy_timeout", 5000)?;
    tune(conn)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > VERSION {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "database schema version {version} is newer than this m2mhub understands ({VERSION})"
        )));
    }
    conn.execute_batch(SCHEMA)?;
    conn.pragma_update(None, "user_version", VERSION)?;
    Ok(())
}

pub fn prepare_reader(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "busy_timeout", 5000)?;
    tune(conn)
}

/// Reads through a memory map instead of copying pages in with pread (the larger part of the
/// CPU time of reads, measured with perf), and a page cache of 8 MiB per connection.
fn tune(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "mmap_size", 256i64 * 1024 * 1024)?;
    conn.pragma_update(None, "cache_size", -8192i64)?;
    Ok(())
}

/// `PRAGMA quick_check`: the problems found (none when the file is sound). Checks every page
/// and record, but not indexes against their tables; linear in the file's size.
pub fn quick_check(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    check(conn, "PRAGMA quick_check(20)")
}

/// `PRAGMA integrity_check`: quick_check, and every index against its table.
pub fn integrity_check(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    check(conn, "PRAGMA integrity_check(100)")
}

fn check(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let found: Vec<String> = rows.collect::<Result<_, _>>()?;
    Ok(found.into_iter().filter(|l| l != "ok").collect())
}
