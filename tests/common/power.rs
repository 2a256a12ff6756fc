//! A power cut, for tests that promise "acknowledged means on disk": the appliance runs with
//! `tests/support/unplug.c` preloaded, which journals every change to its data directory and
//! which syncs made durable; [`PowerCut::unplug`], once the process is gone, takes back every
//! change no sync covered. What a kill -9 alone cannot show (the page cache keeps unsynced
//! writes), this does: with `synchronous=OFF` acknowledged writes are gone afterwards.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const SOURCE: &str = include_str!("../support/unplug.c");

/// The compiled library, built once per test binary run (with `cc`).
fn library() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("unplug");
        std::fs::create_dir_all(&dir).unwrap();
        let unique = format!("{}-{:?}", std::process::id(), std::thread::current().id())
            .replace(|c: char| !c.is_ascii_alphanumeric(), "");
        let src = dir.join(format!("unplug-{unique}.c"));
        let tmp = dir.join(format!("libunplug-{unique}.so"));
        std::fs::write(&src, SOURCE).unwrap();
        let out = Command::new("cc")
            .args(["-shared", "-fPIC", "-O1", "-Wall", "-o"])
            .arg(&tmp)
            .arg(&src)
            .arg("-ldl")
            .output()
            .expect("a C compiler (cc) for the power-cut library; apt-get install build-essential");
        assert!(
            out.status.success(),
            "cannot build the power-cut library: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lib = dir.join(format!("libunplug-{unique}-ok.so"));
        std::fs::rename(&tmp, &lib).unwrap();
        lib
    })
}

/// One appliance's power supply.
pub struct PowerCut {
    dir: PathBuf,
    journal: PathBuf,
}

impl PowerCut {
    /// Watches the files under `dir` (the appliance's data directory).
    pub fn new(dir: &Path) -> PowerCut {
        let journal = dir.with_extension("unplug-journal");
        let _ = std::fs::remove_file(&journal);
        let _ = std::fs::remove_file(journal.with_extension("sync-delay"));
        PowerCut {
            dir: dir.to_path_buf(),
            journal,
        }
    }

    /// The environment to start the appliance with; `sync_delay_ms` slows every sync down.
    pub fn env(&self, sync_delay_ms: u32) -> Vec<(String, String)> {
        vec![
            ("LD_PRELOAD".into(), library().display().to_string()),
            ("UNPLUG_DIR".into(), self.dir.display().to_string()),
            ("UNPLUG_JOURNAL".into(), self.journal.display().to_string()),
            ("UNPLUG_SYNC_DELAY_MS".into(), sync_delay_ms.to_string()),
            (
                "UNPLUG_SYNC_DELAY_FILE".into(),
                self.delay_file().display().to_string(),
            ),
        ]
    }

    fn delay_file(&self) -> PathBuf {
        self.journal.with_extension("sync-delay")
    }

    /// Slows every later sync of the running appliance down to `ms` (started with [`env`]).
    pub fn set_sync_delay(&self, ms: u32) {
        std::fs::write(self.delay_file(), ms.to_string()).unwrap();
    }

    /// After the process is gone: every change to a file that no later sync of that file
    /// covered is taken back, newest first. Fails the test if nothing was journaled at all
    /// (the library did not watch the database), and returns how many changes were taken back.
    pub fn unplug(&self) -> usize {
        let bytes = std::fs::read(&self.journal).unwrap_or_default();
        let records = parse(&bytes);
        assert!(
            records.iter().any(|r| r.kind == WRITE),
            "the power cut saw no write under {}: was the library preloaded?",
            self.dir.display()
        );
        let mut last_sync: HashMap<&str, usize> = HashMap::new();
        for (i, r) in records.iter().enumerate() {
            if r.kind == SYNC {
                last_sync.insert(r.path, i);
            }
        }
        let mut undone = 0;
        for (i, r) in records.iter().enumerate().rev() {
            if r.kind == SYNC || last_sync.get(r.path).is_some_and(|&s| s > i) {
                continue;
            }
            // A file deleted since (the WAL, once checkpointed on close) is gone either way.
            let Ok(file) = std::fs::OpenOptions::new().write(true).open(r.path) else {
                continue;
            };
            match r.kind {
                WRITE => {
                    // The bytes it overwrote, and the length before it grew the file.
                    file.write_all_at(r.old, r.offset).unwrap();
                    if file.metadata().unwrap().len() > r.old_size {
                        file.set_len(r.old_size).unwrap();
                    }
                }
                TRUNCATE => {
                    file.set_len(r.old_size).unwrap();
                    file.write_all_at(r.old, r.offset).unwrap();
                }
                _ => unreachable!("journal record of kind {}", r.kind),
            }
            undone += 1;
        }
        let _ = std::fs::remove_file(&self.journal);
        undone
    }
}

const WRITE: u8 = 1;
const SYNC: u8 = 2;
const TRUNCATE: u8 = 3;

struct Record<'a> {
    kind: u8,
    path: &'a str,
    offset: u64,
    old_size: u64,
    old: &'a [u8],
}

fn parse(mut b: &[u8]) -> Vec<Record<'_>> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> &'a [u8] {
        let (head, rest) = b.split_at(n);
        *b = rest;
        head
    }
    let u32_ = |b: &mut &[u8]| u32::from_le_bytes(take(b, 4).try_into().unwrap()) as usize;
    let u64_ = |b: &mut &[u8]| u64::from_le_bytes(take(b, 8).try_into().unwrap());
    let mut out = Vec::new();
    while !b.is_empty() {
        let kind = take(&mut b, 1)[0];
        let path_len = u32_(&mut b);
        let path = std::str::from_utf8(take(&mut b, path_len)).unwrap();
        let offset = u64_(&mut b);
        let old_size = u64_(&mut b);
        let len = u32_(&mut b);
        let old = take(&mut b, len);
        out.push(Record {
            kind,
            path,
            offset,
            old_size,
            old,
        });
    }
    out
}
