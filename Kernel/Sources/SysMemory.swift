import LinuxABI
import VFS

/// brk and mmap/munmap/mprotect/mremap/madvise with Linux semantics. A file mapping is a
/// private copy of the file's bytes (MAP_PRIVATE, and read-only MAP_SHARED, which cannot be
/// told apart while nothing writes the file through it); a writable MAP_SHARED mapping would
/// need pages shared with the file and is refused (ENODEV) for now.
enum SysMemory {
    static let pageMask: UInt64 = 0xfff

    /// brk(addr): moves the break if it can; always returns the (possibly unchanged) break.
    static func brk(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let requested = a[0]
        let current = AddressSpace.brkCurrent
        guard requested >= AddressSpace.brkStart else { return current }
        guard let newEnd = AddressSpace.pageAlignUp(requested),
              let oldEnd = AddressSpace.pageAlignUp(current) else { return current }
        if newEnd > oldEnd {
            guard AddressSpace.isFree(oldEnd, newEnd) else { return current }
            do { try AddressSpace.map(oldEnd, newEnd - oldEnd, [.PROT_READ, .PROT_WRITE], .heap) } catch {
                return current
            }
        } else if newEnd < oldEnd {
            AddressSpace.unmap(newEnd, oldEnd - newEnd)
        }
        AddressSpace.brkCurrent = requested
        return requested
    }

