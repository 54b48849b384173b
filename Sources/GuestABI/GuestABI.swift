// The guest↔host contract of Apus: what the VMM (or the QEMU launcher) puts in guest memory
// before the first instruction, where the kernel finds it, and the doorbells the kernel rings.
// Imported by the host (VMM, CLI, tests) and compiled into the kernel in Embedded Swift, so it
// uses nothing but the standard library. Every multi-byte field is little-endian.
//
// Guest-physical memory map (apus VMM):
//
//   0x0000_0000 ┌──────────────────────────┐
//               │ unused (null page)        │
//   0x0000_1000 ├──────────────────────────┤ BootInfo (one page, layout below)
//   0x0000_2000 ├──────────────────────────┤ argument block: argv strings then envp strings,
//               │                           │ each NUL-terminated (argc/envc in BootInfo)
//   0x0001_0000 ├──────────────────────────┤ boot page tables built by the VMM (64 KiB)
//   0x0010_0000 ├──────────────────────────┤ kernel image (PT_LOAD at p_paddr), then bss
//               │ free RAM …                │
//   memorySize  └──────────────────────────┘ (≤ maxMemorySize)
//   0xd000_0000  doorbell page (no memory slot: every access is an MMIO exit)
//   0xd000_1000  virtio-mmio register windows, one page each (`virtioBase`, `NetworkInfo`)
//   0xfec0_0000  I/O APIC (KVM's in-kernel irqchip)
//   0x1_0000_0000 the image, a read-only view of the image file (imageAddress/imageSize)
//
// Virtual layout set up by the boot page tables (and kept by the kernel). Everything lives in
// the lower half of the address space: on pvm the guest runs at hardware CPL3 inside the
// host's address space, whose upper half is the host kernel's, so guest code at a higher-half
// address could only be interpreted. The kernel takes the last PML4 slot of the lower half
// (the top 512 GiB below 2^47); the application gets everything below it.
//   [0, kernelRegionStart)  → the application (empty at boot)
//   directMapBase + p       → physical p, for all RAM, the doorbell page and the image;
//                             never executable. directMapBase is chosen per boot
//                             (`KernelLayout`): 1 GiB aligned in [directMapWindowStart,
//                             directMapWindowEnd)
//   kernelVirtualBase + p   → physical p, for the kernel image only (4 KiB pages: text
//                             read-only, the rest never executable); kernelVirtualBase is
//                             chosen per boot, 2 MiB aligned in [kernelWindowStart,
//                             kernelWindowEnd); the kernel is linked at kernelLinkBase
//   [heapWindowStart, heapWindowEnd) → empty at boot; the kernel maps large heap blocks
//                             there from scattered pages when no contiguous RAM is left
// The first GiB of the slot and [kernelLinkBase, 2^47), where the direct map and the kernel
// lay before they were randomized, stay empty.

/// A guest-physical address. Distinct from virtual addresses on purpose.
public struct PhysicalAddress: Hashable, Comparable, Sendable {
    public var raw: UInt64
    @inlinable public init(_ raw: UInt64) { self.raw = raw }
    @inlinable public static func < (a: Self, b: Self) -> Bool { a.raw < b.raw }
    @inlinable public static func + (a: Self, offset: UInt64) -> Self { Self(a.raw &+ offset) }
}

public enum GuestABI {
    /// Bumped on any incompatible change of the layouts below. The kernel refuses other versions.
    /// 2: the kernel is entered at its `KernelLayout` place with the direct map's base in rdx.
    public static let version: UInt32 = 2

    public static let bootInfoAddress = PhysicalAddress(0x1000)
    public static let bootInfoSize: UInt64 = 0x1000
    public static let argumentsAddress = PhysicalAddress(0x2000)
    /// Room for the argument block: argv and envp strings with their NULs.
    public static let argumentsCapacity: UInt64 = 0x1_0000 - 0x2000
    public static let bootPageTablesAddress = PhysicalAddress(0x1_0000)
    public static let bootPageTablesSize: UInt64 = 0x1_0000
    /// The kernel's PT_LOAD segments have p_paddr at or above this.
    public static let kernelPhysicalBase = PhysicalAddress(0x10_0000)
    /// Start of the kernel's part of the address space (PML4 slot 255); apps live below it.
    public static let kernelRegionStart: UInt64 = 0x7f80_0000_0000
    /// The direct map (all guest-physical memory at directMapBase + physical) starts at a
    /// 1 GiB boundary chosen per boot in [directMapWindowStart, directMapWindowEnd - its span).
    public static let directMapWindowStart: UInt64 = kernelRegionStart + (1 << 30)
    public static let directMapWindowEnd: UInt64 = heapWindowStart
    /// The most the direct map spans: RAM, the doorbell and device pages, the image.
    public static let maxDirectMapSpan: UInt64 = imageAddress.raw + maxImageSize
    /// The kernel's link address: its ELF says virtual = kernelLinkBase + physical. It never
    /// runs there: each boot maps it at `KernelLayout.kernelVirtualBase` + physical and the
    /// kernel relocates itself (arch/entry.S). [kernelLinkBase, 2^47) stays empty.
    public static let kernelLinkBase: UInt64 = 0x7fff_0000_0000
    /// The kernel's own mapping starts at a 2 MiB boundary chosen per boot in
    /// [kernelWindowStart, kernelWindowEnd) and covers physical [0, kernelSpan) without
    /// crossing a 1 GiB boundary; the kernel image must end below kernelSpan.
    public static let kernelWindowStart: UInt64 = 0x7fe0_0000_0000
    public static let kernelWindowEnd: UInt64 = kernelLinkBase
    public static let kernelSpan: UInt64 = 8 << 20
    /// Kernel-managed virtual range between the direct map's window and the kernel's
    /// (PDPT entries 256…383 of slot 255); the boot page tables leave it empty.
    public static let heapWindowStart: UInt64 = 0x7fc0_0000_0000
    public static let heapWindowEnd: UInt64 = kernelWindowStart
    /// RAM starts at 0 and may not reach the doorbell page.
    public static let maxMemorySize: UInt64 = 0xc000_0000
    public static let minMemorySize: UInt64 = 0x80_0000
    public static let doorbellAddress = PhysicalAddress(0xd000_0000)
    /// The apus VMM's virtio-mmio devices: slot i's registers at virtioBase + i * virtioStride,
    /// its interrupt on I/O APIC pin virtioFirstIRQ + i.
    public static let virtioBase = PhysicalAddress(0xd000_1000)
    public static let virtioStride: UInt64 = 0x1000
    public static let virtioMaxSlots: UInt32 = 8
    public static let virtioFirstIRQ: UInt32 = 5
    /// The I/O APIC's register window (IOREGSEL at +0, IOWIN at +0x10).
    public static let ioapicAddress = PhysicalAddress(0xfec0_0000)
    public static let imageAddress = PhysicalAddress(0x1_0000_0000)
    /// The image slot and the direct map end here; larger images are refused by the host.
    public static let maxImageSize: UInt64 = 0x1_0000_0000
}

