/* gaps: calls real programs make that Apus lacked — creat (tar), the xattr reads (ls -l,
 * cp -a), getpriority/setpriority (Dispatch), prctl(PR_SET_NO_NEW_PRIVS) (haproxy), syncfs,
 * fstat's file type of pipes and sockets, epoll_ctl refusing regular files.
 * One line per check, the same natively and in Apus; exits 0 when all pass. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

static int failures;
static void check(const char *what, int ok, const char *detail) {
    printf("%s: %s%s%s\n", what, ok ? "ok" : "FAIL", ok ? "" : " ", ok ? "" : detail);
    if (!ok) failures++;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *path = "/tmp/apus-gaps-file";
    unlink(path);
    int fd = creat(path, 0640);
    check("creat makes the file", fd >= 0, strerror(errno));
    check("creat's descriptor is write-only", (fcntl(fd, F_GETFL) & O_ACCMODE) == O_WRONLY, "not O_WRONLY");
    check("creat's descriptor writes", write(fd, "hello", 5) == 5, strerror(errno));
    close(fd);
    fd = creat(path, 0640);
    struct stat st;
    check("creat truncates an existing file", fstat(fd, &st) == 0 && st.st_size == 0, "not empty");
    check("creat's mode (less the umask)", (st.st_mode & 0777) == (0640 & ~022), "wrong mode");
    char value[64];
    errno = 0;
    check("getxattr of a file without attributes: ENODATA", getxattr(path, "user.apus", value, sizeof value) == -1 && errno == ENODATA, strerror(errno));
    errno = 0;
    check("lgetxattr: ENODATA", lgetxattr(path, "user.apus", value, sizeof value) == -1 && errno == ENODATA, strerror(errno));
    errno = 0;
    check("fgetxattr: ENODATA", fgetxattr(fd, "user.apus", value, sizeof value) == -1 && errno == ENODATA, strerror(errno));
    errno = 0;
    check("getxattr of a missing file: ENOENT", getxattr("/tmp/apus-gaps-missing", "user.apus", value, sizeof value) == -1 && errno == ENOENT, strerror(errno));
    char list[256];
    check("listxattr of a file without attributes: empty", listxattr(path, list, sizeof list) == 0, strerror(errno));
    check("flistxattr: empty", flistxattr(fd, list, sizeof list) == 0, strerror(errno));
    check("syncfs", syncfs(fd) == 0, strerror(errno));
    errno = 0;
    check("syncfs of a closed descriptor: EBADF", syncfs(1000) == -1 && errno == EBADF, strerror(errno));
    int ep = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN};
    errno = 0;
    check("epoll_ctl ADD of a regular file: EPERM", epoll_ctl(ep, EPOLL_CTL_ADD, fd, &event) == -1 && errno == EPERM, strerror(errno));
    int dir = open("/tmp", O_RDONLY | O_DIRECTORY);
    errno = 0;
    check("epoll_ctl ADD of a directory: EPERM", epoll_ctl(ep, EPOLL_CTL_ADD, dir, &event) == -1 && errno == EPERM, strerror(errno));
    close(dir);
    close(ep);
    close(fd);
    unlink(path);

    int p[2], sv[2];
    check("pipe", pipe(p) == 0, strerror(errno));
    check("fstat of a pipe: a FIFO", fstat(p[0], &st) == 0 && S_ISFIFO(st.st_mode) && (st.st_mode & 0777) == 0600, "not a FIFO 0600");
    check("socketpair", socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, strerror(errno));
    check("fstat of a socket: a socket", fstat(sv[0], &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0777, "not a socket 0777");
    close(p[0]); close(p[1]); close(sv[0]); close(sv[1]);

    errno = 0;
    int before = getpriority(PRIO_PROCESS, 0);
    check("getpriority of the caller", before == 0 && errno == 0, strerror(errno));
    check("setpriority to nice 5", setpriority(PRIO_PROCESS, 0, 5) == 0, strerror(errno));
    check("getpriority reads 5", getpriority(PRIO_PROCESS, 0) == 5, "not 5");
    check("setpriority clamps 40 to 19", setpriority(PRIO_PROCESS, 0, 40) == 0 && getpriority(PRIO_PROCESS, 0) == 19, "not 19");
    setpriority(PRIO_PROCESS, 0, 5);
    errno = 0;
    check("setpriority of no such process: ESRCH", setpriority(PRIO_PROCESS, 999999, 1) == -1 && errno == ESRCH, strerror(errno));
    errno = 0;
    check("getpriority with a bad which: EINVAL", getpriority(7, 0) == -1 && errno == EINVAL, strerror(errno));

    check("PR_GET_NO_NEW_PRIVS starts 0", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 0, "not 0");
    errno = 0;
    check("PR_SET_NO_NEW_PRIVS with 2: EINVAL", prctl(PR_SET_NO_NEW_PRIVS, 2, 0, 0, 0) == -1 && errno == EINVAL, strerror(errno));
    check("PR_SET_NO_NEW_PRIVS", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, strerror(errno));
    check("PR_GET_NO_NEW_PRIVS reads 1", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, "not 1");

    pid_t pid = fork();
    if (pid == 0) {
        int ok = getpriority(PRIO_PROCESS, 0) == 5 && prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    check("a child inherits nice and no_new_privs", waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0, "not inherited");
    printf("failures: %d\n", failures);
    return failures ? 1 : 0;
}
