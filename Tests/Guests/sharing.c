/* What processes share through the kernel: descriptors passed over AF_UNIX sockets
 * (SCM_RIGHTS) and advisory file locks (fcntl record locks, OFD locks, flock) that conflict
 * between processes. Runs natively and under apus with identical output (pids are only
 * compared, never printed). Uses a private directory under /tmp. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

/* Sends `count` descriptors with one byte. */
static int send_fds(int sock, const int *fds, int count) {
    char byte = 'F';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union { char buf[CMSG_SPACE(8 * sizeof(int))]; struct cmsghdr align; } u;
    memset(&u, 0, sizeof u);
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = CMSG_SPACE(count * sizeof(int))};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(count * sizeof(int));
    memcpy(CMSG_DATA(c), fds, count * sizeof(int));
    return (int)sendmsg(sock, &msg, 0);
}

/* Receives one byte and up to `room` descriptors (control buffer for `room`); returns how
 * many arrived, -1 on error; *flags gets msg_flags. */
static int receive_fds(int sock, int *fds, int room, int recv_flags, int *flags) {
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union { char buf[CMSG_SPACE(8 * sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = room ? u.buf : NULL,
                         .msg_controllen = room ? CMSG_LEN(room * sizeof(int)) : 0};
    if (recvmsg(sock, &msg, recv_flags) != 1) return -1;
    *flags = msg.msg_flags;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c) return 0;
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) return -1;
    int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    memcpy(fds, CMSG_DATA(c), n * sizeof(int));
    return n;
}

static int lock(int fd, int cmd, short type, off_t start, off_t len) {
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    return fcntl(fd, cmd, &fl);
}