/// The per-boot placement of the kernel's mappings inside its PML4 slot: the direct map at a
/// 1 GiB boundary (248 places), the kernel at a 2 MiB boundary (63,116 places). The VMM draws
/// it from host randomness (getrandom), passes `directMapBase` in rdx at the kernel's entry and
/// enters the kernel at its place; the PVH entry (QEMU) draws its own from rdrand, or the TSC
/// where rdrand is missing, with the same rule, in arch/entry.S (whose constants a host test
/// keeps equal to these). The kernel finds its own base from where it runs.
public struct KernelLayout: Equatable, Sendable {
    /// Virtual address of physical 0 in the direct map.
    public var directMapBase: UInt64
    /// Virtual address of physical 0 in the kernel's own mapping: the kernel image runs at
    /// kernelVirtualBase + p_paddr.
    public var kernelVirtualBase: UInt64

    /// How many 1 GiB positions the direct map can take (its span at most `maxDirectMapSpan`).
    public static let directMapSlots: UInt64 =
        (GuestABI.directMapWindowEnd - GuestABI.directMapWindowStart - GuestABI.maxDirectMapSpan) >> 30 + 1
    /// 2 MiB positions per GiB of the kernel's window at which `kernelSpan` stays in that GiB.
    public static let kernelSlotsPerGiB: UInt64 = ((1 << 30) - GuestABI.kernelSpan) >> 21 + 1
    public static let kernelSlots: UInt64 =
        (GuestABI.kernelWindowEnd - GuestABI.kernelWindowStart) >> 30 * kernelSlotsPerGiB

    /// The layout for `random` (any 64 bits; the PVH entry passes 32): direct map slot
    /// random mod directMapSlots, kernel slot (random / directMapSlots) mod kernelSlots.
    public init(random: UInt64) {
        directMapBase = GuestABI.directMapWindowStart + (random % Self.directMapSlots) << 30
        let k = (random / Self.directMapSlots) % Self.kernelSlots
        kernelVirtualBase = GuestABI.kernelWindowStart + (k / Self.kernelSlotsPerGiB) << 30
            + (k % Self.kernelSlotsPerGiB) << 21
    }

    /// A layout the kernel found itself in: nil unless both bases are aligned and lie wholly in
    /// their windows (the kernel refuses to boot otherwise).
    public init?(directMapBase: UInt64, kernelVirtualBase: UInt64) {
        let gib: UInt64 = 1 << 30
        guard directMapBase & (gib - 1) == 0, directMapBase >= GuestABI.directMapWindowStart,
              directMapBase <= GuestABI.directMapWindowEnd - GuestABI.maxDirectMapSpan,
              kernelVirtualBase & ((1 << 21) - 1) == 0, kernelVirtualBase >= GuestABI.kernelWindowStart,
              kernelVirtualBase < GuestABI.kernelWindowEnd,
              kernelVirtualBase & (gib - 1) <= gib - GuestABI.kernelSpan
        else { return nil }
        self.directMapBase = directMapBase
        self.kernelVirtualBase = kernelVirtualBase
    }
}

/// The GDT both sides use (Linux's layout; PVM requires these selectors): the VMM installs it
/// on pvm, the kernel on the native platform. A 16-byte TSS descriptor follows at `tss`.
public enum SegmentLayout {
    public static let kernelCode: UInt16 = 0x10
    public static let kernelData: UInt16 = 0x18
    public static let userCode32: UInt16 = 0x23
    public static let userData: UInt16 = 0x2b
    public static let userCode: UInt16 = 0x33
    public static let tss: UInt16 = 0x40
    /// GDT limit (bytes - 1) including the TSS descriptor.
    public static let gdtLimit: UInt16 = 0x4f
    public static let tssLimit: UInt64 = 0x67

    /// Entries 0…7 (selector = index × 8).
    public static let descriptors: [UInt64] = [
        0, 0,
        0x00af_9a00_0000_ffff,  // 0x10 kernel code, 64-bit
        0x00cf_9200_0000_ffff,  // 0x18 kernel data
        0x00cf_fa00_0000_ffff,  // 0x20 user code, 32-bit (selector 0x23)
        0x00cf_f200_0000_ffff,  // 0x28 user data (0x2b)
        0x00af_fa00_0000_ffff,  // 0x30 user code, 64-bit (0x33)
        0,
    ]

