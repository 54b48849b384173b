/* procinfo: process information calls. uname's nodename (the test passes the host's name to
 * apus run --hostname), prctl PR_SET_NAME/PR_GET_NAME (per thread), getrusage, times,
 * getcpu, sched_setaffinity to CPU 0, getgroups, capget, close_range, and select on a pipe. */
#define _GNU_SOURCE
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/times.h>
#include <sys/utsname.h>
#include <unistd.h>

static char thread_name[16];
static void *named(void *arg) {
    (void)arg;
    prctl(PR_GET_NAME, thread_name);  /* inherited from the creator */
    prctl(PR_SET_NAME, "worker");
    return NULL;
}

int main(void) {
    struct utsname u;
    uname(&u);
    printf("nodename: %s\n", u.nodename);

    check("PR_SET_NAME", prctl(PR_SET_NAME, "main-thread-name-too-long") == 0);
    char name[16] = {0};
    check("PR_GET_NAME truncates to 15 bytes", prctl(PR_GET_NAME, name) == 0 && strcmp(name, "main-thread-nam") == 0);
    pthread_t t;
    pthread_create(&t, NULL, named, NULL);
    pthread_join(t, NULL);
    check("a new thread inherits the name", strcmp(thread_name, "main-thread-nam") == 0);
    prctl(PR_GET_NAME, name);
    check("and renaming it leaves ours", strcmp(name, "main-thread-nam") == 0);

    struct rusage ru;
    check("getrusage(RUSAGE_SELF)", getrusage(RUSAGE_SELF, &ru) == 0);
    check("getrusage(bad who): EINVAL", getrusage(42, &ru) == -1 && errno == EINVAL);
    struct tms tm;
    check("times", times(&tm) != (clock_t)-1);
    unsigned cpu = 99, node = 99;
    check("getcpu", syscall(SYS_getcpu, &cpu, &node, NULL) == 0 && cpu < 1024 && node < 64);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    check("sched_setaffinity to CPU 0", sched_setaffinity(0, sizeof set, &set) == 0);
    check("getgroups", getgroups(0, NULL) >= 0);

    int a = open("/dev/null", O_RDONLY), b = open("/dev/null", O_RDONLY), c = open("/dev/null", O_RDONLY);
    check("close_range closes them all", syscall(SYS_close_range, a, ~0U, 0) == 0 &&
          fcntl(a, F_GETFD) == -1 && fcntl(b, F_GETFD) == -1 && fcntl(c, F_GETFD) == -1);

    int p[2];
    pipe(p);
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(p[0], &rd);
    struct timeval tv = { 0, 1000 };
    check("select: an empty pipe is not readable", select(p[0] + 1, &rd, NULL, NULL, &tv) == 0);
    write(p[1], "x", 1);
    FD_ZERO(&rd);
    FD_SET(p[0], &rd);
    tv.tv_usec = 1000;
    check("select: readable after a write", select(p[0] + 1, &rd, NULL, NULL, &tv) == 1 && FD_ISSET(p[0], &rd));
    return finish();
}
