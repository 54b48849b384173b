import GuestABI
@testable import VMM
import XCTest

/// virtio-mmio register semantics (§4.2.2), with a virtio-net device model behind them.
final class VirtioTransportTests: XCTestCase {
    typealias R = VirtioMMIORegister
    let ram = TestGuestRAM()
    let mac = NetworkConfiguration.MACAddress(0x52, 0x54, 0x00, 0x12, 0x34, 0x56)
    lazy var net = VirtioNetDevice(mac: mac)
    lazy var t = VirtioMMIOTransport(device: net, memory: ram.memory)

    func w(_ offset: UInt64, _ value: UInt32) { _ = t.write(offset: offset, size: 4, value: value) }

    func testIdentityAndConfigurationSpace() {
        XCTAssertEqual(t.read(offset: R.magicValue, size: 4), 0x7472_6976)
        XCTAssertEqual(t.read(offset: R.version, size: 4), 2)
        XCTAssertEqual(t.read(offset: R.deviceID, size: 4), 1)
        XCTAssertEqual(t.read(offset: R.vendorID, size: 4), R.vendor)
        for q: UInt32 in [0, 1] {
            w(R.queueSel, q)
            XCTAssertEqual(t.read(offset: R.queueNumMax, size: 4), 256)
            XCTAssertEqual(t.read(offset: R.queueReady, size: 4), 0)
        }
        w(R.queueSel, 2)
        XCTAssertEqual(t.read(offset: R.queueNumMax, size: 4), 0, "no third queue")
        // MAC and link status at every width.
        XCTAssertEqual(t.read(offset: R.config, size: 4), 0x1200_5452)
        XCTAssertEqual(t.read(offset: R.config + 4, size: 2), 0x5634)
        XCTAssertEqual(t.read(offset: R.config + 5, size: 1), 0x56)
        XCTAssertEqual(t.read(offset: R.config + 6, size: 2), 1, "VIRTIO_NET_S_LINK_UP")
        XCTAssertEqual(t.read(offset: R.config + 0x100, size: 4), 0, "past the config space")
        XCTAssertEqual(t.read(offset: R.shmLenLow, size: 4), 0xffff_ffff, "no shared memory regions")
        // Registers only answer 32-bit aligned accesses.
        XCTAssertEqual(t.read(offset: R.magicValue, size: 2), 0)
        XCTAssertEqual(t.read(offset: R.magicValue + 1, size: 4), 0)
    }

    func testOfferedFeatures() {
        w(R.deviceFeaturesSel, 0)
        let low = t.read(offset: R.deviceFeatures, size: 4)
        w(R.deviceFeaturesSel, 1)
        let high = t.read(offset: R.deviceFeatures, size: 4)
        w(R.deviceFeaturesSel, 2)
        XCTAssertEqual(t.read(offset: R.deviceFeatures, size: 4), 0)
        XCTAssertEqual(UInt64(high) << 32 | UInt64(low), allNetFeatures)
        XCTAssertEqual(low & (1 << 28), 0, "no indirect descriptors")
    }

    func testFeatureNegotiation() {
        let ok = negotiate(t, features: allNetFeatures)
        XCTAssertNotEqual(ok & VirtioStatus.featuresOK, 0)
        XCTAssertTrue(t.negotiatedEventIndex)
        // Feature writes after FEATURES_OK are ignored.
        w(R.driverFeaturesSel, 0)
        w(R.driverFeatures, 0)
        XCTAssertEqual(t.driverFeatures, allNetFeatures)

        // A subset is fine (no EVENT_IDX).
        XCTAssertNotEqual(negotiate(t, features: VirtioFeature.version1) & VirtioStatus.featuresOK, 0)
        XCTAssertFalse(t.negotiatedEventIndex)

        // An unknown bit (VIRTIO_NET_F_CSUM), indirect descriptors, or no VERSION_1: refused.
        for bad in [allNetFeatures | 1, allNetFeatures | VirtioFeature.ringIndirectDescriptors,
                    VirtioNetDevice.featureMAC, allNetFeatures | (1 << 40)] {
            let status = negotiate(t, features: bad)
            XCTAssertEqual(status & VirtioStatus.featuresOK, 0, "features 0x\(String(bad, radix: 16)) accepted")
            XCTAssertEqual(status & VirtioStatus.deviceNeedsReset, 0)
        }
    }

    func testQueueSetupAndReset() {
        negotiate(t, features: allNetFeatures)
        let rx = TestDriverQueue(ram: ram, size: 256, base: 0x1_0000)
        setUpQueue({ self.w($0, $1) }, index: 0, layout: rx.layout)
        XCTAssertEqual(t.read(offset: R.queueReady, size: 4), 1)
        XCTAssertNotNil(t.queues[0])
        // A ready queue's registers can't be changed under the device.
        w(R.queueNum, 16)
        XCTAssertEqual(t.registers[0].size, 256)
        w(R.status, VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.featuresOK | VirtioStatus.driverOK)
        XCTAssertTrue(t.isLive)
        t.interruptStatus = 3
        w(R.interruptACK, 1)
        XCTAssertEqual(t.read(offset: R.interruptStatus, size: 4), 2)

        w(R.status, 0)
        XCTAssertEqual(t.read(offset: R.status, size: 4), 0)
        XCTAssertEqual(t.read(offset: R.interruptStatus, size: 4), 0)
        XCTAssertEqual(t.driverFeatures, 0)
        XCTAssertNil(t.queues[0])
        XCTAssertFalse(t.isLive)
        w(R.queueSel, 0)
        XCTAssertEqual(t.read(offset: R.queueReady, size: 4), 0)
    }