    /// Writes the descriptors and an available 64-bit TSS descriptor for `tssBase` into `gdt`
    /// (at least `gdtLimit + 1` bytes).
    public static func writeGDT(into gdt: UnsafeMutableRawBufferPointer, tssBase: UInt64) {
        for (i, d) in descriptors.enumerated() { gdt.writeLE(d, at: i * 8) }
        let low = tssLimit | ((tssBase & 0xff_ffff) << 16) | (0x89 << 40) | (((tssBase >> 24) & 0xff) << 56)
        gdt.writeLE(low, at: Int(tss))
        gdt.writeLE(tssBase >> 32, at: Int(tss) + 8)
    }

    /// STAR: SYSCALL loads CS from bits 32–47, SYSRET derives its selectors from bits 48–63.
    public static let star: UInt64 = (UInt64(userCode32) << 48) | (UInt64(kernelCode) << 32)
    /// SFMASK: clear TF, IF, DF, NT, AC (and IOPL) on syscall entry.
    public static let syscallFlagMask: UInt64 = 0x47700
}

/// What the QEMU launcher passes as the PVH boot module (`-initrd`), since QEMU cannot place
/// the boot info page and the image where the apus VMM does:
///   0x0000 BootInfo page (as at `GuestABI.bootInfoAddress`; addresses fixed up by the kernel)
///   0x1000 argument block (argumentsSize bytes, at most `GuestABI.argumentsCapacity`)
///   0x10000 the image, page aligned (QEMU loads the module page aligned)
public enum QEMUBundle {
    public static let argumentsOffset: UInt64 = 0x1000
    public static let imageOffset: UInt64 = 0x1_0000
}

/// Which way the kernel talks to the hardware below it (DESIGN.md, "Platforms").
public enum GuestPlatform: UInt32, Sendable {
    /// This workplace's KVM (PVM) in flat native mode: everything at CPL3, no port I/O.
    case pvm = 1
    /// Ordinary x86-64: ring 0 kernel, supervisor-only kernel pages.
    case native = 2
}

/// Offsets (from `GuestABI.doorbellAddress`) of the 8-byte registers the kernel writes.
/// Each write is one VM exit, so every request carries a whole batch.
public enum Doorbell: UInt64, Sendable {
    /// Value: guest-physical address of a `ConsoleRequest`. Output goes to the host fd
    /// the request's stream names.
    case console = 0x00
    /// Value: an `ExitStatus` encoding. The VM stops.
    case exit = 0x08
    /// Value: guest-physical address of a `ConsoleRequest` holding a kernel panic message.
    /// The VM stops with `HostExitCode.kernelPanic`.
    case panic = 0x10
    /// Value: guest-physical address of a `ConsoleRequest` (stream 0, length = room in the
    /// buffer). The host reads once from its stdin into the buffer (blocking, like read(2))
    /// and answers in the same request: `length` = bytes read (0 at end of file), `stream` =
    /// 0 on success or a Linux errno value. A request with stream 1 must not block: with no
    /// input ready the answer is EAGAIN (the kernel then waits, see `HostChannel.inputWaiting`).
    /// A host signal ends a blocking read with EINTR.
    case stdinRead = 0x18
    /// Value: nanoseconds to sleep. The host sleeps that long, then resumes the vCPU: the
    /// kernel has nothing to run while its only thread sleeps, and a host sleep costs one
    /// exit instead of a spinning CPU.
    case sleep = 0x20
    /// Value ignored: the kernel published a preemption deadline earlier than the armed one
    /// (`HostChannel`). The apus VMM registers it as an ioeventfd: no exit to the VMM's
    /// process, its preemption timer thread wakes and re-arms.
    case deadline = 0x28
}

/// The streams a console request can name.
public enum ConsoleStream: UInt32, Sendable {
    case stdout = 1
    case stderr = 2
    /// Kernel diagnostics (unimplemented syscalls, crash reports): the host writes these to
    /// its stderr, like the app's stderr, but keeps them apart for tests and tracing.
    case kernel = 3
}

/// 16 bytes in guest memory: { stream: u32, length: u32, buffer: u64 (guest-physical) }.
public struct ConsoleRequest: Equatable, Sendable {
    public static let size = 16
    public var stream: UInt32
    public var length: UInt32
    public var buffer: PhysicalAddress

    public init(stream: UInt32, length: UInt32, buffer: PhysicalAddress) {
        self.stream = stream
        self.length = length
        self.buffer = buffer
    }

    public init(decoding bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count >= Self.size)
        stream = bytes.readLE(UInt32.self, at: 0)
        length = bytes.readLE(UInt32.self, at: 4)
        buffer = PhysicalAddress(bytes.readLE(UInt64.self, at: 8))
    }

    public func encode(into bytes: UnsafeMutableRawBufferPointer) {
        precondition(bytes.count >= Self.size)
        bytes.writeLE(stream, at: 0)
        bytes.writeLE(length, at: 4)
        bytes.writeLE(buffer.raw, at: 8)
    }
}

/// How the application ended, as carried by the exit doorbell:
/// bits 0–7 the exit code or signal number, bit 8 set when a signal killed it.
public enum ExitStatus: Equatable, Sendable {
    case exited(UInt8)
    case signaled(UInt8)

    public var encoded: UInt64 {
        switch self {
        case .exited(let code): return UInt64(code)
        case .signaled(let signal): return 0x100 | UInt64(signal)
        }
    }

    public init(encoded: UInt64) {
        if encoded & 0x100 != 0 {
            self = .signaled(UInt8(truncatingIfNeeded: encoded))
        } else {
            self = .exited(UInt8(truncatingIfNeeded: encoded))
        }
    }

    /// The status a shell reports for it: the code, or 128 + signal.
    public var shellStatus: Int32 {
        switch self {
        case .exited(let code): return Int32(code)
        case .signaled(let signal): return 128 + Int32(signal)
        }
    }
}

