/* ids: process and user identity syscalls. getpid == gettid (single thread), pid > 0,
 * getppid != getpid, uid == euid and gid == egid, set_tid_address returns the tid, the
 * raw syscalls agree with the libc wrappers. Values themselves differ between the host and
 * the VM, so only relations are printed. */
#define _GNU_SOURCE
#include <unistd.h>
#include <sys/syscall.h>
#include "common.h"

int main(void) {
    pid_t pid = getpid();
    pid_t tid = (pid_t)syscall(SYS_gettid);
    check("getpid() > 0", pid > 0);
    check("getpid()==gettid()", pid == tid);
    check("raw getpid agrees", syscall(SYS_getpid) == pid);
    check("getppid() != getpid()", getppid() != pid);
    check("getppid() >= 0", getppid() >= 0);
    check("getuid()==geteuid()", getuid() == geteuid());
    check("getgid()==getegid()", getgid() == getegid());
    check("raw getuid agrees", syscall(SYS_getuid) == (long)getuid());
    check("raw getgid agrees", syscall(SYS_getgid) == (long)getgid());
    static int tid_slot;
    check("set_tid_address returns the tid", syscall(SYS_set_tid_address, &tid_slot) == tid);
    return finish();
}
