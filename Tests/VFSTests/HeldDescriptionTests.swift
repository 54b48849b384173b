import LinuxABI
import VFS
import XCTest

/// Descriptions held in flight (SCM_RIGHTS): they outlive the sender's descriptor and become
/// another process's descriptor for the same description (shared offset).
final class HeldDescriptionTests: XCTestCase {
    func testHeldDescriptionMovesToAnotherProcess() throws {
        var fs = try ImageBuffer().mount()
        let sent = try fs.open("/etc/hosts")
        XCTAssertEqual(try fs.read(sent, count: 4), Array("127.".utf8))
        let held = try fs.holdDescription(sent)
        try fs.close(sent)

        // Another process (a fork's table) receives it: its lowest free descriptor.
        var receiver = fs.forkProcessFiles(identity: 2)
        fs.exchangeProcessFiles(&receiver)
        XCTAssertEqual(try fs.open("/etc/empty"), 0)
        let received = try fs.installHeld(held, closeOnExec: true)
        XCTAssertEqual(received, 1, "the lowest free descriptor of the receiver")
        XCTAssertEqual(try fs.descriptorFlags(received), FcntlCommand.FD_CLOEXEC)
        XCTAssertEqual(try fs.read(received, count: 4), Array("0.0.".utf8), "the same description: the offset went on")

        // A second reference (MSG_PEEK's copy) keeps the description after one is closed.
        let copy = fs.holdAgain(held)
        try fs.close(received)
        let again = try fs.installHeld(copy, closeOnExec: false)
        XCTAssertEqual(try fs.read(again, count: 2), Array("1 ".utf8))
        XCTAssertErrno(.EBADF) { () throws(Errno) in _ = try fs.holdDescription(99) }
    }

    func testDroppedAndRefusedHolds() throws {
        var fs = try ImageBuffer().mount(maxDescriptors: 2)
        let a = try fs.open("/etc/hosts")
        let b = try fs.open("/etc/hosts")
        let held = try fs.holdDescription(a)
        XCTAssertErrno(.EMFILE) { () throws(Errno) in _ = try fs.installHeld(held, closeOnExec: false) }
        try fs.close(a)
        try fs.close(b)
        // Still open through the hold: installable now.
        let fd = try fs.installHeld(held, closeOnExec: false)
        XCTAssertEqual(fd, 0)
        XCTAssertEqual(try fs.read(fd, count: 3), Array("127".utf8))
        let second = try fs.holdDescription(fd)
        try fs.close(fd)
        fs.dropHeld(second)  // the last reference: the description is gone
        XCTAssertFalse(fs.isOpen(0))
    }
}
