/* filegaps: file and process calls from issue 13's gap list that peer test suites use —
 * memfd_create (read/write/ftruncate, MAP_SHARED across fork, the /proc/self/fd name,
 * MFD_CLOEXEC, seals), the legacy getdents (struct linux_dirent, d_type in the last byte),
 * mknod/mknodat of regular files, st_nlink of directories, RLIMIT_NOFILE raised, lowered,
 * enforced and inherited across fork and execve, sched_getaffinity/sched_setaffinity of a
 * thread's tid (pthread_getattr_np, as the JVM calls it).
 *
 * One line per check, "NAME: yes|no", the same natively and in Apus (no limit value, pid
 * or address is printed, only relations); exits 0 when all pass. stdout is unbuffered, so
 * a child's lines come in order.
 *
 * Helper modes (argv[1]): "limit-after-exec N" (the program re-executed by itself: is the
 * soft RLIMIT_NOFILE N?), "hostname" (sethostname and what shows it: run only in a VM,
 * since natively it would rename the machine). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common.h"

#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_GET_SEALS 1034
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 1U
#define MFD_ALLOW_SEALING 2U
#endif

static int memfd(const char *name, unsigned flags) { return (int)syscall(SYS_memfd_create, name, flags); }

static int fails_with(long result, int error) { return result == -1 && errno == error; }

static void test_memfd(void) {
    int fd = memfd("apus-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    check("memfd_create", fd >= 0);
    check("memfd: MFD_CLOEXEC sets FD_CLOEXEC", fcntl(fd, F_GETFD) == FD_CLOEXEC);
    check("memfd: open for reading and writing", (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR);
    char link[64], target[128];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n >= 0) target[n] = 0;
    check("memfd: /proc/self/fd names it /memfd:NAME (deleted)", n > 0 && strcmp(target, "/memfd:apus-test (deleted)") == 0);
    struct stat st;
    check("memfd: an empty regular file, no links", fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0 && st.st_nlink == 0);
    check("memfd: write", write(fd, "hello", 5) == 5);
    char buffer[16] = {0};
    check("memfd: pread reads it back", pread(fd, buffer, 5, 0) == 5 && memcmp(buffer, "hello", 5) == 0);
    check("memfd: ftruncate to 8192", ftruncate(fd, 8192) == 0 && fstat(fd, &st) == 0 && st.st_size == 8192);
    char *map = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    check("memfd: mmap MAP_SHARED", map != MAP_FAILED);
    if (map == MAP_FAILED) return;
    check("memfd: the mapping shows the file's bytes", memcmp(map, "hello", 5) == 0 && map[5] == 0 && map[8191] == 0);
    memcpy(map + 4096, "mapped", 6);
    check("memfd: a store through the mapping is read by pread", pread(fd, buffer, 6, 4096) == 6 && memcmp(buffer, "mapped", 6) == 0);
    check("memfd: pwrite shows in the mapping", pwrite(fd, "HELLO", 5, 0) == 5 && memcmp(map, "HELLO", 5) == 0);
    pid_t child = fork();
    if (child == 0) {
        memcpy(map + 100, "from the child", 14);
        _exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    check("memfd: a child's store through the inherited mapping is the parent's", memcmp(map + 100, "from the child", 14) == 0);
    munmap(map, 8192);

    check("memfd: no seals yet", fcntl(fd, F_GET_SEALS) == 0);
    check("memfd: F_ADD_SEALS grow and shrink", fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK) == 0);
    check("memfd: F_GET_SEALS shows them", fcntl(fd, F_GET_SEALS) == (F_SEAL_GROW | F_SEAL_SHRINK));
    errno = 0;
    check("memfd: growing under F_SEAL_GROW: EPERM", fails_with(ftruncate(fd, 16384), EPERM));
    errno = 0;
    check("memfd: shrinking under F_SEAL_SHRINK: EPERM", fails_with(ftruncate(fd, 10), EPERM));
    errno = 0;
    check("memfd: a write past the end under F_SEAL_GROW: EPERM", fails_with(pwrite(fd, "x", 1, 8192), EPERM));
    check("memfd: a write inside the file still works", pwrite(fd, "y", 1, 8191) == 1);
    check("memfd: F_ADD_SEALS write", fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) == 0);
    errno = 0;
    check("memfd: a write under F_SEAL_WRITE: EPERM", fails_with(pwrite(fd, "z", 1, 0), EPERM));
    errno = 0;
    check("memfd: a writable shared mapping under F_SEAL_WRITE: EPERM",
          mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED && errno == EPERM);
    map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    check("memfd: a read-only shared mapping under F_SEAL_WRITE", map != MAP_FAILED && map[0] == 'H');
    if (map != MAP_FAILED) munmap(map, 4096);
    check("memfd: F_ADD_SEALS seal", fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL) == 0);
    errno = 0;
    check("memfd: adding seals after F_SEAL_SEAL: EPERM", fails_with(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), EPERM));
    close(fd);

    fd = memfd("plain", 0);
    check("memfd without MFD_ALLOW_SEALING: sealed against sealing", fcntl(fd, F_GET_SEALS) == F_SEAL_SEAL);
    errno = 0;
    check("memfd without MFD_ALLOW_SEALING: F_ADD_SEALS EPERM", fails_with(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), EPERM));
    check("memfd without MFD_CLOEXEC: FD_CLOEXEC clear", fcntl(fd, F_GETFD) == 0);
    close(fd);
    char name[300];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = 0;
    errno = 0;
    check("memfd_create with a 299-byte name: EINVAL", fails_with(memfd(name, 0), EINVAL));
    name[249] = 0;
    fd = memfd(name, 0);
    check("memfd_create with a 249-byte name", fd >= 0);
    close(fd);
    errno = 0;
    check("memfd_create with an unknown flag: EINVAL", fails_with(memfd("x", 0x100), EINVAL));
    int file = open("/tmp/apus-filegaps-regular", O_CREAT | O_RDWR | O_TRUNC, 0600);
    errno = 0;
    check("F_GET_SEALS of a regular file: EINVAL", fails_with(fcntl(file, F_GET_SEALS), EINVAL));
    close(file);
    unlink("/tmp/apus-filegaps-regular");
}

/* struct linux_dirent of the legacy getdents. */
struct legacy_dirent {
    unsigned long d_ino;
    unsigned long d_off;
    unsigned short d_reclen;
    char d_name[];
};

