#if canImport(Glibc)
import Glibc
#endif

/// One direction of a relayed connection (the port forwarder's, the user-mode network's): a
/// fixed-capacity byte queue holding [head, tail) of `storage`, which starts over at 0 once
/// emptied. A side is not read while its buffer is full, so a slow reader slows the writer
/// down instead of growing memory. Owned by one connection; `free()` when it closes.
struct RelayBuffer {
    static let capacity = 64 * 1024

    let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: RelayBuffer.capacity, alignment: 16)
    var head = 0
    var tail = 0

    var isEmpty: Bool { head == tail }
    var hasRoom: Bool { tail < storage.count }
    /// Where more bytes go (`added` them afterwards).
    var room: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(rebasing: storage[tail...]) }
    /// The bytes waiting to go (`consumed` what went).
    var queued: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage[head..<tail]) }

    mutating func added(_ n: Int) { tail += n }

    mutating func consumed(_ n: Int) {
        head += n
        if head == tail { head = 0; tail = 0 }
    }

    func free() { storage.deallocate() }

    /// read(2) from `fd` into the room: bytes read, 0 at end of file, -errno.
    mutating func fill(from fd: Int32) -> Int {
        let space = room
        let n = read(fd, space.baseAddress, space.count)
        if n < 0 { return -Int(errno) }
        added(n)
        return n
    }

    /// Sends the queued bytes to `fd` until it would block: 0, or -errno for a real error.
    mutating func drain(to fd: Int32) -> Int {
        while !isEmpty {
            let q = queued
            let n = send(fd, q.baseAddress, q.count, Int32(MSG_NOSIGNAL))
            if n < 0 { return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -Int(errno) }
            consumed(n)
        }
        return 0
    }
}