    static func mmap(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let hint = a[0]
        let protection = MmapProtection(rawValue: a[2] & 0xffff_ffff)
        let flags = MmapFlags(rawValue: a[3] & 0xffff_ffff)
        try flags.validate()
        guard a.size(1) > 0, let length = AddressSpace.pageAlignUp(a.size(1)) else { throw .EINVAL }
        guard protection.isSubset(of: [.PROT_READ, .PROT_WRITE, .PROT_EXEC]) else { throw .EINVAL }
        let fileOffset = a[5]
        if !flags.isAnonymous {
            let fd = a.fd(4)
            let status = try SysIO.fs.statusFlags(fd)
            guard fileOffset & pageMask == 0 else { throw .EINVAL }
            guard status.isReadable else { throw .EACCES }
            if case .directory = try SysIO.fs.nodeType(fd) { throw .ENODEV }
            if flags.contains(.MAP_SHARED) && protection.contains(.PROT_WRITE) {
                reportSharedWritable()
                throw .ENODEV
            }
        }

        let start: UInt64
        if flags.isFixed {
            guard hint & pageMask == 0 else { throw .EINVAL }
            let (end, overflow) = hint.addingReportingOverflow(length)
            guard !overflow, hint >= PageTable.userStart, end <= PageTable.userEnd else { throw .ENOMEM }
            if !AddressSpace.isFree(hint, end) {
                if flags.contains(.MAP_FIXED_NOREPLACE) { throw .EEXIST }
                AddressSpace.unmap(hint, length)
            }
            start = hint
        } else if hint != 0, hint & pageMask == 0, hint.addingReportingOverflow(length).partialValue <= PageTable.userEnd,
                  AddressSpace.isFree(hint, hint + length) {
            start = hint
        } else {
            guard let s = AddressSpace.findFree(length: length) else { throw .ENOMEM }
            start = s
        }
        if flags.isAnonymous {
            try AddressSpace.map(start, length, protection, .anonymous)
            return start
        }
        // A file: map writable, copy the file's bytes in (the rest of the last page and any
        // pages past the end stay zero), then apply the protection asked for.
        try AddressSpace.map(start, length, [.PROT_READ, .PROT_WRITE], .anonymous)
        let size = UInt64(try SysIO.fs.fileSize(a.fd(4)))
        if fileOffset < size {
            let count = Int(min(length, size - fileOffset))
            let target = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(bitPattern: UInt(start)), count: count)
            _ = try SysIO.fs.pread(a.fd(4), into: target, offset: Int64(fileOffset))
        }
        if protection != [.PROT_READ, .PROT_WRITE] { try AddressSpace.protect(start, length, protection) }
        return start
    }

    /// Says once on stderr why a writable MAP_SHARED file mapping failed, as for an
    /// unimplemented syscall.
    nonisolated(unsafe) static var reportedSharedWritable = false
    static func reportSharedWritable() {
        guard !reportedSharedWritable else { return }
        reportedSharedWritable = true
        Console.kernelLine(Message("apus: writable MAP_SHARED file mappings are not supported yet: mmap returns ENODEV"))
    }

    /// msync(addr, length, flags): MS_ASYNC 1, MS_INVALIDATE 2, MS_SYNC 4 (not ASYNC and SYNC
    /// together). Every file mapping is a private copy (writable shared ones are refused), so
    /// there is nothing to write back: the range only has to be mapped (else ENOMEM).
    static func msync(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let flags = a.int32(2)
        guard flags & ~7 == 0, flags & 5 != 5 else { throw .EINVAL }
        let (start, length) = try range(a[0], a.size(1), allowEmpty: true)
        var address = start
        while address < start + length {
            guard let region = AddressSpace.region(containing: address) else { throw .ENOMEM }
            address = region.end
        }
        return 0
    }

    static func munmap(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let (start, length) = try range(a[0], a.size(1))
        AddressSpace.unmap(start, length)
        return 0
    }

    static func mprotect(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let (start, length) = try range(a[0], a.size(1), allowEmpty: true)
        let protection = MmapProtection(rawValue: a[2] & 0xffff_ffff)
        try protection.validateForMprotect()
        if length == 0 { return 0 }
        try AddressSpace.protect(start, length, protection.intersection([.PROT_READ, .PROT_WRITE, .PROT_EXEC]))
        return 0
    }

    static func mremap(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let flags = MremapFlags(rawValue: a[3])
        guard flags.isSubset(of: [.MREMAP_MAYMOVE]) else { throw .EINVAL }  // FIXED/DONTUNMAP later
        let (start, oldLength) = try range(a[0], a.size(1))
        guard let newLength = AddressSpace.pageAlignUp(a.size(2)), newLength > 0 else { throw .EINVAL }
        return try AddressSpace.remap(start, oldLength, newLength, mayMove: flags.contains(.MREMAP_MAYMOVE))
    }

    static func madvise(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let (start, length) = try range(a[0], a.size(1), allowEmpty: true)
        switch a.int32(2) {
        case MadviseAdvice.MADV_DONTNEED:
            guard PageTable.isAccessible(start, length: length, write: false) || length == 0 else { throw .ENOMEM }
            AddressSpace.discard(start, length)
        case MadviseAdvice.MADV_NORMAL, MadviseAdvice.MADV_RANDOM, MadviseAdvice.MADV_SEQUENTIAL,
             MadviseAdvice.MADV_WILLNEED, MadviseAdvice.MADV_FREE, MadviseAdvice.MADV_DONTFORK,
             MadviseAdvice.MADV_DOFORK, MadviseAdvice.MADV_HUGEPAGE, MadviseAdvice.MADV_NOHUGEPAGE,
             MadviseAdvice.MADV_DONTDUMP:
            break  // hints; MADV_FREE may keep contents, so doing nothing is correct
        default:
            throw .EINVAL
        }
        return 0
    }

    /// A page-aligned start and a length rounded up to pages, inside the user half.
    private static func range(_ start: UInt64, _ length: UInt64, allowEmpty: Bool = false) throws(Errno) -> (UInt64, UInt64) {
        guard start & pageMask == 0 else { throw .EINVAL }
        guard length > 0 || allowEmpty else { throw .EINVAL }
        guard let rounded = AddressSpace.pageAlignUp(length) else { throw .EINVAL }
        let (end, overflow) = start.addingReportingOverflow(rounded)
        guard !overflow, end <= PageTable.userEnd else { throw .EINVAL }
        return (start, rounded)
    }
}