static void test_getdents(const char *dir) {
    char path[256];
    snprintf(path, sizeof path, "%s/file", dir);
    close(open(path, O_CREAT | O_WRONLY, 0600));
    snprintf(path, sizeof path, "%s/subdir", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/link", dir);
    symlink("file", path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    char buffer[4096];
    long n = syscall(SYS_getdents, fd, buffer, sizeof buffer);
    check("getdents (legacy) lists the directory", n > 0);
    int seen = 0, typesRight = 1, inodesRight = 1, aligned = 1;
    for (long offset = 0; n > 0 && offset < n;) {
        struct legacy_dirent *d = (struct legacy_dirent *)(buffer + offset);
        unsigned char type = (unsigned char)buffer[offset + d->d_reclen - 1];
        if (d->d_reclen % 8 != 0) aligned = 0;
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, d->d_name);
        if (lstat(path, &st) != 0 || st.st_ino != d->d_ino) inodesRight = 0;
        if (strcmp(d->d_name, "file") == 0) { seen |= 1; if (type != DT_REG) typesRight = 0; }
        else if (strcmp(d->d_name, "subdir") == 0) { seen |= 2; if (type != DT_DIR) typesRight = 0; }
        else if (strcmp(d->d_name, "link") == 0) { seen |= 4; if (type != DT_LNK) typesRight = 0; }
        else if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0) { seen |= 8; if (type != DT_DIR) typesRight = 0; }
        else seen |= 16;
        offset += d->d_reclen;
    }
    check("getdents (legacy): every name, nothing else", seen == 15);
    check("getdents (legacy): d_type in each record's last byte", typesRight);
    check("getdents (legacy): d_ino is the inode", inodesRight);
    check("getdents (legacy): records padded to 8 bytes", aligned);
    check("getdents (legacy): 0 at the end", syscall(SYS_getdents, fd, buffer, sizeof buffer) == 0);
    lseek(fd, 0, SEEK_SET);
    errno = 0;
    check("getdents (legacy) into a 10-byte buffer: EINVAL", fails_with(syscall(SYS_getdents, fd, buffer, 10), EINVAL));
    close(fd);
    errno = 0;
    int file = open(dir, O_RDONLY);
    snprintf(path, sizeof path, "%s/file", dir);
    int regular = open(path, O_RDONLY);
    check("getdents (legacy) of a regular file: ENOTDIR", fails_with(syscall(SYS_getdents, regular, buffer, sizeof buffer), ENOTDIR));
    close(regular);
    close(file);
}

