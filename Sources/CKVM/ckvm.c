#include "ckvm.h"

#include <errno.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

int ckvm_ioctl_ptr(int fd, unsigned long request, void *arg) {
    int r;
    do { r = ioctl(fd, request, arg); } while (r < 0 && errno == EINTR && request != KVM_RUN);
    return r < 0 ? -errno : r;
}

int ckvm_ioctl_int(int fd, unsigned long request, unsigned long arg) {
    int r = ioctl(fd, request, arg);
    return r < 0 ? -errno : r;
}

// struct kvm_msrs ends in a flexible array: one header and one entry, laid out by hand.
struct one_msr {
    uint32_t nmsrs;
    uint32_t pad;
    struct kvm_msr_entry entry;
};
_Static_assert(sizeof(struct kvm_msrs) == 8, "kvm_msrs header layout");

int ckvm_get_msr(int vcpu, uint32_t index, uint64_t *value) {
    struct one_msr m;
    memset(&m, 0, sizeof m);
    m.nmsrs = 1;
    m.entry.index = index;
    int r = ioctl(vcpu, KVM_GET_MSRS, &m);
    if (r < 0) return -errno;
    if (r == 1) *value = m.entry.data;
    return r;
}

int ckvm_set_msr(int vcpu, uint32_t index, uint64_t value) {
    struct one_msr m;
    memset(&m, 0, sizeof m);
    m.nmsrs = 1;
    m.entry.index = index;
    m.entry.data = value;
    int r = ioctl(vcpu, KVM_SET_MSRS, &m);
    return r < 0 ? -errno : r;
}

int ckvm_set_supported_cpuid(int kvm, int vcpu) {
    // 256 entries is more than any current CPU reports; KVM answers E2BIG otherwise.
    const int max = 256;
    struct kvm_cpuid2 *cpuid = calloc(1, sizeof *cpuid + max * sizeof(struct kvm_cpuid_entry2));
    if (!cpuid) return -ENOMEM;
    cpuid->nent = max;
    int r = ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cpuid);
    if (r == 0) r = ioctl(vcpu, KVM_SET_CPUID2, cpuid);
    int e = r < 0 ? -errno : 0;
    free(cpuid);
    return e;
}

uint64_t ckvm_rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static struct kvm_run *volatile watchdog_run;
static volatile sig_atomic_t watchdog_fired;

static void on_alarm(int sig) {
    (void)sig;
    watchdog_fired = 1;
    if (watchdog_run) watchdog_run->immediate_exit = 1;
}

int ckvm_arm_watchdog(struct kvm_run *run, uint64_t milliseconds) {
    watchdog_fired = 0;
    watchdog_run = run;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;  // no SA_RESTART: KVM_RUN must return EINTR
    if (sigaction(SIGALRM, &sa, NULL) < 0) return -errno;
    struct itimerval t;
    memset(&t, 0, sizeof t);
    t.it_value.tv_sec = milliseconds / 1000;
    t.it_value.tv_usec = (milliseconds % 1000) * 1000;
    if (setitimer(ITIMER_REAL, &t, NULL) < 0) return -errno;
    return 0;
}

// A second, short deadline on the armed watchdog (its handler is already installed: no
// sigaction, which the VMM's sandbox forbids by then).
int ckvm_extend_watchdog(uint64_t milliseconds) {
    watchdog_fired = 0;
    struct itimerval t;
    memset(&t, 0, sizeof t);
    t.it_value.tv_sec = milliseconds / 1000;
    t.it_value.tv_usec = (milliseconds % 1000) * 1000;
    return setitimer(ITIMER_REAL, &t, NULL) < 0 ? -errno : 0;
}

void ckvm_disarm_watchdog(void) {
    struct itimerval t;
    memset(&t, 0, sizeof t);
    setitimer(ITIMER_REAL, &t, NULL);
    watchdog_run = NULL;  // the run page may be unmapped next
    watchdog_fired = 0;
}

int ckvm_watchdog_fired(void) { return watchdog_fired; }

long ckvm_getrandom(void *buffer, size_t length) {
    long r = syscall(SYS_getrandom, buffer, length, 0);
    return r < 0 ? -errno : r;
}

// ---- virtio devices -------------------------------------------------------------------

