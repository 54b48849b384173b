// The initial process stack, laid out as Linux's execve leaves it (fs/exec.c, fs/binfmt_elf.c
// create_elf_tables) and as the System V x86-64 ABI (§3.4.1) specifies it:
//
//   stackTop ──►  ┌──────────────────────────────┐  high addresses
//                 │ 8 zero bytes (end marker)     │
//                 │ execfn string + NUL           │  (when given)
//                 │ argv and envp strings         │  argv[0] … argv[argc-1], envp[0] …
//                 │                               │  envp[envc-1], each NUL-terminated,
//                 │                               │  copied verbatim from the string block
//                 ├──────────────────────────────┤  ← aligned down to 16
//                 │ "x86_64" + NUL                │  AT_PLATFORM points here
//                 │ 16 random bytes               │  AT_RANDOM points here
//                 ├──────────────────────────────┤  ← padding so that rsp % 16 == 0
//                 │ auxv: (key, value) pairs …    │  caller's pairs, then AT_RANDOM,
//                 │       AT_NULL, 0              │  AT_EXECFN, AT_PLATFORM, AT_NULL
//                 │ NULL                          │
//                 │ envp[envc-1] … envp[0]        │  pointers into the strings above
//                 │ NULL                          │
//                 │ argv[argc-1] … argv[0]        │  (index 0 at the lowest address)
//   rsp ──►       │ argc                          │  8 bytes, rsp 16-byte aligned
//                 └──────────────────────────────┘  low addresses
//
// Linux also subtracts a random amount below the strings (arch_align_stack) for ASLR; here the
// caller randomises `stackTop` instead.

public struct InitialStack {
    /// The AT_PLATFORM string of x86-64.
    public static let platform: StaticString = "x86_64"

    /// Builds the stack into `stack`, the memory just below the user address `stackTop`
    /// (byte `i` of `stack` is at user address `stackTop - stack.count + i`).
    ///
    /// - `stringBlock`: argc argument strings then envc environment strings, each
    ///   NUL-terminated (the VMM's argument block); bytes after the last string are ignored.
    /// - `auxv`: (key, value) pairs in the order to emit them, without AT_NULL, AT_RANDOM,
    ///   AT_PLATFORM and AT_EXECFN, which the builder appends itself.
    /// - `random`: the 16 AT_RANDOM bytes, as two little-endian words (low address first).
    /// - `execfn`: the executable's path for AT_EXECFN (up to its first NUL, if it has one);
    ///   nil makes AT_EXECFN point at argv[0] (and omits it when argc is 0).
    ///
    /// Returns the initial rsp (16-byte aligned, pointing at argc). Throws E2BIG when the stack
    /// buffer is too small, EINVAL when argc/envc are negative, the block holds fewer than
    /// argc + envc strings, `stackTop` is below the buffer's size, or `auxv` contains a key the
    /// builder owns.
    public static func build(into stack: UnsafeMutableRawBufferPointer, stackTop: UInt64,
                             stringBlock: UnsafeRawBufferPointer, argc: Int, envc: Int,
                             auxv: [(UInt64, UInt64)], random: (UInt64, UInt64),
                             execfn: UnsafeRawBufferPointer?) throws(Errno) -> UInt64 {
        guard argc >= 0, envc >= 0, stackTop >= UInt64(stack.count) else { throw .EINVAL }
        for (key, _) in auxv {
            switch key {
            case AuxvKey.AT_NULL.rawValue, AuxvKey.AT_RANDOM.rawValue,
                 AuxvKey.AT_PLATFORM.rawValue, AuxvKey.AT_EXECFN.rawValue:
                throw .EINVAL
            default: break
            }
        }

        // The bytes of the block that hold the argc + envc strings. Every string takes at least
        // its NUL, so more strings than bytes is malformed (and argc + envc cannot overflow).
        guard argc <= stringBlock.count, envc <= stringBlock.count - argc else { throw .EINVAL }
        let stringCount = argc + envc
        var usedLength = 0
        var found = 0
        while found < stringCount {
            guard usedLength < stringBlock.count else { throw .EINVAL }
            if stringBlock[usedLength] == 0 { found += 1 }
            usedLength += 1
        }
        let execfnLength = execfn.map { bytes in
            var n = 0
            while n < bytes.count && bytes[n] != 0 { n += 1 }
            return n
        }

        let bottom = stackTop - UInt64(stack.count)
        var w = StructWriter(stack)
        // `p` is the offset in `stack` of the lowest byte used so far; it only decreases, and
        // every decrease is checked before anything is written below it.
        var p = stack.count
        func reserve(_ bytes: Int) throws(Errno) {
            guard bytes >= 0, bytes <= p else { throw .E2BIG }
            p -= bytes
        }
        func address(_ offset: Int) -> UInt64 { bottom + UInt64(offset) }
        func copy(_ bytes: UnsafeRawBufferPointer, count: Int, to offset: Int) {
            for i in 0..<count { stack[offset + i] = bytes[i] }
        }
        func alignDown16() throws(Errno) { try reserve(Int(address(p) & 15)) }

        try reserve(8)
        w.put(UInt64(0), at: p)

        var execfnAddress: UInt64? = nil
        if let execfn, let execfnLength {
            try reserve(execfnLength + 1)
            copy(execfn, count: execfnLength, to: p)
            stack[p + execfnLength] = 0
            execfnAddress = address(p)
        }

        try reserve(usedLength)
        copy(stringBlock, count: usedLength, to: p)
        let stringsAddress = address(p)
        if execfnAddress == nil && argc > 0 { execfnAddress = stringsAddress }

        try alignDown16()
        let platformLength = platform.utf8CodeUnitCount
        try reserve(platformLength + 1)
        platform.withUTF8Buffer { utf8 in copy(UnsafeRawBufferPointer(utf8), count: platformLength, to: p) }
        stack[p + platformLength] = 0
        let platformAddress = address(p)

        try reserve(16)
        w.put(random.0, at: p)
        w.put(random.1, at: p + 8)
        let randomAddress = address(p)

        // argc, argv[], NULL, envp[], NULL, then the auxv pairs, ending at p rounded down so
        // that the start (rsp) is 16-byte aligned.
        let auxvPairs = auxv.count + 3 + (execfnAddress == nil ? 0 : 1)
        let words = 1 + (argc + 1) + (envc + 1) + 2 * auxvPairs
        guard words <= p / 8 else { throw .E2BIG }
        try reserve(words * 8)
        try alignDown16()

        var q = p
        func push(_ value: UInt64) {
            w.put(value, at: q)
            q += 8
        }
        push(UInt64(argc))
        var stringStart = 0
        func pushStrings(_ count: Int) {
            for _ in 0..<count {
                push(stringsAddress + UInt64(stringStart))
                while stringBlock[stringStart] != 0 { stringStart += 1 }
                stringStart += 1
            }
            push(0)
        }
        pushStrings(argc)
        pushStrings(envc)
        for (key, value) in auxv {
            push(key)
            push(value)
        }
        push(AuxvKey.AT_RANDOM.rawValue)
        push(randomAddress)
        if let execfnAddress {
            push(AuxvKey.AT_EXECFN.rawValue)
            push(execfnAddress)
        }
        push(AuxvKey.AT_PLATFORM.rawValue)
        push(platformAddress)
        push(AuxvKey.AT_NULL.rawValue)
        push(0)

        guard !w.overflowed else { throw .E2BIG }
        return address(p)
    }
}
