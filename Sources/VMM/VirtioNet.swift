#if canImport(Glibc)
import Glibc
#endif

// virtio-net (virtio 1.x §5.1), the device model: identity, features, configuration space,
// and moving frames between its two queues and a NetworkBackend. No KVM and no threads here;
// NetworkDevice calls `transmitAll` / `receiveAll` on its I/O thread under its lock.
//
// Offered features: VIRTIO_NET_F_MAC (5), VIRTIO_NET_F_STATUS (16), VIRTIO_RING_F_EVENT_IDX
// (29), VIRTIO_F_VERSION_1 (32). No offloads (checksum, TSO, …), no MRG_RXBUF, no control
// queue, no multiqueue, no indirect descriptors.
//
// Queues: 0 receiveq (device-writable buffers only), 1 transmitq (device-readable only),
// QueueNumMax 256 each.
//
// Every buffer starts with the 12-byte struct virtio_net_hdr (VERSION_1 layout):
//   +0 flags u8  +1 gso_type u8  +2 hdr_len u16  +4 gso_size u16  +6 csum_start u16
//   +8 csum_offset u16  +10 num_buffers u16
// TX: the header is read past and ignored (no offloads were offered, so flags and gso_type
// must be 0 anyway). RX: all zero except num_buffers = 1. The header may be split across
// descriptors, and the frame may share a descriptor with it.
//
// Configuration space (§5.1.4): +0 mac[6], +6 status u16 (VIRTIO_NET_S_LINK_UP = 1). The
// rest reads 0; writes are ignored (the MAC is read-only for VERSION_1 drivers).

public final class VirtioNetDevice: VirtioDeviceModel {
    public static let featureMAC: UInt64 = 1 << 5
    public static let featureStatus: UInt64 = 1 << 16
    public static let headerSize = 12
    public static let queueSize: UInt16 = 256
    public static let receiveQueue = 0
    public static let transmitQueue = 1
    /// Largest frame moved either way (no offloads: real frames are MTU + 14 bytes).
    public static let maxFrame = 65536

    public let mac: NetworkConfiguration.MACAddress
    public var linkUp = true

    public let deviceID: UInt32 = 1
    public let deviceFeatures: UInt64 = VirtioFeature.version1 | VirtioFeature.ringEventIndex | featureMAC | featureStatus
    public let queueMaxSizes: [UInt16] = [queueSize, queueSize]

    /// Frames dropped: bad chains, frames larger than the guest's receive buffer.
    public private(set) var droppedTransmits = 0
    public private(set) var droppedReceives = 0
    public private(set) var badChains = 0
    /// The last bad chain's reason (diagnostics and tests).
    public private(set) var lastChainError: VirtqueueChainError? = nil

    private var chain = VirtioChain()
    /// Staging for a TX frame spread over several descriptors, and for an RX frame read from
    /// the backend before it is scattered into the guest's buffers.
    private let staging: UnsafeMutableRawBufferPointer

    public init(mac: NetworkConfiguration.MACAddress) {
        self.mac = mac
        staging = .allocate(byteCount: Self.maxFrame + Self.headerSize, alignment: 16)
    }

    deinit { staging.deallocate() }

    public func queueDirection(_ index: Int) -> VirtqueueDirection {
        index == Self.receiveQueue ? .deviceWrites : .deviceReads
    }

    public func readConfig(offset: Int, size: Int) -> UInt32 {
        var config = [UInt8](repeating: 0, count: 12)
        for (i, b) in mac.array.enumerated() { config[i] = b }
        config[6] = linkUp ? 1 : 0
        var value: UInt32 = 0
        for i in 0..<size where offset + i < config.count && offset + i >= 0 {
            value |= UInt32(config[offset + i]) << UInt32(8 * i)
        }
        return value
    }

    public func writeConfig(offset: Int, size: Int, value: UInt32) {}

    public func reset() {}

    /// What one pass over a queue did.
    public struct Outcome: Equatable {
        /// Used entries published.
        public var completed = 0
        /// The driver wants an interrupt for them.
        public var interrupt = false
        /// Unrecoverable ring corruption: the transport must set DEVICE_NEEDS_RESET.
        public var broken: String? = nil
    }

    private func noteBad(_ error: VirtqueueChainError) {
        badChains += 1
        lastChainError = error
    }

