// TCP (RFC 9293): the state machine, sending (window, Nagle, congestion control per RFC 5681
// with NewReno fast recovery per RFC 6582), retransmission (RFC 6298), and the timers
// (delayed ACK, persist, keep-alive, TIME-WAIT). One implementation for both IP versions:
// connections are identified by Endpoints.
import LinuxABI

extension NetworkStack {
    static let maxRetransmissions = 15      // Linux tcp_retries2
    static let maxSynRetransmissions = 6    // Linux tcp_syn_retries
    static let minRTO = 200 * millisecond
    static let maxRTO = 120 * second
    static let delayedAckTimeout = 40 * millisecond
    static let timeWaitDuration = 60 * second   // 2 MSL, as Linux
    static let finWait2Timeout = 60 * second     // Linux tcp_fin_timeout, for closed sockets
    static let maxPersistInterval = 60 * second
    static let maxOutOfOrderRanges = 8

    // MARK: Input

    func tcpInput(_ source: IPAddress, _ destination: IPAddress, _ p: UnsafeRawBufferPointer) {
        guard !isBroadcast(destination),
              checksumValid(onesComplementSum(p) + pseudoHeaderSum(source, destination, protocolTCP, p.count)),
              let seg = TCPSegment(p) else { return }
        let data = p.slice(seg.dataOffset, p.count)
        let local = Endpoint(address: destination, port: seg.destinationPort)
        let remote = Endpoint(address: source, port: seg.sourcePort)
        var found = connection(local, remote)
        if let old = found, old.state == .timeWait, seg.flags & (tcpSYN | tcpACK | tcpRST) == tcpSYN,
           seqGT(seg.seq, old.rcvNxt) || old.timestamps && seg.hasTimestamp && seqGT(seg.tsVal, old.tsRecent) {
            // A new SYN above the old connection's sequence space or timestamps reopens the tuple
            // (RFC 9293 §3.6.1, RFC 6191).
            closeConnection(old)
            found = nil
        }
        guard let s = found ?? bestMatch(.stream, local, remote) else {
            sendReset(for: seg, dataLength: data.count, local, remote)
            return
        }
        s.state == .listen ? listenInput(s, seg, local, remote) : segmentArrives(s, seg, data)
        changed()
    }

    /// The connection (not a listener) with exactly these endpoints.
    func connection(_ local: Endpoint, _ remote: Endpoint) -> Socket? {
        for case let s? in sockets where s.kind == .stream && s.state.rawValue >= TCPState.synSent.rawValue
            && s.local == local && s.remote == remote {
            return s
        }
        return nil
    }

    /// A segment to a listening socket: a SYN creates a connection in SYN-RECEIVED, as long as
    /// the listener's connections not yet accepted stay under its backlog.
    private func listenInput(_ l: Socket, _ seg: TCPSegment, _ local: Endpoint, _ remote: Endpoint) {
        if seg.has(tcpRST) { return }
        if seg.has(tcpACK) {
            sendReset(for: seg, dataLength: 0, local, remote)
            return
        }
        guard seg.has(tcpSYN) else { return }
        var pending = 0
        for case let c? in sockets where c.listener === l { pending += 1 }
        guard pending < l.backlog else { return }
        let c = Socket(kind: .stream, ipv6: l.ipv6, bufferSize: l.receiveBuffer.limit)
        c.sendBuffer.limit = l.sendBuffer.limit
        c.noDelay = l.noDelay
        c.keepAlive = l.keepAlive
        c.keepIdle = l.keepIdle
        c.keepInterval = l.keepInterval
        c.keepCount = l.keepCount
        c.reuseAddress = l.reuseAddress
        c.orphan = true
        c.listener = l
        c.bound = true
        c.local = local
        c.remote = remote
        guard allocate(c) != nil else { return }
        c.state = .synReceived
        c.rcvNxt = seg.seq &+ 1
        startConnection(c)
        applySynOptions(c, seg)
        if l.defersHandshake {
            // Handed out at once; the SYN-ACK waits for completeHandshake (or abort refuses).
            c.handshakeDeferred = true
            acceptCounter &+= 1
            c.acceptOrder = acceptCounter
            changed()
            return
        }
        tcpSend(c, seq: c.iss, flags: tcpSYN | tcpACK)
        c.retransmitAt = now + c.rto
    }