#include <fcntl.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <arpa/inet.h>

int ckvm_ioeventfd(int vm, uint64_t address, uint32_t length, uint64_t datamatch, int eventfd, int assign) {
    struct kvm_ioeventfd e;
    memset(&e, 0, sizeof e);
    e.datamatch = datamatch;
    e.addr = address;
    e.len = length;
    e.fd = eventfd;
    e.flags = KVM_IOEVENTFD_FLAG_DATAMATCH | (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN);
    return ioctl(vm, KVM_IOEVENTFD, &e) < 0 ? -errno : 0;
}

int ckvm_irqfd(int vm, int eventfd, uint32_t gsi, int assign) {
    struct kvm_irqfd f;
    memset(&f, 0, sizeof f);
    f.fd = (uint32_t)eventfd;
    f.gsi = gsi;
    f.flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN;
    return ioctl(vm, KVM_IRQFD, &f) < 0 ? -errno : 0;
}

int ckvm_irq_line(int vm, uint32_t gsi, uint32_t level) {
    struct kvm_irq_level l;
    memset(&l, 0, sizeof l);
    l.irq = gsi;
    l.level = level;
    return ioctl(vm, KVM_IRQ_LINE, &l) < 0 ? -errno : 0;
}

uint16_t ckvm_load_acquire_u16(const void *address) {
    return __atomic_load_n((const uint16_t *)address, __ATOMIC_ACQUIRE);
}

void ckvm_store_release_u16(void *address, uint16_t value) {
    __atomic_store_n((uint16_t *)address, value, __ATOMIC_RELEASE);
}

void ckvm_fence_seq_cst(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

int ckvm_tap_open(const char *name, char *actual) {
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    memcpy(actual, ifr.ifr_name, IFNAMSIZ);
    actual[IFNAMSIZ - 1] = 0;
    return fd;
}

int ckvm_interface_configure(const char *name, uint32_t address, uint32_t netmask, int *step) {
    *step = 0;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(address);
    int r = 0;
    *step = 1;
    if (ioctl(s, SIOCSIFADDR, &ifr) < 0) { r = -errno; goto out; }
    sin->sin_addr.s_addr = htonl(netmask);
    *step = 2;
    if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0) { r = -errno; goto out; }
    *step = 3;
    memset(&ifr.ifr_ifru, 0, sizeof ifr.ifr_ifru);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) { r = -errno; goto out; }
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) { r = -errno; goto out; }
out:
    close(s);
    return r;
}

static void fill_ipv4(struct sockaddr_in *sin, uint32_t address, uint16_t port) {
    memset(sin, 0, sizeof *sin);
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(address);
    sin->sin_port = htons(port);
}

int ckvm_ipv4_bind(int type, uint32_t address, uint16_t port) {
    int s = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) return -errno;
    int one = 1;
    if (type == SOCK_STREAM) setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sin;
    fill_ipv4(&sin, address, port);
    if (bind(s, (struct sockaddr *)&sin, sizeof sin) < 0 || (type == SOCK_STREAM && listen(s, 64) < 0)) {
        int e = errno;
        close(s);
        return -e;
    }
    return s;
}

int ckvm_ipv4_connect(int type, uint32_t address, uint16_t port) {
    int s = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) return -errno;
    struct sockaddr_in sin;
    fill_ipv4(&sin, address, port);
    if (connect(s, (struct sockaddr *)&sin, sizeof sin) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(s);
        return -e;
    }
    return s;
}

int ckvm_socket_error(int fd) {
    int e = 0;
    socklen_t n = sizeof e;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &n) < 0) return errno;
    return e;
}

// accept4 is a GNU extension; this file does not define _GNU_SOURCE before its first includes.
extern int accept4(int fd, struct sockaddr *address, socklen_t *length, int flags);

int ckvm_accept(int fd) {
    int r = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    return r < 0 ? -errno : r;
}

long ckvm_udp_recvfrom(int fd, void *buffer, size_t length, uint32_t *address, uint16_t *port) {
    struct sockaddr_in sin;
    socklen_t n = sizeof sin;
    memset(&sin, 0, sizeof sin);
    long r = recvfrom(fd, buffer, length, 0, (struct sockaddr *)&sin, &n);
    if (r < 0) return -errno;
    *address = ntohl(sin.sin_addr.s_addr);
    *port = ntohs(sin.sin_port);
    return r;
}

