import GuestABI
import KernelArch

/// How the kernel was entered (arch/entry.S passes it in rdi).
enum BootProtocol: UInt64 {
    /// apus VMM on this workplace's KVM (PVM): flat native mode was just switched on.
    case apusPVM = 1
    /// apus VMM on hardware KVM: ordinary 64-bit ring 0 with the VMM's page tables.
    case apusNative = 2
    /// QEMU's PVH loader: the boot info comes from hvm_start_info and the first module.
    case pvh = 3
}

/// The kernel's entry from arch/entry.S. Reads like the boot order, one step a line.
@_cdecl("kernel_main")
func kernelMain(_ protocolRaw: UInt64, _ infoAddress: UInt64, _ directMapBase: UInt64) -> Never {
    let entryTSC = arch_rdtsc()
    guard let proto = BootProtocol(rawValue: protocolRaw) else { haltForever() }
    // 0. Where this boot put the direct map (chosen by the VMM, or by the PVH entry) and the
    //    kernel (found from where it runs; entry.S relocated it there).
    guard let layout = KernelLayout(directMapBase: directMapBase,
                                    kernelVirtualBase: arch_kernel_image_start() &- GuestABI.kernelPhysicalBase.raw)
    else { haltForever() }
    Kernel.directMapBase = layout.directMapBase
    Kernel.virtualBase = layout.kernelVirtualBase

    // 1. Find the boot info (apus VMM: a page it wrote; PVH: built from hvm_start_info).
    let boot: BootInfo
    switch proto {
    case .apusPVM, .apusNative:
        Console.useDoorbells()
        let page = UnsafeRawBufferPointer(start: directMap(PhysicalAddress(infoAddress)), count: BootInfo.size)
        do { boot = try BootInfo(decoding: page) } catch { panic("boot info unreadable") }
    case .pvh:
        Console.useSerial()
        boot = PVHBoot.bootInfo(startInfo: PhysicalAddress(infoAddress))
    }
    Kernel.boot = boot
    Kernel.timeline.kernelEntry = entryTSC

    // 2. Memory: physical pages after the kernel (the heap the Swift runtime uses draws on
    //    them), then the console's buffers.
    PhysicalMemory.initialize(boot: boot, freshPagesAreZero: proto != .pvh)
    Console.allocateBuffers()
    // 3. The platform: descriptor tables, syscall entry, what pages must look like.
    Platform.initialize(boot.platform, protocol: proto)
    //    The kernel's own mapping: only its image, text read-only, nothing else executable.
    KernelImage.protect(userAccessible: Platform.kernelPagesAreUserAccessible)
    // 4. Time and randomness from what the host measured.
    Clock.initialize(boot: boot, entryTSC: entryTSC)
    Random.initialize(seed: boot.seed)
    WindowBlocks.placeStart(random: Random.next())
    // 5. The program: image, ELF, address space, stack — then user mode.
    let main = Scheduler.current
    let program = Loader.loadProgram(boot: boot, process: main.process)
    main.process.program = program
    Files.addProcessDirectory(main.process.pid, executable: program.executablePath)
    main.process.commandLine = Process.argumentBytes(
        UnsafeRawBufferPointer(start: directMap(boot.argumentsAddress), count: Int(boot.argumentsSize)), count: Int(boot.argc))
    HostEvents.initialize()
    Kernel.timeline.appEntry = arch_rdtsc()
    Kernel.publishTimeline()
    LocalAPIC.start()
    program.enter(main)
}

/// Kernel-wide state: what the VM was booted with.
enum Kernel {
    nonisolated(unsafe) static var boot = BootInfo()
    nonisolated(unsafe) static var timeline = Timeline()
    /// This boot's `KernelLayout.directMapBase` (set first thing in kernel_main).
    nonisolated(unsafe) static var directMapBase: UInt64 = 0
    /// This boot's `KernelLayout.kernelVirtualBase`: the kernel image runs at it + physical.
    nonisolated(unsafe) static var virtualBase: UInt64 = 0

    /// Copies the timeline into the boot info page, where the VMM reads it after the exit.
    static func publishTimeline() {
        guard Platform.bootProtocol != .pvh else { return }
        let page = UnsafeMutableRawBufferPointer(
            start: directMap(GuestABI.bootInfoAddress + UInt64(Timeline.offset)), count: 32)
        timeline.encode(into: page)
    }
}

/// A pointer to physical memory through the direct map.
@inline(__always)
func directMap(_ address: PhysicalAddress) -> UnsafeMutableRawPointer {
    UnsafeMutableRawPointer(bitPattern: UInt(Kernel.directMapBase &+ address.raw))!
}

/// The physical address of a kernel image address (code, data, bss).
@inline(__always)
func kernelPhysical(_ pointer: UnsafeRawPointer) -> PhysicalAddress {
    PhysicalAddress(UInt64(UInt(bitPattern: pointer)) &- Kernel.virtualBase)
}

/// The physical address behind a direct-map pointer.
@inline(__always)
func directMapPhysical(_ pointer: UnsafeRawPointer) -> PhysicalAddress {
    PhysicalAddress(UInt64(UInt(bitPattern: pointer)) &- Kernel.directMapBase)
}

func haltForever() -> Never {
    while true { halt_until_interrupt() }
}

/// A kernel bug or an impossible state: report it to the host and stop the VM.
func panic(_ message: StaticString) -> Never {
    var m = Message()
    m.append(message)
    panic(m)
}

func panic(_ message: Message) -> Never {
    Console.flushAll()
    Console.sendPanic(message)
    haltForever()
}
