import GuestABI
import KernelArch

/// The platform layer (DESIGN.md "Platforms"): what differs between this workplace's KVM (pvm)
/// and ordinary x86-64 (native). Everything above it is shared.
enum Platform {
    nonisolated(unsafe) static var kind = GuestPlatform.pvm
    nonisolated(unsafe) static var bootProtocol = BootProtocol.apusPVM

    static let userCode = UInt64(SegmentLayout.userCode)
    static let userData = UInt64(SegmentLayout.userData)

    // MSRs
    static let msrEFER: UInt32 = 0xc000_0080
    static let msrSTAR: UInt32 = 0xc000_0081
    static let msrLSTAR: UInt32 = 0xc000_0082
    static let msrSFMASK: UInt32 = 0xc000_0084
    static let msrFSBase: UInt32 = 0xc000_0100
    static let msrGSBase: UInt32 = 0xc000_0101

    static func initialize(_ platform: GuestPlatform, protocol proto: BootProtocol) {
        kind = platform
        bootProtocol = proto
        if platform == .native { loadGDTAndTSS() }
        loadIDT()
        if platform == .native {
            enableUMIP()
            arch_wrmsr(msrSTAR, SegmentLayout.star)
            arch_wrmsr(msrSFMASK, SegmentLayout.syscallFlagMask)
            arch_wrmsr(msrEFER, arch_rdmsr(msrEFER) | 1)  // SCE
        }
        // On pvm, STAR and SFMASK were set by the VMM (KVM_SET_MSRS); LSTAR is ours to set.
        arch_wrmsr(msrLSTAR, arch_syscall_entry_address())
        if proto == .pvh {
            // Drop the identity mapping the 32-bit entry needed: that range is the app's.
            PageTable.clearAppRegion()
        }
    }

    /// Native only: with CR4.UMIP (when the CPU has it) sgdt, sidt, sldt, smsw and str fault
    /// in user mode, so a program cannot learn where the descriptor tables lie in the direct
    /// map. The kernel never uses them. Not on pvm, where the kernel shares the app's CPL.
    private static func enableUMIP() {
        var a: UInt32 = 0, b: UInt32 = 0, c: UInt32 = 0, d: UInt32 = 0
        arch_cpuid(0, 0, &a, &b, &c, &d)
        guard a >= 7 else { return }
        arch_cpuid(7, 0, &a, &b, &c, &d)
        guard c & (1 << 2) != 0 else { return }
        arch_write_cr4(arch_read_cr4() | (1 << 11))
    }

    /// Every page must carry U on pvm (kernel pages included); on native only user pages do.
    static var kernelPagesAreUserAccessible: Bool { kind == .pvm }

    // MARK: descriptor tables

    private static func loadIDT() {
        guard let page = PhysicalMemory.allocatePage() else { panic("no memory for the IDT") }
        let idt = directMap(page)
        // On pvm gates must use selector 0x33 and IST 0 (PVM.md); on native the kernel's CS.
        let selector = kind == .pvm ? SegmentLayout.userCode : SegmentLayout.kernelCode
        for vector in 0..<22 {
            let dpl3 = vector == 3 || vector == 4  // int3 and into from user mode
            setGate(idt, vector: vector, handler: handlerAddress(vector),
                    selector: selector, typeAttributes: dpl3 ? 0xee : 0x8e)
        }
        setGate(idt, vector: 32, handler: arch_timer_handler(), selector: selector, typeAttributes: 0x8e)
        arch_lidt(UInt64(UInt(bitPattern: idt)), 256 * 16 - 1)
    }

    private static func handlerAddress(_ vector: Int) -> UInt64 { arch_trap_handler(Int32(vector)) }

    private static func setGate(_ idt: UnsafeMutableRawPointer, vector: Int, handler: UInt64,
                                selector: UInt16, typeAttributes: UInt8) {
        let e = UnsafeMutableRawBufferPointer(start: idt + vector * 16, count: 16)
        e.writeLE(UInt16(truncatingIfNeeded: handler), at: 0)
        e.writeLE(selector, at: 2)
        e[4] = 0  // IST 0: pvm cannot use IST; native takes RSP0 from the TSS for user traps
        e[5] = typeAttributes
        e.writeLE(UInt16(truncatingIfNeeded: handler >> 16), at: 6)
        e.writeLE(UInt32(truncatingIfNeeded: handler >> 32), at: 8)
        e.writeLE(UInt32(0), at: 12)
    }

    /// Native only: Linux's GDT layout plus a TSS whose RSP0 is the trap stack for user traps.
    private static func loadGDTAndTSS() {
        guard let page = PhysicalMemory.allocatePage(), let stack = PhysicalMemory.allocateContiguous(pages: 4)
        else { panic("no memory for the GDT") }
        let base = directMap(page)
        let gdt = UnsafeMutableRawBufferPointer(start: base, count: Int(SegmentLayout.gdtLimit) + 1)
        let tssAddress = UInt64(UInt(bitPattern: base)) + 0x100
        let tss = UnsafeMutableRawBufferPointer(start: base + 0x100, count: 104)
        let trapStackTop = Kernel.directMapBase + stack.raw + 4 * 4096
        tss.writeLE(trapStackTop, at: 4)   // RSP0
        tss.writeLE(UInt16(104), at: 102)  // no I/O permission bitmap
        SegmentLayout.writeGDT(into: gdt, tssBase: tssAddress)
        arch_lgdt(UInt64(UInt(bitPattern: base)), SegmentLayout.gdtLimit)
        arch_ltr(SegmentLayout.tss)
    }
}

