import VMM

/// How the guest reaches the network (`apus run --network`).
public enum NetworkMode: String, CaseIterable, Sendable {
    /// The VMM's user-mode network (default): no privileges, NAT through host sockets.
    case user
    /// A tap device on the host (needs CAP_NET_ADMIN); published ports go through the host.
    case tap
    /// No network device: loopback inside the VM only; -p is refused.
    case none
}

/// One `-p [hostIP:]hostPort:guestPort[/tcp|udp]`.
public enum PortMapping {
    public typealias Forward = NetworkConfiguration.PortForward

    /// Published ports listen on 127.0.0.1 unless an address is given: a VM is not exposed
    /// to the network by accident.
    public static let defaultHostAddress = NetworkConfiguration.IPv4Address(127, 0, 0, 1)

    public static func parse(_ text: String) -> Result<Forward, RunOptionsError> {
        func problem(_ why: String) -> Result<Forward, RunOptionsError> {
            .failure(RunOptionsError("-p \(text): \(why) (expected [HOST_IP:]HOST_PORT:GUEST_PORT[/tcp|udp], e.g. 8080:80)"))
        }
        var spec = Substring(text)
        var proto = Forward.Proto.tcp
        if let slash = spec.lastIndex(of: "/") {
            switch spec[spec.index(after: slash)...] {
            case "tcp": proto = .tcp
            case "udp": proto = .udp
            default: return problem("unknown protocol \"\(spec[spec.index(after: slash)...])\"")
            }
            spec = spec[..<slash]
        }
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3 else { return problem("wrong number of fields") }
        var host = defaultHostAddress
        if parts.count == 3 {
            guard let a = NetworkConfiguration.IPv4Address(String(parts[0])) else {
                return problem("\"\(parts[0])\" is not an IPv4 address")
            }
            host = a
        }
        func port(_ s: Substring) -> UInt16? {
            guard !s.isEmpty, s.count <= 5, s.allSatisfy({ $0.isASCII && $0.isNumber }), let n = UInt16(s), n > 0 else { return nil }
            return n
        }
        guard let hostPort = port(parts[parts.count - 2]) else { return problem("\"\(parts[parts.count - 2])\" is not a port (1-65535)") }
        guard let guestPort = port(parts[parts.count - 1]) else { return problem("\"\(parts[parts.count - 1])\" is not a port (1-65535)") }
        return .success(Forward(proto, hostAddress: host, hostPort: hostPort, guestPort: guestPort))
    }

    /// All of them, refusing one host port published twice.
    public static func parseAll(_ texts: [String]) -> Result<[Forward], RunOptionsError> {
        var out: [Forward] = []
        for text in texts {
            switch parse(text) {
            case .failure(let e): return .failure(e)
            case .success(let f):
                if out.contains(where: { $0.proto == f.proto && $0.hostPort == f.hostPort
                    && ($0.hostAddress == f.hostAddress || $0.hostAddress == .any || f.hostAddress == .any) }) {
                    return .failure(RunOptionsError("-p \(text): host port \(f.hostPort) is published twice"))
                }
                out.append(f)
            }
        }
        return .success(out)
    }
}