    func testBadQueueLayoutsNeedReset() {
        let good = TestDriverQueue(ram: ram, size: 64, base: 0x2_0000).layout
        var cases: [(String, VirtqueueLayout)] = []
        var l = good; l.size = 48; cases.append(("size not a power of two", l))
        l = good; l.size = 512; cases.append(("size above QueueNumMax", l))
        l = good; l.size = 0; cases.append(("size 0", l))
        l = good; l.descriptors += 8; cases.append(("descriptor table misaligned", l))
        l = good; l.driverArea += 1; cases.append(("avail ring misaligned", l))
        l = good; l.deviceArea += 2; cases.append(("used ring misaligned", l))
        l = good; l.deviceArea = UInt64(ram.bytes.count) - 16; cases.append(("used ring past the end of RAM", l))
        l = good; l.descriptors = 0xffff_ffff_ffff_fff0; cases.append(("descriptor table wraps", l))
        l = good; l.driverArea = 0xd000_0000; cases.append(("avail ring in the MMIO hole", l))
        for (what, layout) in cases {
            negotiate(t, features: allNetFeatures)
            w(R.queueSel, 1)
            w(R.queueNum, UInt32(layout.size))
            setUpQueue({ self.w($0, $1) }, index: 1, layout: layout)
            XCTAssertNil(t.queues[1], what)
            XCTAssertNotEqual(t.status & VirtioStatus.deviceNeedsReset, 0, what)
            XCTAssertNotEqual(t.interruptStatus & R.interruptConfigChange, 0, what)
        }
        // A reset recovers.
        negotiate(t, features: allNetFeatures)
        XCTAssertEqual(t.status & VirtioStatus.deviceNeedsReset, 0)
        setUpQueue({ self.w($0, $1) }, index: 1, layout: good)
        XCTAssertNotNil(t.queues[1])
    }

    func testBrokenDriverSequences() {
        // QueueReady before FEATURES_OK.
        w(R.status, VirtioStatus.acknowledge | VirtioStatus.driver)
        setUpQueue({ self.w($0, $1) }, index: 0, layout: TestDriverQueue(ram: ram, size: 16, base: 0x1000).layout)
        XCTAssertNil(t.queues[0])
        XCTAssertNotEqual(t.status & VirtioStatus.deviceNeedsReset, 0)

        // DRIVER_OK without FEATURES_OK.
        w(R.status, 0)
        w(R.status, VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.driverOK)
        XCTAssertNotEqual(t.status & VirtioStatus.deviceNeedsReset, 0)
        XCTAssertFalse(t.isLive)

        // Clearing a bit without a reset.
        negotiate(t, features: allNetFeatures)
        let effects = t.write(offset: R.status, size: 4, value: VirtioStatus.acknowledge)
        XCTAssertTrue(effects.interrupt)
        XCTAssertNotEqual(t.status & VirtioStatus.deviceNeedsReset, 0)
        XCTAssertNotNil(t.brokenReason)
        let generation = t.read(offset: R.configGeneration, size: 4)
        XCTAssertGreaterThan(generation, 0)

        // FAILED stops the device.
        negotiate(t, features: allNetFeatures)
        w(R.status, VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.featuresOK | VirtioStatus.driverOK)
        XCTAssertTrue(t.isLive)
        w(R.status, VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.featuresOK | VirtioStatus.driverOK | VirtioStatus.failed)
        XCTAssertFalse(t.isLive)
    }

    func testNotifyAndIgnoredWrites() {
        XCTAssertEqual(t.write(offset: R.queueNotify, size: 4, value: 1).notifiedQueues, 2)
        XCTAssertEqual(t.write(offset: R.queueNotify, size: 4, value: 0).notifiedQueues, 1)
        XCTAssertEqual(t.write(offset: R.queueNotify, size: 4, value: 7), .none, "no queue 7")
        XCTAssertEqual(t.write(offset: R.queueNotify, size: 2, value: 1), .none, "16-bit register write")
        XCTAssertEqual(t.write(offset: R.magicValue, size: 4, value: 0), .none)
        XCTAssertEqual(t.read(offset: R.magicValue, size: 4), R.magic)
        // Config writes are ignored (the MAC is read-only).
        _ = t.write(offset: R.config, size: 4, value: 0)
        XCTAssertEqual(t.read(offset: R.config, size: 1), 0x52)
    }
}
