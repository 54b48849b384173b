// Thin C shim over <linux/kvm.h> for the Swift VMM: the ioctl request numbers (function-like
// macros that Swift cannot import) as constants, and fixed-arity ioctl wrappers (Swift cannot
// call the variadic ioctl). No logic lives here.
#ifndef CKVM_H
#define CKVM_H

#include <linux/kvm.h>
#include <stdint.h>
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

#endif