/// Exit codes of the host process for outcomes that are not the application's own status.
/// Chosen above 128+64 so they cannot be confused with a signal death.
public enum HostExitCode {
    /// The guest kernel reported an internal error.
    public static let kernelPanic: Int32 = 250
    /// The VM stopped unexpectedly (triple fault, unexpected exit, guest stopped responding).
    public static let vmFailure: Int32 = 251
    /// apus could not start the VM (bad program, missing kernel, no /dev/kvm, bad flags).
    public static let startFailure: Int32 = 125
    /// The VM ran out of memory where no errno could be returned (a page a fault needed, the
    /// kernel's own allocation): the kernel's panic text then starts with
    /// `outOfMemoryPanicPrefix`, and apus names `--memory`.
    public static let outOfMemory: Int32 = 252
    public static let outOfMemoryPanicPrefix: StaticString = "out of memory: "
}

/// The boot information page at `GuestABI.bootInfoAddress`. Fixed offsets, append-only:
/// a new field goes after the last one, and `version` changes only when a meaning changes.
///
///   0x00 magic u64 "APUSBOOT"     0x08 version u32         0x0c platform u32
///   0x10 memorySize u64           0x18 kernelEnd u64 (first free physical byte, page aligned)
///   0x20 imageAddress u64         0x28 imageSize u64
///   0x30 argumentsAddress u64     0x38 argumentsSize u64
///   0x40 argc u32                 0x44 envc u32
///   0x48 tscFrequencyKHz u64      0x50 realtimeNanosAtBoot u64 (CLOCK_REALTIME at bootTSC)
///   0x58 flags u64                0x60 seed[32] (host randomness: ASLR, AT_RANDOM)
///   0x80 bootTSC u64 (TSC value when realtimeNanosAtBoot was read)
///   0x88 timeline: kernelEntry, appEntry, firstOutput, exit (TSC values the kernel writes)
///   0xa8 guest state the kernel keeps current (`GuestState`), read by the host only when the
///        VM stops abnormally: app stack bottom, console buffers and their fill
///   0xd0 hostname[64] (NUL-padded; empty: "apus")
///   0x110 workingDirectoryLength u32 (0: "/"; else the path is the last string of the
///         argument block, after the environment)
///   0x114 terminalRows u16, 0x116 terminalColumns u16 (the host terminal's size at boot with
///         `flagTerminal`; 0: unknown)
///   0x118 network (`NetworkInfo`, 0x50 bytes: virtio-mmio slots and the interface's addresses)
///   0x168 standard streams (`StreamKind` × 3, 16 bytes each: what the host's fds 0, 1, 2 are)
///   0x198 end
public struct BootInfo: Equatable, Sendable {
    public static let magic: UInt64 = 0x544f_4f42_5355_5041  // "APUSBOOT" little-endian
    public static let size = 0x198
    public static let streamsOffset = 0x168
    public static let hostnameOffset = 0xd0
    public static let hostnameCapacity = 64