long ckvm_udp_sendto(int fd, const void *buffer, size_t length, uint32_t address, uint16_t port) {
    struct sockaddr_in sin;
    fill_ipv4(&sin, address, port);
    long r = sendto(fd, buffer, length, MSG_NOSIGNAL, (struct sockaddr *)&sin, sizeof sin);
    return r < 0 ? -errno : r;
}

#include <poll.h>
#include <sys/eventfd.h>

int ckvm_eventfd(void) {
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

// ppoll is a GNU extension (see accept4 above).
extern int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout, const sigset_t *sigmask);

int ckvm_poll_ns(struct pollfd *fds, unsigned long count, int64_t timeout_ns) {
    struct timespec t;
    if (timeout_ns >= 0) {
        t.tv_sec = timeout_ns / 1000000000;
        t.tv_nsec = timeout_ns % 1000000000;
    }
    int r = ppoll(fds, (nfds_t)count, timeout_ns >= 0 ? &t : NULL, NULL);
    return r < 0 ? -errno : r;
}

static volatile pid_t forwarded_child;

static void forward_signal(int sig) {
    if (forwarded_child > 0) kill(forwarded_child, sig);
}

int ckvm_forward_termination(int pid) {
    forwarded_child = pid;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward_signal;
    sa.sa_flags = SA_RESTART;
    int signals[] = {SIGTERM, SIGINT, SIGHUP};
    for (unsigned i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        if (sigaction(signals[i], &sa, NULL) < 0) return -errno;
    }
    return 0;
}

// ---- the VMM's sandbox --------------------------------------------------------------------

#include <pthread.h>
#include <sys/prctl.h>