    /// Answers a connection held by a deferring listener: the SYN-ACK goes out and the
    /// handshake goes on as usual. (`abort` refuses it instead: RST, ECONNREFUSED for the peer.)
    public func completeHandshake(_ id: SocketID, now: UInt64) {
        tick(now)
        defer { drainLoopback() }
        guard let s = try? socket(id), s.handshakeDeferred else { return }
        s.handshakeDeferred = false
        tcpSend(s, seq: s.iss, flags: tcpSYN | tcpACK)
        s.retransmitAt = now + s.rto
    }

    /// Chooses the ISN and the receive window scale of a new connection.
    func startConnection(_ s: Socket) {
        s.iss = UInt32(truncatingIfNeeded: nextRandom())
        s.sndUna = s.iss
        s.sndNxt = s.iss &+ 1
        s.sndMax = s.sndNxt
        s.sendBufferSeq = s.sndNxt
        var scale: UInt8 = 0
        while scale < 14 && s.receiveBuffer.limit >> Int(scale) > 65535 { scale += 1 }
        s.rcvScale = scale
        s.recover = s.iss
        s.mss = ourMSS(s.remote.address)
        s.lastReceiveAt = now
    }

    /// Takes the peer's SYN options: MSS, window scale and timestamps (each used only when
    /// both sides sent it), and its initial window.
    private func applySynOptions(_ s: Socket, _ seg: TCPSegment) {
        s.mss = min(max(seg.mss > 0 ? seg.mss : 536, 88), s.mss)   // Linux's floor against tiny MSS
        s.windowScaling = s.windowScaling && seg.windowScale >= 0
        s.sndScale = s.windowScaling ? UInt8(min(seg.windowScale, 14)) : 0
        if !s.windowScaling { s.rcvScale = 0 }
        s.timestamps = s.timestamps && seg.hasTimestamp
        s.tsRecent = seg.tsVal
        s.sndWnd = UInt32(seg.window)
        s.maxSndWnd = s.sndWnd
        s.sndWl1 = seg.seq
        s.sndWl2 = seg.ack
        s.cwnd = UInt32(10 * s.segmentSize)   // RFC 6928 initial window
    }

    /// RFC 9293 §3.10.7.3-4: a segment for a connection in SYN-SENT or a later state.
    private func segmentArrives(_ s: Socket, _ seg: TCPSegment, _ data: UnsafeRawBufferPointer) {
        if s.handshakeDeferred {
            // Nothing was answered yet: the peer's retransmitted SYNs wait; its RST ends it.
            if seg.has(tcpRST) { closeConnection(s) }
            return
        }
        s.lastReceiveAt = now
        s.keepaliveProbes = 0
        if s.state == .synSent {
            synSentInput(s, seg)
            return
        }
        var seq = seg.seq
        var syn = seg.has(tcpSYN)
        if syn && seq &+ 1 == s.rcvNxt {
            // A repeat of the peer's SYN (or its SYN-ACK in a simultaneous open): keep the rest.
            seq = s.rcvNxt
            syn = false
            if !seg.has(tcpACK) {
                sendAck(s)
                return
            }
        }
        // Acceptability (RFC 9293 §3.10.7.4 table): the segment must overlap the window.
        let length = UInt32(data.count) &+ (syn ? 1 : 0) &+ (seg.has(tcpFIN) ? 1 : 0)
        let window = UInt32(s.receiveBuffer.free)
        func inWindow(_ x: UInt32) -> Bool { seqLE(s.rcvNxt, x) && seqLT(x, s.rcvNxt &+ window) }
        let acceptable = length == 0
            ? (window == 0 ? seq == s.rcvNxt : inWindow(seq))
            : window > 0 && (inWindow(seq) || inWindow(seq &+ length &- 1))
        if !acceptable {
            if !seg.has(tcpRST) { sendAck(s) }
            return
        }
        if s.timestamps && seg.hasTimestamp && seqLE(seq, s.lastAckSent) { s.tsRecent = seg.tsVal }
        if seg.has(tcpRST) {
            // RFC 5961 §3: only an exact RST resets; one elsewhere in the window gets a challenge ACK.
            if seq != s.rcvNxt {
                sendAck(s)
            } else if s.listener != nil || s.state.rawValue >= TCPState.closing.rawValue {
                closeConnection(s)
            } else {
                fail(s, .ECONNRESET)
            }
            return
        }
        if syn {   // RFC 5961 §4: a SYN in a synchronized state gets a challenge ACK
            sendAck(s)
            return
        }
        guard seg.has(tcpACK) else { return }
        if s.state == .synReceived {
            guard seqGT(seg.ack, s.iss), seqLE(seg.ack, s.sndMax) else {
                sendReset(for: seg, dataLength: 0, s.local, s.remote)
                return
            }
            s.state = .established
            s.connected = true
            s.sndWnd = UInt32(seg.window) << UInt32(s.sndScale)
            s.sndWl1 = seq
            s.sndWl2 = seg.ack
            acceptCounter &+= 1
            s.acceptOrder = acceptCounter
        }
        if !processAck(s, seg, seq, data.count) { return }
        var ackNow = false
        if !data.isEmpty && s.state.rawValue <= TCPState.finWait2.rawValue {
            if s.orphan && s.listener == nil {
                // Nobody will read this: as Linux, reset a closed socket that receives data.
                abortConnection(s)
                return
            }
            ackNow = receiveData(s, seq, data)
        }
        if seg.has(tcpFIN) && seq &+ UInt32(data.count) == s.rcvNxt && !s.finReceived {
            s.rcvNxt &+= 1
            s.finReceived = true
            ackNow = true
            switch s.state {
            case .established: s.state = .closeWait
            case .finWait1: s.state = .closing
            case .finWait2: enterTimeWait(s)
            default: break
            }
        }
        tcpOutput(s, ack: ackNow)
    }

