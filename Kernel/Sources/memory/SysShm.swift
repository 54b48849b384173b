import GuestABI
import LinuxABI

/// A System V shared memory segment: its frames (made when it is created; each mapping of
/// them counts in `PhysicalMemory.share`, so a segment removed while attached lives on in
/// its mappings until the last goes).
final class SysVSegment {
    let id: Int32
    let key: Int32
    let size: Int
    var frames: [PhysicalAddress]
    var mode: UInt32
    var uid: UInt32 = 0, gid: UInt32 = 0
    let creatorPid: Int32
    var lastPid: Int32 = 0
    var attachTime: Int64 = 0, detachTime: Int64 = 0, changeTime: Int64

    init(id: Int32, key: Int32, size: Int, frames: [PhysicalAddress], mode: UInt32, creatorPid: Int32, time: Int64) {
        self.id = id
        self.key = key
        self.size = size
        self.frames = frames
        self.mode = mode
        self.creatorPid = creatorPid
        changeTime = time
    }
}

/// shmget, shmat, shmdt, shmctl: System V shared memory, one namespace per VM (PostgreSQL
/// keeps its control segment there). Attached segments are MAP_SHARED anonymous regions
/// (fork shares them) tagged with the segment's id.
enum SysShm {
    nonisolated(unsafe) static var segments: [SysVSegment] = []
    nonisolated(unsafe) static var sequence: Int32 = 0
    static let IPC_PRIVATE: Int32 = 0
    static let IPC_CREAT: Int32 = 0o1000
    static let IPC_EXCL: Int32 = 0o2000
    static let SHM_RDONLY: Int32 = 0o10000
    static let SHM_RND: Int32 = 0o20000
    static let SHM_REMAP: Int32 = 0o40000
    static let SHM_EXEC: Int32 = 0o100000
    /// Linux's defaults: SHMMNI segments, SHMMAX bytes each (the VM's memory bounds it first).
    static let maxSegments = 4096

    static func segment(_ id: Int32) -> SysVSegment? {
        for s in segments where s.id == id { return s }
        return nil
    }

    private static var now: Int64 { Int64(Clock.realtimeNanos / 1_000_000_000) }

    /// shmget(key, size, flags): the segment of `key` (IPC_PRIVATE: always a new one),
    /// made with IPC_CREAT (zero-filled, `size` rounded up to pages; the permission bits of
    /// `flags` its mode). ENOENT without IPC_CREAT, EEXIST with IPC_EXCL, EINVAL for a size
    /// beyond an existing segment's or 0 for a new one, ENOMEM/ENOSPC when memory or ids
    /// run out.
    static func shmget(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let key = a.int32(0), size = a.size(1), flags = a.int32(2)
        if key != IPC_PRIVATE, let existing = segments.first(where: { $0.key == key }) {
            if flags & IPC_CREAT != 0 && flags & IPC_EXCL != 0 { throw .EEXIST }
            guard size <= UInt64(existing.size) else { throw .EINVAL }
            return UInt64(existing.id)
        }
        guard key == IPC_PRIVATE || flags & IPC_CREAT != 0 else { throw .ENOENT }
        guard size >= 1, size <= UInt64(Int.max / 2) else { throw .EINVAL }
        guard segments.count < maxSegments else { throw .ENOSPC }
        let pages = Int((size + 4095) / 4096)
        guard PhysicalMemory.canGrantApp(pages: pages + 1) else { throw .ENOMEM }
        var frames: [PhysicalAddress] = []
        frames.reserveCapacity(pages)
        for _ in 0..<pages {
            guard let frame = PhysicalMemory.allocateAppPage() else {
                for f in frames { PhysicalMemory.free(f) }
                throw .ENOMEM
            }
            frames.append(frame)
        }
        // Linux's ids: an index and a sequence number (index + 32768 * sequence).
        sequence = (sequence &+ 1) & 0x7fff
        var index: Int32 = 0
        while segments.contains(where: { $0.id & 0x7fff == index }) { index += 1 }
        let id = index + 32768 * sequence
        segments.append(SysVSegment(id: id, key: key, size: Int(size), frames: frames, mode: UInt32(flags & 0o777),
                                    creatorPid: Process.current.pid, time: now))
        return UInt64(id)
    }

    /// shmat(id, address, flags): maps the segment (at `address`, rounded down with SHM_RND,
    /// else anywhere), read-only with SHM_RDONLY. Returns its address.
    static func shmat(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard let s = segment(a.int32(0)) else { throw .EINVAL }
        let flags = a.int32(2)
        var address = a[1]
        let length = UInt64(s.frames.count) * 4096
        try AddressSpace.checkRoomForRegions(adding: 3)
        if address != 0 {
            if flags & SHM_RND != 0 { address &= ~0xfff }
            guard address & 0xfff == 0 else { throw .EINVAL }
            guard case (let end, false) = address.addingReportingOverflow(length), address >= PageTable.userStart,
                  end <= PageTable.userEnd else { throw .EINVAL }
            if !AddressSpace.isFree(address, end) {
                guard flags & SHM_REMAP != 0 else { throw .EINVAL }
                AddressSpace.unmap(address, length)
            }
        } else {
            guard let free = AddressSpace.findFree(length: length) else { throw .ENOMEM }
            address = free
        }
        var protection: MmapProtection = flags & SHM_RDONLY != 0 ? [.PROT_READ] : [.PROT_READ, .PROT_WRITE]
        if flags & SHM_EXEC != 0 { protection.insert(.PROT_EXEC) }
        var region = Region(start: address, end: address + length, protection: protection, kind: .anonymous)
        region.sharedAnonymous = true
        region.sysvSegment = s.id
        var name = Message("/SYSV")
        for shift in stride(from: 28, through: 0, by: -4) {
            let digit = UInt8((UInt32(bitPattern: s.key) >> UInt32(shift)) & 0xf)
            name.bytes.append(digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10)
        }
        region.name = name.bytes
        region.inode = UInt64(s.id)
        try AddressSpace.map(region, sharing: s.frames)
        s.attachTime = now
        s.lastPid = Process.current.pid
        return address
    }

