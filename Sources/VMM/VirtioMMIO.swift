import GuestABI

// The virtio-mmio transport, "modern" (virtio 1.x §4.2.2, Version register 2), as a plain
// model: register reads and writes in, effects out. No KVM, no threads: NetworkDevice wires
// it to MMIO exits, eventfds and interrupts, and the tests drive it directly.
//
// Register window (one page per device slot; registers are 32-bit and must be accessed as
// such — other widths read 0 and writes are ignored; the config space takes 1/2/4 bytes):
//
//   0x000 MagicValue R "virt"       0x004 Version R 2            0x008 DeviceID R
//   0x00c VendorID R "APUS"         0x010 DeviceFeatures R       0x014 DeviceFeaturesSel W
//   0x020 DriverFeatures W          0x024 DriverFeaturesSel W    0x030 QueueSel W
//   0x034 QueueNumMax R             0x038 QueueNum W             0x044 QueueReady RW
//   0x050 QueueNotify W             0x060 InterruptStatus R      0x064 InterruptACK W
//   0x070 Status RW                 0x080/0x084 QueueDescLow/High W
//   0x090/0x094 QueueDriverLow/High W                           0x0a0/0x0a4 QueueDeviceLow/High W
//   0x0ac SHMSel W  0x0b0/0x0b4 SHMLen R (all ones: no regions)  0x0b8/0x0bc SHMBase R (all ones)
//   0x0fc ConfigGeneration R        0x100… device configuration space
//
// Driver errors and the device's answer:
//   - FEATURES_OK with a feature the device did not offer, or without VERSION_1: the device
//     leaves FEATURES_OK clear (§3.1.1: the driver re-reads Status and gives up).
//   - Writes to the feature registers after FEATURES_OK, or to a queue's registers while it
//     is ready: ignored.
//   - Status clearing a bit other than by writing 0, DRIVER_OK without FEATURES_OK,
//     QueueReady before FEATURES_OK, QueueReady with a bad layout (size not a power of two or
//     above QueueNumMax, misaligned areas, areas outside guest memory): DEVICE_NEEDS_RESET
//     (0x40) plus a configuration-change interrupt; queues stop until the driver writes 0
//     to Status.
//   - Status 0: reset (features, queues, interrupt status, selectors); the device model's
//     `reset()` is called.

/// A device behind a virtio transport: identity, features, queues and configuration space.
public protocol VirtioDeviceModel: AnyObject {
    var deviceID: UInt32 { get }
    var deviceFeatures: UInt64 { get }
    /// Each queue's maximum size (QueueNumMax); the count is the number of queues.
    var queueMaxSizes: [UInt16] { get }
    /// The direction buffers of queue `index` must have.
    func queueDirection(_ index: Int) -> VirtqueueDirection
    /// Reads `size` (1, 2 or 4) bytes of the configuration space at `offset`.
    func readConfig(offset: Int, size: Int) -> UInt32
    func writeConfig(offset: Int, size: Int, value: UInt32)
    /// The driver reset the device: forget any per-session state.
    func reset()
}

public enum VirtioStatus {
    public static let acknowledge: UInt32 = 1
    public static let driver: UInt32 = 2
    public static let driverOK: UInt32 = 4
    public static let featuresOK: UInt32 = 8
    public static let deviceNeedsReset: UInt32 = 0x40
    public static let failed: UInt32 = 0x80
}

public enum VirtioFeature {
    public static let ringIndirectDescriptors: UInt64 = 1 << 28
    public static let ringEventIndex: UInt64 = 1 << 29
    public static let version1: UInt64 = 1 << 32
}

