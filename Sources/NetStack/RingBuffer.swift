// The byte FIFO behind TCP send and receive buffers.

/// A FIFO of at most `limit` bytes in a circular storage that grows on demand (doubling, up to
/// `limit`), so an idle socket costs no buffer memory.
///
/// Logical offset 0 is the oldest byte. Bytes [0, count) are the queued data; a writer may also
/// place bytes beyond `count` (TCP's out-of-order data) and make them part of the queue later
/// with `commit`. Invariant: count <= storageSize, and every byte written at an offset
/// < storageSize stays there until it is discarded (growth preserves the whole storage).
final class RingBuffer {
    private var storage: UnsafeMutableRawPointer?
    private var storageSize = 0
    private var head = 0
    private(set) var count = 0
    var limit: Int

    init(limit: Int) { self.limit = limit }

    deinit { storage?.deallocate() }

    /// Room left under `limit`.
    var free: Int { limit > count ? limit - count : 0 }

    /// Stores `bytes` `offset` bytes after the end of the queue (count + offset + bytes.count
    /// <= limit, checked by the caller) without changing `count`.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        reserve(count + offset + bytes.count)
        transfer(count + offset, UnsafeMutableRawPointer(mutating: source), bytes.count, toRing: true)
    }

    /// Appends as much of `bytes` as fits; returns how many bytes were queued.
    func append(_ bytes: UnsafeRawBufferPointer) -> Int {
        let n = min(bytes.count, free)
        write(UnsafeRawBufferPointer(rebasing: bytes[0..<n]), at: 0)
        count += n
        return n
    }

    /// Makes `n` bytes already written after the queue part of it.
    func commit(_ n: Int) { count += n }

    /// Copies `destination.count` bytes starting at logical `offset` (within the queue).
    func copy(from offset: Int, into destination: UnsafeMutableRawBufferPointer) {
        guard let target = destination.baseAddress, !destination.isEmpty else { return }
        transfer(offset, target, destination.count, toRing: false)
    }

    /// Drops the first `n` (<= count) bytes.
    func discard(_ n: Int) {
        count -= n
        if storageSize > 0 { head = (head + n) % storageSize }
    }

    /// Forgets everything, including bytes written beyond `count`.
    func removeAll() {
        count = 0
        head = 0
    }

    private func transfer(_ offset: Int, _ memory: UnsafeMutableRawPointer, _ length: Int, toRing: Bool) {
        guard let storage else { return }
        var done = 0
        while done < length {
            let position = (head + offset + done) % storageSize
            let n = min(length - done, storageSize - position)
            if toRing {
                (storage + position).copyMemory(from: memory + done, byteCount: n)
            } else {
                (memory + done).copyMemory(from: storage + position, byteCount: n)
            }
            done += n
        }
    }

    /// Grows the storage to hold at least `needed` bytes from the head, moving the whole old
    /// storage (queued and out-of-order bytes) to the start of the new one.
    private func reserve(_ needed: Int) {
        guard needed > storageSize else { return }
        let size = max(needed, min(max(storageSize * 2, 4096), max(limit, needed)))
        let grown = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        if let storage {
            let tail = storageSize - head
            grown.copyMemory(from: storage + head, byteCount: tail)
            (grown + tail).copyMemory(from: storage, byteCount: head)
            storage.deallocate()
        }
        storage = grown
        storageSize = size
        head = 0
    }
}
