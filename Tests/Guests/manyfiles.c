/* manyfiles: empty files in one /tmp directory until the file system is full. The VM's tmpfs
 * lives in its memory, so names and inodes must run out as tmpfs's do on Linux (ENOSPC),
 * not take the kernel's last memory (the guest kernel used to panic near 200,000 files).
 * Then every file is removed and as many can be made again: the memory came back. Run under
 * apus with a small --memory (natively it would fill the host's /tmp: it stops at 4,000,000).
 * Prints no counts, so the output does not depend on --memory. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common.h"

#define LIMIT 4000000L

static long fill(const char *dir, int *error) {
    char path[64];
    long n = 0;
    *error = 0;
    for (; n < LIMIT; n++) {
        snprintf(path, sizeof path, "%s/f%07ld", dir, n);
        int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0600);
        if (fd < 0) { *error = errno; break; }
        close(fd);
    }
    return n;
}

/* Last name first: each removal is then at the end of the directory's sorted name list. */
static int empty(const char *dir, long count) {
    char path[64];
    for (long i = count - 1; i >= 0; i--) {
        snprintf(path, sizeof path, "%s/f%07ld", dir, i);
        if (unlink(path) != 0) return 0;
    }
    return 1;
}

int main(void) {
    check("mkdir /tmp/many", mkdir("/tmp/many", 0700) == 0);
    int error;
    long first = fill("/tmp/many", &error);
    check("creating files until full fails with ENOSPC", error == ENOSPC);
    check("more than 10,000 files went in", first > 10000);
    char path[64];
    snprintf(path, sizeof path, "/tmp/many/f%07ld", first - 1);
    struct stat st;
    check("the last file is there", stat(path, &st) == 0 && S_ISREG(st.st_mode));
    check("a directory cannot be made either", mkdir("/tmp/many/sub", 0700) == -1 && errno == ENOSPC);
    check("a symlink cannot be made either", symlink("/tmp/x", "/tmp/many/link") == -1 && errno == ENOSPC);
    check("the files can all be removed", empty("/tmp/many", first));
    check("and a directory made", mkdir("/tmp/many/sub", 0700) == 0 && rmdir("/tmp/many/sub") == 0);
    long second = fill("/tmp/many", &error);
    check("the memory came back: as many files again", error == ENOSPC && second >= first);
    check("removed again", empty("/tmp/many", second) && rmdir("/tmp/many") == 0);
    return finish();
}
