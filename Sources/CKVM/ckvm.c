#include "ckvm.h"

#include <errno.h>
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

int ckvm_watchdog_fired(void) { return watchdog_fired; }

long ckvm_getrandom(void *buffer, size_t length) {
    long r = syscall(SYS_getrandom, buffer, length, 0);
    return r < 0 ? -errno : r;
}
