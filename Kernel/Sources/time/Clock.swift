import GuestABI
import KernelArch

/// Time from the TSC. The host reports the TSC frequency and a (CLOCK_REALTIME, TSC) pair read
/// just before boot; both clocks are computed from the TSC with a 32.32 fixed-point scale.
enum Clock {
    nonisolated(unsafe) static var scale: UInt64 = 0          // nanoseconds per tick << 32
    nonisolated(unsafe) static var monotonicBaseTSC: UInt64 = 0
    nonisolated(unsafe) static var realtimeBaseTSC: UInt64 = 0
    nonisolated(unsafe) static var realtimeBaseNanos: UInt64 = 0
    nonisolated(unsafe) static var appStartTSC: UInt64 = 0
    nonisolated(unsafe) static var tscPerSecond: UInt64 = 0
    /// TSC ticks the vCPU spent idle in `sleep` (not CPU time of the process).
    nonisolated(unsafe) static var idleTicks: UInt64 = 0

    static func initialize(boot: BootInfo, entryTSC: UInt64) {
        guard boot.tscFrequencyKHz > 0 else { panic("boot info has no TSC frequency") }
        tscPerSecond = boot.tscFrequencyKHz * 1000
        scale = (1_000_000_000 << 32) / tscPerSecond
        monotonicBaseTSC = entryTSC
        appStartTSC = entryTSC
        // The host's TSC reading is usable when the guest sees the host's TSC (same counter);
        // otherwise the realtime stamp is taken as of kernel entry.
        if boot.bootTSC != 0 && boot.bootTSC <= entryTSC && entryTSC - boot.bootTSC < tscPerSecond {
            realtimeBaseTSC = boot.bootTSC
        } else {
            realtimeBaseTSC = entryTSC
        }
        realtimeBaseNanos = boot.realtimeNanosAtBoot
    }

    @inline(__always)
    static func nanoseconds(ticks: UInt64) -> UInt64 {
        let (high, low) = ticks.multipliedFullWidth(by: scale)
        return (high << 32) | (low >> 32)
    }

    /// Whole seconds and the rest apart, so that no product overflows (and no 128-bit
    /// division is needed: the kernel links no compiler runtime).
    static func ticks(nanoseconds: UInt64) -> UInt64 {
        let seconds = nanoseconds / 1_000_000_000
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: tscPerSecond)
        guard !overflow else { return UInt64.max }
        let (sum, carry) = whole.addingReportingOverflow(nanoseconds % 1_000_000_000 * tscPerSecond / 1_000_000_000)
        return carry ? UInt64.max : sum
    }

    static var monotonicNanos: UInt64 { nanoseconds(ticks: arch_rdtsc() &- monotonicBaseTSC) }
    static var realtimeNanos: UInt64 { realtimeBaseNanos &+ nanoseconds(ticks: arch_rdtsc() &- realtimeBaseTSC) }
    /// CPU time of the process: it owns the only vCPU, so time since it started less the
    /// time the vCPU was idle. User and system time are not told apart.
    static var processCPUNanos: UInt64 { nanoseconds(ticks: arch_rdtsc() &- appStartTSC &- idleTicks) }

    /// Below this, spinning is cheaper than a VM exit.
    static let hostSleepThreshold: UInt64 = 100_000

    /// Waits until the monotonic clock reaches `deadline`. Output is flushed first since the
    /// app may be waiting for someone to read it. On the apus VMM the host sleeps for the
    /// guest (one exit); the TSC decides when the deadline has really passed, so an early
    /// wake-up just sleeps or spins the rest.
    static func sleep(untilMonotonic deadline: UInt64) {
        Console.flushAll()
        let start = arch_rdtsc()
        defer { idleTicks &+= arch_rdtsc() &- start }
        while true {
            let now = monotonicNanos
            guard now < deadline, !Network.hasWork, !HostEvents.signalsPending, !HostEvents.inputArrived else { return }
            if Console.backend == .doorbell && deadline - now > hostSleepThreshold {
                Console.ring(.sleep, deadline - now)
            } else {
                arch_pause()
                Serial.pollInput()
            }
        }
    }
}

/// The kernel's random source: ChaCha20 (RFC 8439 block function) keyed with the host's
/// 32-byte seed, serving getrandom, AT_RANDOM and ASLR.
enum Random {
    nonisolated(unsafe) static var key: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0, 0, 0, 0, 0)
    nonisolated(unsafe) static var counter: UInt64 = 0

    static func initialize(seed: (UInt64, UInt64, UInt64, UInt64)) {
        key = (UInt32(truncatingIfNeeded: seed.0), UInt32(truncatingIfNeeded: seed.0 >> 32),
               UInt32(truncatingIfNeeded: seed.1), UInt32(truncatingIfNeeded: seed.1 >> 32),
               UInt32(truncatingIfNeeded: seed.2), UInt32(truncatingIfNeeded: seed.2 >> 32),
               UInt32(truncatingIfNeeded: seed.3), UInt32(truncatingIfNeeded: seed.3 >> 32))
    }

    static func next() -> UInt64 {
        var v: UInt64 = 0
        withUnsafeMutableBytes(of: &v) { fill($0) }
        return v
    }

    static func fill(_ out: UnsafeMutableRawBufferPointer) {
        var offset = 0
        while offset < out.count {
            var block = chachaBlock(counter)
            counter &+= 1
            withUnsafeBytes(of: &block) { b in
                let n = min(64, out.count - offset)
                for i in 0..<n { out[offset + i] = b[i] }
                offset += n
            }
        }
    }

    private static func chachaBlock(_ n: UInt64) -> (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) {
        var s: [UInt32] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574,
                           key.0, key.1, key.2, key.3, key.4, key.5, key.6, key.7,
                           UInt32(truncatingIfNeeded: n), UInt32(truncatingIfNeeded: n >> 32), 0, 0]
        let initial = s
        @inline(__always) func quarter(_ a: Int, _ b: Int, _ c: Int, _ d: Int) {
            s[a] &+= s[b]; s[d] ^= s[a]; s[d] = s[d].rotl(16)
            s[c] &+= s[d]; s[b] ^= s[c]; s[b] = s[b].rotl(12)
            s[a] &+= s[b]; s[d] ^= s[a]; s[d] = s[d].rotl(8)
            s[c] &+= s[d]; s[b] ^= s[c]; s[b] = s[b].rotl(7)
        }
        for _ in 0..<10 {
            quarter(0, 4, 8, 12); quarter(1, 5, 9, 13); quarter(2, 6, 10, 14); quarter(3, 7, 11, 15)
            quarter(0, 5, 10, 15); quarter(1, 6, 11, 12); quarter(2, 7, 8, 13); quarter(3, 4, 9, 14)
        }
        for i in 0..<16 { s[i] &+= initial[i] }
        func pair(_ i: Int) -> UInt64 { UInt64(s[i]) | UInt64(s[i + 1]) << 32 }
        return (pair(0), pair(2), pair(4), pair(6), pair(8), pair(10), pair(12), pair(14))
    }
}

extension UInt32 {
    @inline(__always) func rotl(_ n: UInt32) -> UInt32 { (self << n) | (self >> (32 - n)) }
}
