import GuestABI
import LinuxABI
import VFS

/// brk and mmap/munmap/mprotect/mremap/madvise/msync with Linux semantics. A private file
/// mapping is a copy of the file's bytes; a shared one maps the file's shared pages
/// (SharedFiles.swift), which every shared mapping of the file and its read/write see.
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
            guard AddressSpace.isFree(oldEnd, newEnd), (try? AddressSpace.checkRoomForRegions(adding: 1)) != nil else { return current }
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
        try AddressSpace.checkRoomForRegions(adding: 3)  // the mapping, and MAP_FIXED's two cuts
        let protection = MmapProtection(rawValue: a[2] & 0xffff_ffff)
        let flags = MmapFlags(rawValue: a[3] & 0xffff_ffff)
        try flags.validate()
        guard a.size(1) > 0 else { throw .EINVAL }
        // A length that rounds past 2^64 is more than any address space: ENOMEM, as Linux.
        guard let length = AddressSpace.pageAlignUp(a.size(1)) else { throw .ENOMEM }
        guard protection.isSubset(of: [.PROT_READ, .PROT_WRITE, .PROT_EXEC]) else { throw .EINVAL }
        let fileOffset = a[5]
        // A shared file mapping: the file's node, and whether the descriptor lets it write.
        var sharedNode: Int? = nil
        var mayWrite = true
        if !flags.isAnonymous {
            let fd = a.fd(4)
            let status = try SysIO.fs.statusFlags(fd)
            guard fileOffset & pageMask == 0 else { throw .EINVAL }
            guard status.isReadable else { throw .EACCES }
            guard fileOffset.addingReportingOverflow(length).partialValue >= fileOffset,
                  fileOffset / AddressSpace.pageSize < UInt64(Int32.max) else { throw .EOVERFLOW }
            if case .directory = try SysIO.fs.nodeType(fd) { throw .ENODEV }
            if flags.mappingType != .private {
                sharedNode = try SysIO.fs.beginSharedMapping(fd, writable: protection.contains(.PROT_WRITE))
                mayWrite = status.isWritable
            }
        }
        // Held while mapping: a MAP_FIXED replacing the file's last mapping must not end the
        // sharing, and a failed mmap ends it if nothing else maps the file.
        let slot = sharedNode.map { SharedFiles.retain(node: $0) } ?? -1
        defer { if slot >= 0 { SharedFiles.release(slot) } }
        return try place(a, length, protection, flags, fileOffset, slot, mayWrite)
    }

    /// mmap once the file side is checked: picks the address and maps; `slot` is the
    /// shared file's (SharedFiles) or -1.
    private static func place(_ a: SyscallArguments, _ length: UInt64, _ protection: MmapProtection, _ flags: MmapFlags,
                              _ fileOffset: UInt64, _ slot: Int, _ mayWrite: Bool) throws(Errno) -> UInt64 {
        let hint = a[0]
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
        } else if hint != 0, hint & pageMask == 0, case (let end, false) = hint.addingReportingOverflow(length),
                  AddressSpace.isFree(hint, end) {
            // A hint is only a hint: one that is taken, unaligned, outside the user range
            // or wrapping past 2^64 is ignored, as on Linux.
            start = hint
        } else {
            guard let s = AddressSpace.findFree(length: length) else { throw .ENOMEM }
            start = s
        }
        if flags.isAnonymous {
            var region = Region(start: start, end: start + length, protection: protection, kind: .anonymous)
            // MAP_SHARED anonymous memory: one set of frames for the processes fork makes.
            region.sharedAnonymous = flags.mappingType != .private
            try AddressSpace.map(region)
            return start
        }
        var region = Region(start: start, end: start + length, protection: protection, kind: .anonymous)
        (region.name, region.inode) = try SysIO.fs.mappingName(a.fd(4))
        region.filePage = Int(fileOffset / AddressSpace.pageSize)
        if slot >= 0 {
            // Pages past the end of the file are mapped too (zero, never written back) where
            // Linux would raise SIGBUS on touching them.
            region.sharedFile = slot
            region.mayWrite = mayWrite
            try AddressSpace.map(region)
            return start
        }
        // A file the app will not write through this mapping, unchanged since the image was
        // built: its pages are the image's own (page aligned there, zero past the end).
        if !protection.contains(.PROT_WRITE), let bytes = SysIO.fs.imageContents(a.fd(4)),
           let base = bytes.baseAddress, UInt(bitPattern: base) & UInt(pageMask) == 0 {
            let filePages = (UInt64(bytes.count) + pageMask) / AddressSpace.pageSize
            let first = fileOffset / AddressSpace.pageSize
            let pages = first < filePages ? Int(filePages - first) : 0
            try AddressSpace.map(region, borrowing: pages, at: directMapPhysical(base) + fileOffset)
            return start
        }
        // Else map writable, copy the file's bytes in (the rest of the last page and any
        // pages past the end stay zero), then apply the protection asked for.
        region.protection = [.PROT_READ, .PROT_WRITE]
        try AddressSpace.map(region)
        let size = UInt64(try SysIO.fs.fileSize(a.fd(4)))
        if fileOffset < size {
            let count = Int(min(length, size - fileOffset))
            let target = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(bitPattern: UInt(start)), count: count)
            _ = try SysIO.fs.pread(a.fd(4), into: target, offset: Int64(fileOffset))
        }
        if protection != [.PROT_READ, .PROT_WRITE] { try AddressSpace.protect(start, length, protection) }
        return start
    }

    /// msync(addr, length, flags): MS_ASYNC 1, MS_INVALIDATE 2, MS_SYNC 4 (not ASYNC and SYNC
    /// together). Shared mappings are the file's pages and file syscalls see them at once,
    /// and nothing lies below the VM's files to write to, so the range only has to be mapped
    /// (else ENOMEM).
    static func msync(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let flags = a.int32(2)
        guard flags & ~7 == 0, flags & 5 != 5 else { throw .EINVAL }
        let (start, length) = try range(a[0], a.size(1), allowEmpty: true)
        guard AddressSpace.isMapped(start, start + length) else { throw .ENOMEM }
        return 0
    }

    static func munmap(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let (start, length) = try range(a[0], a.size(1))
        try AddressSpace.checkRoomForRegions(adding: AddressSpace.splits(start, start + length))
        AddressSpace.unmap(start, length)
        return 0
    }

    static func mprotect(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let (start, length) = try range(a[0], a.size(1), allowEmpty: true)
        try AddressSpace.checkRoomForRegions(adding: AddressSpace.splits(start, start + length))
        let protection = MmapProtection(rawValue: a[2] & 0xffff_ffff)
        try protection.validateForMprotect()
        if length == 0 { return 0 }
        try AddressSpace.protect(start, length, protection.intersection([.PROT_READ, .PROT_WRITE, .PROT_EXEC]))
        return 0
    }

    /// Memory protection keys: the VM offers none, as Linux on a CPU without PKU: pkey_alloc
    /// is ENOSPC (after Linux's flag and rights checks), pkey_free of any key EINVAL, and
    /// pkey_mprotect is mprotect for key -1 and EINVAL for any other.
    static func pkeyAlloc(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a[0] == 0, a[1] & ~3 == 0 else { throw .EINVAL }
        throw .ENOSPC
    }

    static func pkeyFree(_ a: SyscallArguments) throws(Errno) -> UInt64 { throw .EINVAL }

    static func pkeyMprotect(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a.int32(3) == -1 else { throw .EINVAL }
        return try mprotect(a)
    }

    static func mremap(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let flags = MremapFlags(rawValue: a[3])
        guard flags.isSubset(of: [.MREMAP_MAYMOVE]) else { throw .EINVAL }  // FIXED/DONTUNMAP later
        let (start, oldLength) = try range(a[0], a.size(1))
        // Zero, or more than the whole user range: EINVAL (Linux: beyond TASK_SIZE).
        guard let newLength = AddressSpace.pageAlignUp(a.size(2)), newLength > 0,
              newLength <= PageTable.userEnd else { throw .EINVAL }
        // Shrinking cuts once; growing may cut twice and add the moved or grown part.
        try AddressSpace.checkRoomForRegions(adding: newLength <= oldLength
            ? AddressSpace.splits(start + newLength, start + oldLength) : 4)
        return try AddressSpace.remap(start, oldLength, newLength, mayMove: flags.contains(.MREMAP_MAYMOVE))
    }

    /// mremap grew a private file mapping by `grown` (fresh zero pages): the file's bytes at
    /// those pages go in, as Linux maps the file there too (past its end: zeros). The file
    /// is found again by the path and inode the mapping was made with; if the path no
    /// longer names it (unlinked, replaced, no longer readable), the part stays zero.
    /// Reservations (PROT_NONE) have no frames to fill and stay zero too.
    static func fillFromFile(_ grown: Region) {
        guard grown.sharedFile < 0, grown.sysvSegment < 0, !grown.name.isEmpty, !grown.protection.isEmpty else { return }
        var opened: Int32? = nil
        grown.name.withUnsafeBytes { path in
            opened = try? SysIO.fs.openat(AtFlags.AT_FDCWD, path, flags: [.O_RDONLY, .O_CLOEXEC])
        }
        guard let fd = opened else { return }
        defer { try? SysIO.fs.close(fd) }
        guard let st = try? SysIO.fs.fstat(fd), st.inode == grown.inode, case .regular? = try? SysIO.fs.nodeType(fd) else { return }
        var address = grown.start
        var offset = Int64(grown.filePage) * Int64(AddressSpace.pageSize)
        while address < grown.end && offset < st.size {
            // Through the direct map (the page may be read-only to the app), marked dirty:
            // the frame no longer holds zeros (fork copies it, unmapping does not treat it as
            // a zero page).
            if let frame = PageTable.frame(address), !PageTable.isBorrowed(address),
               let e = try? PageTable.leaf(address, create: false) {
                let page = UnsafeMutableRawBufferPointer(start: directMap(frame), count: Int(AddressSpace.pageSize))
                _ = try? SysIO.fs.pread(fd, into: page, offset: offset)
                e.pointee |= PageTable.dirty
            }
            address += AddressSpace.pageSize
            offset += Int64(AddressSpace.pageSize)
        }
    }

    static func madvise(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let (start, length) = try range(a[0], a.size(1), allowEmpty: true)
        switch a.int32(2) {
        case MadviseAdvice.MADV_DONTNEED:
            // Any protection, PROT_NONE included (V8 discards its guard pages this way).
            guard AddressSpace.isMapped(start, start + length) else { throw .ENOMEM }
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
