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

// The watchdog's deadline from now; also a second, short one after it fired (setitimer only:
// no sigaction, which the VMM's sandbox forbids by then).
int ckvm_extend_watchdog(uint64_t milliseconds) {
    watchdog_fired = 0;
    struct itimerval t;
    memset(&t, 0, sizeof t);
    t.it_value.tv_sec = milliseconds / 1000;
    t.it_value.tv_usec = (milliseconds % 1000) * 1000;
    return setitimer(ITIMER_REAL, &t, NULL) < 0 ? -errno : 0;
}

int ckvm_arm_watchdog(struct kvm_run *run, uint64_t milliseconds) {
    watchdog_run = run;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;  // no SA_RESTART: KVM_RUN must return EINTR
    if (sigaction(SIGALRM, &sa, NULL) < 0) return -errno;
    return ckvm_extend_watchdog(milliseconds);
}

void ckvm_disarm_watchdog(void) {
    struct itimerval t;
    memset(&t, 0, sizeof t);
    setitimer(ITIMER_REAL, &t, NULL);
    watchdog_run = NULL;  // the run page may be unmapped next
    watchdog_fired = 0;
}

int ckvm_watchdog_fired(void) { return watchdog_fired; }

// ---- host signals for the guest, and kicks of the vCPU -----------------------------------

#include <pthread.h>

static struct kvm_run *volatile signal_run;
static volatile uint64_t host_signals;          // bit n-1: signal n arrived, not yet taken
static volatile sig_atomic_t host_interrupts;   // SIGINTs so far
static volatile sig_atomic_t host_attention;    // something for the vCPU loop to look at

static void on_host_signal(int sig) {
    __atomic_or_fetch(&host_signals, 1ull << (sig - 1), __ATOMIC_SEQ_CST);
    if (sig == SIGINT) host_interrupts++;
    host_attention = 1;
    struct kvm_run *run = signal_run;
    if (run) run->immediate_exit = 1;
}

static void on_kick(int sig) {
    (void)sig;
    host_attention = 1;
    struct kvm_run *run = signal_run;
    if (run) run->immediate_exit = 1;
}

int ckvm_kick_signal(void) { return SIGRTMIN + 2; }

int ckvm_forward_host_signals(struct kvm_run *run, const int *signals, int count) {
    signal_run = run;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_host_signal;  // no SA_RESTART: KVM_RUN, read and sleeps return EINTR
    for (int i = 0; i < count; i++) {
        if (sigaction(signals[i], &sa, NULL) < 0) return -errno;
    }
    sa.sa_handler = on_kick;
    if (sigaction(ckvm_kick_signal(), &sa, NULL) < 0) return -errno;
    return 0;
}

void ckvm_stop_forwarding(void) { signal_run = NULL; }

uint64_t ckvm_take_host_signals(void) { return __atomic_exchange_n(&host_signals, 0, __ATOMIC_SEQ_CST); }
uint64_t ckvm_peek_host_signals(void) { return __atomic_load_n(&host_signals, __ATOMIC_SEQ_CST); }
int ckvm_host_interrupts(void) { return host_interrupts; }
int ckvm_take_attention(void) {
    if (!host_attention) return 0;
    host_attention = 0;
    return 1;
}
void ckvm_request_attention(void) { host_attention = 1; }

int ckvm_kick(pthread_t thread) { return pthread_kill(thread, ckvm_kick_signal()); }

void ckvm_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
uint64_t ckvm_atomic_load64(const void *p) { return __atomic_load_n((const uint64_t *)p, __ATOMIC_SEQ_CST); }
void ckvm_atomic_store64(void *p, uint64_t v) { __atomic_store_n((uint64_t *)p, v, __ATOMIC_SEQ_CST); }
uint64_t ckvm_atomic_or64(void *p, uint64_t v) { return __atomic_or_fetch((uint64_t *)p, v, __ATOMIC_SEQ_CST); }

#include <sys/timerfd.h>
int ckvm_timerfd_create(void) {
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}
int ckvm_timerfd_set_ns(int fd, uint64_t nanoseconds) {
    struct itimerspec t;
    memset(&t, 0, sizeof t);
    t.it_value.tv_sec = nanoseconds / 1000000000;
    t.it_value.tv_nsec = nanoseconds % 1000000000;
    return timerfd_settime(fd, 0, &t, NULL) < 0 ? -errno : 0;
}

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

// ---- host signals to a guest under QEMU ------------------------------------------------------

static volatile int serial_fd = -1;
static volatile pid_t serial_group;          // QEMU's process group (its own)
static volatile sig_atomic_t serial_interrupts;
static volatile sig_atomic_t serial_forced;  // apus's exit status when it ended the VM, else 0
static volatile uint64_t serial_stop_ms;
static volatile int serial_terminal;         // -t: SIGWINCH carries the window size

static volatile uint64_t serial_timeout_at;  // CLOCK_MONOTONIC ns of --timeout (0: none)
static volatile uint64_t serial_stop_at;     // of --stop-timeout after SIGTERM (0: none)

static uint64_t monotonic_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

