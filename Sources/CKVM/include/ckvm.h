// Thin C shim over <linux/kvm.h> for the Swift VMM: the ioctl request numbers (function-like
// macros that Swift cannot import) as constants, and fixed-arity ioctl wrappers (Swift cannot
// call the variadic ioctl). No logic lives here.
#ifndef CKVM_H
#define CKVM_H

#include <linux/kvm.h>
#include <stdint.h>
#include <pthread.h>
#include <stddef.h>

static const unsigned long CKVM_GET_API_VERSION = KVM_GET_API_VERSION;
static const unsigned long CKVM_CREATE_VM = KVM_CREATE_VM;
static const unsigned long CKVM_CHECK_EXTENSION = KVM_CHECK_EXTENSION;
static const unsigned long CKVM_GET_VCPU_MMAP_SIZE = KVM_GET_VCPU_MMAP_SIZE;
static const unsigned long CKVM_GET_SUPPORTED_CPUID = KVM_GET_SUPPORTED_CPUID;
static const unsigned long CKVM_SET_USER_MEMORY_REGION = KVM_SET_USER_MEMORY_REGION;
static const unsigned long CKVM_CREATE_VCPU = KVM_CREATE_VCPU;
static const unsigned long CKVM_CREATE_IRQCHIP = KVM_CREATE_IRQCHIP;
static const unsigned long CKVM_SET_TSS_ADDR = KVM_SET_TSS_ADDR;
static const unsigned long CKVM_RUN = KVM_RUN;
static const unsigned long CKVM_GET_REGS = KVM_GET_REGS;
static const unsigned long CKVM_SET_REGS = KVM_SET_REGS;
static const unsigned long CKVM_GET_SREGS = KVM_GET_SREGS;
static const unsigned long CKVM_SET_SREGS = KVM_SET_SREGS;
static const unsigned long CKVM_GET_MSRS = KVM_GET_MSRS;
static const unsigned long CKVM_SET_MSRS = KVM_SET_MSRS;
static const unsigned long CKVM_SET_CPUID2 = KVM_SET_CPUID2;
static const unsigned long CKVM_GET_TSC_KHZ = KVM_GET_TSC_KHZ;
static const unsigned int CKVM_MEM_READONLY = KVM_MEM_READONLY;
static const int CKVM_CAP_READONLY_MEM = KVM_CAP_READONLY_MEM;

/// ioctl with a pointer argument; returns -errno on failure (never sets errno for the caller).
int ckvm_ioctl_ptr(int fd, unsigned long request, void *arg);
/// ioctl with an integer argument; returns -errno on failure.
int ckvm_ioctl_int(int fd, unsigned long request, unsigned long arg);

/// KVM_GET_MSRS / KVM_SET_MSRS of one MSR. Return the number of MSRs processed (1 on
/// success, 0 if KVM rejected the index) or -errno.
int ckvm_get_msr(int vcpu, uint32_t index, uint64_t *value);
int ckvm_set_msr(int vcpu, uint32_t index, uint64_t value);

/// KVM_GET_SUPPORTED_CPUID then KVM_SET_CPUID2 with that answer. Returns 0 or -errno.
int ckvm_set_supported_cpuid(int kvm, int vcpu);

/// getrandom(2) without flags: returns bytes written or -errno.
long ckvm_getrandom(void *buffer, size_t length);

/// Reads the host's time-stamp counter.
uint64_t ckvm_rdtsc(void);