public enum VirtioMMIORegister {
    public static let magicValue: UInt64 = 0x000
    public static let version: UInt64 = 0x004
    public static let deviceID: UInt64 = 0x008
    public static let vendorID: UInt64 = 0x00c
    public static let deviceFeatures: UInt64 = 0x010
    public static let deviceFeaturesSel: UInt64 = 0x014
    public static let driverFeatures: UInt64 = 0x020
    public static let driverFeaturesSel: UInt64 = 0x024
    public static let queueSel: UInt64 = 0x030
    public static let queueNumMax: UInt64 = 0x034
    public static let queueNum: UInt64 = 0x038
    public static let queueReady: UInt64 = 0x044
    public static let queueNotify: UInt64 = 0x050
    public static let interruptStatus: UInt64 = 0x060
    public static let interruptACK: UInt64 = 0x064
    public static let status: UInt64 = 0x070
    public static let queueDescLow: UInt64 = 0x080
    public static let queueDescHigh: UInt64 = 0x084
    public static let queueDriverLow: UInt64 = 0x090
    public static let queueDriverHigh: UInt64 = 0x094
    public static let queueDeviceLow: UInt64 = 0x0a0
    public static let queueDeviceHigh: UInt64 = 0x0a4
    public static let shmSel: UInt64 = 0x0ac
    public static let shmLenLow: UInt64 = 0x0b0
    public static let shmLenHigh: UInt64 = 0x0b4
    public static let shmBaseLow: UInt64 = 0x0b8
    public static let shmBaseHigh: UInt64 = 0x0bc
    public static let configGeneration: UInt64 = 0x0fc
    public static let config: UInt64 = 0x100

    public static let magic: UInt32 = 0x7472_6976   // "virt"
    public static let vendor: UInt32 = 0x5355_5041  // "APUS"
    /// InterruptStatus bits.
    public static let interruptUsedBuffer: UInt32 = 1
    public static let interruptConfigChange: UInt32 = 2
}

/// What a register write asks the surrounding VMM to do.
public struct VirtioMMIOEffects: Equatable, Sendable {
    /// Bit i: queue i was notified (QueueNotify).
    public var notifiedQueues: UInt32 = 0
    /// Raise the device's interrupt (InterruptStatus changed, e.g. DEVICE_NEEDS_RESET).
    public var interrupt = false
    /// The device's state changed (reset, DRIVER_OK, a queue became ready): the I/O side
    /// must look again.
    public var stateChanged = false

    public init() {}
    public static let none = VirtioMMIOEffects()
}

public final class VirtioMMIOTransport {
    public let device: any VirtioDeviceModel
    let memory: GuestMemory

    /// One queue's registers as the driver wrote them.
    struct QueueRegisters {
        var size: UInt16 = 0
        var descriptors: UInt64 = 0
        var driverArea: UInt64 = 0
        var deviceArea: UInt64 = 0
    }

    public private(set) var status: UInt32 = 0
    public private(set) var driverFeatures: UInt64 = 0
    /// Written by the device side (queue processing) and by InterruptACK.
    public var interruptStatus: UInt32 = 0
    public private(set) var configGeneration: UInt32 = 0
    /// Why the device set DEVICE_NEEDS_RESET (for the log), nil while it has not.
    public private(set) var brokenReason: String? = nil
    var deviceFeaturesSel: UInt32 = 0
    var driverFeaturesSel: UInt32 = 0
    var queueSel: UInt32 = 0
    var registers: [QueueRegisters]
    /// The live queues, index = queue number; nil while not ready.
    public private(set) var queues: [SplitVirtqueue?]

    public init(device: any VirtioDeviceModel, memory: GuestMemory) {
        self.device = device
        self.memory = memory
        let sizes = device.queueMaxSizes
        registers = sizes.map { QueueRegisters(size: $0) }
        queues = Array(repeating: nil, count: sizes.count)
    }

    /// DRIVER_OK, not FAILED, not NEEDS_RESET: the device may use its queues.
    public var isLive: Bool {
        status & VirtioStatus.driverOK != 0 && status & (VirtioStatus.deviceNeedsReset | VirtioStatus.failed) == 0
    }

    public var negotiatedEventIndex: Bool { driverFeatures & VirtioFeature.ringEventIndex != 0 }

    // MARK: reads