    private func synSentInput(_ s: Socket, _ seg: TCPSegment) {
        let ackOK = seqGT(seg.ack, s.iss) && seqLE(seg.ack, s.sndMax)
        if seg.has(tcpACK) && !ackOK {
            sendReset(for: seg, dataLength: 0, s.local, s.remote)
            return
        }
        if seg.has(tcpRST) {
            if seg.has(tcpACK) { fail(s, .ECONNREFUSED) }
            return
        }
        guard seg.has(tcpSYN) else { return }
        s.rcvNxt = seg.seq &+ 1
        s.rcvAdvertised = s.rcvNxt
        applySynOptions(s, seg)
        if seg.has(tcpACK) {
            s.state = .established
            s.connected = true
            _ = processAck(s, seg, seg.seq &+ 1, 0)
            tcpOutput(s, ack: true)
        } else {
            s.state = .synReceived   // simultaneous open
            tcpSend(s, seq: s.iss, flags: tcpSYN | tcpACK)
        }
    }

    /// Processes the acknowledgment and window of an acceptable segment; false when the
    /// segment must be dropped (it acknowledges data never sent).
    private func processAck(_ s: Socket, _ seg: TCPSegment, _ seq: UInt32, _ dataLength: Int) -> Bool {
        let ack = seg.ack
        if seqGT(ack, s.sndMax) {
            sendAck(s)
            return false
        }
        let window = UInt32(seg.window) << (seg.has(tcpSYN) ? 0 : UInt32(s.sndScale))   // SYNs: unscaled
        if seqGT(ack, s.sndUna) {
            let acked = ack &- s.sndUna
            if s.timestamps && seg.hasTimestamp && seg.tsEcr != 0 {
                measureRTT(UInt64(timestamp &- seg.tsEcr) * millisecond, s)
            } else if s.rttStart != 0 && seqGT(ack, s.rttSeq) {
                measureRTT(now - s.rttStart, s)
                s.rttStart = 0
            }
            if seqGT(ack, s.sendBufferSeq) {
                let n = min(Int(ack &- s.sendBufferSeq), s.sendBuffer.count)
                s.sendBuffer.discard(n)
                s.sendBufferSeq &+= UInt32(n)
            }
            s.sndUna = ack
            if seqLT(s.sndNxt, ack) { s.sndNxt = ack }
            let segment = UInt32(s.segmentSize)
            if s.inRecovery {
                if seqGE(ack, s.recover) {
                    s.inRecovery = false
                    s.cwnd = s.ssthresh
                } else {
                    // NewReno partial ACK: resend the next hole, deflate by what was acked.
                    retransmitFirst(s)
                    s.cwnd = (s.cwnd > acked ? s.cwnd - acked : 0) + segment
                }
            } else if s.cwnd < s.ssthresh {
                s.cwnd += min(acked, segment)
            } else {
                s.cwnd += max(1, segment * segment / max(s.cwnd, 1))
            }
            s.cwnd = min(s.cwnd, 0x3fff_ffff)   // no overflow on endless loss-free transfers
            s.duplicateAcks = 0
            s.backoff = 0
            s.retransmitAt = 0   // restarted by tcpOutput while data remains outstanding
        } else if ack == s.sndUna && dataLength == 0 && !seg.has(tcpFIN) && window == s.sndWnd && s.sndNxt != s.sndUna {
            s.duplicateAcks += 1
            let segment = UInt32(s.segmentSize)
            if s.duplicateAcks == 3 && !s.inRecovery && seqGT(ack, s.recover) {
                // Fast retransmit (RFC 5681 §3.2), then fast recovery until `recover` is acked.
                s.ssthresh = max((s.sndMax &- s.sndUna) / 2, 2 * segment)
                s.cwnd = s.ssthresh + 3 * segment
                s.recover = s.sndMax
                s.inRecovery = true
                s.rttStart = 0
                retransmitFirst(s)
            } else if s.duplicateAcks > 3 && s.inRecovery && s.cwnd < 0x3fff_ffff {
                s.cwnd += segment
            }
        }
        if seqLT(s.sndWl1, seq) || s.sndWl1 == seq && seqLE(s.sndWl2, ack) {
            s.sndWnd = window
            s.sndWl1 = seq
            s.sndWl2 = ack
            s.maxSndWnd = max(s.maxSndWnd, window)
        }
        // Our FIN acknowledged?
        if s.finQueued && ack == s.finSeq &+ 1 {
            switch s.state {
            case .finWait1:
                s.state = .finWait2
                if s.orphan { s.stateTimerAt = now + NetworkStack.finWait2Timeout }
            case .closing:
                enterTimeWait(s)
            case .lastAck:
                closeConnection(s)
                return false
            default: break
            }
        }
        return true
    }