/// Arms a one-shot watchdog: after `milliseconds`, SIGALRM sets run->immediate_exit on the
/// given kvm_run page so that KVM_RUN returns EINTR. 0 disarms it.
int ckvm_arm_watchdog(struct kvm_run *run, uint64_t milliseconds);
/// Nonzero once the watchdog has fired.
int ckvm_watchdog_fired(void);
/// Stops the watchdog and forgets its kvm_run (before that page is unmapped: an alarm after
/// the VM is gone must not write into it).
void ckvm_disarm_watchdog(void);
/// After the watchdog fired: one more deadline, to bound what the VMM still does (writing the
/// guest's last output). No sigaction: the handler is installed already.
int ckvm_extend_watchdog(uint64_t milliseconds);
/// Host signals for the guest: from now on each of `signals` sent to this process is recorded
/// (a bit per signal, taken with `ckvm_take_host_signals`) and stops the vCPU's KVM_RUN
/// (immediate_exit on `run`); a blocking read or sleep of the vCPU thread ends with EINTR.
/// Also installs the handler of the kick signal, which only stops KVM_RUN. 0 or -errno.
int ckvm_forward_host_signals(struct kvm_run *run, const int *signals, int count);
/// Forgets the kvm_run page (before it is unmapped); signals are still recorded.
void ckvm_stop_forwarding(void);
uint64_t ckvm_take_host_signals(void);
uint64_t ckvm_peek_host_signals(void);
/// SIGINTs received so far (a second Ctrl-C ends the VM).
int ckvm_host_interrupts(void);
/// Nonzero (once) when a host signal or kick arrived since the last call.
int ckvm_take_attention(void);
void ckvm_request_attention(void);
/// The signal `ckvm_kick` sends (SIGRTMIN + 2).
int ckvm_kick_signal(void);
/// Stops `thread`'s KVM_RUN (or ends its blocking call) with the kick signal.
int ckvm_kick(pthread_t thread);
/// A full memory fence (between a store to guest memory and a load the guest orders the other way).
void ckvm_fence(void);
/// Sequentially consistent 8-byte accesses to memory the guest shares.
uint64_t ckvm_atomic_load64(const void *p);
void ckvm_atomic_store64(void *p, uint64_t v);
uint64_t ckvm_atomic_or64(void *p, uint64_t v);
/// A non-blocking CLOCK_MONOTONIC timerfd; set relative to now (0 disarms). fd or -errno.
int ckvm_timerfd_create(void);
int ckvm_timerfd_set_ns(int fd, uint64_t nanoseconds);
/// Under QEMU: each of `signals` sent to apus becomes a signal frame on `fd` (the guest's
/// serial input); a second SIGINT kills process group `group` (QEMU), and so does SIGALRM
/// `stop_timeout_ms` after the first SIGTERM (0: never). With `terminal`, SIGWINCH sends the
/// host terminal's size (a window frame) instead of the signal. 0 or -errno.
int ckvm_forward_signals_to_serial(int fd, int group, const int *signals, int count, uint64_t stop_timeout_ms,
                                   int terminal);
/// 128 + the signal when apus killed QEMU that way, -1 when --timeout did, else 0.
int ckvm_serial_forced_status(void);
/// Starts QEMU in its own process group, killed when apus dies (PR_SET_PDEATHSIG), stdin
/// `in`, stdout `out`; arms `timeout_ms` (0: none), after which the group is killed.
/// The pid or -errno.
int ckvm_spawn_qemu(const char *path, char *const argv[], char *const envp[], int in, int out, uint64_t timeout_ms);
/// From now on SIGTERM, SIGINT and SIGHUP sent to this process go to child `pid` instead
/// (it stops, and the caller sees it exit), so no child outlives an interrupted run.
int ckvm_forward_termination(int pid);

// ---- virtio devices (Sources/VMM/Virtio*.swift, NetworkDevice*.swift, TapBackend.swift,
// PortForwarder.swift). Appended; nothing above changes.

static const unsigned long CKVM_IOEVENTFD = KVM_IOEVENTFD;
static const unsigned long CKVM_IRQFD = KVM_IRQFD;
static const unsigned long CKVM_IRQ_LINE = KVM_IRQ_LINE;
static const int CKVM_CAP_IOEVENTFD = KVM_CAP_IOEVENTFD;
static const int CKVM_CAP_IRQFD = KVM_CAP_IRQFD;
static const int CKVM_CAP_IRQCHIP = KVM_CAP_IRQCHIP;

