// Ancillary data of sendmsg/recvmsg (msg_control): a sequence of `struct cmsghdr` records,
// each padded to 8 bytes (CMSG_ALIGN):
//   cmsg_len u64 @0 (header + data, unpadded), cmsg_level i32 @8, cmsg_type i32 @12, data @16
// Apus understands SOL_SOCKET's SCM_RIGHTS (descriptors passed over AF_UNIX sockets) and
// accepts SCM_CREDENTIALS (checked for size, otherwise not used: nothing in the VM asks for
// SO_PASSCRED). Linux's rules (net/core/scm.c): a record whose length is below the header's or
// past the buffer's end is EINVAL; other levels are skipped; an unknown SOL_SOCKET type is
// EINVAL; at most 253 descriptors (SCM_MAX_FD) per message, over all its SCM_RIGHTS records.

public enum ControlMessages {
    public static let headerSize = 16
    public static let SCM_RIGHTS: Int32 = 1
    public static let SCM_CREDENTIALS: Int32 = 2
    public static let maxDescriptors = 253
    /// The most msg_control a send may carry (Linux's net.core.optmem_max default, 20 KiB:
    /// beyond it sendmsg is ENOBUFS).
    public static let maxSendLength = 20_480

    /// CMSG_ALIGN: `length` rounded up to 8.
    public static func aligned(_ length: Int) -> Int { (length + 7) & ~7 }

    /// CMSG_SPACE(dataLength): one record with its padding.
    public static func space(_ dataLength: Int) -> Int { headerSize + aligned(dataLength) }

    /// The descriptors a sendmsg's control buffer passes (in order, duplicates kept, as Linux
    /// passes them). Malformed records: EINVAL.
    public static func descriptorsToSend(_ control: UnsafeRawBufferPointer) throws(Errno) -> [Int32] {
        var descriptors: [Int32] = []
        let r = StructReader(control)
        var offset = 0
        while control.count - offset >= headerSize {
            guard let length = r.get(UInt64.self, at: offset), let level = r.get(Int32.self, at: offset + 8),
                  let type = r.get(Int32.self, at: offset + 12) else { throw .EINVAL }
            guard length >= UInt64(headerSize), length <= UInt64(control.count - offset) else { throw .EINVAL }
            let dataLength = Int(length) - headerSize
            if level == SocketConstants.SOL_SOCKET {
                switch type {
                case SCM_RIGHTS:
                    let count = dataLength / 4
                    guard descriptors.count + count <= maxDescriptors else { throw .EINVAL }
                    for i in 0..<count {
                        descriptors.append(r.get(Int32.self, at: offset + headerSize + 4 * i) ?? -1)
                    }
                case SCM_CREDENTIALS:
                    guard dataLength == 12 else { throw .EINVAL }  // struct ucred: pid, uid, gid
                default:
                    throw .EINVAL
                }
            }
            offset += aligned(Int(length))
        }
        return descriptors
    }

    /// How many passed descriptors a recvmsg's control buffer of `capacity` bytes holds.
    public static func descriptorCapacity(_ capacity: Int) -> Int {
        capacity > headerSize ? min((capacity - headerSize) / 4, maxDescriptors) : 0
    }

    /// Writes one SCM_RIGHTS record with `descriptors` (which fit: see descriptorCapacity) at
    /// the start of `buffer`; returns the bytes it takes of the caller's msg_controllen
    /// (CMSG_SPACE, or all of `buffer` when the padding does not fit, as Linux reports it).
    public static func encodeRights(_ descriptors: [Int32], into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let dataLength = 4 * descriptors.count
        guard !descriptors.isEmpty, buffer.count >= headerSize + dataLength else { return 0 }
        var w = StructWriter(buffer)
        w.put(UInt64(headerSize + dataLength), at: 0)
        w.put(SocketConstants.SOL_SOCKET, at: 8)
        w.put(SCM_RIGHTS, at: 12)
        for (i, fd) in descriptors.enumerated() { w.put(fd, at: headerSize + 4 * i) }
        return min(space(dataLength), buffer.count)
    }
}
