/* sysinfo: the "what machine am I on" syscalls programs ask at startup. uname (sysname
 * "Linux", machine "x86_64", release non-empty), getrlimit/prlimit64 RLIMIT_STACK and
 * RLIMIT_NOFILE (cur > 0, cur <= max), sysinfo (RAM > 0, free <= total, procs >= 1),
 * sched_getaffinity (>= 1 CPU), readlink("/proc/self/exe") (succeeds, absolute, ends with
 * "/" + basename(argv[0])), isatty/TCGETS and TIOCGWINSZ on fds 0-2 (ENOTTY: the harness
 * never gives a terminal), fstat on fds 0-2 (succeeds; a pipe/char device, not a file). */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <termios.h>
#include "common.h"

int main(int argc, char **argv) {
    (void)argc;
    struct utsname u;
    check("uname succeeds", uname(&u) == 0);
    printf("uname sysname: %s\n", u.sysname);
    printf("uname machine: %s\n", u.machine);
    check("uname release non-empty", u.release[0] != 0);

    struct rlimit rl;
    check("getrlimit(RLIMIT_STACK) succeeds", getrlimit(RLIMIT_STACK, &rl) == 0);
    check("RLIMIT_STACK cur > 0 and cur <= max", rl.rlim_cur > 0 && rl.rlim_cur <= rl.rlim_max);
    check("prlimit(0, RLIMIT_STACK) succeeds", prlimit(0, RLIMIT_STACK, NULL, &rl) == 0);
    check("prlimit(0, RLIMIT_NOFILE) succeeds", prlimit(0, RLIMIT_NOFILE, NULL, &rl) == 0);
    check("RLIMIT_NOFILE cur > 2", rl.rlim_cur > 2 && rl.rlim_cur <= rl.rlim_max);

    struct sysinfo si;
    check("sysinfo succeeds", sysinfo(&si) == 0);
    check("sysinfo totalram > 0", (unsigned long long)si.totalram * si.mem_unit > 0);
    check("sysinfo freeram <= totalram", si.freeram <= si.totalram);
    check("sysinfo procs >= 1", si.procs >= 1);
    check("sysinfo mem_unit >= 1", si.mem_unit >= 1);

    cpu_set_t set;
    CPU_ZERO(&set);
    check("sched_getaffinity succeeds", sched_getaffinity(0, sizeof set, &set) == 0);
    check("sched_getaffinity >= 1 cpu", CPU_COUNT(&set) >= 1);

    char exe[PATH_MAX + 1];
    ssize_t n = readlink("/proc/self/exe", exe, PATH_MAX);
    check("readlink(/proc/self/exe) succeeds", n > 0);
    if (n > 0) {
        exe[n] = 0;
        const char *base = strrchr(argv[0], '/');
        base = base ? base + 1 : argv[0];
        size_t bl = strlen(base);
        check("/proc/self/exe is absolute", exe[0] == '/');
        check("/proc/self/exe ends with /basename(argv[0])",
              (size_t)n > bl && exe[n - bl - 1] == '/' && strcmp(exe + n - bl, base) == 0);
    }
    char tiny[4];
    check("readlink into a 4-byte buffer truncates to 4", readlink("/proc/self/exe", tiny, sizeof tiny) == 4);

    for (int fd = 0; fd <= 2; fd++) {
        char what[64];
        errno = 0;
        int tty = isatty(fd);
        snprintf(what, sizeof what, "isatty(%d) is 0 with ENOTTY", fd);
        check(what, tty == 0 && errno == ENOTTY);
        struct winsize ws;
        errno = 0;
        snprintf(what, sizeof what, "ioctl(%d, TIOCGWINSZ) fails with ENOTTY", fd);
        check(what, ioctl(fd, TIOCGWINSZ, &ws) == -1 && errno == ENOTTY);
        struct stat st;
        snprintf(what, sizeof what, "fstat(%d) succeeds", fd);
        int ok = fstat(fd, &st) == 0;
        check(what, ok);
        snprintf(what, sizeof what, "fstat(%d) is a fifo or char device", fd);
        check(what, ok && (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)));
    }
    struct stat st;
    errno = 0;
    check("fstat(999) fails with EBADF", fstat(999, &st) == -1 && errno == EBADF);
    return finish();
}
