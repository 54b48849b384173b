import LinuxABI

// The state of one socket: its addresses and options, a UDP receive queue, and TCP's
// transmission control block (RFC 9293 §3.3.1 names in comments).

/// TCP connection states (RFC 9293 §3.3.2). `closed` is also the state of a fresh socket.
/// Order matters: every state from `established` on is synchronized.
enum TCPState: UInt8 {
    case closed, listen, synSent, synReceived, established, finWait1, finWait2, closeWait, closing, lastAck, timeWait
}

/// The header in front of each UDP datagram queued in a socket's receive buffer.
struct DatagramHeader {
    var from: Endpoint
    var to: Endpoint
    var length: Int
}

final class Socket {
    let kind: SocketKind
    let ipv6: Bool
    /// The generation of the slot; a SocketID is valid while it matches and `orphan` is false.
    var generation: UInt32 = 0
    /// No user handle refers to this socket: it was closed (and lives on to finish a TCP
    /// close) or it is a connection its listener has not handed out yet.
    var orphan = false

    var local: Endpoint
    var remote: Endpoint
    var bound = false
    /// UDP: a default peer is set. TCP: the connection was synchronized at some point.
    var connected = false
    /// Takes traffic to any address/port that no other socket takes (listenAny/bindAny).
    var isAny = false
    var pendingError: Errno?

    var noDelay = false, corked = false, keepAlive = false, reuseAddress = false, reusePort = false, v6Only = false
    var keepIdle = 7200, keepInterval = 75, keepCount = 9     // seconds, seconds, probes (Linux)

    // TCP listener
    var backlog = 0
    /// The listener that created this not yet accepted connection; once established, the
    /// connection is in the listener's accept queue, ordered by acceptOrder.
    var listener: Socket?
    var acceptOrder: UInt64 = 0
    /// Listener: connections are handed out on their SYN, before any answer (listenAny with
    /// deferHandshake). Connection: its SYN-ACK waits for completeHandshake.
    var defersHandshake = false
    var handshakeDeferred = false

    // TCP connection
    var state = TCPState.closed
    let sendBuffer: RingBuffer
    /// TCP: the received byte stream. UDP: the queued datagrams, each a DatagramHeader
    /// followed by its bytes.
    let receiveBuffer: RingBuffer
    /// Send sequence space: SND.UNA <= SND.NXT <= sndMax (the highest sequence ever sent; after
    /// a timeout SND.NXT goes back to SND.UNA). Byte i of sendBuffer has sequence
    /// sendBufferSeq + i; our FIN, once queued, follows the last byte.
    var iss: UInt32 = 0, sndUna: UInt32 = 0, sndNxt: UInt32 = 0, sndMax: UInt32 = 0
    var sendBufferSeq: UInt32 = 0
    /// SND.WND (already scaled), SND.WL1, SND.WL2, and the largest window seen (for SWS).
    var sndWnd: UInt32 = 0, sndWl1: UInt32 = 0, sndWl2: UInt32 = 0, maxSndWnd: UInt32 = 0
    /// RCV.NXT; rcvAdvertised = RCV.NXT + the window last advertised (the edge never moves left).
    var rcvNxt: UInt32 = 0, rcvAdvertised: UInt32 = 0, lastAckSent: UInt32 = 0
    /// Out-of-order data present in receiveBuffer beyond RCV.NXT: disjoint, non-adjacent
    /// [start, end) sequence ranges packed as start << 32 | end, sorted, all beyond RCV.NXT.
    var outOfOrder: [UInt64] = []
    /// Window scale shifts (RFC 7323 §2); both 0 unless both sides sent the option.
    var sndScale: UInt8 = 0, rcvScale: UInt8 = 0
    var windowScaling = true, timestamps = true
    var tsRecent: UInt32 = 0
    /// Maximum segment size to send, options not included.
    var mss = 536
    var finQueued = false     // write side shut: FIN follows the send buffer
    var finReceived = false
    var readShut = false
    /// The connection ended by a reset, refusal or timeout (further sends fail with EPIPE).
    var reset = false

    // Timers: absolute deadlines in ns, 0 = not running.
    var retransmitAt: UInt64 = 0
    var delayedAckAt: UInt64 = 0
    var persistAt: UInt64 = 0
    /// TIME_WAIT expiry or the FIN_WAIT_2 timeout of a closed socket.
    var stateTimerAt: UInt64 = 0
    var backoff = 0, persistBackoff = 0
    var lastReceiveAt: UInt64 = 0
    var keepaliveProbes = 0

    // RTT estimation (RFC 6298), in ns.
    var srtt: UInt64 = 0, rttvar: UInt64 = 0, rto: UInt64 = initialRTO
    var hasRTT = false
    /// A timed segment when timestamps are off (Karn: never a retransmitted one); 0 = none.
    var rttSeq: UInt32 = 0, rttStart: UInt64 = 0

    // Congestion control (RFC 5681, NewReno RFC 6582), in bytes.
    var cwnd: UInt32 = 0, ssthresh: UInt32 = 0x7fff_ffff
    var duplicateAcks = 0
    var recover: UInt32 = 0
    var inRecovery = false

    init(kind: SocketKind, ipv6: Bool, bufferSize: Int) {
        self.kind = kind
        self.ipv6 = ipv6
        let unspecified = Endpoint(address: ipv6 ? .any6 : .any4, port: 0)
        local = unspecified
        remote = unspecified
        sendBuffer = RingBuffer(limit: bufferSize)
        receiveBuffer = RingBuffer(limit: bufferSize)
    }

    var synchronized: Bool { state.rawValue >= TCPState.established.rawValue }

    /// Payload bytes per full-sized segment (the MSS less the timestamp option).
    var segmentSize: Int { max(mss - (timestamps ? 12 : 0), 1) }

    /// The sequence number of our FIN (meaningful once finQueued).
    var finSeq: UInt32 { sendBufferSeq &+ UInt32(truncatingIfNeeded: sendBuffer.count) }
}

// Sequence-number comparisons modulo 2^32 (RFC 9293 §3.4).
@inline(__always) func seqLT(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) < 0 }
@inline(__always) func seqLE(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) <= 0 }
@inline(__always) func seqGT(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) > 0 }
@inline(__always) func seqGE(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) >= 0 }

let millisecond: UInt64 = 1_000_000
let second: UInt64 = 1_000_000_000
let initialRTO = second
