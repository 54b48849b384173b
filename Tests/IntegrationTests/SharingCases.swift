// What processes share through the kernel, differential against native: descriptors passed
// over AF_UNIX sockets and advisory file locks between processes (Tests/Guests/sharing.c).

import XCTest

extension VMMMatrix {
    /// SCM_RIGHTS between a parent and its child (a file's shared offset, a pipe end that
    /// outlives the sender's close, MSG_CTRUNC with no or too little room, MSG_CMSG_CLOEXEC,
    /// EBADF); two children accepting one connection each from an inherited listening
    /// socket; SIGIO to the F_SETOWN owner of a socket with O_ASYNC; fcntl record locks that conflict between processes (F_GETLK names the holder,
    /// F_SETLKW waits for the unlock, a close or the owner's exit releases), OFD locks per
    /// description, flock per description (shared through fork, waited for, EWOULDBLOCK).
    func sharing() throws { try differentialAllVariants("sharing") }
}