/// KVM_IOEVENTFD: a `length`-byte MMIO write of `datamatch` at `address` signals `eventfd`
/// inside the host kernel (no exit to the VMM). `assign` 0 removes it again. 0 or -errno.
int ckvm_ioeventfd(int vm, uint64_t address, uint32_t length, uint64_t datamatch, int eventfd, int assign);
/// KVM_IRQFD: a write to `eventfd` pulses `gsi` (edge). `assign` 0 removes it. 0 or -errno.
int ckvm_irqfd(int vm, int eventfd, uint32_t gsi, int assign);
/// KVM_IRQ_LINE: sets `gsi` to `level`. 0 or -errno.
int ckvm_irq_line(int vm, uint32_t gsi, uint32_t level);

/// Ordered accesses to memory shared with a guest running on another CPU (the virtqueue
/// indices). x86-64 is TSO, but the compiler must not reorder or tear these, and the store
/// → load pairs of event-index suppression need a full fence.
uint16_t ckvm_load_acquire_u16(const void *address);
void ckvm_store_release_u16(void *address, uint16_t value);
/// A full (store-load) memory fence.
void ckvm_fence_seq_cst(void);

/// /dev/net/tun as a tap (IFF_TAP | IFF_NO_PI, non-blocking, close-on-exec) named `name`
/// (a printf-like "apus%d" lets the kernel pick the number). On success returns the fd and
/// copies the kernel's name into `actual` (IFNAMSIZ bytes); else -errno.
int ckvm_tap_open(const char *name, char *actual);
/// Gives interface `name` the IPv4 address and netmask (host byte order) and brings it up
/// (SIOCSIFADDR, SIOCSIFNETMASK, SIOCSIFFLAGS |= IFF_UP). Returns 0, or -errno with `*step`
/// naming the ioctl that failed (0 socket, 1 address, 2 netmask, 3 flags).
int ckvm_interface_configure(const char *name, uint32_t address, uint32_t netmask, int *step);

/// A non-blocking, close-on-exec IPv4 socket bound to address:port (host byte order).
/// `type` SOCK_STREAM listens (backlog 64, SO_REUSEADDR); SOCK_DGRAM is just bound.
/// Returns the fd or -errno.
int ckvm_ipv4_bind(int type, uint32_t address, uint16_t port);
/// A non-blocking, close-on-exec socket of `type` connecting (TCP) or connected (UDP) to
/// address:port (host byte order). Returns the fd (a TCP connect may still be in progress:
/// wait for POLLOUT, then ckvm_socket_error) or -errno.
int ckvm_ipv4_connect(int type, uint32_t address, uint16_t port);
/// SO_ERROR of a socket: 0 or the pending errno.
int ckvm_socket_error(int fd);
/// accept4 non-blocking and close-on-exec. Returns the fd or -errno.
int ckvm_accept(int fd);
/// recvfrom on a UDP socket: returns bytes or -errno; the peer's IPv4 address and port
/// (host byte order) in *address / *port.
long ckvm_udp_recvfrom(int fd, void *buffer, size_t length, uint32_t *address, uint16_t *port);
/// sendto on a UDP socket (address and port in host byte order). Bytes or -errno.
long ckvm_udp_sendto(int fd, const void *buffer, size_t length, uint32_t address, uint16_t port);

struct pollfd;
/// A non-blocking, close-on-exec eventfd with counter 0. The fd or -errno.
int ckvm_eventfd(void);
/// poll(2) with a nanosecond timeout (negative: wait forever), via ppoll. Count or -errno.
int ckvm_poll_ns(struct pollfd *fds, unsigned long count, int64_t timeout_ns);

// ---- the VMM's sandbox (Sources/VMM/Sandbox.swift, SeccompFilter.swift). Appended.

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/audit.h>

