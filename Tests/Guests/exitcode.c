/* exitcode: exits with atoi(argv[1]) (status is taken mod 256 by Linux). argv[2] selects
 * how: "exit" (default: libc exit() → exit_group), "return" (return from main),
 * "raw-exit" (the bare SYS_exit of the only thread), "raw-exit-group" (SYS_exit_group). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

int main(int argc, char **argv) {
    int code = argc > 1 ? atoi(argv[1]) : 0;
    const char *how = argc > 2 ? argv[2] : "exit";
    printf("exiting with %d via %s\n", code, how);
    fflush(stdout);
    if (strcmp(how, "return") == 0) return code;
    if (strcmp(how, "raw-exit") == 0) syscall(SYS_exit, code);
    if (strcmp(how, "raw-exit-group") == 0) syscall(SYS_exit_group, code);
    exit(code);
}
