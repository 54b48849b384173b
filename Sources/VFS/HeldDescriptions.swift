// Open file descriptions held outside every descriptor table: a descriptor passed over an
// AF_UNIX socket (SCM_RIGHTS) is, between sendmsg and recvmsg, such a reference. It keeps the
// description (offset, status flags) alive when the sender closes its descriptor, and becomes
// a descriptor of whichever process receives it — the same description, as Linux's
// file-struct reference in flight.

import LinuxABI

/// One reference to an open file description, owned by whoever holds the value: it must be
/// installed (`installHeld`) or dropped (`dropHeld`) exactly once.
public struct HeldDescription: Equatable, Sendable {
    let index: Int
}

extension FileSystem {
    /// A new reference to `fd`'s description (O_PATH descriptors too, as Linux passes them).
    /// EBADF if `fd` is not open.
    public mutating func holdDescription(_ fd: Int32) throws(Errno) -> HeldDescription {
        let index = try openFileIndex(fd)
        openFiles[index]?.references += 1
        return HeldDescription(index: index)
    }

    /// Another reference to a held description (a MSG_PEEK receive installs a copy and leaves
    /// the original in flight).
    public mutating func holdAgain(_ held: HeldDescription) -> HeldDescription {
        openFiles[held.index]?.references += 1
        return held
    }

    /// The lowest free descriptor of the running process's table, referring to `held`'s
    /// description; the held reference becomes the descriptor's. EMFILE when the table is
    /// full (the reference is then still the caller's).
    public mutating func installHeld(_ held: HeldDescription, closeOnExec: Bool) throws(Errno) -> Int32 {
        let fd = try lowestFreeDescriptor(from: 0)
        setDescriptor(fd, DescriptorSlot(openFile: held.index, closeOnExec: closeOnExec))
        return Int32(fd)
    }

    /// Gives the reference up; the description closes if it was the last.
    public mutating func dropHeld(_ held: HeldDescription) {
        releaseOpenFile(held.index)
    }

    /// What a held description refers to (the kernel's objects are `.console` devices).
    public func heldNodeType(_ held: HeldDescription) -> NodeType? {
        guard let file = openFiles[held.index] else { return nil }
        return nodes[file.node].type
    }
}