static void test_mknod(const char *dir) {
    char path[256];
    struct stat st;
    snprintf(path, sizeof path, "%s/node", dir);
    check("mknod S_IFREG", mknod(path, S_IFREG | 0640, 0) == 0);
    check("mknod S_IFREG: an empty regular file, mode less the umask",
          stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0640 && st.st_size == 0);
    errno = 0;
    check("mknod of an existing name: EEXIST", fails_with(mknod(path, S_IFREG | 0600, 0), EEXIST));
    snprintf(path, sizeof path, "%s/zero-type", dir);
    check("mknod with type 0: a regular file", mknod(path, 0604, 0) == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode)
          && (st.st_mode & 07777) == 0604);
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY);
    check("mknodat relative to a directory", mknodat(dirfd, "at-node", S_IFREG | 0600, 0) == 0
          && fstatat(dirfd, "at-node", &st, 0) == 0 && S_ISREG(st.st_mode));
    errno = 0;
    check("mknodat with no such type: EINVAL", fails_with(mknodat(dirfd, "bad", 0170000 | 0600, 0), EINVAL));
    errno = 0;
    check("mknodat in a missing directory: ENOENT", fails_with(mknodat(dirfd, "missing/x", S_IFREG | 0600, 0), ENOENT));
    close(dirfd);
}

static void test_nlink(const char *dir) {
    char path[256], sub[300];
    struct stat st;
    snprintf(path, sizeof path, "%s/links", dir);
    mkdir(path, 0700);
    check("st_nlink of an empty directory: 2", stat(path, &st) == 0 && st.st_nlink == 2);
    snprintf(sub, sizeof sub, "%s/a", path); mkdir(sub, 0700);
    snprintf(sub, sizeof sub, "%s/b", path); mkdir(sub, 0700);
    snprintf(sub, sizeof sub, "%s/f", path); close(open(sub, O_CREAT | O_WRONLY, 0600));
    check("st_nlink with two subdirectories and a file: 4", stat(path, &st) == 0 && st.st_nlink == 4);
    snprintf(sub, sizeof sub, "%s/a", path); rmdir(sub);
    check("st_nlink after rmdir of one: 3", stat(path, &st) == 0 && st.st_nlink == 3);
}

