/* procfs: /proc/self/fd (links to what each descriptor names, a listing that follows the
 * descriptor table, reopening through a link), /proc/self/stat and /proc/stat as tools like
 * ps and top parse them, and the process name (comm) being the executable's file name. */
#define _GNU_SOURCE
#include "common.h"
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

static int readlink_fd(int fd, char *out, size_t size) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, out, size - 1);
    if (n < 0) return -1;
    out[n] = 0;
    return 0;
}

static int listed(int fd) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return 0;
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d))) if (atoi(e->d_name) == fd && e->d_name[0] != '.') found = 1;
    closedir(d);
    return found;
}

static int read_file(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n < 0) return -1;
    buf[n] = 0;
    return (int)n;
}

int main(int argc, char **argv) {
    (void)argc;
    int fd = open("/tmp/procfs-test", O_CREAT | O_RDWR | O_TRUNC, 0644);
    write(fd, "hello", 5);
    char target[256];
    check("readlink /proc/self/fd/N names the file", readlink_fd(fd, target, sizeof target) == 0 && strcmp(target, "/tmp/procfs-test") == 0);
    chdir("/tmp");
    int rel = open("./../tmp/procfs-test", O_RDONLY);
    check("a relative open shows its absolute path", readlink_fd(rel, target, sizeof target) == 0 && strcmp(target, "/tmp/procfs-test") == 0);
    int dir = open("/tmp", O_RDONLY | O_DIRECTORY);
    check("a directory descriptor names the directory", readlink_fd(dir, target, sizeof target) == 0 && strcmp(target, "/tmp") == 0);
    int fds[2];
    pipe(fds);
    check("a pipe is pipe:[…]", readlink_fd(fds[0], target, sizeof target) == 0 && strncmp(target, "pipe:[", 6) == 0);
    int efd = eventfd(0, 0);
    check("an eventfd is anon_inode:[eventfd]", readlink_fd(efd, target, sizeof target) == 0 && strcmp(target, "anon_inode:[eventfd]") == 0);
    dup2(efd, 50);
    check("the listing shows an open descriptor", listed(50));
    close(50);
    check("and not a closed one", !listed(50));
    char path[64], buf[16] = { 0 };
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int again = open(path, O_RDONLY);
    check("opening /proc/self/fd/N opens the file", again >= 0 && read(again, buf, sizeof buf) == 5 && strcmp(buf, "hello") == 0);

    const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    char expected[16] = { 0 }, comm[16] = { 0 };
    strncpy(expected, base, 15);
    prctl(PR_GET_NAME, comm);
    check("comm is the executable's file name (15 bytes at most)", strcmp(comm, expected) == 0);

    char stat[1024];
    check("/proc/self/stat reads", read_file("/proc/self/stat", stat, sizeof stat) > 0);
    char *open_paren = strchr(stat, '('), *close_paren = strrchr(stat, ')');
    check("its comm field is in parentheses", open_paren && close_paren && strncmp(open_paren + 1, expected, strlen(expected)) == 0);
    int fields = 0;
    for (char *p = close_paren + 1; *p; p++) if (*p == ' ') fields++;
    check("52 fields", fields + 2 == 52);
    char state;
    int ppid, pgrp, session, tty, tpgid;
    unsigned flags;
    long minflt, cminflt, majflt, cmajflt, utime, stime, cutime, cstime, priority, nice, threads;
    int n = sscanf(close_paren + 2, "%c %d %d %d %d %d %u %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld", &state, &ppid,
                   &pgrp, &session, &tty, &tpgid, &flags, &minflt, &cminflt, &majflt, &cmajflt, &utime, &stime,
                   &cutime, &cstime, &priority, &nice, &threads);
    check("state R and one thread", n == 18 && state == 'R' && threads == 1);

    char sys[2048];
    check("/proc/stat reads", read_file("/proc/stat", sys, sizeof sys) > 0);
    check("it starts with the cpu line", strncmp(sys, "cpu ", 4) == 0);
    check("it has btime", strstr(sys, "\nbtime ") != NULL);
    unlink("/tmp/procfs-test");
    return finish();
}