    public var version: UInt32 = GuestABI.version
    public var platform: GuestPlatform = .pvm
    public var memorySize: UInt64 = 0
    public var kernelEnd: UInt64 = 0
    public var imageAddress: PhysicalAddress = GuestABI.imageAddress
    public var imageSize: UInt64 = 0
    public var argumentsAddress: PhysicalAddress = GuestABI.argumentsAddress
    public var argumentsSize: UInt64 = 0
    public var argc: UInt32 = 0
    public var envc: UInt32 = 0
    public var tscFrequencyKHz: UInt64 = 0
    public var realtimeNanosAtBoot: UInt64 = 0
    public var flags: UInt64 = 0
    public var seed: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    public var bootTSC: UInt64 = 0
    public var timeline = Timeline()
    /// Length of the app's initial working directory at the end of the argument block.
    public var workingDirectoryLength: UInt32 = 0
    /// With `flagTerminal`: the host terminal's window size when the VM started (0: unknown).
    public var terminalRows: UInt16 = 0
    public var terminalColumns: UInt16 = 0
    /// Where the virtio-mmio devices are and how the network interface is configured.
    public var network = NetworkInfo()
    /// What the host's stdin, stdout and stderr are, so that fstat in the guest says the same.
    public var streams = (StreamKind(), StreamKind(), StreamKind())
    /// uname's nodename (`apus run --hostname`), NUL-padded. Fixed storage, not an array:
    /// the kernel decodes the boot info before it has a heap.
    public var hostnameStorage: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)

    /// The hostname bytes (at most 64; empty means "apus").
    public var hostname: [UInt8] {
        get {
            var copy = hostnameStorage
            return withUnsafeBytes(of: &copy) { Array($0.prefix { $0 != 0 }) }
        }
        set {
            withUnsafeMutableBytes(of: &hostnameStorage) { raw in
                for i in 0..<Self.hostnameCapacity { raw[i] = i < newValue.count ? newValue[i] : 0 }
            }
        }
    }

    public init() {}

    /// Flag bits.
    public static let flagTraceSyscalls: UInt64 = 1 << 0
    /// `apus run -t`: the program's stdin, stdout, stderr and /dev/tty are one terminal.
    public static let flagTerminal: UInt64 = 1 << 1

    public enum DecodeError: Error, Equatable {
        case tooShort
        case badMagic
        case unsupportedVersion(UInt32)
        case unknownPlatform(UInt32)
    }

    public init(decoding bytes: UnsafeRawBufferPointer) throws(DecodeError) {
        guard bytes.count >= Self.size else { throw .tooShort }
        guard bytes.readLE(UInt64.self, at: 0x00) == Self.magic else { throw .badMagic }
        version = bytes.readLE(UInt32.self, at: 0x08)
        guard version == GuestABI.version else { throw .unsupportedVersion(version) }
        let platformRaw = bytes.readLE(UInt32.self, at: 0x0c)
        guard let p = GuestPlatform(rawValue: platformRaw) else { throw .unknownPlatform(platformRaw) }
        platform = p
        memorySize = bytes.readLE(UInt64.self, at: 0x10)
        kernelEnd = bytes.readLE(UInt64.self, at: 0x18)
        imageAddress = PhysicalAddress(bytes.readLE(UInt64.self, at: 0x20))
        imageSize = bytes.readLE(UInt64.self, at: 0x28)
        argumentsAddress = PhysicalAddress(bytes.readLE(UInt64.self, at: 0x30))
        argumentsSize = bytes.readLE(UInt64.self, at: 0x38)
        argc = bytes.readLE(UInt32.self, at: 0x40)
        envc = bytes.readLE(UInt32.self, at: 0x44)
        tscFrequencyKHz = bytes.readLE(UInt64.self, at: 0x48)
        realtimeNanosAtBoot = bytes.readLE(UInt64.self, at: 0x50)
        flags = bytes.readLE(UInt64.self, at: 0x58)
        seed = (bytes.readLE(UInt64.self, at: 0x60), bytes.readLE(UInt64.self, at: 0x68),
                bytes.readLE(UInt64.self, at: 0x70), bytes.readLE(UInt64.self, at: 0x78))
        bootTSC = bytes.readLE(UInt64.self, at: 0x80)
        timeline = Timeline(decoding: UnsafeRawBufferPointer(rebasing: bytes[Timeline.offset...]))
        withUnsafeMutableBytes(of: &hostnameStorage) { raw in
            for i in 0..<Self.hostnameCapacity { raw[i] = bytes[Self.hostnameOffset + i] }
        }
        workingDirectoryLength = bytes.readLE(UInt32.self, at: 0x110)
        terminalRows = bytes.readLE(UInt16.self, at: 0x114)
        terminalColumns = bytes.readLE(UInt16.self, at: 0x116)
        network = NetworkInfo(decoding: UnsafeRawBufferPointer(rebasing: bytes[NetworkInfo.offset...]))
        streams = (StreamKind(decoding: UnsafeRawBufferPointer(rebasing: bytes[Self.streamsOffset...])),
                   StreamKind(decoding: UnsafeRawBufferPointer(rebasing: bytes[(Self.streamsOffset + 16)...])),
                   StreamKind(decoding: UnsafeRawBufferPointer(rebasing: bytes[(Self.streamsOffset + 32)...])))
    }

    public func encode(into bytes: UnsafeMutableRawBufferPointer) {
        precondition(bytes.count >= Self.size)
        bytes.writeLE(Self.magic, at: 0x00)
        bytes.writeLE(version, at: 0x08)
        bytes.writeLE(platform.rawValue, at: 0x0c)
        bytes.writeLE(memorySize, at: 0x10)
        bytes.writeLE(kernelEnd, at: 0x18)
        bytes.writeLE(imageAddress.raw, at: 0x20)
        bytes.writeLE(imageSize, at: 0x28)
        bytes.writeLE(argumentsAddress.raw, at: 0x30)
        bytes.writeLE(argumentsSize, at: 0x38)
        bytes.writeLE(argc, at: 0x40)
        bytes.writeLE(envc, at: 0x44)
        bytes.writeLE(tscFrequencyKHz, at: 0x48)
        bytes.writeLE(realtimeNanosAtBoot, at: 0x50)
        bytes.writeLE(flags, at: 0x58)
        bytes.writeLE(seed.0, at: 0x60)
        bytes.writeLE(seed.1, at: 0x68)
        bytes.writeLE(seed.2, at: 0x70)
        bytes.writeLE(seed.3, at: 0x78)
        bytes.writeLE(bootTSC, at: 0x80)
        timeline.encode(into: UnsafeMutableRawBufferPointer(rebasing: bytes[Timeline.offset...]))
        var copy = hostnameStorage
        withUnsafeBytes(of: &copy) { raw in
            for i in 0..<Self.hostnameCapacity { bytes[Self.hostnameOffset + i] = raw[i] }
        }
        bytes.writeLE(workingDirectoryLength, at: 0x110)
        bytes.writeLE(terminalRows, at: 0x114)
        bytes.writeLE(terminalColumns, at: 0x116)
        network.encode(into: UnsafeMutableRawBufferPointer(rebasing: bytes[NetworkInfo.offset...]))
        streams.0.encode(into: UnsafeMutableRawBufferPointer(rebasing: bytes[Self.streamsOffset...]))
        streams.1.encode(into: UnsafeMutableRawBufferPointer(rebasing: bytes[(Self.streamsOffset + 16)...]))
        streams.2.encode(into: UnsafeMutableRawBufferPointer(rebasing: bytes[(Self.streamsOffset + 32)...]))
    }

    public static func == (a: BootInfo, b: BootInfo) -> Bool {
        a.version == b.version && a.platform == b.platform && a.memorySize == b.memorySize
            && a.kernelEnd == b.kernelEnd && a.imageAddress == b.imageAddress
            && a.imageSize == b.imageSize && a.argumentsAddress == b.argumentsAddress
            && a.argumentsSize == b.argumentsSize && a.argc == b.argc && a.envc == b.envc
            && a.tscFrequencyKHz == b.tscFrequencyKHz
            && a.realtimeNanosAtBoot == b.realtimeNanosAtBoot && a.flags == b.flags
            && a.seed == b.seed && a.bootTSC == b.bootTSC && a.timeline == b.timeline
            && a.workingDirectoryLength == b.workingDirectoryLength && a.network == b.network
            && a.streams.0 == b.streams.0 && a.streams.1 == b.streams.1 && a.streams.2 == b.streams.2
            && a.terminalRows == b.terminalRows && a.terminalColumns == b.terminalColumns
            && (a.hostnameStorage.0, a.hostnameStorage.1, a.hostnameStorage.2, a.hostnameStorage.3)
                == (b.hostnameStorage.0, b.hostnameStorage.1, b.hostnameStorage.2, b.hostnameStorage.3)
            && (a.hostnameStorage.4, a.hostnameStorage.5, a.hostnameStorage.6, a.hostnameStorage.7)
                == (b.hostnameStorage.4, b.hostnameStorage.5, b.hostnameStorage.6, b.hostnameStorage.7)
    }
}