    public func read(offset: UInt64, size: Int) -> UInt32 {
        if offset >= VirtioMMIORegister.config {
            guard size == 1 || size == 2 || size == 4 else { return 0 }
            return device.readConfig(offset: Int(offset - VirtioMMIORegister.config), size: size)
        }
        guard size == 4, offset & 3 == 0 else { return 0 }
        typealias R = VirtioMMIORegister
        switch offset {
        case R.magicValue: return R.magic
        case R.version: return 2
        case R.deviceID: return device.deviceID
        case R.vendorID: return R.vendor
        case R.deviceFeatures:
            switch deviceFeaturesSel {
            case 0: return UInt32(truncatingIfNeeded: device.deviceFeatures)
            case 1: return UInt32(truncatingIfNeeded: device.deviceFeatures >> 32)
            default: return 0
            }
        case R.queueNumMax:
            guard let q = selectedQueue else { return 0 }
            return UInt32(device.queueMaxSizes[q])
        case R.queueReady:
            guard let q = selectedQueue else { return 0 }
            return queues[q] != nil ? 1 : 0
        case R.interruptStatus: return interruptStatus
        case R.status: return status
        case R.shmLenLow, R.shmLenHigh, R.shmBaseLow, R.shmBaseHigh: return 0xffff_ffff
        case R.configGeneration: return configGeneration
        default: return 0
        }
    }

    private var selectedQueue: Int? {
        Int(queueSel) < registers.count ? Int(queueSel) : nil
    }

    // MARK: writes

    public func write(offset: UInt64, size: Int, value: UInt32) -> VirtioMMIOEffects {
        if offset >= VirtioMMIORegister.config {
            if size == 1 || size == 2 || size == 4 {
                device.writeConfig(offset: Int(offset - VirtioMMIORegister.config), size: size, value: value)
            }
            return .none
        }
        guard size == 4, offset & 3 == 0 else { return .none }
        typealias R = VirtioMMIORegister
        var effects = VirtioMMIOEffects()
        let featuresLocked = status & VirtioStatus.featuresOK != 0
        switch offset {
        case R.deviceFeaturesSel: deviceFeaturesSel = value
        case R.driverFeaturesSel: driverFeaturesSel = value
        case R.driverFeatures:
            guard !featuresLocked else { break }
            switch driverFeaturesSel {
            case 0: driverFeatures = (driverFeatures & ~0xffff_ffff) | UInt64(value)
            case 1: driverFeatures = (driverFeatures & 0xffff_ffff) | (UInt64(value) << 32)
            default: break  // no feature bits above 63 exist; the FEATURES_OK check can't see them
            }
        case R.queueSel: queueSel = value
        case R.queueNum, R.queueDescLow, R.queueDescHigh, R.queueDriverLow, R.queueDriverHigh,
             R.queueDeviceLow, R.queueDeviceHigh:
            guard let q = selectedQueue, queues[q] == nil else { break }
            setQueueRegister(q, offset, value)
        case R.queueReady:
            guard let q = selectedQueue else { break }
            if value & 1 == 0 {
                if queues[q] != nil { queues[q] = nil; effects.stateChanged = true }
                break
            }
            guard queues[q] == nil else { break }
            guard featuresLocked else {
                return markBroken("queue \(q) made ready before FEATURES_OK")
            }
            let r = registers[q]
            let layout = VirtqueueLayout(size: r.size, descriptors: r.descriptors, driverArea: r.driverArea, deviceArea: r.deviceArea)
            guard let queue = SplitVirtqueue(layout: layout, maxSize: device.queueMaxSizes[q], memory: memory,
                                             eventIndex: negotiatedEventIndex, direction: device.queueDirection(q))
            else {
                return markBroken("queue \(q) layout rejected (size \(r.size), desc 0x\(String(r.descriptors, radix: 16)), driver 0x\(String(r.driverArea, radix: 16)), device 0x\(String(r.deviceArea, radix: 16)))")
            }
            queues[q] = queue
            effects.stateChanged = true
        case R.queueNotify:
            // The value is the queue index (no VIRTIO_F_NOTIFICATION_DATA).
            if value < UInt32(registers.count) { effects.notifiedQueues |= 1 << value }
        case R.interruptACK:
            interruptStatus &= ~value
        case R.status:
            return writeStatus(value)
        default: break  // read-only or unknown register: ignored
        }
        return effects
    }