// Arms SIGALRM for the earlier of the two deadlines (async-signal-safe).
static void arm_serial_alarm(void) {
    uint64_t next = serial_timeout_at;
    if (serial_stop_at && (!next || serial_stop_at < next)) next = serial_stop_at;
    struct itimerval t;
    memset(&t, 0, sizeof t);
    if (next) {
        uint64_t now = monotonic_ns();
        uint64_t wait = next > now ? next - now : 1000;
        t.it_value.tv_sec = wait / 1000000000u;
        t.it_value.tv_usec = (wait % 1000000000u) / 1000;
        if (t.it_value.tv_sec == 0 && t.it_value.tv_usec == 0) t.it_value.tv_usec = 1;
    }
    setitimer(ITIMER_REAL, &t, NULL);
}

static void on_stop_timeout(int sig) {
    (void)sig;
    uint64_t now = monotonic_ns();
    if (serial_stop_at && now >= serial_stop_at) {
        serial_forced = 128 + SIGKILL;
    } else if (serial_timeout_at && now >= serial_timeout_at) {
        serial_forced = -1;  // --timeout
    } else {
        arm_serial_alarm();  // early: wait for the rest
        return;
    }
    kill(-serial_group, SIGKILL);
}

static void on_serial_signal(int sig) {
    int saved = errno;
    if (sig == SIGINT && ++serial_interrupts >= 2) {
        serial_forced = 128 + SIGINT;
        kill(-serial_group, SIGKILL);
    } else if (sig == SIGWINCH && serial_terminal) {
        // With -t: the new size as a window frame (kind 6: rows, columns, u16 LE each); the
        // guest's terminal signals its foreground group.
        struct winsize size;
        if (ioctl(0, TIOCGWINSZ, &size) == 0) {
            unsigned char frame[8] = {0xA5, 6, 4, 0, (unsigned char)size.ws_row, (unsigned char)(size.ws_row >> 8),
                                      (unsigned char)size.ws_col, (unsigned char)(size.ws_col >> 8)};
            if (write(serial_fd, frame, sizeof frame) < 0) { /* QEMU is gone */ }
        }
    } else {
        // One SerialFrame (marker, kind 5 = signal, length 1): a pipe write of at most
        // PIPE_BUF bytes is atomic, so it never splits a stdin frame.
        unsigned char frame[5] = {0xA5, 5, 1, 0, (unsigned char)sig};
        if (write(serial_fd, frame, sizeof frame) < 0) { /* QEMU is gone */ }
        if (sig == SIGTERM && serial_stop_ms > 0 && !serial_stop_at) {
            serial_stop_at = monotonic_ns() + serial_stop_ms * 1000000u;
            arm_serial_alarm();
        }
    }
    errno = saved;
}

int ckvm_forward_signals_to_serial(int fd, int group, const int *signals, int count, uint64_t stop_timeout_ms,
                                   int terminal) {
    serial_fd = fd;
    serial_terminal = terminal;
    serial_group = group;
    serial_stop_ms = stop_timeout_ms;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_serial_signal;
    sa.sa_flags = SA_RESTART;
    for (int i = 0; i < count; i++) {
        if (sigaction(signals[i], &sa, NULL) < 0) return -errno;
    }
    sa.sa_handler = on_stop_timeout;
    if (sigaction(SIGALRM, &sa, NULL) < 0) return -errno;
    return 0;
}

int ckvm_serial_forced_status(void) { return serial_forced; }

// Starts QEMU: a child in its own process group (Ctrl-C on the terminal reaches apus only)
// that dies with apus (PR_SET_PDEATHSIG), with `in` as its stdin and `out` as its stdout.
// Between fork and exec only async-signal-safe calls. Also arms --timeout (0: none), which
// kills the group. The child's pid, or -errno.
#include <sys/prctl.h>
int ckvm_spawn_qemu(const char *path, char *const argv[], char *const envp[], int in, int out, uint64_t timeout_ms) {
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return -errno;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);  // apus is already gone
        setpgid(0, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (dup2(in, 0) < 0 || dup2(out, 1) < 0) _exit(127);
        execve(path, argv, envp);
        _exit(127);
    }
    setpgid(pid, pid);  // also from here: no race with the signals below
    if (timeout_ms) {
        serial_timeout_at = monotonic_ns() + timeout_ms * 1000000u;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_stop_timeout;
        sa.sa_flags = SA_RESTART;
        sigaction(SIGALRM, &sa, NULL);
        serial_group = pid;
        arm_serial_alarm();
    }
    return pid;
}

// ---- the VMM's sandbox --------------------------------------------------------------------

#include <pthread.h>
#include <sys/prctl.h>

// x86-64 system call names by number, for the sandbox's report: LinuxABI's packed table
// (name n after the n-th NUL, in static storage), handed in by the VMM before the filter is
// installed. Looked up by walking it: no allocation, safe in a signal handler.
static const char *syscall_names;
static size_t syscall_names_length;

void ckvm_set_syscall_names(const char *packed, size_t length) {
    syscall_names = packed;
    syscall_names_length = length;
}

const char *ckvm_syscall_name(long number) {
    if (number < 0 || syscall_names == NULL) return NULL;
    size_t at = 0;
    for (long skipped = 0; skipped < number; at++) {
        if (at >= syscall_names_length) return NULL;
        if (syscall_names[at] == 0) skipped++;
    }
    return at < syscall_names_length && syscall_names[at] != 0 ? syscall_names + at : NULL;
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