// x86-64 system call names by number (the ABI's numbers, which never change), for the
// sandbox's report. Generated from <asm/unistd_64.h>, plus the calls added up to Linux 6.10.
static const char *const syscall_names[] = {
    [0] = "read", [1] = "write", [2] = "open", [3] = "close", [4] = "stat", [5] = "fstat",
    [6] = "lstat", [7] = "poll", [8] = "lseek", [9] = "mmap", [10] = "mprotect", [11] = "munmap",
    [12] = "brk", [13] = "rt_sigaction", [14] = "rt_sigprocmask", [15] = "rt_sigreturn",
    [16] = "ioctl", [17] = "pread64", [18] = "pwrite64", [19] = "readv", [20] = "writev",
    [21] = "access", [22] = "pipe", [23] = "select", [24] = "sched_yield", [25] = "mremap",
    [26] = "msync", [27] = "mincore", [28] = "madvise", [29] = "shmget", [30] = "shmat",
    [31] = "shmctl", [32] = "dup", [33] = "dup2", [34] = "pause", [35] = "nanosleep",
    [36] = "getitimer", [37] = "alarm", [38] = "setitimer", [39] = "getpid", [40] = "sendfile",
    [41] = "socket", [42] = "connect", [43] = "accept", [44] = "sendto", [45] = "recvfrom",
    [46] = "sendmsg", [47] = "recvmsg", [48] = "shutdown", [49] = "bind", [50] = "listen",
    [51] = "getsockname", [52] = "getpeername", [53] = "socketpair", [54] = "setsockopt",
    [55] = "getsockopt", [56] = "clone", [57] = "fork", [58] = "vfork", [59] = "execve",
    [60] = "exit", [61] = "wait4", [62] = "kill", [63] = "uname", [64] = "semget", [65] = "semop",
    [66] = "semctl", [67] = "shmdt", [68] = "msgget", [69] = "msgsnd", [70] = "msgrcv",
    [71] = "msgctl", [72] = "fcntl", [73] = "flock", [74] = "fsync", [75] = "fdatasync",
    [76] = "truncate", [77] = "ftruncate", [78] = "getdents", [79] = "getcwd", [80] = "chdir",
    [81] = "fchdir", [82] = "rename", [83] = "mkdir", [84] = "rmdir", [85] = "creat", [86] = "link",
    [87] = "unlink", [88] = "symlink", [89] = "readlink", [90] = "chmod", [91] = "fchmod",
    [92] = "chown", [93] = "fchown", [94] = "lchown", [95] = "umask", [96] = "gettimeofday",
    [97] = "getrlimit", [98] = "getrusage", [99] = "sysinfo", [100] = "times", [101] = "ptrace",
    [102] = "getuid", [103] = "syslog", [104] = "getgid", [105] = "setuid", [106] = "setgid",
    [107] = "geteuid", [108] = "getegid", [109] = "setpgid", [110] = "getppid", [111] = "getpgrp",
    [112] = "setsid", [113] = "setreuid", [114] = "setregid", [115] = "getgroups",
    [116] = "setgroups", [117] = "setresuid", [118] = "getresuid", [119] = "setresgid",
    [120] = "getresgid", [121] = "getpgid", [122] = "setfsuid", [123] = "setfsgid",
    [124] = "getsid", [125] = "capget", [126] = "capset", [127] = "rt_sigpending",
    [128] = "rt_sigtimedwait", [129] = "rt_sigqueueinfo", [130] = "rt_sigsuspend",
    [131] = "sigaltstack", [132] = "utime", [133] = "mknod", [134] = "uselib",
    [135] = "personality", [136] = "ustat", [137] = "statfs", [138] = "fstatfs", [139] = "sysfs",
    [140] = "getpriority", [141] = "setpriority", [142] = "sched_setparam",
    [143] = "sched_getparam", [144] = "sched_setscheduler", [145] = "sched_getscheduler",
    [146] = "sched_get_priority_max", [147] = "sched_get_priority_min",
    [148] = "sched_rr_get_interval", [149] = "mlock", [150] = "munlock", [151] = "mlockall",
    [152] = "munlockall", [153] = "vhangup", [154] = "modify_ldt", [155] = "pivot_root",
    [156] = "_sysctl", [157] = "prctl", [158] = "arch_prctl", [159] = "adjtimex",
    [160] = "setrlimit", [161] = "chroot", [162] = "sync", [163] = "acct", [164] = "settimeofday",
    [165] = "mount", [166] = "umount2", [167] = "swapon", [168] = "swapoff", [169] = "reboot",
    [170] = "sethostname", [171] = "setdomainname", [172] = "iopl", [173] = "ioperm",
    [174] = "create_module", [175] = "init_module", [176] = "delete_module",
    [177] = "get_kernel_syms", [178] = "query_module", [179] = "quotactl", [180] = "nfsservctl",
    [181] = "getpmsg", [182] = "putpmsg", [183] = "afs_syscall", [184] = "tuxcall",
    [185] = "security", [186] = "gettid", [187] = "readahead", [188] = "setxattr",
    [189] = "lsetxattr", [190] = "fsetxattr", [191] = "getxattr", [192] = "lgetxattr",
    [193] = "fgetxattr", [194] = "listxattr", [195] = "llistxattr", [196] = "flistxattr",
    [197] = "removexattr", [198] = "lremovexattr", [199] = "fremovexattr", [200] = "tkill",
    [201] = "time", [202] = "futex", [203] = "sched_setaffinity", [204] = "sched_getaffinity",
    [205] = "set_thread_area", [206] = "io_setup", [207] = "io_destroy", [208] = "io_getevents",
    [209] = "io_submit", [210] = "io_cancel", [211] = "get_thread_area", [212] = "lookup_dcookie",
    [213] = "epoll_create", [214] = "epoll_ctl_old", [215] = "epoll_wait_old",
    [216] = "remap_file_pages", [217] = "getdents64", [218] = "set_tid_address",
    [219] = "restart_syscall", [220] = "semtimedop", [221] = "fadvise64", [222] = "timer_create",
    [223] = "timer_settime", [224] = "timer_gettime", [225] = "timer_getoverrun",
    [226] = "timer_delete", [227] = "clock_settime", [228] = "clock_gettime",
    [229] = "clock_getres", [230] = "clock_nanosleep", [231] = "exit_group", [232] = "epoll_wait",
    [233] = "epoll_ctl", [234] = "tgkill", [235] = "utimes", [236] = "vserver", [237] = "mbind",
    [238] = "set_mempolicy", [239] = "get_mempolicy", [240] = "mq_open", [241] = "mq_unlink",
    [242] = "mq_timedsend", [243] = "mq_timedreceive", [244] = "mq_notify", [245] = "mq_getsetattr",
    [246] = "kexec_load", [247] = "waitid", [248] = "add_key", [249] = "request_key",
    [250] = "keyctl", [251] = "ioprio_set", [252] = "ioprio_get", [253] = "inotify_init",
    [254] = "inotify_add_watch", [255] = "inotify_rm_watch", [256] = "migrate_pages",
    [257] = "openat", [258] = "mkdirat", [259] = "mknodat", [260] = "fchownat", [261] = "futimesat",
    [262] = "newfstatat", [263] = "unlinkat", [264] = "renameat", [265] = "linkat",
    [266] = "symlinkat", [267] = "readlinkat", [268] = "fchmodat", [269] = "faccessat",
    [270] = "pselect6", [271] = "ppoll", [272] = "unshare", [273] = "set_robust_list",
    [274] = "get_robust_list", [275] = "splice", [276] = "tee", [277] = "sync_file_range",
    [278] = "vmsplice", [279] = "move_pages", [280] = "utimensat", [281] = "epoll_pwait",
    [282] = "signalfd", [283] = "timerfd_create", [284] = "eventfd", [285] = "fallocate",
    [286] = "timerfd_settime", [287] = "timerfd_gettime", [288] = "accept4", [289] = "signalfd4",
    [290] = "eventfd2", [291] = "epoll_create1", [292] = "dup3", [293] = "pipe2",
    [294] = "inotify_init1", [295] = "preadv", [296] = "pwritev", [297] = "rt_tgsigqueueinfo",
    [298] = "perf_event_open", [299] = "recvmmsg", [300] = "fanotify_init", [301] = "fanotify_mark",
    [302] = "prlimit64", [303] = "name_to_handle_at", [304] = "open_by_handle_at",
    [305] = "clock_adjtime", [306] = "syncfs", [307] = "sendmmsg", [308] = "setns",
    [309] = "getcpu", [310] = "process_vm_readv", [311] = "process_vm_writev", [312] = "kcmp",
    [313] = "finit_module", [314] = "sched_setattr", [315] = "sched_getattr", [316] = "renameat2",
    [317] = "seccomp", [318] = "getrandom", [319] = "memfd_create", [320] = "kexec_file_load",
    [321] = "bpf", [322] = "execveat", [323] = "userfaultfd", [324] = "membarrier",
    [325] = "mlock2", [326] = "copy_file_range", [327] = "preadv2", [328] = "pwritev2",
    [329] = "pkey_mprotect", [330] = "pkey_alloc", [331] = "pkey_free", [332] = "statx",
    [333] = "io_pgetevents", [334] = "rseq", [424] = "pidfd_send_signal", [425] = "io_uring_setup",
    [426] = "io_uring_enter", [427] = "io_uring_register", [428] = "open_tree",
    [429] = "move_mount", [430] = "fsopen", [431] = "fsconfig", [432] = "fsmount", [433] = "fspick",
    [434] = "pidfd_open", [435] = "clone3", [436] = "close_range", [437] = "openat2",
    [438] = "pidfd_getfd", [439] = "faccessat2", [440] = "process_madvise", [441] = "epoll_pwait2",
    [442] = "mount_setattr", [443] = "quotactl_fd", [444] = "landlock_create_ruleset",
    [445] = "landlock_add_rule", [446] = "landlock_restrict_self", [447] = "memfd_secret",
    [448] = "process_mrelease", [449] = "futex_waitv", [450] = "set_mempolicy_home_node",

    [451] = "cachestat", [452] = "fchmodat2", [453] = "map_shadow_stack", [454] = "futex_wake",
    [455] = "futex_wait", [456] = "futex_requeue", [457] = "statmount", [458] = "listmount",
    [459] = "lsm_get_self_attr", [460] = "lsm_set_self_attr", [461] = "lsm_list_modules",
    [462] = "mseal",
};

