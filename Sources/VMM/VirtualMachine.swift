import CKVM
import GuestABI
#if canImport(Glibc)
import Glibc
#endif

/// A failure of the VMM, with one human message per case.
public enum VMMError: Error {
    case noKVM(String)
    case kvmCall(String, Int32)
    case outOfHostMemory(Int)
    case boot(BootSetup.Error)
    case unexpectedExit(String)
    case timedOut(UInt64)
    /// The app overflowed its stack; on pvm the fault cannot be delivered (the exception frame
    /// would go on the overflowed stack), so the VM stops and the VMM reports it.
    case stackOverflow(rip: UInt64, rsp: UInt64)
    /// The sandbox could not be entered (Sandbox.swift).
    case sandbox(String)
    /// The user ended the VM from the host: a second Ctrl-C, or the program still ran
    /// `--stop-timeout` after SIGTERM. `status` is apus's exit status (128 + the signal).
    case stoppedFromHost(String, status: Int32)

    /// What apus says when `--stop-timeout` ran out (both VMMs).
    public static func stopTimeoutMessage(milliseconds: UInt64) -> String {
        let fraction = milliseconds % 1000
        var seconds = String(milliseconds / 1000)
        if fraction != 0 {
            var digits = String(fraction)
            while digits.count < 3 { digits = "0" + digits }
            while digits.hasSuffix("0") { digits.removeLast() }
            seconds += "." + digits
        }
        return "the program did not exit within \(seconds) s of SIGTERM (--stop-timeout): the VM was stopped"
    }

    public var message: String {
        switch self {
        case .noKVM(let why): return "cannot use KVM: \(why)"
        case .kvmCall(let call, let errno): return "\(call) failed: \(String(cString: strerror(errno)))"
        case .outOfHostMemory(let size): return "cannot reserve \(size >> 20) MiB of host memory for the guest"
        case .boot(let e): return e.message
        case .unexpectedExit(let what): return "the VM stopped unexpectedly: \(what)"
        case .timedOut(let ms): return "the guest did not finish within \(ms) ms and was stopped"
        case .stackOverflow(let rip, let rsp):
            return "program killed by SIGSEGV: stack overflow (rsp 0x\(String(rsp, radix: 16)) below the stack) at rip 0x\(String(rip, radix: 16))"
        case .sandbox(let why): return why
        case .stoppedFromHost(let why, _): return why
        }
    }
}

/// The timeline of one run, in host nanoseconds (CLOCK_MONOTONIC) and guest TSC stamps.
public struct RunTimeline {
    public var vmCreated: UInt64 = 0
    public var memoryReady: UInt64 = 0
    public var kernelLoaded: UInt64 = 0
    public var vcpuReady: UInt64 = 0
    /// When the sandbox was entered (0: no sandbox), and what it holds (Sandbox.swift).
    public var sandboxed: UInt64 = 0
    public var sandbox = ""
    public var firstRun: UInt64 = 0
    public var exited: UInt64 = 0
    /// Host TSC read together with `firstRun`, to place the guest's TSC stamps.
    public var firstRunTSC: UInt64 = 0
    public var tscKHz: UInt64 = 0
    public var guest = Timeline()
    public var exitCount = 0
}

public struct RunResult {
    public var status: ExitStatus
    public var timeline: RunTimeline
}

/// What to boot.
public struct VMConfiguration {
    public var memorySize: UInt64
    /// The kernel ELF's bytes.
    public var kernel: UnsafeRawBufferPointer
    /// The image, already laid out in host memory (read-only for the guest, and never written
    /// by the VMM: it may be a PROT_READ mapping of a store file).
    public var image: UnsafeRawBufferPointer
    public var arguments: [[UInt8]]
    public var environment: [[UInt8]]
    public var seed: (UInt64, UInt64, UInt64, UInt64)
    /// Stop the guest after this many milliseconds (0: no limit).
    public var timeoutMilliseconds: UInt64 = 0
    /// `BootInfo.flags` for the kernel (e.g. syscall tracing).
    public var bootFlags: UInt64 = 0
    /// With `BootInfo.flagTerminal`: the host terminal's size at boot (0: unknown).
    public var terminalSize: (rows: UInt16, columns: UInt16) = (0, 0)
    /// The guest's hostname (at most `BootInfo.hostnameCapacity` bytes; empty: "apus").
    public var hostname: [UInt8] = []
    /// The app's initial working directory (an absolute image path; empty: "/").
    public var workingDirectory: [UInt8] = []
    /// A virtio-net interface (slot 0) and the ports to publish; nil: no network, no I/O
    /// thread, no extra descriptors (the VM boots exactly as without networking).
    public var network: NetworkConfiguration? = nil
    /// What the VMM gives up before the first KVM_RUN (Sandbox.swift); nil: nothing.
    public var sandbox: SandboxPolicy? = nil
    /// Host signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1/2, SIGWINCH) go to pid 1 in the
    /// guest instead of ending apus; a second SIGINT ends the VM, and so does
    /// `stopTimeoutMilliseconds` after SIGTERM.
    public var forwardHostSignals = false
    public var stopTimeoutMilliseconds: UInt64 = 10_000
    /// Where the kernel's mappings go (GuestABI's `KernelLayout`); nil: a random one per boot
    /// from the host's getrandom. Tests that hand-assemble a kernel fix it.
    public var kernelLayout: KernelLayout? = nil

