/* raise: sends signal atoi(argv[1]) to itself with the default action, by argv[2] =
 * "raise" (libc), "kill", "tkill" or "tgkill". Terminating signals end it with status
 * 128+sig (SIGTERM 143, SIGKILL 137, SIGUSR1 138); ignored-by-default ones (SIGCHLD,
 * SIGURG, SIGWINCH) do nothing and it prints "survived" and exits 0. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

int main(int argc, char **argv) {
    int sig = argc > 1 ? atoi(argv[1]) : SIGTERM;
    const char *how = argc > 2 ? argv[2] : "raise";
    printf("sending signal %d via %s\n", sig, how);
    fflush(stdout);
    long r;
    if (strcmp(how, "kill") == 0) r = syscall(SYS_kill, getpid(), sig);
    else if (strcmp(how, "tkill") == 0) r = syscall(SYS_tkill, syscall(SYS_gettid), sig);
    else if (strcmp(how, "tgkill") == 0) r = syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), sig);
    else r = raise(sig);
    printf("survived, result %ld\n", r);
    return 0;
}