const char *ckvm_syscall_name(long number) {
    if (number < 0 || (unsigned long)number >= sizeof syscall_names / sizeof syscall_names[0]) return NULL;
    return syscall_names[number];
}

static volatile int sandbox_exit_code = 125;

// Appends `text` at `*at` (bounded by `end`); async-signal-safe.
static void append_text(char **at, char *end, const char *text) {
    while (*text && *at < end) *(*at)++ = *text++;
}

static void append_number(char **at, char *end, unsigned long value) {
    char digits[24];
    int n = 0;
    do { digits[n++] = (char)('0' + value % 10); value /= 10; } while (value && n < 24);
    while (n > 0 && *at < end) *(*at)++ = digits[--n];
}

// Runs on the thread that made the forbidden call. Only write(2) and _exit(2) (exit_group),
// both allowed by every filter this file installs; no allocation, no locks, no stdio.
static void on_forbidden_call(int sig, siginfo_t *info, void *context) {
    (void)sig;
    (void)context;
    char line[160];
    char *at = line, *end = line + sizeof line - 1;
    long number = info->si_syscall;
    append_text(&at, end, "apus: the VMM was stopped by its sandbox: forbidden system call ");
    append_number(&at, end, (unsigned long)number);
    append_text(&at, end, " (");
    if (info->si_arch != AUDIT_ARCH_X86_64) {
        append_text(&at, end, "not an x86-64 system call");
    } else if ((unsigned long)number & CKVM_X32_SYSCALL_BIT) {
        append_text(&at, end, "x32 ABI");
    } else {
        const char *name = ckvm_syscall_name(number);
        append_text(&at, end, name ? name : "unknown");
    }
    append_text(&at, end, ")");
    *at++ = '\n';
    const char *p = line;
    while (p < at) {
        long n = syscall(SYS_write, 2, p, (size_t)(at - p));
        if (n <= 0) break;
        p += n;
    }
    syscall(SYS_exit_group, sandbox_exit_code);
}