    /// Sends every frame the driver queued on the transmitq to `backend`, returns the chains
    /// with one used idx update, and re-arms notifications (re-checking for frames that
    /// arrived meanwhile, so none is left without a notification).
    public func transmitAll(queue: SplitVirtqueue, backend: any NetworkBackend) -> Outcome {
        var outcome = Outcome()
        queue.disableNotifications()
        repeat {
            loop: while true {
                switch queue.pop(into: &chain) {
                case .empty: break loop
                case .broken(let why):
                    outcome.broken = why
                    break loop
                case .bad(let head, let error):
                    noteBad(error)
                    droppedTransmits += 1
                    queue.pushUsed(head: head, length: 0)
                case .chain:
                    sendChain(backend)
                    // TX buffers are device-readable only: nothing written, used length 0.
                    queue.pushUsed(head: chain.head, length: 0)
                }
                outcome.completed += 1
            }
            if outcome.broken != nil { break }
        } while queue.enableNotifications()
        if outcome.completed > 0 || outcome.broken != nil {
            outcome.interrupt = queue.publish()
        }
        return outcome
    }

    private func sendChain(_ backend: any NetworkBackend) {
        let total = chain.readableLength
        guard total >= Self.headerSize else { noteBad(.tooSmall); droppedTransmits += 1; return }
        guard total - Self.headerSize <= Self.maxFrame else { noteBad(.tooLarge); droppedTransmits += 1; return }
        // Common layouts without a copy: header and frame in one buffer, or a header-only
        // buffer followed by one frame buffer.
        if chain.readable.count == 1 {
            backend.transmit(UnsafeRawBufferPointer(rebasing: chain.readable[0][Self.headerSize...]))
        } else if chain.readable.count == 2 && chain.readable[0].count == Self.headerSize {
            backend.transmit(chain.readable[1])
        } else {
            let n = chain.gather(into: staging)
            backend.transmit(UnsafeRawBufferPointer(rebasing: staging[Self.headerSize..<n]))
        }
    }

    /// Moves frames from `backend` into the receiveq while the driver has buffers posted.
    /// Returns the outcome and whether the queue still has buffers (false: stop reading the
    /// backend until the driver notifies the receiveq; notifications are armed).
    public func receiveAll(queue: SplitVirtqueue, backend: any NetworkBackend) -> (Outcome, buffersLeft: Bool) {
        var outcome = Outcome()
        var buffersLeft = true
        queue.disableNotifications()
        outer: while true {
            guard queue.hasAvailable || queue.enableNotifications() else { buffersLeft = false; break }
            let frame = UnsafeMutableRawBufferPointer(rebasing: staging[Self.headerSize...])
            guard let length = backend.receive(into: frame) else { break }
            guard length >= 0, length <= frame.count else { droppedReceives += 1; continue }
            // Find a usable chain for it; bad chains are returned empty on the way.
            while true {
                switch queue.pop(into: &chain) {
                case .empty:
                    droppedReceives += 1
                    continue outer
                case .broken(let why):
                    outcome.broken = why
                    break outer
                case .bad(let head, let error):
                    noteBad(error)
                    queue.pushUsed(head: head, length: 0)
                    outcome.completed += 1
                    continue
                case .chain:
                    guard chain.writableLength >= Self.headerSize + length else {
                        // Too small for this frame (the driver should post ≥ 1526 bytes):
                        // drop the frame, keep the buffer for the next one.
                        queue.unpop()
                        droppedReceives += 1
                        continue outer
                    }
                    writeHeader()
                    chain.scatter(UnsafeRawBufferPointer(rebasing: staging[0..<(Self.headerSize + length)]), at: 0)
                    queue.pushUsed(head: chain.head, length: UInt32(Self.headerSize + length))
                    outcome.completed += 1
                    continue outer
                }
            }
        }
        if buffersLeft && outcome.broken == nil {
            // Re-arm so that the driver tells us about buffers it adds later; if it already
            // did, the caller sees them at its next pass.
            _ = queue.enableNotifications()
        }
        if outcome.completed > 0 || outcome.broken != nil {
            outcome.interrupt = queue.publish()
        }
        return (outcome, buffersLeft)
    }

    private func writeHeader() {
        // flags, gso_type NONE, hdr_len, gso_size, csum_start, csum_offset = 0; num_buffers = 1.
        for i in 0..<10 { staging[i] = 0 }
        staging.storeBytes(of: UInt16(1).littleEndian, toByteOffset: 10, as: UInt16.self)
    }
}