/// What one of the host's standard streams is: its file type (st_mode's S_IFMT bits; 0:
/// unknown, which the guest shows as a pipe), its device number for a character device
/// (st_rdev, Linux's encoding) and its size for a regular file. 16 bytes: mode u32, rdev u32,
/// size u64.
public struct StreamKind: Equatable, Sendable {
    public var mode: UInt32 = 0
    public var rdev: UInt32 = 0
    public var size: UInt64 = 0

    public init(mode: UInt32 = 0, rdev: UInt32 = 0, size: UInt64 = 0) {
        self.mode = mode
        self.rdev = rdev
        self.size = size
    }

    public init(decoding bytes: UnsafeRawBufferPointer) {
        mode = bytes.readLE(UInt32.self, at: 0)
        rdev = bytes.readLE(UInt32.self, at: 4)
        size = bytes.readLE(UInt64.self, at: 8)
    }

    public func encode(into bytes: UnsafeMutableRawBufferPointer) {
        bytes.writeLE(mode, at: 0)
        bytes.writeLE(rdev, at: 4)
        bytes.writeLE(size, at: 8)
    }
}

/// The boot info's network block (at `offset` in the boot info page).
///
/// Devices: `virtioSlotCount` virtio-mmio register windows start at `virtioBase`, one every
/// `virtioStride` bytes; slot i raises I/O APIC pin `virtioFirstIRQ + i` (edge triggered). The
/// kernel probes every slot (magic "virt", device ID 0 = empty), so the same kernel finds the
/// apus VMM's devices and QEMU microvm's (24 slots from 0xfeb00000, stride 0x200, filled from
/// the last). `virtioSlotCount` 0: no devices.
///
/// Interface (all addresses in network byte order as they appear on the wire, i.e. the first
/// octet of 10.0.2.15 is byte 0): `ipv4Address`/`ipv4PrefixLength`, `ipv4Gateway` and
/// `ipv4DNS` (0: none); `ipv6Address`/`ipv6PrefixLength` (prefix 0: no global IPv6 address,
/// link-local only), `ipv6Gateway` and `ipv6DNS` omitted for now. The MAC address is the
/// device's (virtio-net config space), not repeated here.
///
///   +0x00 virtioBase u64        +0x08 virtioStride u32     +0x0c virtioSlotCount u32
///   +0x10 virtioFirstIRQ u32    +0x14 ipv4PrefixLength u8, 3 reserved bytes
///   +0x18 ipv4Address [4]       +0x1c ipv4Gateway [4]      +0x20 ipv4DNS [4]
///   +0x24 ipv6PrefixLength u32  +0x28 ipv6Address [16]     +0x38 ipv6Gateway [16]
///   +0x48 flags u64 (none defined)
///   +0x50 end
public struct NetworkInfo: Equatable, Sendable {
    public static let offset = 0x118
    public static let size = 0x50

    public var virtioBase: UInt64 = 0
    public var virtioStride: UInt32 = 0
    public var virtioSlotCount: UInt32 = 0
    public var virtioFirstIRQ: UInt32 = 0
    public var ipv4PrefixLength: UInt8 = 0
    /// IPv4 addresses as 32-bit values whose first wire octet is the most significant byte.
    public var ipv4Address: UInt32 = 0
    public var ipv4Gateway: UInt32 = 0
    public var ipv4DNS: UInt32 = 0
    public var ipv6PrefixLength: UInt32 = 0
    /// IPv6 addresses as two 64-bit halves, most significant (first on the wire) first.
    public var ipv6Address: (UInt64, UInt64) = (0, 0)
    public var ipv6Gateway: (UInt64, UInt64) = (0, 0)
    public var flags: UInt64 = 0

    public init() {}

    public init(decoding bytes: UnsafeRawBufferPointer) {
        virtioBase = bytes.readLE(UInt64.self, at: 0x00)
        virtioStride = bytes.readLE(UInt32.self, at: 0x08)
        virtioSlotCount = bytes.readLE(UInt32.self, at: 0x0c)
        virtioFirstIRQ = bytes.readLE(UInt32.self, at: 0x10)
        ipv4PrefixLength = bytes[0x14]
        ipv4Address = bytes.readLE(UInt32.self, at: 0x18).byteSwapped
        ipv4Gateway = bytes.readLE(UInt32.self, at: 0x1c).byteSwapped
        ipv4DNS = bytes.readLE(UInt32.self, at: 0x20).byteSwapped
        ipv6PrefixLength = bytes.readLE(UInt32.self, at: 0x24)
        ipv6Address = (bytes.readLE(UInt64.self, at: 0x28).byteSwapped, bytes.readLE(UInt64.self, at: 0x30).byteSwapped)
        ipv6Gateway = (bytes.readLE(UInt64.self, at: 0x38).byteSwapped, bytes.readLE(UInt64.self, at: 0x40).byteSwapped)
        flags = bytes.readLE(UInt64.self, at: 0x48)
    }

    public func encode(into bytes: UnsafeMutableRawBufferPointer) {
        bytes.writeLE(virtioBase, at: 0x00)
        bytes.writeLE(virtioStride, at: 0x08)
        bytes.writeLE(virtioSlotCount, at: 0x0c)
        bytes.writeLE(virtioFirstIRQ, at: 0x10)
        bytes.writeLE(UInt32(ipv4PrefixLength), at: 0x14)
        bytes.writeLE(ipv4Address.byteSwapped, at: 0x18)
        bytes.writeLE(ipv4Gateway.byteSwapped, at: 0x1c)
        bytes.writeLE(ipv4DNS.byteSwapped, at: 0x20)
        bytes.writeLE(ipv6PrefixLength, at: 0x24)
        bytes.writeLE(ipv6Address.0.byteSwapped, at: 0x28)
        bytes.writeLE(ipv6Address.1.byteSwapped, at: 0x30)
        bytes.writeLE(ipv6Gateway.0.byteSwapped, at: 0x38)
        bytes.writeLE(ipv6Gateway.1.byteSwapped, at: 0x40)
        bytes.writeLE(flags, at: 0x48)
    }

