import CKVM
#if canImport(Glibc)
import Glibc
#endif

/// The guest's frames on a host tap device (`/dev/net/tun`, IFF_TAP | IFF_NO_PI): the
/// guest appears as a machine on a small host-only link, e.g. host 10.0.3.1/24 on `apus0`,
/// guest 10.0.3.2.
///
/// Needs CAP_NET_ADMIN (root) to create the device and give it its address; without it,
/// `init` throws an error saying so (the default user-mode network needs no privileges).
/// Everything is set up with ioctls (TUNSETIFF, SIOCSIFADDR, SIOCSIFNETMASK, SIOCSIFFLAGS);
/// nothing is shelled out. The device is not persistent: it disappears when the VM stops
/// (the descriptor is closed).
///
/// Traffic beyond the host: the guest reaches the host's own addresses only. To let it reach
/// other networks, the host must forward and masquerade for the tap subnet
/// (net.ipv4.ip_forward=1 and a NAT rule); apus does not change the host's firewall or
/// sysctls. Ports of the guest are published with `PortForwarder` (NetworkConfiguration's
/// `forwards`), which connects through the host kernel's route to the tap.
///
/// I/O: non-blocking reads and writes; a frame the host cannot take now (EAGAIN/ENOBUFS)
/// is dropped, as a full NIC queue would.
public final class TapBackend: NetworkBackend {
    public enum Error: Swift.Error, Equatable {
        case open(Int32)
        case configure(interface: String, step: String, Int32)
        case badPrefix(UInt8)

        public var message: String {
            switch self {
            case .open(let e) where e == EPERM || e == EACCES:
                return "cannot create a tap device: \(String(cString: strerror(e))) (the tap network needs CAP_NET_ADMIN, e.g. root; the default user-mode network works without privileges)"
            case .open(let e) where e == ENOENT || e == ENODEV:
                return "cannot create a tap device: /dev/net/tun is missing (load the tun module); the default user-mode network works without it"
            case .open(let e):
                return "cannot create a tap device: \(String(cString: strerror(e)))"
            case .configure(let name, let step, let e):
                let hint = e == EPERM || e == EACCES ? " (needs CAP_NET_ADMIN; the default user-mode network works without privileges)" : ""
                return "cannot configure tap device \(name) (\(step)): \(String(cString: strerror(e)))\(hint)"
            case .badPrefix(let p):
                return "tap network prefix /\(p) is invalid (use 8…30)"
            }
        }
    }

    /// The host side of the link.
    public struct HostSide: Equatable, Sendable {
        public var address: NetworkConfiguration.IPv4Address
        public var prefixLength: UInt8
        public init(address: NetworkConfiguration.IPv4Address, prefixLength: UInt8) {
            self.address = address
            self.prefixLength = prefixLength
        }
        /// 10.0.3.1/24: the guest takes 10.0.3.2 (`guestConfiguration`).
        public static let standard = HostSide(address: NetworkConfiguration.IPv4Address(10, 0, 3, 1), prefixLength: 24)

        /// The guest's configuration on this link: the next address, the host as gateway
        /// (and as DNS server, which only answers if the host runs one).
        public var guestConfiguration: NetworkConfiguration.IPv4 {
            NetworkConfiguration.IPv4(address: NetworkConfiguration.IPv4Address(address.value &+ 1), prefixLength: prefixLength,
                                      gateway: address, dns: nil)
        }
    }

    public let interfaceName: String
    public let host: HostSide
    private var fd: Int32

    /// Creates the tap device (`name`: a kernel pattern like "apus%d" picks the first free
    /// number) and configures its host side.
    public init(name: String = "apus%d", host: HostSide = .standard) throws(Error) {
        guard host.prefixLength >= 8 && host.prefixLength <= 30 else { throw .badPrefix(host.prefixLength) }
        var actual = [CChar](repeating: 0, count: Int(IFNAMSIZ))
        let fd = ckvm_tap_open(name, &actual)
        guard fd >= 0 else { throw .open(-fd) }
        let interface = String(decoding: actual.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var step: Int32 = 0
        let r = ckvm_interface_configure(interface, host.address.value, NetworkConfiguration.IPv4Address.netmask(prefix: host.prefixLength), &step)
        guard r == 0 else {
            close(fd)
            throw .configure(interface: interface, step: ["socket", "SIOCSIFADDR", "SIOCSIFNETMASK", "SIOCSIFFLAGS"][Int(min(max(step, 0), 3))], -r)
        }
        self.fd = fd
        self.interfaceName = interface
        self.host = host
    }

    deinit { shutdown() }

    public private(set) var droppedTransmits = 0

    public func transmit(_ frame: UnsafeRawBufferPointer) {
        guard fd >= 0, frame.count > 0 else { return }
        if write(fd, frame.baseAddress, frame.count) < 0 { droppedTransmits += 1 }
    }

    public func receive(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        guard fd >= 0 else { return nil }
        let n = read(fd, buffer.baseAddress, buffer.count)
        return n > 0 ? n : nil
    }

    public func pollDescriptors() -> [pollfd] {
        fd >= 0 ? [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)] : []
    }

    public func service(_ ready: [pollfd], now: UInt64) {}

    public var nextDeadline: UInt64? { nil }

    /// Frames wait in the kernel's tap queue; poll reports them.
    public var hasPendingFrames: Bool { false }

    public func shutdown() {
        if fd >= 0 { close(fd) }
        fd = -1
    }
}
