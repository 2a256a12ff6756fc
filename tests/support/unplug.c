/*
 * A power cut for tests: an LD_PRELOAD library that remembers, for every file under
 * $UNPLUG_DIR, what each write and truncate overwrote, and which of them an fsync or fdatasync
 * made durable. After the process is gone, tests/common/power.rs undoes every change no sync
 * covered: the files are left as a machine that lost power would find them, with a disk that
 * kept exactly what was synced. Killing the process alone cannot show that: the kernel keeps
 * unsynced writes in its page cache, so they survive a kill -9.
 *
 * The journal ($UNPLUG_JOURNAL) is a sequence of records:
 *   u8 kind (1 write, 2 sync, 3 truncate), u32 path length, the path,
 *   u64 offset, u64 size of the file before the change, u32 length, the bytes overwritten
 *   (for a truncate: the bytes cut off).
 * Integers are little-endian. $UNPLUG_SYNC_DELAY_MS, if set, slows every sync down, so that a
 * test can catch requests in progress; $UNPLUG_SYNC_DELAY_FILE, if set, names a file whose
 * number (ms) is read at each sync instead, so that a test can slow a running process down.
 *
 * It errs on the lenient side only: a write another thread makes between an fsync and its
 * record counts as synced, and unlink, O_TRUNC, fallocate and directory syncs are not
 * journaled. SQLite's writer writes and syncs from one thread.
 *
 * Built by the tests with `cc -shared -fPIC`; it is test support, not part of m2mhub.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum { REC_WRITE = 1, REC_SYNC = 2, REC_TRUNCATE = 3 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int journal = -1;
static int sync_delay_ms = 0;
static const char *sync_delay_file = NULL;
static const char *dir = NULL;
static size_t dir_len = 0;

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);
static ssize_t (*real_pread64)(int, void *, size_t, off64_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off64_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

__attribute__((constructor)) static void init(void) {
    real_write = dlsym(RTLD_NEXT, "write");
    real_pwrite = dlsym(RTLD_NEXT, "pwrite");
    real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
    real_pread64 = dlsym(RTLD_NEXT, "pread64");
    real_ftruncate = dlsym(RTLD_NEXT, "ftruncate");
    real_ftruncate64 = dlsym(RTLD_NEXT, "ftruncate64");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    dir = getenv("UNPLUG_DIR");
    dir_len = dir ? strlen(dir) : 0;
    const char *path = getenv("UNPLUG_JOURNAL");
    if (dir && path) {
        journal = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    }
    const char *delay = getenv("UNPLUG_SYNC_DELAY_MS");
    if (delay) {
        sync_delay_ms = atoi(delay);
    }
    sync_delay_file = getenv("UNPLUG_SYNC_DELAY_FILE");
}

/* The delay of this sync: from $UNPLUG_SYNC_DELAY_FILE when it can be read. */
static int current_delay(void) {
    if (!sync_delay_file) {
        return sync_delay_ms;
    }
    int saved = errno;
    int delay = sync_delay_ms;
    int fd = open(sync_delay_file, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        char buf[32];
        ssize_t n = read(fd, buf, sizeof buf - 1);
        if (n > 0) {
            buf[n] = 0;
            delay = atoi(buf);
        }
        close(fd);
    }
    errno = saved;
    return delay;
}

/* The path of fd if it is a file under $UNPLUG_DIR. */
static int watched(int fd, char *path, size_t size) {
    if (journal < 0 || fd == journal) {
        return 0;
    }
    int saved = errno;
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, size - 1);
    errno = saved;
    if (n <= 0) {
        return 0;
    }
    path[n] = 0;
    return (size_t)n > dir_len && strncmp(path, dir, dir_len) == 0 && path[dir_len] == '/';
}

static void put(char **p, const void *data, size_t len) {
    memcpy(*p, data, len);
    *p += len;
}

/* Appends one record; `old` holds `len` bytes. Called with the lock held. */
static void record(uint8_t kind, const char *path, uint64_t offset, uint64_t old_size,
                   const void *old, uint32_t len) {
    uint32_t path_len = strlen(path);
    size_t total = 1 + 4 + path_len + 8 + 8 + 4 + len;
    char *buf = malloc(total);
    if (!buf) {
        abort();
    }
    char *p = buf;
    put(&p, &kind, 1);
    put(&p, &path_len, 4);
    put(&p, path, path_len);
    put(&p, &offset, 8);
    put(&p, &old_size, 8);
    put(&p, &len, 4);
    if (len) {
        put(&p, old, len);
    }
    if (real_write(journal, buf, total) != (ssize_t)total) {
        abort();
    }
    free(buf);
}

/* Before fd's bytes from `from` on (up to `to`, or to its end) change, or the file is cut at
 * `from`: journals what they were, and the file's size. */
static void remember(uint8_t kind, int fd, uint64_t from, uint64_t to) {
    char path[PATH_MAX];
    if (!watched(fd, path, sizeof path)) {
        return;
    }
    int saved = errno;
    pthread_mutex_lock(&lock);
    struct stat st;
    if (fstat(fd, &st) == 0) {
        uint64_t old_size = st.st_size;
        uint64_t end = to < old_size ? to : old_size;
        uint32_t keep = from < end ? (uint32_t)(end - from) : 0;
        char *old = keep ? malloc(keep) : NULL;
        if (keep && (!old || real_pread64(fd, old, keep, from) != (ssize_t)keep)) {
            abort();
        }
        record(kind, path, from, old_size, old, keep);
        free(old);
    }
    pthread_mutex_unlock(&lock);
    errno = saved;
}

static void before_write(int fd, off64_t offset, size_t len) {
    remember(REC_WRITE, fd, offset, (uint64_t)offset + len);
}

static void before_truncate(int fd, off64_t len) {
    remember(REC_TRUNCATE, fd, len, UINT64_MAX);
}

static void synced(int fd) {
    char path[PATH_MAX];
    if (!watched(fd, path, sizeof path)) {
        return;
    }
    int delay = current_delay();
    if (delay > 0) {
        struct timespec t = {delay / 1000, (delay % 1000) * 1000000L};
        nanosleep(&t, NULL);
    }
    pthread_mutex_lock(&lock);
    record(REC_SYNC, path, 0, 0, NULL, 0);
    pthread_mutex_unlock(&lock);
}

ssize_t write(int fd, const void *buf, size_t count) {
    if (journal >= 0) {
        int saved = errno;
        off64_t at = lseek64(fd, 0, SEEK_CUR);
        errno = saved;
        if (at >= 0) {
            before_write(fd, at, count);
        }
    }
    return real_write(fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    before_write(fd, offset, count);
    return real_pwrite(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t offset) {
    before_write(fd, offset, count);
    return real_pwrite64(fd, buf, count, offset);
}

int ftruncate(int fd, off_t length) {
    before_truncate(fd, length);
    return real_ftruncate(fd, length);
}

int ftruncate64(int fd, off64_t length) {
    before_truncate(fd, length);
    return real_ftruncate64(fd, length);
}

/* The record goes after the sync returned: only then is the data durable. */
int fsync(int fd) {
    int rc = real_fsync(fd);
    if (rc == 0) {
        synced(fd);
    }
    return rc;
}

int fdatasync(int fd) {
    int rc = real_fdatasync(fd);
    if (rc == 0) {
        synced(fd);
    }
    return rc;
}