    public init(memorySize: UInt64, kernel: UnsafeRawBufferPointer, image: UnsafeRawBufferPointer,
                arguments: [[UInt8]], environment: [[UInt8]], seed: (UInt64, UInt64, UInt64, UInt64)) {
        self.memorySize = memorySize
        self.kernel = kernel
        self.image = image
        self.arguments = arguments
        self.environment = environment
        self.seed = seed
    }
}

/// What this process's fds 0, 1 and 2 are (BootInfo.streams): fstat in the guest answers the
/// same file type, device (/dev/null) or size (a file).
public func hostStreamKinds() -> (StreamKind, StreamKind, StreamKind) {
    func kind(_ fd: Int32) -> StreamKind {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return StreamKind() }
        let type = UInt32(st.st_mode) & 0o170000
        return StreamKind(mode: type, rdev: type == 0o020000 ? UInt32(truncatingIfNeeded: st.st_rdev) : 0,
                          size: type == 0o100000 ? UInt64(max(st.st_size, 0)) : 0)
    }
    return (kind(0), kind(1), kind(2))
}

public func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// The host's time-stamp counter.
public func readHostTSC() -> UInt64 { ckvm_rdtsc() }

func realtimeNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// One VM with one vCPU on /dev/kvm: PVM (this workplace's KVM) or hardware KVM.
public final class VirtualMachine {
    static let pvmSignatureMSR: UInt32 = 0x4b56_4d11
    static let pvmSignature: UInt64 = 0x4d_5650
    static let pvmTSCFrequencyMSR: UInt32 = 0x4b56_4d13

    let kvm: Int32
    let vm: Int32
    var vcpu: Int32 = -1
    var run: UnsafeMutablePointer<kvm_run>? = nil
    var runSize = 0
    var memory = GuestMemory()
    var ram: AnonymousMapping? = nil
    public private(set) var platform = GuestPlatform.pvm
    public var timeline = RunTimeline()
    /// The virtio-net device when the configuration has a network (NetworkDevice.swift).
    public private(set) var networkDevice: NetworkDevice? = nil
    /// The live channel with the kernel and the thread that keeps its deadlines (Preemption.swift).
    var channel: HostChannelView? = nil
    var clock: GuestClock? = nil
    var stopTimeoutNanos: UInt64 = 0
    /// The guest has a terminal (-t): SIGWINCH becomes a window-size event.
    var terminal = false
    /// Guest TSC minus host TSC (wrapping).
    var guestTSCOffset: UInt64 = 0

    public init() throws(VMMError) {
        let fd = open("/dev/kvm", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            throw .noKVM("/dev/kvm: \(String(cString: strerror(e)))"
                + (e == ENOENT ? " (no KVM on this machine; try --vmm qemu)" : e == EACCES ? " (add yourself to the kvm group)" : ""))
        }
        kvm = fd
        let version = ckvm_ioctl_int(kvm, CKVM_GET_API_VERSION, 0)
        guard version == 12 else { close(kvm); throw .noKVM("unsupported KVM API version \(version)") }
        let vmfd = ckvm_ioctl_int(kvm, CKVM_CREATE_VM, 0)
        guard vmfd >= 0 else { close(kvm); throw .kvmCall("KVM_CREATE_VM", -vmfd) }
        vm = vmfd
        timeline.vmCreated = monotonicNanos()
    }

    deinit {
        if let run { munmap(run, runSize) }
        if vcpu >= 0 { close(vcpu) }
        close(vm)
        close(kvm)
    }