int ckvm_seccomp_install(const struct sock_filter *program, unsigned short length, int exit_code) {
    sandbox_exit_code = exit_code;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_forbidden_call;
    sa.sa_flags = SA_SIGINFO;
    sigfillset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, NULL) < 0) return -errno;
    // A thread that blocks SIGSYS would die of it silently instead of reporting.
    sigset_t sys;
    sigemptyset(&sys);
    sigaddset(&sys, SIGSYS);
    pthread_sigmask(SIG_UNBLOCK, &sys, NULL);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return -errno;
    struct sock_fprog fprog = {.len = length, .filter = (struct sock_filter *)program};
    long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &fprog);
    if (r < 0) return -errno;
    return r == 0 ? 0 : -ESRCH;  // TSYNC: the id of a thread that could not be synchronized
}

#include <sched.h>
#include <sys/mount.h>
#include <linux/capability.h>

// unshare(2) by number: glibc declares it only with _GNU_SOURCE.
int ckvm_enter_empty_root(int *step) {
    *step = 0;
    // No uid/gid maps are written (that would cost three /proc writes): inside, the VMM's ids
    // show as the overflow id, outside (signals, /proc, ps) they stay the user's.
    if (syscall(SYS_unshare, CLONE_NEWUSER | CLONE_NEWNS) < 0) return -errno;
    *step = 1;
    // Nothing mounted in this mount namespace (a copy of the host's) may propagate back.
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) return -errno;
    *step = 2;
    // Any existing directory serves as the mount point: it is only passed through.
    const char *points[] = {"/tmp", "/mnt", "/proc"};
    const char *point = NULL;
    for (unsigned i = 0; i < sizeof points / sizeof points[0] && !point; i++) {
        if (mount("apus-empty-root", points[i], "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "size=4k,mode=0555") == 0) point = points[i];
    }
    if (!point) return -errno;
    *step = 3;
    // chroot rather than pivot_root: no detach of the old root (an RCU grace period, ~50 us).
    // The old tree stays in this namespace but no path reaches it, and without capabilities
    // (next) no chroot, mount or setns can lead back to it.
    if (chroot(point) < 0 || chdir("/") < 0) return -errno;
    *step = 4;
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &header, data) < 0) return -errno;
    return 0;
}

long ckvm_syscall6(long number, long a0, long a1, long a2, long a3, long a4, long a5) {
    long r = syscall(number, a0, a1, a2, a3, a4, a5);
    return r < 0 ? -errno : r;
}
