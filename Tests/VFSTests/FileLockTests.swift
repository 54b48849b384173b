import LinuxABI
import VFS
import XCTest

/// The lock table's rules, as Linux applies them (fs/locks.c).
final class FileLockTests: XCTestCase {
    typealias L = FileLocks
    let a = L.Owner.process(10), b = L.Owner.process(20)

    func testRangesFromStructFlock() throws {
        XCTAssertTrue(try L.range(start: 5, length: 0, base: 0) == (5, Int64.max), "length 0: to the end")
        XCTAssertTrue(try L.range(start: 2, length: 3, base: 10) == (12, 15))
        XCTAssertTrue(try L.range(start: 10, length: -4, base: 0) == (6, 10), "negative: the bytes before")
        XCTAssertErrno(.EINVAL) { () throws(Errno) in _ = try L.range(start: -1, length: 1, base: 0) }
        XCTAssertErrno(.EINVAL) { () throws(Errno) in _ = try L.range(start: 2, length: -3, base: 0) }
        XCTAssertErrno(.EOVERFLOW) { () throws(Errno) in _ = try L.range(start: Int64.max, length: 2, base: 0) }
        XCTAssertErrno(.EOVERFLOW) { () throws(Errno) in _ = try L.range(start: Int64.max, length: 1, base: 1) }
    }

    func testSharedAndExclusiveBetweenOwners() {
        var t = L()
        XCTAssertNil(t.setRecord(node: 1, owner: a, pid: 10, kind: .shared, start: 0, end: 100))
        XCTAssertNil(t.setRecord(node: 1, owner: b, pid: 20, kind: .shared, start: 50, end: 150), "readers share")
        XCTAssertEqual(t.setRecord(node: 1, owner: b, pid: 20, kind: .exclusive, start: 90, end: 95)?.pid, 10)
        XCTAssertNil(t.setRecord(node: 1, owner: b, pid: 20, kind: .exclusive, start: 100, end: 120), "past a's range")
        XCTAssertNil(t.setRecord(node: 2, owner: b, pid: 20, kind: .exclusive, start: 0, end: 10), "another file")
        XCTAssertNil(t.conflictingRecord(node: 1, owner: a, kind: .shared, start: 0, end: 100), "a's own locks never conflict")
        XCTAssertEqual(t.conflictingRecord(node: 1, owner: a, kind: .shared, start: 0, end: Int64.max)?.start, 100)
        t.processClosed(20, node: 1)
        XCTAssertNil(t.conflictingRecord(node: 1, owner: a, kind: .exclusive, start: 0, end: Int64.max))
        XCTAssertNotNil(t.conflictingRecord(node: 2, owner: a, kind: .shared, start: 0, end: 1), "b still holds file 2")
    }

    func testOwnLocksAreSplitReplacedAndMerged() {
        var t = L()
        t.setRecord(node: 1, owner: a, pid: 10, kind: .exclusive, start: 0, end: 100)
        t.setRecord(node: 1, owner: a, pid: 10, kind: .shared, start: 40, end: 60)   // splits into 3
        XCTAssertNil(t.setRecord(node: 1, owner: b, pid: 20, kind: .shared, start: 45, end: 55), "the middle is shared now")
        XCTAssertNotNil(t.setRecord(node: 1, owner: b, pid: 20, kind: .shared, start: 30, end: 45), "0..<40 is still exclusive")
        t.processClosed(20, node: 1)
        t.setRecord(node: 1, owner: a, pid: 10, kind: nil, start: 10, end: 90)         // unlock the middle
        XCTAssertNil(t.setRecord(node: 1, owner: b, pid: 20, kind: .exclusive, start: 10, end: 90))
        XCTAssertEqual(t.conflictingRecord(node: 1, owner: b, kind: .shared, start: 0, end: 100)?.end, 10)
        t.processClosed(20, node: 1)
        // Adjacent same-kind locks merge: one lock 0..<100 again, reported as such.
        t.setRecord(node: 1, owner: a, pid: 10, kind: .exclusive, start: 10, end: 90)
        let c = t.conflictingRecord(node: 1, owner: b, kind: .shared, start: 0, end: Int64.max)
        XCTAssertEqual(c.map { [$0.start, $0.end] }, [0, 100])
        t.setRecord(node: 1, owner: a, pid: 10, kind: nil, start: 0, end: Int64.max)
        XCTAssertFalse(t.hasLocks(1), "nothing left, no entry")
    }

    func testDescriptionOwnedLocks() {
        var t = L()
        let d = L.Owner.description(3)
        XCTAssertNil(t.setRecord(node: 1, owner: d, pid: -1, kind: .exclusive, start: 0, end: 10))
        XCTAssertEqual(t.setRecord(node: 1, owner: a, pid: 10, kind: .shared, start: 5, end: 6)?.pid, -1)
        t.processClosed(10, node: 1)
        XCTAssertTrue(t.hasLocks(1), "a process closing does not drop a description's lock")
        t.descriptionClosed(3, node: 1)
        XCTAssertFalse(t.hasLocks(1))
    }

    func testFlock() {
        var t = L()
        XCTAssertTrue(t.flock(node: 1, description: 3, kind: .shared))
        XCTAssertTrue(t.flock(node: 1, description: 4, kind: .shared))
        XCTAssertFalse(t.flock(node: 1, description: 5, kind: .exclusive))
        XCTAssertNil(t.setRecord(node: 1, owner: a, pid: 10, kind: .exclusive, start: 0, end: Int64.max),
                     "record locks and flock locks ignore each other")
        // A conversion that meets a conflict has dropped the old lock (as Linux).
        XCTAssertFalse(t.flock(node: 1, description: 3, kind: .exclusive))
        XCTAssertTrue(t.flock(node: 1, description: 5, kind: .shared), "3 holds nothing now")
        XCTAssertTrue(t.flock(node: 1, description: 4, kind: nil))
        XCTAssertTrue(t.flock(node: 1, description: 5, kind: nil))
        XCTAssertTrue(t.flock(node: 1, description: 3, kind: .exclusive))
        XCTAssertTrue(t.flock(node: 1, description: 3, kind: .exclusive), "again: already held")
        t.descriptionClosed(3, node: 1)
        XCTAssertTrue(t.flock(node: 1, description: 6, kind: .exclusive))
    }
}