    public static func == (a: NetworkInfo, b: NetworkInfo) -> Bool {
        a.virtioBase == b.virtioBase && a.virtioStride == b.virtioStride
            && a.virtioSlotCount == b.virtioSlotCount && a.virtioFirstIRQ == b.virtioFirstIRQ
            && a.ipv4PrefixLength == b.ipv4PrefixLength && a.ipv4Address == b.ipv4Address
            && a.ipv4Gateway == b.ipv4Gateway && a.ipv4DNS == b.ipv4DNS
            && a.ipv6PrefixLength == b.ipv6PrefixLength && a.ipv6Address == b.ipv6Address
            && a.ipv6Gateway == b.ipv6Gateway && a.flags == b.flags
    }
}

/// What the kernel keeps current in the boot info page (plain stores, no exits) so that the
/// host can still act when the VM dies without telling it (a triple fault, a timeout): drain
/// the app's buffered console output, and recognise a stack overflow.
public struct GuestState: Equatable, Sendable {
    public static let offset = 0xa8
    public static let appStackLowOffset = 0xa8
    public static let stdoutBufferOffset = 0xb0
    public static let stdoutFillOffset = 0xb8
    public static let stderrBufferOffset = 0xc0
    public static let stderrFillOffset = 0xc8
    public static let size = 40

    /// Lowest address of the app's stack mapping (an access below it overflowed the stack).
    public var appStackLow: UInt64 = 0
    public var stdoutBuffer = PhysicalAddress(0)
    public var stdoutFill: UInt64 = 0
    public var stderrBuffer = PhysicalAddress(0)
    public var stderrFill: UInt64 = 0

    public init() {}

    public init(decoding bytes: UnsafeRawBufferPointer) {
        appStackLow = bytes.readLE(UInt64.self, at: 0)
        stdoutBuffer = PhysicalAddress(bytes.readLE(UInt64.self, at: 8))
        stdoutFill = bytes.readLE(UInt64.self, at: 16)
        stderrBuffer = PhysicalAddress(bytes.readLE(UInt64.self, at: 24))
        stderrFill = bytes.readLE(UInt64.self, at: 32)
    }
}

/// The live channel between the VMM and the kernel, in the boot info page at `offset`: words
/// both sides read and write while the VM runs, without a VM exit. The apus VMM uses all of
/// it; under QEMU (serial console) host signals arrive as `SerialFrame.Kind.signal` frames
/// instead and the preemption fields stay zero (the LAPIC timer preempts there).
///
///   +0x00 pendingSignals u64   host signals for the guest, bit n-1 for signal n: the VMM ORs
///                              bits in (only while the vCPU is stopped), the kernel takes them
///                              with an atomic exchange and sends them to pid 1
///   +0x08 deadline u64         TSC value at which the kernel wants the running app code
///                              interrupted (a timer, the end of a time slice; 0: never); the
///                              kernel writes it on every return to app code
///   +0x10 armed u64            the deadline the VMM's preemption timer is set for (0: none),
///                              written by the VMM; the kernel rings `Doorbell.deadline` when it
///                              publishes an earlier deadline than this, or any with none armed
///   +0x18 entry u64            virtual address of the kernel's preemption entry (0: the kernel
///                              takes no preemption), written once at boot
///   +0x20 saveArea u64         guest-physical address of `PreemptedRegisters.size` bytes where
///                              the VMM stores the interrupted app registers before entering
///   +0x28 kernelActive u64     guest-physical address of the kernel's "kernel is running" byte
///   +0x30 kernelTextStart u64  virtual range of the kernel's text: the VMM never redirects a
///   +0x38 kernelTextEnd u64    vCPU stopped there (entry and exit paths run with the flag clear)
///   +0x40 reserved u64
///   +0x48 inputWaiting u64     set by the kernel when a guest thread waits for host stdin
///                              (then it rings `Doorbell.deadline`); the VMM watches stdin,
///                              and when it is readable clears this, sets `eventInputReady`
///                              and stops the vCPU
///   +0x50 windowSize u64       the host terminal's rows (bits 0-15) and columns (16-31) with -t
///   +0x58 events u64           bit 0: window size changed, bit 1: stdin became readable
///                              (VMM sets, kernel exchanges)
///   +0x60 appFault u64         a signal the app's instruction raised where only the VMM saw
///                              it (`hlt` in app code on pvm: SIGSEGV), set with a redirect;
///                              with `appFaultStackOverflow` or'ed in: the app's stack
///                              overflowed (a fault whose frame had no room: a triple fault)
///   +0x68 end
public enum HostChannel {
    public static let offset = 0x200
    public static let pendingSignals = 0x00
    public static let deadline = 0x08
    public static let armed = 0x10
    public static let entry = 0x18
    public static let saveArea = 0x20
    public static let kernelActive = 0x28
    public static let kernelTextStart = 0x30
    public static let kernelTextEnd = 0x38
    public static let inputWaiting = 0x48
    public static let windowSize = 0x50
    public static let events = 0x58
    public static let appFault = 0x60
    public static let appFaultStackOverflow: UInt64 = 1 << 8
    public static let size = 0x68
    public static let eventWindowChanged: UInt64 = 1 << 0
    public static let eventInputReady: UInt64 = 1 << 1

    /// The host signals the VMM forwards to pid 1: SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2,
    /// SIGTERM, SIGWINCH.
    public static let forwardedSignals: [Int32] = [1, 2, 3, 10, 12, 15, 28]
}

