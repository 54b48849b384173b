// The segment checks a loader needs before it maps anything. Each check names the
// invariant the loader then relies on without re-checking.

extension ELFFile {
    /// Checks that the program can be loaded as described by its segments:
    ///
    /// - at least one PT_LOAD;
    /// - every PT_LOAD and PT_TLS: p_filesz <= p_memsz, file bytes inside the file;
    /// - every PT_LOAD: p_align a power of two (or 0), p_vaddr ≡ p_offset (mod 4096) so a
    ///   file page maps to exactly one memory page, p_vaddr + p_memsz below 2^47;
    /// - the PT_LOADs sorted by p_vaddr and not overlapping (as byte ranges; two segments
    ///   may still share a page at their boundary);
    /// - e_entry inside an executable PT_LOAD;
    /// - PT_INTERP well formed (already checked by `init`).
    public func validateForLoading() throws(ELFError) {
        let pageMask = ELFFile.pageSize - 1
        var loadCount = 0
        var previousStart: UInt64 = 0
        var previousEnd: UInt64 = 0
        var entryFound = false

        for index in 0..<programHeaderCount {
            let header = programHeader(at: index)
            guard header.type == PT_LOAD || header.type == PT_TLS else { continue }

            guard header.fileSize <= header.memorySize else {
                throw .fileSizeExceedsMemorySize(index: index)
            }
            guard header.fileSize == 0
                || view.range(offset: header.offset, length: header.fileSize) != nil
            else { throw .segmentOutsideFile(index: index) }
            guard header.type == PT_LOAD else { continue }

            let align = header.alignment
            guard align & (align &- 1) == 0,
                  header.virtualAddress & pageMask == header.offset & pageMask
            else { throw .misalignedSegment(index: index) }

            let (end, overflow) = header.virtualAddress.addingReportingOverflow(header.memorySize)
            guard !overflow, end <= ELFFile.userAddressLimit else {
                throw .segmentAddressOutOfRange(index: index)
            }

            if loadCount > 0 {
                guard header.virtualAddress >= previousStart else { throw .unsortedSegments(index: index) }
                guard header.virtualAddress >= previousEnd else { throw .overlappingSegments(index: index) }
            }
            loadCount += 1
            previousStart = header.virtualAddress
            previousEnd = end

            if header.executable && entry >= header.virtualAddress && entry < end {
                entryFound = true
            }
        }

        guard loadCount > 0 else { throw .noLoadableSegments }
        guard entryFound else { throw .entryOutsideSegments(entry: entry) }
    }
}
