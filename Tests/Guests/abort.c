/* abort: prints a line on each stream, then abort() → killed by SIGABRT, status 134,
 * and nothing more on stdout/stderr than what was printed before (no crash report: it
 * is a signal, not a fault). glibc goes through rt_sigprocmask + tgkill, musl through
 * tkill. Output printed with printf but not flushed before abort() must be lost. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    printf("about to abort\n");
    fflush(stdout);
    fprintf(stderr, "stderr before abort\n");
    printf("this unflushed line is lost\n");
    abort();
}