    private func setMemoryRegion(slot: UInt32, guest: PhysicalAddress, size: UInt64, host: UnsafeMutableRawPointer, flags: UInt32,
                                 writable: Bool = true) throws(VMMError) {
        var region = kvm_userspace_memory_region(slot: slot, flags: flags, guest_phys_addr: guest.raw,
                                                 memory_size: size, userspace_addr: UInt64(UInt(bitPattern: host)))
        let r = ckvm_ioctl_ptr(vm, CKVM_SET_USER_MEMORY_REGION, &region)
        guard r == 0 else { throw .kvmCall("KVM_SET_USER_MEMORY_REGION", -r) }
        memory.add(GuestMemoryRegion(guestBase: guest, size: size, host: host, writable: writable))
    }

    /// Boots the configuration and runs it to the end.
    public func boot<Sink: ConsoleSink>(_ config: VMConfiguration, sink: inout Sink) throws(VMMError) -> RunResult {
        // Guest RAM at 0, the image at 4 GiB (read-only where KVM supports it).
        guard let ram = AnonymousMapping(size: Int(config.memorySize)) else { throw .outOfHostMemory(Int(config.memorySize)) }
        self.ram = ram
        try setMemoryRegion(slot: 0, guest: PhysicalAddress(0), size: config.memorySize, host: ram.pointer, flags: 0)
        let readOnly = ckvm_ioctl_int(vm, CKVM_CHECK_EXTENSION, UInt(CKVM_CAP_READONLY_MEM)) > 0
        let imageSize = (UInt64(config.image.count) + 0xfff) & ~0xfff
        guard imageSize <= GuestABI.maxImageSize else { throw .boot(.imageTooLarge(imageSize)) }
        if imageSize > 0 {
            // SAFETY: the VMM never writes through this pointer (the region is not writable);
            // KVM maps the pages read-only when the mapping is PROT_READ, with or without
            // KVM_MEM_READONLY.
            try setMemoryRegion(slot: 1, guest: GuestABI.imageAddress, size: imageSize,
                                host: UnsafeMutableRawPointer(mutating: config.image.baseAddress!),
                                flags: readOnly ? CKVM_MEM_READONLY : 0, writable: false)
        }
        timeline.memoryReady = monotonicNanos()

        if let network = config.network {
            try createNetworkDevice(network)
        }
        // Whatever happens from here on, the I/O thread is joined and the backend shut down.
        defer { networkDevice?.stop() }

        try createVCPU()
        let kernel: BootSetup.LoadedKernel
        let layout = config.kernelLayout ?? KernelLayout(random: Self.hostRandom())
        do {
            kernel = try BootSetup.loadKernel(config.kernel, into: memory)
            try BootSetup.writePageTables(into: memory, directMapSpan: GuestABI.imageAddress.raw + imageSize,
                                          layout: layout, userAccessible: platform == .pvm)
            try writeDescriptorTables(layout)
        } catch { throw .boot(error) }
        guard kernel.end + (4 << 20) <= config.memorySize else { throw .boot(.kernelTooLarge) }
        timeline.kernelLoaded = monotonicNanos()

        try setRegisters(entry: BootSetup.entryAddress(kernel, layout: layout), layout: layout)
        timeline.vcpuReady = monotonicNanos()

        var info = BootInfo()
        info.platform = platform
        info.memorySize = config.memorySize
        info.kernelEnd = kernel.end
        info.imageSize = UInt64(config.image.count)
        let block: [UInt8]
        do {
            block = try ArgumentBlock.encode(arguments: config.arguments, environment: config.environment,
                                             workingDirectory: config.workingDirectory,
                                             capacity: Int(GuestABI.argumentsCapacity))
        } catch {
            throw .boot(.kernelTooLarge)
        }
        info.argumentsSize = UInt64(block.count)
        info.argc = UInt32(config.arguments.count)
        info.envc = UInt32(config.environment.count)
        info.workingDirectoryLength = UInt32(config.workingDirectory.count)
        info.tscFrequencyKHz = timeline.tscKHz
        info.seed = config.seed
        info.flags = config.bootFlags
        (info.terminalRows, info.terminalColumns) = config.terminalSize
        info.hostname = Array(config.hostname.prefix(BootInfo.hostnameCapacity))
        info.realtimeNanosAtBoot = realtimeNanos()
        info.bootTSC = ckvm_rdtsc()
        if let network = config.network { info.network = network.bootInfo }
        info.streams = hostStreamKinds()
        do { try BootSetup.writeBootInfo(info, arguments: block, into: memory) } catch { throw .boot(error) }

        if config.timeoutMilliseconds > 0 { _ = ckvm_arm_watchdog(run, config.timeoutMilliseconds) }
        defer { if config.timeoutMilliseconds > 0 { ckvm_disarm_watchdog() } }
        try prepareHostChannel(config)
        defer {
            clock?.stop()
            clock = nil
            ckvm_stop_forwarding()
        }
        if let sandbox = config.sandbox {
            timeline.sandbox = try Sandbox.enter(sandbox)
            timeline.sandboxed = monotonicNanos()
        }
        try clock?.start()
        if !(config.network?.startsOnDemand ?? false) { try networkDevice?.start() }
        timeline.firstRun = monotonicNanos()
        timeline.firstRunTSC = info.bootTSC
        let status: ExitStatus
        do {
            status = try runLoop(sink: &sink, timeout: config.timeoutMilliseconds)
        } catch {
            // What the program wrote before the VM stopped still reaches the host; after a
            // timeout, a fresh 200 ms watchdog ends the writes if the reader is stuck.
            if case .timedOut = error { _ = ckvm_extend_watchdog(200) }
            drainConsole(sink: &sink)
            throw classify(error)
        }
        timeline.exited = monotonicNanos()
        if let page = memory.bytes(at: GuestABI.bootInfoAddress + UInt64(Timeline.offset), count: 32) {
            timeline.guest = Timeline(decoding: UnsafeRawBufferPointer(page))
        }
        return RunResult(status: status, timeline: timeline)
    }

