/* forkmem: a process that has written most of the VM's memory forks. Apus copies private
 * memory at fork (on pvm it cannot copy on write), so the copy does not fit: fork must fail
 * with ENOMEM and nothing else may break — after the memory is given back, fork, pipes and
 * exit statuses work. (Natively, Linux's copy on write lets such a fork succeed: this guest
 * is for the VM only.) Prints one line per check, exits 0 when all pass. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;
static void check(const char *what, int ok, const char *detail) {
    printf("%s: %s%s%s\n", what, ok ? "ok" : "FAIL", ok ? "" : " ", ok ? "" : detail);
    if (!ok) failures++;
}

static long meminfo(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[128];
    long value = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, strlen(key)) == 0) value = atol(line + strlen(key));
    if (f) fclose(f);
    return value;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    long free_kib = meminfo("MemFree:");
    check("MemFree is readable", free_kib > 0, "no MemFree line");
    size_t size = (size_t)free_kib * 1024 / 10 * 6;  /* 60% of what is free */
    char *big = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check("60% of free memory mapped", big != MAP_FAILED, strerror(errno));
    if (big == MAP_FAILED) return 1;
    memset(big, 0x5a, size);  /* written: fork must copy every page */
    pid_t pid = fork();
    if (pid == 0) _exit(big[size - 1] == 0x5a ? 0 : 1);
    int err = errno;
    if (pid > 0) waitpid(pid, NULL, 0);
    check("fork of the large process fails with ENOMEM", pid < 0 && err == ENOMEM,
          pid < 0 ? strerror(err) : "fork succeeded");
    check("the parent's memory is intact", big[0] == 0x5a && big[size / 2] == 0x5a && big[size - 1] == 0x5a, "changed");
    munmap(big, size);

    int fds[2];
    check("pipe", pipe(fds) == 0, strerror(errno));
    pid = fork();
    if (pid == 0) { close(fds[0]); write(fds[1], "hi", 2); _exit(7); }
    check("fork after the memory was given back", pid > 0, strerror(errno));
    close(fds[1]);
    char buffer[4] = {0};
    check("the child's bytes through the pipe", read(fds[0], buffer, sizeof buffer) == 2 && memcmp(buffer, "hi", 2) == 0, buffer);
    int status = 0;
    check("the child's exit status", waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 7, "wrong");
    printf("failures: %d\n", failures);
    return failures ? 1 : 0;
}
