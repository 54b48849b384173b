// `struct flock` (32 bytes) of fcntl's lock commands:
//   l_type i16 @0 (F_RDLCK 0, F_WRLCK 1, F_UNLCK 2), l_whence i16 @2, l_start i64 @8,
//   l_len i64 @16, l_pid i32 @24
// and the commands and flock(2) operations that use it.

public struct FileLockRequest: Equatable, Sendable {
    public static let size = 32
    public static let F_RDLCK: Int16 = 0
    public static let F_WRLCK: Int16 = 1
    public static let F_UNLCK: Int16 = 2

    public static let F_GETLK: Int32 = 5
    public static let F_SETLK: Int32 = 6
    public static let F_SETLKW: Int32 = 7
    public static let F_OFD_GETLK: Int32 = 36
    public static let F_OFD_SETLK: Int32 = 37
    public static let F_OFD_SETLKW: Int32 = 38

    /// flock(2)'s operation bits.
    public static let LOCK_SH: Int32 = 1
    public static let LOCK_EX: Int32 = 2
    public static let LOCK_NB: Int32 = 4
    public static let LOCK_UN: Int32 = 8

    public var type: Int16
    public var whence: Int16
    public var start: Int64
    public var length: Int64
    public var pid: Int32

    public init(type: Int16, whence: Int16 = 0, start: Int64 = 0, length: Int64 = 0, pid: Int32 = 0) {
        self.type = type
        self.whence = whence
        self.start = start
        self.length = length
        self.pid = pid
    }

    public init(decoding bytes: UnsafeRawBufferPointer) throws(Errno) {
        try checkFits(bytes, Self.size)
        let r = StructReader(bytes)
        type = r.get(Int16.self, at: 0) ?? 0
        whence = r.get(Int16.self, at: 2) ?? 0
        start = r.get(Int64.self, at: 8) ?? 0
        length = r.get(Int64.self, at: 16) ?? 0
        pid = r.get(Int32.self, at: 24) ?? 0
    }

    public func encode(into bytes: UnsafeMutableRawBufferPointer) throws(Errno) {
        try checkFits(bytes, Self.size)
        var w = StructWriter(bytes)
        w.put(type, at: 0)
        w.put(whence, at: 2)
        w.put(start, at: 8)
        w.put(length, at: 16)
        w.put(pid, at: 24)
    }
}