static void test_nofile(const char *self) {
    struct rlimit original, r;
    check("getrlimit(RLIMIT_NOFILE): soft <= hard", getrlimit(RLIMIT_NOFILE, &original) == 0
          && original.rlim_cur <= original.rlim_max && original.rlim_max >= 64);
    r.rlim_cur = 64;
    r.rlim_max = original.rlim_max;
    check("setrlimit(RLIMIT_NOFILE) soft 64", setrlimit(RLIMIT_NOFILE, &r) == 0);
    check("getrlimit reads 64 back", getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur == 64 && r.rlim_max == original.rlim_max);
    int last = -1, fd;
    errno = 0;
    while ((fd = open("/dev/null", O_RDONLY)) >= 0) last = fd;
    check("open beyond the soft limit: EMFILE", errno == EMFILE);
    check("the last descriptor opened is 63", last == 63);
    errno = 0;
    check("dup2 to 64: EBADF", fails_with(dup2(0, 64), EBADF));
    errno = 0;
    check("fcntl(F_DUPFD, 64): EINVAL", fails_with(fcntl(0, F_DUPFD, 64), EINVAL));
    errno = 0;
    check("fcntl(F_DUPFD, 10) with none free: EMFILE", fails_with(fcntl(0, F_DUPFD, 10), EMFILE));
    int p[2];
    errno = 0;
    check("pipe with no descriptor free: EMFILE", fails_with(pipe(p), EMFILE));
    for (int i = 3; i <= last; i++) close(i);
    pid_t child = fork();
    if (child == 0) {
        struct rlimit c;
        _exit(getrlimit(RLIMIT_NOFILE, &c) == 0 && c.rlim_cur == 64 ? 0 : 1);
    }
    int status = 0;
    waitpid(child, &status, 0);
    check("a child inherits the soft limit", WIFEXITED(status) && WEXITSTATUS(status) == 0);
    child = fork();
    if (child == 0) {
        execl(self, self, "limit-after-exec", "64", (char *)NULL);
        _exit(127);
    }
    waitpid(child, &status, 0);
    check("execve keeps the soft limit", WIFEXITED(status) && WEXITSTATUS(status) == 0);

    r.rlim_cur = original.rlim_max;
    r.rlim_max = original.rlim_max;
    check("setrlimit raises the soft limit to the hard limit", setrlimit(RLIMIT_NOFILE, &r) == 0
          && getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur == original.rlim_max);
    check("a descriptor above 1024 once the limit allows it", dup2(0, 1500) == 1500);
    close(1500);
    r.rlim_cur = 128;
    r.rlim_max = 64;
    errno = 0;
    check("setrlimit soft above hard: EINVAL", fails_with(setrlimit(RLIMIT_NOFILE, &r), EINVAL));
    r.rlim_cur = 100;
    r.rlim_max = 200;
    check("setrlimit lowers the hard limit", setrlimit(RLIMIT_NOFILE, &r) == 0);
    struct rlimit seen;
    check("prlimit(0) reads it", prlimit(0, RLIMIT_NOFILE, NULL, &seen) == 0 && seen.rlim_cur == 100 && seen.rlim_max == 200);
    check("prlimit(own pid) reads it", prlimit(getpid(), RLIMIT_NOFILE, NULL, &seen) == 0 && seen.rlim_max == 200);
    child = fork();
    if (child == 0) {
        struct rlimit down = {50, 150}, up = {50, 200};
        if (setrlimit(RLIMIT_NOFILE, &down) != 0) _exit(2);
        errno = 0;
        _exit(fails_with(setrlimit(RLIMIT_NOFILE, &up), EPERM) ? 0 : 3);
    }
    waitpid(child, &status, 0);
    check("a child lowers its hard limit, cannot raise it again (EPERM)", WIFEXITED(status) && WEXITSTATUS(status) == 0);
    r.rlim_cur = 100;
    r.rlim_max = 400;
    errno = 0;
    check("raising the hard limit without CAP_SYS_RESOURCE (a container's root): EPERM", fails_with(setrlimit(RLIMIT_NOFILE, &r), EPERM));
    child = fork();
    if (child == 0) { pause(); _exit(0); }
    struct rlimit set = {32, 150}, before;
    check("prlimit sets another process's limit", prlimit(child, RLIMIT_NOFILE, &set, &before) == 0 && before.rlim_max == 200
          && prlimit(child, RLIMIT_NOFILE, NULL, &seen) == 0 && seen.rlim_cur == 32 && seen.rlim_max == 150);
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    check("prlimit's change of a child left the caller's alone", getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur == 100);
    setrlimit(RLIMIT_NOFILE, &original);
}

static int ready_pipe[2], go_pipe[2];
static pid_t thread_tid;
static void *sleeper(void *arg) {
    (void)arg;
    thread_tid = (pid_t)syscall(SYS_gettid);
    char c;
    write(ready_pipe[1], "r", 1);
    read(go_pipe[0], &c, 1);  /* lives until the main thread is done with it */
    return NULL;
}

