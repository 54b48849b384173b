import LinuxABI
import XCTest

/// msgrcv's selection and E2BIG/MSG_NOERROR, msgsnd's room, and semop's all-or-nothing
/// rule with SEM_UNDO adjustments, without a kernel.
final class SysVIPCTests: XCTestCase {
    private func XCTAssertErrno(_ expected: Errno, _ body: () throws(Errno) -> Void, line: UInt = #line) {
        do throws(Errno) {
            try body()
            XCTFail("no error, expected \(expected)", line: line)
        } catch {
            XCTAssertEqual(error, expected, line: line)
        }
    }

    private func queue(_ types: [Int64]) -> MessageQueue {
        var q = MessageQueue()
        for (i, t) in types.enumerated() { q.append(.init(type: t, text: Array("m\(i)".utf8))) }
        return q
    }

    func testMessageSelection() throws {
        let q = queue([3, 1, 2, 1])
        XCTAssertEqual(q.select(type: 0, except: false), 0, "0: the oldest")
        XCTAssertEqual(q.select(type: 1, except: false), 1, "> 0: the oldest of that type")
        XCTAssertEqual(q.select(type: 1, except: true), 0, "MSG_EXCEPT: the oldest of another type")
        XCTAssertEqual(q.select(type: -2, except: false), 1, "< 0: the oldest of the lowest type up to 2")
        XCTAssertEqual(q.select(type: -5, except: false), 1)
        XCTAssertNil(q.select(type: 4, except: false))
        XCTAssertEqual(q.select(type: Int64.min, except: false), 1, "Int64.min bounds nothing")
        XCTAssertNil(MessageQueue().select(type: 0, except: false))
    }

    func testTakeCutsOrRefuses() throws {
        var q = queue([5])
        XCTAssertEqual(q.byteCount, 2)
        XCTAssertErrno(.E2BIG) { () throws(Errno) in _ = try q.take(0, capacity: 1, noError: false) }
        XCTAssertEqual(q.messages.count, 1, "E2BIG leaves it queued")
        let m = try q.take(0, capacity: 1, noError: true)
        XCTAssertEqual(m.text, Array("m".utf8))
        XCTAssertEqual(q.byteCount, 0)
        XCTAssertTrue(q.messages.isEmpty)
    }

    func testRoomCountsBytesAndMessages() {
        var q = MessageQueue()
        q.byteLimit = 4
        XCTAssertTrue(q.hasRoom(for: 4))
        XCTAssertFalse(q.hasRoom(for: 5))
        for _ in 0..<4 { q.append(.init(type: 1, text: [])) }
        XCTAssertFalse(q.hasRoom(for: 0), "as many messages as bytes allowed")
    }

    func testSemopIsAllOrNothing() throws {
        var set = SemaphoreSet(count: 3)
        set.values = [1, 2, 0]
        var adjust: [Int32] = []
        let ops = [SemaphoreOperation(number: 0, operation: -1, flags: SysVIPC.SEM_UNDO),
                   SemaphoreOperation(number: 2, operation: -1, flags: 0)]
        XCTAssertEqual(try set.apply(ops, pid: 7, adjustments: &adjust), .wait(number: 2, forZero: false))
        XCTAssertEqual(set.values, [1, 2, 0], "nothing applied")
        XCTAssertEqual(adjust, [])
        XCTAssertErrno(.EAGAIN) { () throws(Errno) in
            _ = try set.apply([SemaphoreOperation(number: 1, operation: 0, flags: Int16(SysVIPC.IPC_NOWAIT))], pid: 7, adjustments: &adjust)
        }
        XCTAssertEqual(try set.apply([SemaphoreOperation(number: 1, operation: 0, flags: 0)], pid: 7, adjustments: &adjust),
                       .wait(number: 1, forZero: true))
        XCTAssertErrno(.EFBIG) { () throws(Errno) in
            _ = try set.apply([SemaphoreOperation(number: 3, operation: 1, flags: 0)], pid: 7, adjustments: &adjust)
        }
        XCTAssertErrno(.ERANGE) { () throws(Errno) in
            _ = try set.apply([SemaphoreOperation(number: 1, operation: 32767, flags: 0)], pid: 7, adjustments: &adjust)
        }
        let ok = [SemaphoreOperation(number: 0, operation: -1, flags: SysVIPC.SEM_UNDO),
                  SemaphoreOperation(number: 2, operation: 3, flags: SysVIPC.SEM_UNDO),
                  SemaphoreOperation(number: 1, operation: -2, flags: 0)]
        XCTAssertEqual(try set.apply(ok, pid: 9, adjustments: &adjust), .done)
        XCTAssertEqual(set.values, [0, 0, 3])
        XCTAssertEqual(adjust, [1, 0, -3])
        XCTAssertEqual(set.lastPids, [9, 9, 9])
        set.values[2] = 1  // someone set it meanwhile: the undo clamps at 0
        set.undo(adjust, pid: 11)
        XCTAssertEqual(set.values, [1, 0, 0])
        XCTAssertEqual(set.lastPids, [11, 9, 11])
    }

    func testSembufDecoding() throws {
        let bytes: [UInt8] = [2, 0, 0xff, 0xff, 0x00, 0x10,  1, 0, 3, 0, 0x00, 0x08]
        let ops = try bytes.withUnsafeBytes { b throws(Errno) in try SemaphoreOperation.decode(b, count: 2) }
        XCTAssertEqual(ops, [SemaphoreOperation(number: 2, operation: -1, flags: SysVIPC.SEM_UNDO),
                             SemaphoreOperation(number: 1, operation: 3, flags: Int16(SysVIPC.IPC_NOWAIT))])
        XCTAssertTrue(ops[0].undo)
        XCTAssertTrue(ops[1].noWait)
        let short = bytes.withUnsafeBytes { b in Result { () throws(Errno) in try SemaphoreOperation.decode(b, count: 3) } }
        XCTAssertThrowsError(try short.get(), "12 bytes hold 2 records, not 3") { XCTAssertEqual($0 as? Errno, .EFAULT) }
    }
}