static const uint32_t CKVM_AUDIT_ARCH_X86_64 = AUDIT_ARCH_X86_64;
static const uint32_t CKVM_SECCOMP_RET_ALLOW = SECCOMP_RET_ALLOW;
static const uint32_t CKVM_SECCOMP_RET_TRAP = SECCOMP_RET_TRAP;
static const uint32_t CKVM_SECCOMP_RET_ERRNO = SECCOMP_RET_ERRNO;
static const uint32_t CKVM_SECCOMP_RET_DATA = SECCOMP_RET_DATA;
/// Classic BPF opcodes the filter uses: load a 32-bit word of seccomp_data, compare the
/// accumulator with a constant (equal, ≥, any bit set), jump, return a constant.
static const uint16_t CKVM_BPF_LOAD_WORD = BPF_LD | BPF_W | BPF_ABS;
static const uint16_t CKVM_BPF_JUMP_EQUAL = BPF_JMP | BPF_JEQ | BPF_K;
static const uint16_t CKVM_BPF_JUMP_GREATER_EQUAL = BPF_JMP | BPF_JGE | BPF_K;
static const uint16_t CKVM_BPF_JUMP_BITS_SET = BPF_JMP | BPF_JSET | BPF_K;
static const uint16_t CKVM_BPF_RETURN = BPF_RET | BPF_K;
/// struct seccomp_data: nr, arch, then args[6] (u64 each; the low word first on x86-64).
static const uint32_t CKVM_SECCOMP_DATA_NR = offsetof(struct seccomp_data, nr);
static const uint32_t CKVM_SECCOMP_DATA_ARCH = offsetof(struct seccomp_data, arch);
static const uint32_t CKVM_SECCOMP_DATA_ARGS = offsetof(struct seccomp_data, args);
/// futex(2) operations (the op argument, with its private and clock flags).
#include <linux/futex.h>
static const uint32_t CKVM_FUTEX_WAIT = FUTEX_WAIT;
static const uint32_t CKVM_FUTEX_WAKE = FUTEX_WAKE;
static const uint32_t CKVM_FUTEX_WAIT_BITSET = FUTEX_WAIT_BITSET;
static const uint32_t CKVM_FUTEX_PRIVATE_FLAG = FUTEX_PRIVATE_FLAG;
static const uint32_t CKVM_FUTEX_CLOCK_REALTIME = FUTEX_CLOCK_REALTIME;
/// The clone(2) flags of glibc's pthread_create: a thread sharing everything, with its TLS
/// and tid words.
#include <linux/sched.h>
static const uint32_t CKVM_CLONE_PTHREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD
    | CLONE_SYSVSEM | CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID;
/// Bit 30 of the syscall number selects the x32 ABI on x86-64 (__X32_SYSCALL_BIT).
static const uint32_t CKVM_X32_SYSCALL_BIT = 0x40000000;

/// Enters the seccomp sandbox for the whole process: PR_SET_NO_NEW_PRIVS, a SIGSYS handler,
/// then `program` as a filter on every thread (SECCOMP_FILTER_FLAG_TSYNC). A call the filter
/// answers with SECCOMP_RET_TRAP makes the handler write one line on stderr —
/// "apus: the VMM was stopped by its sandbox: forbidden system call N (name)" — and _exit
/// with `exit_code` (write and exit_group must therefore be allowed). Returns 0 or -errno
/// (-ESRCH when another thread could not be synchronized).
int ckvm_seccomp_install(const struct sock_filter *program, unsigned short length, int exit_code);
/// Gives up the file system, where the kernel lets an ordinary user do so: a new user and
/// mount namespace, an empty read-only tmpfs as the root (chroot), then no capabilities in
/// that namespace. The process must be single-threaded (else EINVAL). Returns 0, or -errno
/// with `*step` naming what failed (0 unshare, 1 mount propagation, 2 the tmpfs, 3 chroot,
/// 4 capset). After a failure past step 0 the process is in a user namespace of its own
/// without a new root, which changes nothing it can do.
int ckvm_enter_empty_root(int *step);
/// The x86-64 name of system call `number`, or NULL if this table does not know it.
/// Gives the sandbox report its names: `packed` holds them NUL-separated in number order (an
/// empty name for a number without a syscall), in storage that lives as long as the process.
void ckvm_set_syscall_names(const char *packed, size_t length);
const char *ckvm_syscall_name(long number);
/// A raw system call (tests, and the sandbox's test hook). The result, or -errno.
long ckvm_syscall6(long number, long a0, long a1, long a2, long a3, long a4, long a5);

#endif