    /// The in-kernel irqchip when the guest takes interrupts (before the vCPU exists), the
    /// published ports (bound now, so a taken port fails the boot), and the device in slot 0.
    private func createNetworkDevice(_ network: NetworkConfiguration) throws(VMMError) {
        var forwarders: [PortForwarder] = []
        do throws(PortForwarder.Error) {
            for f in network.forwards { forwarders.append(try PortForwarder(f, guest: network.ipv4.address)) }
        } catch {
            forwarders.forEach { $0.shutdown() }
            network.backend.shutdown()
            throw .boot(.network(error.message))
        }
        if network.guestInterrupts {
            let irqchip = ckvm_ioctl_int(vm, CKVM_CREATE_IRQCHIP, 0)
            // EEXIST: someone created it already, which is what we need.
            guard irqchip == 0 || irqchip == -EEXIST else {
                forwarders.forEach { $0.shutdown() }
                network.backend.shutdown()
                throw .kvmCall("KVM_CREATE_IRQCHIP", -irqchip)
            }
        }
        let device: NetworkDevice
        do {
            device = try NetworkDevice(configuration: network, slot: 0, memory: memory, forwarders: forwarders)
        } catch {
            forwarders.forEach { $0.shutdown() }
            network.backend.shutdown()
            throw error
        }
        device.attach(vm: vm, accelerate: network.kernelAcceleration, interrupts: network.guestInterrupts)
        networkDevice = device
    }

    /// An MMIO exit in the virtio window: the device's registers, or an empty slot (reads 0:
    /// device ID 0 means "no device"; writes ignored).
    private func handleVirtioMMIO(_ run: UnsafeMutablePointer<kvm_run>) {
        let mmio = run.pointee.mmio
        let size = Int(min(mmio.len, 8))
        guard let device = networkDevice, device.contains(mmio.phys_addr) else {
            if mmio.is_write == 0 { run.pointee.mmio.data = (0, 0, 0, 0, 0, 0, 0, 0) }
            return
        }
        // A device that starts on demand gets its I/O thread when the driver first looks.
        if !device.isStarted {
            do { try device.start() } catch { warn("network: \(error.message); the guest's network device stays idle") }
        }
        let offset = mmio.phys_addr - device.base
        if mmio.is_write != 0 {
            var value: UInt64 = 0
            withUnsafeBytes(of: mmio.data) { bytes in
                for i in 0..<size { value |= UInt64(bytes[i]) << UInt64(i * 8) }
            }
            device.mmioWrite(offset: offset, size: size, value: UInt32(truncatingIfNeeded: value))
        } else {
            let value = UInt64(device.mmioRead(offset: offset, size: size))
            withUnsafeMutableBytes(of: &run.pointee.mmio.data) { bytes in
                for i in 0..<8 { bytes[i] = i < size ? UInt8(truncatingIfNeeded: value >> UInt64(i * 8)) : 0 }
            }
        }
    }