    private func setQueueRegister(_ q: Int, _ offset: UInt64, _ value: UInt32) {
        typealias R = VirtioMMIORegister
        func low(_ old: UInt64) -> UInt64 { (old & ~0xffff_ffff) | UInt64(value) }
        func high(_ old: UInt64) -> UInt64 { (old & 0xffff_ffff) | (UInt64(value) << 32) }
        switch offset {
        case R.queueNum: registers[q].size = value <= 0xffff ? UInt16(value) : 0  // 0: rejected at ready
        case R.queueDescLow: registers[q].descriptors = low(registers[q].descriptors)
        case R.queueDescHigh: registers[q].descriptors = high(registers[q].descriptors)
        case R.queueDriverLow: registers[q].driverArea = low(registers[q].driverArea)
        case R.queueDriverHigh: registers[q].driverArea = high(registers[q].driverArea)
        case R.queueDeviceLow: registers[q].deviceArea = low(registers[q].deviceArea)
        case R.queueDeviceHigh: registers[q].deviceArea = high(registers[q].deviceArea)
        default: break
        }
    }

    private func writeStatus(_ value: UInt32) -> VirtioMMIOEffects {
        var effects = VirtioMMIOEffects()
        if value == 0 {
            reset()
            effects.stateChanged = true
            return effects
        }
        // The driver only ever adds bits (§3.1.1); NEEDS_RESET is the device's to set.
        let kept = status & VirtioStatus.deviceNeedsReset
        let requested = value & ~VirtioStatus.deviceNeedsReset
        if status & ~VirtioStatus.deviceNeedsReset & ~requested != 0 {
            return markBroken("driver cleared status bits (0x\(String(status, radix: 16)) → 0x\(String(value, radix: 16)))")
        }
        var next = requested
        if requested & VirtioStatus.featuresOK != 0 && status & VirtioStatus.featuresOK == 0 {
            // Accept only what was offered, and only modern drivers.
            let acceptable = driverFeatures & ~device.deviceFeatures == 0 && driverFeatures & VirtioFeature.version1 != 0
            if !acceptable { next &= ~VirtioStatus.featuresOK }
        }
        if next & VirtioStatus.driverOK != 0 && next & VirtioStatus.featuresOK == 0 {
            status = next | kept
            return markBroken("DRIVER_OK without FEATURES_OK")
        }
        let wasLive = isLive
        status = next | kept
        if isLive != wasLive || status & VirtioStatus.failed != 0 { effects.stateChanged = true }
        return effects
    }

    /// Device-side error the driver must recover from by a reset (§2.1.2): sets
    /// DEVICE_NEEDS_RESET and a configuration-change interrupt.
    @discardableResult
    public func markBroken(_ reason: String) -> VirtioMMIOEffects {
        var effects = VirtioMMIOEffects()
        if status & VirtioStatus.deviceNeedsReset == 0 {
            brokenReason = reason
            status |= VirtioStatus.deviceNeedsReset
            interruptStatus |= VirtioMMIORegister.interruptConfigChange
            configGeneration &+= 1
            effects.interrupt = true
        }
        effects.stateChanged = true
        return effects
    }

    private func reset() {
        status = 0
        driverFeatures = 0
        interruptStatus = 0
        deviceFeaturesSel = 0
        driverFeaturesSel = 0
        queueSel = 0
        brokenReason = nil
        registers = device.queueMaxSizes.map { QueueRegisters(size: $0) }
        for i in queues.indices { queues[i] = nil }
        device.reset()
    }
}