/// QEMU's PVH boot: hvm_start_info (Xen's public arch-x86/hvm/start_info.h layout, version 1)
/// names the first module, which the QEMU launcher fills with a `QEMUBundle`.
enum PVHBoot {
    static let startInfoMagic: UInt32 = 0x336e_c578

    static func bootInfo(startInfo: PhysicalAddress) -> BootInfo {
        let info = UnsafeRawBufferPointer(start: directMap(startInfo), count: 56)
        guard info.readLE(UInt32.self, at: 0) == startInfoMagic else { panic("PVH: bad start_info magic") }
        let version = info.readLE(UInt32.self, at: 4)
        let moduleCount = info.readLE(UInt32.self, at: 12)
        guard moduleCount >= 1 else { panic("PVH: no boot module (the launcher passes the program as -initrd)") }
        let module = UnsafeRawBufferPointer(start: directMap(PhysicalAddress(info.readLE(UInt64.self, at: 16))), count: 32)
        let moduleAddress = PhysicalAddress(module.readLE(UInt64.self, at: 0))
        let moduleSize = module.readLE(UInt64.self, at: 8)

        // RAM size: the end of the highest RAM range in the memory map (type 1).
        var ramEnd: UInt64 = 0
        if version >= 1 {
            let mapAddress = PhysicalAddress(info.readLE(UInt64.self, at: 40))
            let entries = Int(info.readLE(UInt32.self, at: 48))
            let map = UnsafeRawBufferPointer(start: directMap(mapAddress), count: entries * 24)
            for i in 0..<entries where map.readLE(UInt32.self, at: i * 24 + 16) == 1 {
                let end = map.readLE(UInt64.self, at: i * 24) &+ map.readLE(UInt64.self, at: i * 24 + 8)
                if end <= 0x1_0000_0000 { ramEnd = max(ramEnd, end) }
            }
        }
        guard ramEnd > 0 else { panic("PVH: no memory map") }

        let bundle = UnsafeRawBufferPointer(start: directMap(moduleAddress), count: Int(moduleSize))
        guard moduleSize >= QEMUBundle.imageOffset,
              var boot = try? BootInfo(decoding: UnsafeRawBufferPointer(rebasing: bundle[0..<BootInfo.size]))
        else { panic("PVH: boot module is not an apus boot bundle") }
        boot.platform = .native
        // Usable RAM ends where the bundle starts (QEMU puts the initrd at the top of RAM).
        boot.memorySize = min(ramEnd, moduleAddress.raw)
        boot.argumentsAddress = moduleAddress + QEMUBundle.argumentsOffset
        boot.imageAddress = moduleAddress + QEMUBundle.imageOffset
        boot.kernelEnd = arch_kernel_image_end() - Kernel.virtualBase
        return boot
    }
}

/// The native platform's time slice: the local APIC timer (xAPIC registers through the
/// direct map, periodic mode, calibrated against the TSC at start) raises vector 32 every
/// `Scheduler.sliceNanos` while app code runs (the kernel runs with interrupts off), so a
/// thread spinning in user code is preempted. Not on pvm, where an interrupt in app code
/// would be delivered on the app's stack: the VMM preempts there (`HostEvents`).
enum LocalAPIC {
    static let timerVector: UInt32 = 32
    static let physicalBase: UInt64 = 0xfee0_0000
    static let eoi = 0xb0, spurious = 0xf0, lvtTimer = 0x320, initialCount = 0x380, currentCount = 0x390,
               divide = 0x3e0
    nonisolated(unsafe) static var enabled = false

    private static func register(_ offset: Int) -> UnsafeMutablePointer<UInt32> {
        (directMap(PhysicalAddress(physicalBase)) + offset).assumingMemoryBound(to: UInt32.self)
    }

    static func start() {
        guard Platform.kind == .native else { return }
        var a: UInt32 = 0, b: UInt32 = 0, c: UInt32 = 0, d: UInt32 = 0
        arch_cpuid(1, 0, &a, &b, &c, &d)
        guard d & (1 << 9) != 0 else { return }  // no local APIC
        register(spurious).pointee = 0x100 | timerVector   // enabled; spurious → the same gate
        register(divide).pointee = 0xb                      // divide by 1
        // Calibrate: count down from the top for 1 ms of TSC time.
        register(lvtTimer).pointee = timerVector | (1 << 16)  // masked one-shot
        register(initialCount).pointee = UInt32.max
        let start = arch_rdtsc(), wait = Clock.tscPerSecond / 1000
        while arch_rdtsc() &- start < wait { arch_pause() }
        let perMillisecond = UInt64(UInt32.max - register(currentCount).pointee)
        guard perMillisecond > 0 else { return }
        register(lvtTimer).pointee = timerVector | (1 << 17)  // periodic
        register(initialCount).pointee = UInt32(min(perMillisecond * (Scheduler.sliceNanos / 1_000_000), UInt64(UInt32.max)))
        enabled = true
    }

    /// End of interrupt.
    static func acknowledge() {
        guard enabled else { return }
        register(eoi).pointee = 0
    }
}