    private func createVCPU() throws(VMMError) {
        let fd = ckvm_ioctl_int(vm, CKVM_CREATE_VCPU, 0)
        guard fd >= 0 else { throw .kvmCall("KVM_CREATE_VCPU", -fd) }
        vcpu = fd
        let size = ckvm_ioctl_int(kvm, CKVM_GET_VCPU_MMAP_SIZE, 0)
        guard size > 0 else { throw .kvmCall("KVM_GET_VCPU_MMAP_SIZE", -size) }
        let p = mmap(nil, Int(size), PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0)
        guard let p, p != MAP_FAILED else { throw .kvmCall("mmap(kvm_run)", errno) }
        run = p.assumingMemoryBound(to: kvm_run.self)
        runSize = Int(size)
        let c = ckvm_set_supported_cpuid(kvm, vcpu)
        guard c == 0 else { throw .kvmCall("KVM_SET_CPUID2", -c) }

        // PVM announces itself through a custom MSR (PVM.md); hardware KVM rejects the index.
        var signature: UInt64 = 0
        if ckvm_get_msr(vcpu, Self.pvmSignatureMSR, &signature) == 1 && signature == Self.pvmSignature {
            platform = .pvm
            var khz: UInt64 = 0
            if ckvm_get_msr(vcpu, Self.pvmTSCFrequencyMSR, &khz) == 1 { timeline.tscKHz = khz }
        } else {
            platform = .native
        }
        if timeline.tscKHz == 0 {
            let khz = ckvm_ioctl_int(vcpu, CKVM_GET_TSC_KHZ, 0)
            guard khz > 0 else { throw .kvmCall("KVM_GET_TSC_KHZ", -khz) }
            timeline.tscKHz = UInt64(khz)
        }
    }

    /// The GDT (Linux's layout) and a TSS, at the end of the boot page-table area; the CPU
    /// reaches them through the direct map.
    static let gdtAddress = PhysicalAddress(GuestABI.bootPageTablesAddress.raw + GuestABI.bootPageTablesSize - 0x1000)
    static let tssAddress = PhysicalAddress(gdtAddress.raw + 0x800)

    /// 64 random bits from the host (getrandom), for the kernel's layout; the TSC if getrandom
    /// ever fails, so the layout never falls back to one fixed place.
    static func hostRandom() -> UInt64 {
        var value: UInt64 = 0
        let n = withUnsafeMutableBytes(of: &value) { ckvm_getrandom($0.baseAddress, 8) }
        return n == 8 ? value : ckvm_rdtsc()
    }

    private func writeDescriptorTables(_ layout: KernelLayout) throws(BootSetup.Error) {
        guard let gdt = memory.bytes(at: Self.gdtAddress, count: 0x1000, writable: true) else { throw .kernelTooLarge }
        gdt.initializeMemory(as: UInt8.self, repeating: 0)
        SegmentLayout.writeGDT(into: gdt, tssBase: layout.directMapBase + Self.tssAddress.raw)
        gdt.writeLE(UInt16(SegmentLayout.tssLimit + 1), at: 0x800 + 102)  // TSS: no I/O bitmap
    }

    private func segment(_ selector: UInt16, type: UInt8, code: Bool) -> kvm_segment {
        var s = kvm_segment()
        s.base = 0
        s.limit = 0xffff_ffff
        s.selector = selector
        s.type = type
        s.present = 1
        s.dpl = 0
        s.db = code ? 0 : 1
        s.s = 1
        s.l = code ? 1 : 0
        s.g = 1
        return s
    }

    private func setRegisters(entry: UInt64, layout: KernelLayout) throws(VMMError) {
        var sregs = kvm_sregs()
        var r = ckvm_ioctl_ptr(vcpu, CKVM_GET_SREGS, &sregs)
        guard r == 0 else { throw .kvmCall("KVM_GET_SREGS", -r) }
        sregs.cs = segment(SegmentLayout.kernelCode, type: 0xb, code: true)
        let data = segment(SegmentLayout.kernelData, type: 0x3, code: false)
        sregs.ds = data; sregs.es = data; sregs.fs = data; sregs.gs = data; sregs.ss = data
        var tr = kvm_segment()
        tr.base = layout.directMapBase + Self.tssAddress.raw
        tr.limit = UInt32(SegmentLayout.tssLimit)
        tr.selector = SegmentLayout.tss
        tr.type = 11
        tr.present = 1
        sregs.tr = tr
        var ldt = kvm_segment()
        ldt.unusable = 1
        sregs.ldt = ldt
        sregs.gdt.base = layout.directMapBase + Self.gdtAddress.raw
        sregs.gdt.limit = SegmentLayout.gdtLimit
        sregs.cr0 = 0x8005_0033       // PG | AM | WP | NE | ET | MP | PE
        sregs.cr3 = GuestABI.bootPageTablesAddress.raw
        sregs.cr4 = 0x620             // PAE | OSFXSR | OSXMMEXCPT
        sregs.efer = 0xd01            // NXE | LMA | LME | SCE
        r = ckvm_ioctl_ptr(vcpu, CKVM_SET_SREGS, &sregs)
        if r != 0 {
            sregs.cr4 = 0x20          // PAE only: what PVM.md confirmed
            r = ckvm_ioctl_ptr(vcpu, CKVM_SET_SREGS, &sregs)
        }
        guard r == 0 else { throw .kvmCall("KVM_SET_SREGS", -r) }

        // SYSCALL: STAR selectors and the flags to clear; the kernel writes LSTAR itself.
        _ = ckvm_set_msr(vcpu, 0xc000_0081, SegmentLayout.star)
        _ = ckvm_set_msr(vcpu, 0xc000_0084, SegmentLayout.syscallFlagMask)

        var regs = kvm_regs()
        regs.rip = entry
        regs.rflags = 0x2
        regs.rdi = platform == .pvm ? 1 : 2   // arch/entry.S: the boot protocol
        regs.rsi = GuestABI.bootInfoAddress.raw
        regs.rdx = layout.directMapBase
        r = ckvm_ioctl_ptr(vcpu, CKVM_SET_REGS, &regs)
        guard r == 0 else { throw .kvmCall("KVM_SET_REGS", -r) }
    }