static void test_affinity(void) {
    pipe(ready_pipe);
    pipe(go_pipe);
    pthread_t thread;
    pthread_create(&thread, NULL, sleeper, NULL);
    char c;
    read(ready_pipe[0], &c, 1);
    cpu_set_t set;
    CPU_ZERO(&set);
    check("sched_getaffinity of another thread's tid", sched_getaffinity(thread_tid, sizeof set, &set) == 0 && CPU_COUNT(&set) >= 1);
    check("sched_setaffinity of another thread's tid", sched_setaffinity(thread_tid, sizeof set, &set) == 0);
    check("pthread_getaffinity_np", pthread_getaffinity_np(thread, sizeof set, &set) == 0 && CPU_COUNT(&set) >= 1);
    pthread_attr_t attr;
    int r = pthread_getattr_np(thread, &attr);
    check("pthread_getattr_np of another thread (the JVM's call)", r == 0);
    if (r == 0) pthread_attr_destroy(&attr);
    errno = 0;
    check("sched_getaffinity of no such thread: ESRCH", fails_with(sched_getaffinity(999999, sizeof set, &set), ESRCH));
    write(go_pipe[1], "g", 1);
    pthread_join(thread, NULL);
    // Linux clears the joined thread's tid word before the thread is fully gone: its tid
    // may answer for a moment after pthread_join.
    int ended = 0;
    for (int i = 0; i < 1000 && !ended; i++) {
        errno = 0;
        ended = fails_with(sched_getaffinity(thread_tid, sizeof set, &set), ESRCH);
        if (!ended) usleep(1000);
    }
    check("sched_getaffinity of an ended thread: ESRCH", ended);
}

/* Only in a VM: natively this would rename the machine. */
static int test_hostname(void) {
    const char *name = "apus-renamed";
    check("sethostname", sethostname(name, strlen(name)) == 0);
    struct utsname u;
    check("uname shows the new name", uname(&u) == 0 && strcmp(u.nodename, name) == 0);
    char buffer[128] = {0};
    int fd = open("/proc/sys/kernel/hostname", O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buffer, sizeof buffer - 1) : -1;
    close(fd);
    check("/proc/sys/kernel/hostname shows it", n > 0 && strcmp(buffer, "apus-renamed\n") == 0);
    char host[128];
    check("gethostname shows it", gethostname(host, sizeof host) == 0 && strcmp(host, name) == 0);
    char longName[80];
    memset(longName, 'h', sizeof longName);
    errno = 0;
    check("sethostname of 65 bytes: EINVAL", fails_with(sethostname(longName, 65), EINVAL));
    check("sethostname of 64 bytes", sethostname(longName, 64) == 0 && uname(&u) == 0 && strlen(u.nodename) == 64);
    pid_t child = fork();
    if (child == 0) {
        if (setuid(65534) != 0) _exit(2);
        errno = 0;
        _exit(fails_with(sethostname("x", 1), EPERM) ? 0 : 1);
    }
    int status = 0;
    waitpid(child, &status, 0);
    check("sethostname as an unprivileged user: EPERM", WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return finish();
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc == 3 && strcmp(argv[1], "limit-after-exec") == 0) {
        struct rlimit r;
        return getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur == (rlim_t)atoi(argv[2]) ? 0 : 1;
    }
    if (argc == 2 && strcmp(argv[1], "hostname") == 0) return test_hostname();
    char self[512];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) { printf("readlink /proc/self/exe failed\n"); return 1; }
    self[n] = 0;
    umask(022);
    char dir[] = "/tmp/apus-filegaps-XXXXXX";
    if (!mkdtemp(dir)) { printf("mkdtemp failed\n"); return 1; }
    test_memfd();
    test_getdents(dir);
    test_mknod(dir);
    test_nlink(dir);
    test_nofile(self);
    test_affinity();
    /* No shell in the VM: what was made is removed by hand. */
    const char *names[] = {"file", "subdir", "link", "node", "zero-type", "at-node", "links/b", "links/f", "links"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[300];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (unlink(path) != 0) rmdir(path);
    }
    rmdir(dir);
    return finish();
}