/// The app registers the VMM saves when it redirects the vCPU into the kernel's preemption
/// entry: the kernel's syscall frame layout (arch/entry.S), all 15 general registers as they
/// were (rcx and r11 included), then rip, cs, rflags, rsp, ss.
public enum PreemptedRegisters {
    public static let size = 160
    /// Word order: r15 r14 r13 r12 rbp rbx r9 r8 r10 rdx rsi rdi rax rcx r11 rip cs rflags rsp ss.
    public static let wordCount = 20
}

/// TSC stamps the kernel records in the boot info page for `apus run --timings`.
/// Zero means "not reached".
public struct Timeline: Equatable, Sendable {
    public static let offset = 0x88
    public static let kernelEntryOffset = 0x88
    public static let appEntryOffset = 0x90
    public static let firstOutputOffset = 0x98
    public static let exitOffset = 0xa0

    public var kernelEntry: UInt64 = 0
    public var appEntry: UInt64 = 0
    public var firstOutput: UInt64 = 0
    public var exit: UInt64 = 0

    public init() {}

    public init(decoding bytes: UnsafeRawBufferPointer) {
        kernelEntry = bytes.readLE(UInt64.self, at: 0)
        appEntry = bytes.readLE(UInt64.self, at: 8)
        firstOutput = bytes.readLE(UInt64.self, at: 16)
        exit = bytes.readLE(UInt64.self, at: 24)
    }

    public func encode(into bytes: UnsafeMutableRawBufferPointer) {
        bytes.writeLE(kernelEntry, at: 0)
        bytes.writeLE(appEntry, at: 8)
        bytes.writeLE(firstOutput, at: 16)
        bytes.writeLE(exit, at: 24)
    }
}

/// The argument block: argv strings then envp strings, each NUL-terminated.
public enum ArgumentBlock {
    public enum EncodeError: Error, Equatable {
        case tooLarge(needed: Int, capacity: Int)
        case containsNUL
    }

    /// The encoded block for the given strings (UTF-8 bytes), checked against `capacity`:
    /// each NUL-terminated, arguments, then the environment, then the working directory
    /// when there is one (its length goes in `BootInfo.workingDirectoryLength`).
    public static func encode(arguments: [[UInt8]], environment: [[UInt8]], workingDirectory: [UInt8] = [],
                              capacity: Int) throws(EncodeError) -> [UInt8]
    {
        var out: [UInt8] = []
        for s in arguments + environment + (workingDirectory.isEmpty ? [] : [workingDirectory]) {
            if s.contains(0) { throw .containsNUL }
            out.append(contentsOf: s)
            out.append(0)
        }
        guard out.count <= capacity else { throw .tooLarge(needed: out.count, capacity: capacity) }
        return out
    }
}

// MARK: - Framed console for platforms without doorbells (QEMU: one serial port)

/// On QEMU the kernel has one 16550 serial port instead of doorbells. Every message is a frame:
///   0xA5, kind u8, length u16 (LE), payload[length]
/// Guest to host: 1 stdout, 2 stderr, 3 kernel diagnostics, 4 panic message, 0xFF exit
/// (payload: u64 ExitStatus encoding, then the `Timeline`'s four u64 TSC stamps).
/// Host to guest (the app's stdin): 1 data, 0xFF end of file (empty payload).
/// Bytes outside frames (firmware noise) are ignored by the decoder.
public enum SerialFrame {
    public static let marker: UInt8 = 0xA5
    public static let headerSize = 4
    public static let maxPayload = 0xFFFF

    public enum Kind: UInt8, Sendable {
        case stdout = 1
        case stderr = 2
        case kernel = 3
        case panic = 4
        /// Host → guest: one byte, a host signal for pid 1 (QEMU launcher).
        case signal = 5
        /// Host → guest with -t: the host terminal's new size, rows and columns (u16 LE each).
        case window = 6
        case exit = 0xFF
    }

    public static func header(kind: Kind, length: Int) -> (UInt8, UInt8, UInt8, UInt8) {
        precondition(length <= maxPayload)
        return (marker, kind.rawValue, UInt8(length & 0xFF), UInt8(length >> 8))
    }
}

/// Incremental decoder for `SerialFrame` streams: feed bytes as they arrive, get whole frames.
public struct SerialFrameDecoder {
    public struct Frame: Equatable {
        public var kind: UInt8
        public var payload: [UInt8]
        public init(kind: UInt8, payload: [UInt8]) {
            self.kind = kind
            self.payload = payload
        }
    }

    private var buffer: [UInt8] = []
    public init() {}

    public mutating func feed<S: Sequence>(_ bytes: S) -> [Frame] where S.Element == UInt8 {
        buffer.append(contentsOf: bytes)
        var frames: [Frame] = []
        var start = 0
        while true {
            while start < buffer.count && buffer[start] != SerialFrame.marker { start += 1 }
            guard buffer.count - start >= SerialFrame.headerSize else { break }
            let length = Int(buffer[start + 2]) | Int(buffer[start + 3]) << 8
            guard buffer.count - start - SerialFrame.headerSize >= length else { break }
            let body = start + SerialFrame.headerSize
            frames.append(Frame(kind: buffer[start + 1], payload: Array(buffer[body..<body + length])))
            start = body + length
        }
        buffer.removeFirst(start)
        return frames
    }

    /// Bytes received that do not yet form a whole frame.
    public var pendingCount: Int { buffer.count }
}

// MARK: - Little-endian field access

extension UnsafeRawBufferPointer {
    @inlinable
    public func readLE<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= count)
        return T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

extension UnsafeMutableRawBufferPointer {
    @inlinable
    public func readLE<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        UnsafeRawBufferPointer(self).readLE(T.self, at: offset)
    }

    @inlinable
    public func writeLE<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= count)
        storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }
}