    /// The channel, the host signal handlers and the clock thread (started after the sandbox).
    private func prepareHostChannel(_ config: VMConfiguration) throws(VMMError) {
        guard let run, let view = HostChannelView(memory: memory) else { return }
        channel = view
        stopTimeoutNanos = config.stopTimeoutMilliseconds &* 1_000_000
        terminal = config.bootFlags & BootInfo.flagTerminal != 0
        if config.forwardHostSignals {
            let r = HostChannel.forwardedSignals.withUnsafeBufferPointer {
                ckvm_forward_host_signals(run, $0.baseAddress, Int32($0.count))
            }
            guard r == 0 else { throw .kvmCall("sigaction (host signals)", -r) }
        }
        // The kernel's deadline doorbell as an ioeventfd: it wakes the clock thread with no
        // exit to this process. Without one (an old host), the doorbell is an MMIO exit the
        // run loop answers the same way.
        let wake = ckvm_eventfd()
        guard wake >= 0 else { throw .kvmCall("eventfd", -wake) }
        let timer = ckvm_timerfd_create()
        guard timer >= 0 else { close(wake); throw .kvmCall("timerfd_create", -timer) }
        _ = ckvm_ioeventfd(vm, GuestABI.doorbellAddress.raw + Doorbell.deadline.rawValue, 8, 0, wake, 1)
        // The guest's TSC runs at the host's rate from its own origin (KVM gives each VM an
        // offset): the kernel's deadlines are guest TSC values.
        var guestTSC: UInt64 = 0
        let before = ckvm_rdtsc()
        let r = ckvm_get_msr(vcpu, 0x10, &guestTSC)
        let after = ckvm_rdtsc()
        guestTSCOffset = r == 1 ? guestTSC &- (before / 2 &+ after / 2) : 0
        clock = GuestClock(channel: view, wakeFD: wake, timerFD: timer, vcpuThread: pthread_self(),
                           tscKHz: timeline.tscKHz, guestTSCOffset: guestTSCOffset)
    }

    /// After a host signal or a kick: signals go into the channel, a second Ctrl-C or an
    /// expired stop timeout ends the VM, and app code is interrupted when the kernel has
    /// something due (a signal to deliver, its deadline).
    private func serviceHost() throws(VMMError) {
        guard let channel else { return }
        let bits = ckvm_take_host_signals()
        if bits != 0 {
            if ckvm_host_interrupts() >= 2 {
                throw .stoppedFromHost("interrupted twice: the VM was stopped", status: 128 + SIGINT)
            }
            if bits & (1 << UInt64(SIGTERM - 1)) != 0 && stopTimeoutNanos > 0 {
                clock?.setStopDeadline(afterNanoseconds: stopTimeoutNanos)
            }
            var forSignals = bits
            if terminal && bits & (1 << UInt64(SIGWINCH - 1)) != 0 {
                // With -t the guest's terminal sends SIGWINCH to its foreground group itself,
                // once it has the new size.
                forSignals &= ~(1 << UInt64(SIGWINCH - 1))
                var size = winsize()
                if ioctl(0, UInt(TIOCGWINSZ), &size) == 0 {
                    channel.store(HostChannel.windowSize, UInt64(size.ws_row) | UInt64(size.ws_col) << 16)
                    channel.or(HostChannel.events, HostChannel.eventWindowChanged)
                }
            }
            if forSignals != 0 { channel.or(HostChannel.pendingSignals, forSignals) }
        }
        if clock?.stopExpired == true {
            throw .stoppedFromHost(VMMError.stopTimeoutMessage(milliseconds: stopTimeoutNanos / 1_000_000), status: 128 + SIGKILL)
        }
        let pending = channel.load(HostChannel.pendingSignals) != 0 || channel.load(HostChannel.events) != 0
        let deadline = channel.load(HostChannel.deadline)
        guard pending || (deadline != 0 && deadline <= ckvm_rdtsc() &+ guestTSCOffset) else { return }
        if !redirectToKernel(fault: 0) && pending { clock?.recheckSignals() }
    }