    /// RFC 6298 §2: SRTT, RTTVAR and RTO from a round-trip sample (ns).
    func measureRTT(_ sample: UInt64, _ s: Socket) {
        if s.hasRTT {
            let delta = s.srtt > sample ? s.srtt - sample : sample - s.srtt
            s.rttvar = (3 * s.rttvar + delta) / 4
            s.srtt = (7 * s.srtt + sample) / 8
        } else {
            s.srtt = sample
            s.rttvar = sample / 2
            s.hasRTT = true
        }
        s.rto = min(max(s.srtt + max(4 * s.rttvar, millisecond), NetworkStack.minRTO), NetworkStack.maxRTO)
    }

    /// Stores received data: in order it extends RCV.NXT (and swallows queued out-of-order
    /// ranges it reaches); ahead of RCV.NXT it is kept at its place in the receive buffer.
    /// Returns whether to acknowledge at once (out of order, a filled hole, or two full
    /// segments unacknowledged); otherwise the delayed-ACK timer runs.
    private func receiveData(_ s: Socket, _ segmentSeq: UInt32, _ segmentData: UnsafeRawBufferPointer) -> Bool {
        var seq = segmentSeq
        var data = segmentData
        if seqLT(seq, s.rcvNxt) {
            let skip = Int(s.rcvNxt &- seq)
            if skip >= data.count { return true }
            data = data.slice(skip, data.count)
            seq = s.rcvNxt
        }
        let offset = Int(seq &- s.rcvNxt)
        let room = s.receiveBuffer.free - offset
        guard room > 0 else { return true }
        let n = min(data.count, room)
        s.receiveBuffer.write(data.slice(0, n), at: offset)
        // Merge [seq, seq + n) with the queued ranges it touches. In order (offset 0), the
        // merged range extends RCV.NXT instead of being queued.
        var start = seq, stop = seq &+ UInt32(n)
        var kept: [UInt64] = []
        var placed = offset == 0
        for r in s.outOfOrder {
            let lower = UInt32(truncatingIfNeeded: r >> 32), upper = UInt32(truncatingIfNeeded: r)
            if seqLT(upper, start) {
                kept.append(r)
            } else if seqGT(lower, stop) {
                if !placed { kept.append(UInt64(start) << 32 | UInt64(stop)) }
                placed = true
                kept.append(r)
            } else {
                if seqLT(lower, start) { start = lower }
                if seqGT(upper, stop) { stop = upper }
            }
        }
        if !placed { kept.append(UInt64(start) << 32 | UInt64(stop)) }
        if offset > 0 {
            if kept.count <= NetworkStack.maxOutOfOrderRanges { s.outOfOrder = kept }
            return true
        }
        let filledHole = kept.count < s.outOfOrder.count
        s.outOfOrder = kept
        s.receiveBuffer.commit(Int(stop &- s.rcvNxt))
        s.rcvNxt = stop
        if filledHole || Int(s.rcvNxt &- s.lastAckSent) >= 2 * s.segmentSize { return true }
        if s.delayedAckAt == 0 { s.delayedAckAt = now + NetworkStack.delayedAckTimeout }
        return false
    }

