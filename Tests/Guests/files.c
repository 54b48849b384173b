/* files: the file system as a program sees it. A private directory under /tmp (mkdtemp):
 * create, write, read, lseek, pread/pwrite, ftruncate, fstat sizes, mkdir, getdents listing
 * (sorted here), rename, unlink, rmdir and their errors; symlinks and readlink; getcwd/chdir;
 * dup2 of stdout into a file and back; O_APPEND and O_EXCL; fcntl flags; access; a private
 * file mmap; /dev/null, /dev/zero, /dev/urandom; and the program's own file through
 * /proc/self/exe. Prints no paths and no times, so the output is the same natively. */
#define _GNU_SOURCE
#include "common.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(void) {
    char dir[] = "/tmp/apus-files-XXXXXX";
    check("mkdtemp", mkdtemp(dir) != NULL);
    check("chdir into it", chdir(dir) == 0);
    char cwd[256];
    check("getcwd names it", getcwd(cwd, sizeof cwd) && strcmp(cwd, dir) == 0);

    int fd = open("a.txt", O_CREAT | O_RDWR | O_EXCL, 0644);
    check("create a file", fd >= 3);
    check("write", write(fd, "hello, files\n", 13) == 13);
    check("O_EXCL on an existing file: EEXIST", open("a.txt", O_CREAT | O_EXCL | O_WRONLY, 0644) == -1 && errno == EEXIST);
    struct stat st;
    check("fstat size", fstat(fd, &st) == 0 && st.st_size == 13 && S_ISREG(st.st_mode));
    check("lseek to 7", lseek(fd, 7, SEEK_SET) == 7);
    char buf[64] = {0};
    check("read the rest", read(fd, buf, sizeof buf) == 6 && memcmp(buf, "files\n", 6) == 0);
    check("pwrite in the middle", pwrite(fd, "HELLO", 5, 0) == 5);
    memset(buf, 0, sizeof buf);
    check("pread it back", pread(fd, buf, 13, 0) == 13 && memcmp(buf, "HELLO, files\n", 13) == 0);
    check("lseek SEEK_END", lseek(fd, 0, SEEK_END) == 13);
    char v1[3], v2[4];
    struct iovec iov[2] = { { v1, 3 }, { v2, 4 } };
    check("preadv gathers from an offset", preadv(fd, iov, 2, 1) == 7 && memcmp(v1, "ELL", 3) == 0 && memcmp(v2, "O, f", 4) == 0);
    struct iovec wv[2] = { { "he", 2 }, { "llo", 3 } };
    check("pwritev scatters at an offset", pwritev(fd, wv, 2, 0) == 5 && lseek(fd, 0, SEEK_CUR) == 13);
    check("ftruncate", ftruncate(fd, 5) == 0 && fstat(fd, &st) == 0 && st.st_size == 5);
    pwrite(fd, "HELLO", 5, 0);
    close(fd);

    fd = open("a.txt", O_WRONLY | O_APPEND);
    write(fd, "!", 1);
    close(fd);
    fd = open("a.txt", O_RDONLY);
    memset(buf, 0, sizeof buf);
    check("O_APPEND appends", read(fd, buf, sizeof buf) == 6 && strcmp(buf, "HELLO!") == 0);
    check("fcntl F_GETFL says read-only", (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY);
    check("fcntl F_SETFD FD_CLOEXEC", fcntl(fd, F_SETFD, FD_CLOEXEC) == 0 && fcntl(fd, F_GETFD) == FD_CLOEXEC);
    check("write to a read-only descriptor: EBADF", write(fd, "x", 1) == -1 && errno == EBADF);
    close(fd);
    check("read of a closed descriptor: EBADF", read(fd, buf, 1) == -1 && errno == EBADF);

    check("mkdir", mkdir("sub", 0755) == 0);
    check("mkdir again: EEXIST", mkdir("sub", 0755) == -1 && errno == EEXIST);
    close(open("sub/x", O_CREAT | O_WRONLY, 0600));
    close(open("b.txt", O_CREAT | O_WRONLY, 0600));
    check("rename", rename("b.txt", "sub/y") == 0);
    check("symlink", symlink("a.txt", "link") == 0);
    char target[64] = {0};
    check("readlink", readlink("link", target, sizeof target) == 5 && strcmp(target, "a.txt") == 0);
    check("stat follows the link", stat("link", &st) == 0 && st.st_size == 6);
    check("lstat does not", lstat("link", &st) == 0 && S_ISLNK(st.st_mode));

    DIR *d = opendir(".");
    char *names[16];
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) && n < 16) names[n++] = strdup(e->d_name);
    if (d) closedir(d);
    qsort(names, n, sizeof *names, cmp);
    printf("listing:");
    for (int i = 0; i < n; i++) printf(" %s", names[i]);
    printf("\n");

    check("rmdir a non-empty directory: ENOTEMPTY", rmdir("sub") == -1 && errno == ENOTEMPTY);
    check("unlink", unlink("sub/x") == 0 && unlink("sub/y") == 0);
    check("rmdir", rmdir("sub") == 0);
    check("open a missing file: ENOENT", open("nope", O_RDONLY) == -1 && errno == ENOENT);
    check("open a file as a directory: ENOTDIR", open("a.txt/", O_RDONLY) == -1 && errno == ENOTDIR);
    check("access F_OK", access("a.txt", F_OK) == 0 && access("nope", F_OK) == -1);

    int saved = dup(1);
    int out = open("captured", O_CREAT | O_WRONLY | O_TRUNC, 0644);
    fflush(stdout);
    int redirected = dup2(out, 1) == 1;
    printf("into the file\n");
    fflush(stdout);
    dup2(saved, 1);
    check("dup2 onto stdout", redirected);
    close(saved);
    close(out);
    fd = open("captured", O_RDONLY);
    memset(buf, 0, sizeof buf);
    read(fd, buf, sizeof buf);
    close(fd);
    check("stdout went to the file and came back", strcmp(buf, "into the file\n") == 0);

    fd = open("a.txt", O_RDONLY);
    char *m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    check("mmap of a file shows its bytes", m != MAP_FAILED && memcmp(m, "HELLO!", 6) == 0 && m[6] == 0);
    munmap(m, 4096);
    close(fd);

    fd = open("/dev/null", O_RDWR);
    check("/dev/null reads nothing, takes everything", read(fd, buf, 10) == 0 && write(fd, "x", 1) == 1);
    close(fd);
    fd = open("/dev/zero", O_RDONLY);
    memset(buf, 7, 16);
    check("/dev/zero reads zeros", read(fd, buf, 16) == 16 && buf[0] == 0 && buf[15] == 0);
    close(fd);
    fd = open("/dev/urandom", O_RDONLY);
    unsigned char r[32] = {0};
    int nonzero = 0;
    check("/dev/urandom reads", read(fd, r, 32) == 32);
    for (int i = 0; i < 32; i++) nonzero |= r[i];
    check("with some nonzero byte", nonzero != 0);
    close(fd);

    fd = open("/proc/self/exe", O_RDONLY);
    unsigned char magic[4] = {0};
    check("/proc/self/exe opens the program itself", fd >= 0 && read(fd, magic, 4) == 4 && memcmp(magic, "\177ELF", 4) == 0);
    close(fd);

    unlink("link");
    unlink("captured");
    unlink("a.txt");
    chdir("/");
    check("the directory is gone at the end", rmdir(dir) == 0);
    return finish();
}