    /// Stops app code and enters the kernel's preemption entry (HostChannel): the app's
    /// registers go to the kernel's save area, rip to the entry. Only when the vCPU is in app
    /// code: the kernel's "active" byte clear and rip outside the kernel's text (its entry and
    /// exit paths run with the byte clear). Returns whether it redirected.
    private func redirectToKernel(fault: UInt64) -> Bool {
        guard let channel else { return false }
        let entry = channel.load(HostChannel.entry)
        guard entry != 0,
              let active = memory.bytes(at: PhysicalAddress(channel.load(HostChannel.kernelActive)), count: 1),
              active[0] == 0,
              let save = memory.bytes(at: PhysicalAddress(channel.load(HostChannel.saveArea)),
                                      count: UInt64(PreemptedRegisters.size), writable: true)
        else { return false }
        var regs = kvm_regs()
        guard ckvm_ioctl_ptr(vcpu, CKVM_GET_REGS, &regs) == 0 else { return false }
        if regs.rip >= channel.load(HostChannel.kernelTextStart) && regs.rip < channel.load(HostChannel.kernelTextEnd) {
            return false
        }
        let words: [UInt64] = [regs.r15, regs.r14, regs.r13, regs.r12, regs.rbp, regs.rbx, regs.r9, regs.r8,
                               regs.r10, regs.rdx, regs.rsi, regs.rdi, regs.rax, regs.rcx, regs.r11,
                               regs.rip, UInt64(SegmentLayout.userCode), regs.rflags, regs.rsp, UInt64(SegmentLayout.userData)]
        for (i, word) in words.enumerated() { save.writeLE(word, at: i * 8) }
        if fault != 0 { channel.store(HostChannel.appFault, fault) }
        regs.rip = entry
        regs.rflags = 0x2
        guard ckvm_ioctl_ptr(vcpu, CKVM_SET_REGS, &regs) == 0 else { return false }
        return true
    }