    // MARK: Output

    /// Sends what the windows, Nagle and sender silly-window avoidance allow (RFC 9293
    /// §3.8.6.2.1), the FIN when its turn comes, and a pure ACK if `ack` and nothing else went
    /// out; then sets the retransmission or persist timer. `force` sends one segment even if
    /// small (persist timer); `push` sends the tail Nagle would hold (TCP_CORK turned off).
    /// A corked socket holds partial segments (the FIN's last one excepted).
    func tcpOutput(_ s: Socket, ack: Bool = false, force: Bool = false, push: Bool = false) {
        guard s.synchronized, s.state != .timeWait else {
            if ack && s.state == .timeWait { sendAck(s) }
            return
        }
        var needAck = ack
        var force = force
        let segment = s.segmentSize
        var pending = false
        while true {
            let offset = Int(s.sndNxt &- s.sendBufferSeq)
            let available = max(s.sendBuffer.count - offset, 0)
            let inFlight = s.sndNxt &- s.sndUna
            let window = min(s.sndWnd, s.cwnd)
            let usable = window > inFlight ? Int(window - inFlight) : 0
            var length = min(available, usable, segment)
            if length < segment && !force {
                let all = length == available
                let nagleAllows = s.noDelay || inFlight == 0 || s.finQueued || push
                if s.corked && !s.finQueued {
                    length = 0
                } else if !(all && nagleAllows) && length < Int(s.maxSndWnd / 2) {
                    length = 0
                }
            }
            let fin = s.finQueued && offset <= s.sendBuffer.count && offset + length == s.sendBuffer.count
            pending = available > length
            if length == 0 && !fin { break }
            var flags = tcpACK | (fin ? tcpFIN : 0)
            if length > 0 && offset + length == s.sendBuffer.count { flags |= tcpPSH }
            if length > 0 && s.rttStart == 0 && !s.timestamps && seqGE(s.sndNxt, s.sndMax) {
                s.rttSeq = s.sndNxt
                s.rttStart = now
            }
            tcpSend(s, seq: s.sndNxt, flags: flags, length: length)
            s.sndNxt &+= UInt32(length) &+ (fin ? 1 : 0)
            if seqGT(s.sndNxt, s.sndMax) { s.sndMax = s.sndNxt }
            if fin {
                if s.state == .established { s.state = .finWait1 }
                if s.state == .closeWait { s.state = .lastAck }
            }
            needAck = false
            force = false
        }
        if needAck { sendAck(s) }
        if s.sndNxt != s.sndUna {
            s.persistAt = 0
            if s.retransmitAt == 0 { s.retransmitAt = now + s.rto }
        } else if pending {
            // Nothing in flight and data waiting for the window: probe it (RFC 9293 §3.8.6.1).
            s.retransmitAt = 0
            if s.persistAt == 0 {
                s.persistAt = now + min(s.rto << min(s.persistBackoff, 16), NetworkStack.maxPersistInterval)
            }
        } else {
            s.retransmitAt = 0
            s.persistAt = 0
            s.persistBackoff = 0
        }
    }

    /// Resends the first unacknowledged segment (fast retransmit, partial ACKs).
    private func retransmitFirst(_ s: Socket) {
        let length = min(s.segmentSize, s.sendBuffer.count)
        let fin = length == s.sendBuffer.count && s.finQueued && seqGT(s.sndMax, s.finSeq)
        tcpSend(s, seq: s.sndUna, flags: tcpACK | (fin ? tcpFIN : 0), length: length)
    }

    // MARK: Timers