    /// shmdt(address): unmaps the attachment that starts at `address` (EINVAL if none).
    static func shmdt(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let address = a[0]
        guard let first = AddressSpace.region(containing: address), first.start == address,
              first.sysvSegment >= 0, first.filePage == 0 else { throw .EINVAL }
        let id = first.sysvSegment
        // The attachment: the regions that continue it page by page (mprotect may have cut it).
        var end = first.end
        while let next = AddressSpace.region(containing: end), next.start == end, next.sysvSegment == id,
              next.filePage == Int((end - address) / 4096) {
            end = next.end
        }
        AddressSpace.unmap(address, end - address)
        if let s = segment(id) {
            s.detachTime = now
            s.lastPid = Process.current.pid
        }
        return 0
    }

    /// The processes' attachments of `id` (regions holding its first page).
    static func attachments(_ id: Int32) -> Int {
        var seen: [Memory] = []
        var count = 0
        for p in Processes.all where !p.isZombie && !seen.contains(where: { $0 === p.memory }) {
            seen.append(p.memory)
            count += p.memory.regions.filter { $0.sysvSegment == id && $0.filePage == 0 }.count
        }
        return count
    }

    /// shmctl(id, cmd, buf): IPC_STAT 2 (and SHM_STAT 13 by index), IPC_SET 1 (owner and
    /// mode), IPC_RMID 0 (the key and id go at once; attached mappings keep the memory
    /// until they go), IPC_INFO 3 / SHM_INFO 14 (limits and usage). IPC_64 (0x100) is the
    /// only layout.
    static func shmctl(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let command = a.int32(1) & ~0x100
        switch command {
        case 3, 14:  // IPC_INFO, SHM_INFO
            if a[2] != 0 {
                let out = try UserMemory.writable(a[2], 80)
                out.initializeMemory(as: UInt8.self, repeating: 0)
                if command == 3 {
                    out.writeLE(UInt64(Kernel.boot.memorySize), at: 0)   // shmmax
                    out.writeLE(UInt64(1), at: 8)                        // shmmin
                    out.writeLE(UInt64(maxSegments), at: 16)             // shmmni
                    out.writeLE(UInt64(maxSegments), at: 24)             // shmseg
                    out.writeLE(UInt64(Kernel.boot.memorySize / 4096), at: 32)  // shmall
                } else {
                    out.writeLE(Int32(segments.count), at: 0)            // used_ids
                    out.writeLE(UInt64(segments.reduce(0) { $0 + $1.frames.count }), at: 8)  // shm_tot
                }
            }
            return UInt64(max(segments.count - 1, 0))
        default:
            break
        }
        guard let s = command == 13 ? (a.int32(0) >= 0 && Int(a.int32(0)) < segments.count ? segments[Int(a.int32(0))] : nil)
                                    : segment(a.int32(0)) else { throw .EINVAL }
        switch command {
        case 2, 13:  // IPC_STAT, SHM_STAT: struct shmid64_ds (112 bytes)
            let out = try UserMemory.writable(a[2], 112)
            out.initializeMemory(as: UInt8.self, repeating: 0)
            out.writeLE(s.key, at: 0)
            out.writeLE(s.uid, at: 4)
            out.writeLE(s.gid, at: 8)
            out.writeLE(s.uid, at: 12)
            out.writeLE(s.gid, at: 16)
            out.writeLE(s.mode, at: 20)
            out.writeLE(UInt16(truncatingIfNeeded: s.id / 32768), at: 24)
            out.writeLE(UInt64(s.size), at: 48)
            out.writeLE(s.attachTime, at: 56)
            out.writeLE(s.detachTime, at: 64)
            out.writeLE(s.changeTime, at: 72)
            out.writeLE(s.creatorPid, at: 80)
            out.writeLE(s.lastPid, at: 84)
            out.writeLE(UInt64(attachments(s.id)), at: 88)
            return command == 13 ? UInt64(s.id) : 0
        case 1:  // IPC_SET: uid, gid and the mode's permission bits
            let buffer = try UserMemory.readable(a[2], 112)
            s.uid = buffer.readLE(UInt32.self, at: 4)
            s.gid = buffer.readLE(UInt32.self, at: 8)
            s.mode = buffer.readLE(UInt32.self, at: 20) & 0o777
            s.changeTime = now
            return 0
        case 0:  // IPC_RMID
            segments.removeAll { $0 === s }
            for frame in s.frames { PhysicalMemory.free(frame) }
            s.frames = []
            return 0
        case 11, 12:  // SHM_LOCK, SHM_UNLOCK: memory is never swapped
            return 0
        default:
            throw .EINVAL
        }
    }
}
