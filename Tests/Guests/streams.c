// streams: what fstat says the standard streams are (S_IFMT), as the program's own view of
// the stdin, stdout and stderr it was given. Prints "fd N: TYPE" for fd 0 only, or for
// every fd named as an argument.
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

static const char *type(mode_t mode) {
    switch (mode & S_IFMT) {
    case S_IFIFO: return "fifo";
    case S_IFCHR: return "character device";
    case S_IFREG: return "regular file";
    case S_IFSOCK: return "socket";
    case S_IFDIR: return "directory";
    default: return "other";
    }
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc || i == 1; i++) {
        int fd = argc > 1 ? atoi(argv[i]) : 0;
        struct stat st;
        if (fstat(fd, &st) != 0) { printf("fd %d: fstat failed\n", fd); return 1; }
        printf("fd %d: %s", fd, type(st.st_mode));
        if (S_ISCHR(st.st_mode)) printf(" %u:%u", major(st.st_rdev), minor(st.st_rdev));
        if (S_ISREG(st.st_mode)) printf(" of %lld bytes", (long long)st.st_size);
        printf("\n");
    }
    return 0;
}