    func tcpTimers(_ s: Socket) {
        if s.delayedAckAt != 0 && s.delayedAckAt <= now {
            sendAck(s)
            changed()
        }
        if s.retransmitAt != 0 && s.retransmitAt <= now {
            retransmissionTimeout(s)
            changed()
        }
        if s.persistAt != 0 && s.persistAt <= now {
            s.persistBackoff += 1
            s.persistAt = 0
            if s.sndWnd == 0 {
                // A one-byte probe beyond the closed window; its ACK reports the window.
                tcpSend(s, seq: s.sndNxt, flags: tcpACK, length: 1)
                if seqGT(s.sndNxt &+ 1, s.sndMax) { s.sndMax = s.sndNxt &+ 1 }
            }
            tcpOutput(s, force: s.sndWnd != 0)
            if s.persistAt == 0 && s.sndNxt == s.sndUna && s.sndWnd == 0 {
                s.persistAt = now + min(s.rto << min(s.persistBackoff, 16), NetworkStack.maxPersistInterval)
            }
        }
        let keepalive = keepaliveDeadline(s)
        if keepalive != 0 && keepalive <= now {
            if s.keepaliveProbes >= s.keepCount {
                fail(s, .ETIMEDOUT)
            } else {
                s.keepaliveProbes += 1
                tcpSend(s, seq: s.sndUna &- 1, flags: tcpACK)   // an old byte: the peer must ACK
            }
        }
        if s.stateTimerAt != 0 && s.stateTimerAt <= now {
            closeConnection(s)
        }
    }

    /// RFC 6298 §5.4-5.7: resend, double the RTO, give up after the retry limit.
    private func retransmissionTimeout(_ s: Socket) {
        s.backoff += 1
        let limit = s.synchronized ? NetworkStack.maxRetransmissions : NetworkStack.maxSynRetransmissions
        guard s.backoff <= limit else {
            fail(s, .ETIMEDOUT)
            return
        }
        s.rto = min(s.rto * 2, NetworkStack.maxRTO)
        s.rttStart = 0
        s.retransmitAt = now + s.rto
        switch s.state {
        case .synSent: tcpSend(s, seq: s.iss, flags: tcpSYN)
        case .synReceived: tcpSend(s, seq: s.iss, flags: tcpSYN | tcpACK)
        default:
            // Go back to SND.UNA with a one-segment window (RFC 5681 §3.1).
            let segment = UInt32(s.segmentSize)
            s.ssthresh = max((s.sndMax &- s.sndUna) / 2, 2 * segment)
            s.cwnd = segment
            s.inRecovery = false
            s.duplicateAcks = 0
            s.recover = s.sndMax
            s.sndNxt = s.sndUna
            tcpOutput(s)
            if s.sndNxt != s.sndUna { s.retransmitAt = now + s.rto }
        }
    }

    func keepaliveDeadline(_ s: Socket) -> UInt64 {
        guard s.keepAlive, s.state == .established || s.state == .closeWait,
              s.retransmitAt == 0, s.persistAt == 0 else { return 0 }
        return s.lastReceiveAt + UInt64(s.keepIdle) * second + UInt64(s.keepaliveProbes * s.keepInterval) * second
    }

    // MARK: State changes

    private func enterTimeWait(_ s: Socket) {
        s.state = .timeWait
        s.retransmitAt = 0
        s.persistAt = 0
        s.stateTimerAt = now + NetworkStack.timeWaitDuration
    }

    /// The connection is over: CLOSED, no timers; a socket without a user handle is freed.
    func closeConnection(_ s: Socket) {
        s.state = .closed
        s.retransmitAt = 0
        s.delayedAckAt = 0
        s.persistAt = 0
        s.stateTimerAt = 0
        if s.orphan { release(s) }
        changed()
    }

    /// Ends the connection with an error for the user (refused, reset, timed out).
    func fail(_ s: Socket, _ error: Errno) {
        s.pendingError = error
        s.reset = true
        closeConnection(s)
    }

    /// Sends a reset and ends the connection (abort, or data for a closed socket).
    func abortConnection(_ s: Socket) {
        if s.state.rawValue >= TCPState.synReceived.rawValue && s.state != .timeWait {
            tcpSend(s, seq: s.sndNxt, flags: tcpRST | tcpACK)
        }
        s.reset = true
        closeConnection(s)
    }
}