static void passing(const char *dir) {
    int sv[2];
    check("socketpair", socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    char path[256];
    snprintf(path, sizeof path, "%s/passed", dir);
    int file = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    check("write the file", write(file, "0123456789", 10) == 10);
    lseek(file, 2, SEEK_SET);
    int pipefd[2];
    check("pipe", pipe(pipefd) == 0);

    pid_t child = fork();
    if (child == 0) {
        close(sv[0]);
        int fds[4], flags = 0;
        int n = receive_fds(sv[1], fds, 2, MSG_CMSG_CLOEXEC, &flags);
        int ok = n == 2 && !(flags & MSG_CTRUNC);
        /* The file's description is shared: its offset (2) came along, reads move it. */
        char buf[4] = {0};
        ok = ok && read(fds[0], buf, 3) == 3 && memcmp(buf, "234", 3) == 0;
        ok = ok && (fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
        /* The pipe's write end works after the sender closed its own. */
        ok = ok && write(fds[1], "via passed pipe", 15) == 15;
        close(fds[0]);
        close(fds[1]);
        /* A second message with two descriptors and room for one: MSG_CTRUNC, one arrives. */
        n = receive_fds(sv[1], fds, 1, 0, &flags);
        ok = ok && n == 1 && (flags & MSG_CTRUNC) && !(fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
        close(fds[0]);
        /* No room at all: the byte arrives, the descriptor is closed. */
        n = receive_fds(sv[1], fds, 0, 0, &flags);
        ok = ok && n == 0 && (flags & MSG_CTRUNC);
        _exit(ok ? 0 : 1);
    }
    close(sv[1]);
    int fds[2] = {file, pipefd[1]};
    check("sendmsg with 2 descriptors", send_fds(sv[0], fds, 2) == 1);
    close(pipefd[1]);
    int two[2] = {file, file};
    check("sendmsg with 2, room for 1", send_fds(sv[0], two, 2) == 1);
    check("sendmsg, no room", send_fds(sv[0], two, 1) == 1);
    int bad = 99;
    errno = 0;
    check("sendmsg of a closed descriptor is EBADF", send_fds(sv[0], &bad, 1) < 0 && errno == EBADF);
    close(file);
    char buf[32] = {0};
    ssize_t got = read(pipefd[0], buf, sizeof buf - 1);
    check("the child wrote through the passed pipe", got == 15 && strcmp(buf, "via passed pipe") == 0);
    check("end of file once the passed end closed", read(pipefd[0], buf, 1) == 0);
    int status;
    check("child checks passed", waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(sv[0]);
    close(pipefd[0]);
    unlink(path);
}

static volatile sig_atomic_t sigio_count;
static void on_sigio(int sig) { (void)sig; sigio_count++; }

/* Signal-driven I/O on a socketpair, as nginx's master sets up its worker channels: the
 * owner (F_SETOWN) gets SIGIO when data arrives once O_ASYNC is on (FIOASYNC or F_SETFL),
 * and not after it is turned off. */
static void signal_driven(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    signal(SIGIO, on_sigio);
    int on = 1;
    check("F_SETOWN and FIOASYNC", fcntl(sv[0], F_SETOWN, getpid()) == 0 && ioctl(sv[0], FIOASYNC, &on) == 0);
    check("F_GETOWN names the owner", fcntl(sv[0], F_GETOWN) == getpid());
    check("O_ASYNC shows in F_GETFL", (fcntl(sv[0], F_GETFL) & O_ASYNC) != 0);
    pid_t child = fork();
    if (child == 0) _exit(write(sv[1], "x", 1) == 1 ? 0 : 1);
    int status;
    waitpid(child, &status, 0);
    char byte;
    check("SIGIO when the other process wrote", sigio_count >= 1 && read(sv[0], &byte, 1) == 1);
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) & ~O_ASYNC);
    int before = sigio_count;
    write(sv[1], "y", 1);
    check("no SIGIO with O_ASYNC off", sigio_count == before);
    signal(SIGIO, SIG_DFL);
    close(sv[0]);
    close(sv[1]);
}

/* Two children accept on the listening socket they inherited; each takes one connection
 * and then stops accepting, so the second connection must be the other child's (what
 * nginx's workers do with their shared listener). */
static void shared_listener(void) {
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof address;
    check("listen on 127.0.0.1", bind(listener, (struct sockaddr *)&address, sizeof address) == 0 &&
          listen(listener, 8) == 0 && getsockname(listener, (struct sockaddr *)&address, &length) == 0);
    int done[2];
    pipe(done);
    pid_t children[2];
    for (int i = 0; i < 2; i++) {
        children[i] = fork();
        if (children[i] == 0) {
            close(done[1]);
            int c = accept(listener, NULL, NULL);
            char tag = (char)('A' + i);
            int ok = c >= 0 && write(c, &tag, 1) == 1;
            char byte;
            read(done[0], &byte, 1);   /* holds on until the parent has both answers */
            _exit(ok ? 0 : 1);
        }
    }
    close(listener);
    close(done[0]);
    char tags[3] = {0};
    for (int i = 0; i < 2; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&address, sizeof address) != 0 || read(s, &tags[i], 1) != 1) tags[i] = '?';
        close(s);
    }
    check("each child accepted one connection", (tags[0] == 'A' && tags[1] == 'B') || (tags[0] == 'B' && tags[1] == 'A'));
    close(done[1]);
    int ok = 1, status;
    for (int i = 0; i < 2; i++) ok &= waitpid(children[i], &status, 0) == children[i] && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    check("both acceptors exited 0", ok);
}