    private func runLoop<Sink: ConsoleSink>(sink: inout Sink, timeout: UInt64) throws(VMMError) -> ExitStatus {
        guard let run else { throw .unexpectedExit("no vCPU") }
        var rejections = 0
        while true {
            if ckvm_take_attention() != 0 { try serviceHost() }
            let r = ckvm_ioctl_ptr(vcpu, CKVM_RUN, nil)
            timeline.exitCount += 1
            if r < 0 {
                if -r == EINTR || -r == EAGAIN {
                    run.pointee.immediate_exit = 0
                    if ckvm_watchdog_fired() != 0 { throw .timedOut(timeout) }
                    continue
                }
                throw .kvmCall("KVM_RUN", -r)
            }
            switch Int32(run.pointee.exit_reason) {
            case KVM_EXIT_MMIO:
                let mmio = run.pointee.mmio
                if networkDevice != nil, mmio.phys_addr >= GuestABI.virtioBase.raw,
                   mmio.phys_addr < GuestABI.virtioBase.raw + GuestABI.virtioStride * UInt64(GuestABI.virtioMaxSlots) {
                    handleVirtioMMIO(run)
                    continue
                }
                let doorbellBase = GuestABI.doorbellAddress.raw
                guard mmio.is_write != 0, mmio.phys_addr >= doorbellBase, mmio.phys_addr < doorbellBase + 0x1000 else {
                    if mmio.is_write == 0 {
                        // A read of device memory: answer zeros, like an absent device.
                        run.pointee.mmio.data = (0, 0, 0, 0, 0, 0, 0, 0)
                    }
                    rejections += 1
                    if rejections <= 3 {
                        warn("guest accessed unmapped guest-physical address 0x\(String(mmio.phys_addr, radix: 16)); ignored")
                    }
                    continue
                }
                var value: UInt64 = 0
                withUnsafeBytes(of: mmio.data) { bytes in
                    for i in 0..<Int(min(mmio.len, 8)) { value |= UInt64(bytes[i]) << UInt64(i * 8) }
                }
                if mmio.phys_addr - doorbellBase == Doorbell.deadline.rawValue {
                    clock?.deadlineChanged()
                    continue
                }
                if let device = networkDevice, mmio.phys_addr - doorbellBase == Doorbell.sleep.rawValue {
                    // Idle with a network: an interrupt for a frame must end the sleep.
                    device.sleep(nanoseconds: value)
                    continue
                }
                switch handleDoorbell(offset: mmio.phys_addr - doorbellBase, value: value, memory: memory, sink: &sink) {
                case .resume: continue
                case .exit(let status):
                    return status
                case .panic(let text): throw .unexpectedExit("guest kernel panic: \(text)")
                case .rejected(let why):
                    rejections += 1
                    if rejections <= 3 { warn("bad request from the guest: \(why)") }
                }
            case KVM_EXIT_HLT:
                // `hlt` in app code (pvm emulates it for any code): Linux raises SIGSEGV there.
                if redirectToKernel(fault: UInt64(SIGSEGV)) { continue }
                throw .unexpectedExit("the guest halted with interrupts disabled")
            case KVM_EXIT_SHUTDOWN:
                // The app's stack overflowed: the fault's frame had no room on it (pvm pushes it
                // on the app's stack), so the CPU shut down. The kernel raises SIGSEGV instead,
                // which a handler on an alternate stack can catch, as on Linux.
                if case .stackOverflow = classify(.unexpectedExit("the guest triple-faulted")),
                   redirectToKernel(fault: UInt64(SIGSEGV) | HostChannel.appFaultStackOverflow) { continue }
                throw .unexpectedExit("the guest triple-faulted at rip 0x\(String(currentRIP(), radix: 16)) (an exception the kernel could not handle, e.g. the app's stack overflowed)")
            case KVM_EXIT_FAIL_ENTRY:
                throw .unexpectedExit("KVM could not enter the guest (hardware reason 0x\(String(run.pointee.fail_entry.hardware_entry_failure_reason, radix: 16)))")
            case KVM_EXIT_INTERNAL_ERROR:
                throw .unexpectedExit("KVM internal error (suberror \(run.pointee.internal.suberror)) at rip 0x\(String(currentRIP(), radix: 16))")
            case KVM_EXIT_IO:
                throw .unexpectedExit("port I/O to 0x\(String(run.pointee.io.port, radix: 16)) (the kernel used the wrong platform)")
            case KVM_EXIT_INTR:
                run.pointee.immediate_exit = 0
                if ckvm_watchdog_fired() != 0 { throw .timedOut(timeout) }
                continue
            default:
                throw .unexpectedExit("exit reason \(run.pointee.exit_reason) at rip 0x\(String(currentRIP(), radix: 16))")
            }
        }
    }

    /// The guest state the kernel keeps in the boot info page (see GuestState).
    private var guestState: GuestState? {
        memory.bytes(at: GuestABI.bootInfoAddress + UInt64(GuestState.offset), count: UInt64(GuestState.size))
            .map { GuestState(decoding: UnsafeRawBufferPointer($0)) }
    }

    /// After an abnormal stop: writes out what the app wrote but the kernel had not flushed.
    private func drainConsole<Sink: ConsoleSink>(sink: inout Sink) {
        guard let state = guestState else { return }
        for (stream, buffer, fill) in [(ConsoleStream.stdout, state.stdoutBuffer, state.stdoutFill),
                                       (.stderr, state.stderrBuffer, state.stderrFill)] where fill > 0 {
            // The guest's numbers are checked like any request: at most one buffer, in RAM.
            guard fill <= 1 << 20, let bytes = memory.bytes(at: buffer, count: fill) else { continue }
            sink.write(stream, UnsafeRawBufferPointer(bytes))
        }
    }

    /// A triple fault with rsp just below the app's stack is the app's stack overflow.
    private func classify(_ error: VMMError) -> VMMError {
        guard case .unexpectedExit(let what) = error, what.hasPrefix("the guest triple-faulted"),
              let low = guestState?.appStackLow, low != 0 else { return error }
        var regs = kvm_regs()
        guard ckvm_ioctl_ptr(vcpu, CKVM_GET_REGS, &regs) == 0 else { return error }
        if regs.rsp < low + 4096 && regs.rsp + (1 << 20) > low {
            return .stackOverflow(rip: regs.rip, rsp: regs.rsp)
        }
        return error
    }

    private func currentRIP() -> UInt64 {
        var regs = kvm_regs()
        return ckvm_ioctl_ptr(vcpu, CKVM_GET_REGS, &regs) == 0 ? regs.rip : 0
    }

    private func warn(_ text: String) {
        let line = "apus: \(text)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }
}