static void record_locks(const char *dir) {
    char path[256];
    snprintf(path, sizeof path, "%s/locked", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    check("write lock on 0..100", lock(fd, F_SETLK, F_WRLCK, 0, 100) == 0);
    check("read lock on 200.. (to the end)", lock(fd, F_SETLK, F_RDLCK, 200, 0) == 0);
    pid_t parent = getpid();
    int ready[2], go[2];
    pipe(ready);
    pipe(go);
    pid_t child = fork();
    if (child == 0) {
        int cfd = open(path, O_RDWR);
        int ok = 1;
        errno = 0;
        ok &= lock(cfd, F_SETLK, F_WRLCK, 50, 10) < 0 && (errno == EAGAIN || errno == EACCES);
        ok &= lock(cfd, F_SETLK, F_RDLCK, 300, 10) == 0;    /* readers share */
        ok &= lock(cfd, F_SETLK, F_WRLCK, 100, 100) == 0;   /* the gap between */
        struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
        ok &= fcntl(cfd, F_GETLK, &q) == 0 && q.l_type == F_WRLCK && q.l_start == 0 && q.l_len == 100 && q.l_pid == parent;
        /* The inherited descriptor's locks are still the parent's, not the child's. */
        ok &= lock(fd, F_SETLK, F_WRLCK, 0, 10) < 0;
        write(ready[1], "r", 1);
        /* Blocks until the parent unlocks 0..100. */
        ok &= lock(cfd, F_SETLKW, F_WRLCK, 0, 100) == 0;
        char c;
        ok &= read(go[0], &c, 1) == 1 && c == 'u';
        _exit(ok ? 0 : 1);
    }
    char c;
    read(ready[0], &c, 1);
    struct flock q = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 150, .l_len = 1};
    check("F_GETLK sees the child's write lock", fcntl(fd, F_GETLK, &q) == 0 && q.l_type == F_WRLCK && q.l_pid == child);
    usleep(50000);
    write(go[1], "u", 1);
    check("unlock 0..100 (the child's F_SETLKW then gets it)", lock(fd, F_SETLK, F_UNLCK, 0, 100) == 0);
    int status;
    check("child's record lock checks passed", waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    check("the child's locks went with it", lock(fd, F_SETLK, F_WRLCK, 0, 0) == 0);

    /* Closing any descriptor of the file drops the process's locks on it. */
    int other = open(path, O_RDONLY);
    close(other);
    child = fork();
    if (child == 0) {
        int cfd = open(path, O_RDWR);
        _exit(lock(cfd, F_SETLK, F_WRLCK, 0, 0) == 0 ? 0 : 1);
    }
    check("a close of another descriptor released them", waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);

    /* OFD locks belong to the description: they conflict between two opens in one process. */
    int d1 = open(path, O_RDWR), d2 = open(path, O_RDWR);
    check("OFD write lock", lock(d1, F_OFD_SETLK, F_WRLCK, 0, 10) == 0);
    errno = 0;
    check("another description conflicts (same process)", lock(d2, F_OFD_SETLK, F_WRLCK, 5, 1) < 0 && errno == EAGAIN);
    close(d1);
    check("closing the description released it", lock(d2, F_OFD_SETLK, F_WRLCK, 5, 1) == 0);
    close(d2);
    close(fd);
    unlink(path);
}

static void flock_locks(const char *dir) {
    char path[256];
    snprintf(path, sizeof path, "%s/flocked", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    check("flock LOCK_EX", flock(fd, LOCK_EX) == 0);
    int again = open(path, O_RDONLY);
    errno = 0;
    check("another open's LOCK_SH|LOCK_NB is EWOULDBLOCK", flock(again, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK);
    pid_t child = fork();
    if (child == 0) {
        /* The inherited descriptor shares the description, so its lock too. */
        int ok = flock(fd, LOCK_EX | LOCK_NB) == 0;
        int own = open(path, O_RDONLY);
        ok &= flock(own, LOCK_SH | LOCK_NB) < 0;
        ok &= flock(own, LOCK_SH) == 0;   /* waits for the parent's unlock */
        _exit(ok ? 0 : 1);
    }
    usleep(50000);
    check("LOCK_UN", flock(fd, LOCK_UN) == 0);
    int status;
    check("child's flock checks passed", waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    check("after the child exited, LOCK_EX is free", flock(again, LOCK_EX | LOCK_NB) == 0);
    errno = 0;
    check("bad operation is EINVAL", flock(fd, 0) < 0 && errno == EINVAL);
    close(again);
    close(fd);
    unlink(path);
}

int main(void) {
    char dir[] = "/tmp/apus-sharing-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    passing(dir);
    shared_listener();
    signal_driven();
    record_locks(dir);
    flock_locks(dir);
    rmdir(dir);
    return finish();
}
