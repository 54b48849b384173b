import GuestABI
import CKVM
import VMM
#if canImport(Glibc)
import Glibc
#endif

/// `apus run --vmm qemu`: the same kernel and image booted by `qemu-system-x86_64 -M microvm`
/// through the PVH entry. The boot info, arguments and image travel as the PVH module (a
/// `QEMUBundle` written to a temporary file); the kernel's console is framed on COM1
/// (`SerialFrame`), which this launcher reads from QEMU's stdout and demultiplexes to apus's
/// stdout and stderr. apus's stdin is forwarded the other way, framed the same way, by a thread
/// (so that the guest can tell end of file from a pause). QEMU's own stderr passes through.
enum QEMULauncher {
    static func run(_ options: RunOptions, kernelPath: String, image: UnsafeRawBufferPointer, arguments: [[UInt8]],
                    environment: [[UInt8]], startNanos: UInt64) throws(RunError) -> Int32 {
        guard let qemu = findExecutable("qemu-system-x86_64") else {
            throw RunError("qemu-system-x86_64 not found on PATH (install qemu-system-x86, or use --vmm apus)")
        }
        // QEMU reports a taken port as a failed "hostfwd" rule after it started; checking
        // first gives the same one-line error (and exit 125) as the apus VMM.
        for f in options.publish {
            let fd = ckvm_ipv4_bind(f.proto == .tcp ? Int32(SOCK_STREAM.rawValue) : Int32(SOCK_DGRAM.rawValue),
                                    f.hostAddress.value, f.hostPort)
            guard fd >= 0 else { throw RunError(PortForwarder.Error.bind(f, -fd).message) }
            close(fd)
        }
        let tscKHz = calibrateTSCKHz()
        let bundlePath = try writeBundle(image: image, arguments: arguments, environment: environment, tscKHz: tscKHz,
                                         flags: (options.trace ? BootInfo.flagTraceSyscalls : 0) | (options.terminal ? BootInfo.flagTerminal : 0),
                                         terminalSize: options.terminal ? HostTerminal.windowSize() : (0, 0),
                                         hostname: Array(options.hostname.utf8),
                                         workingDirectory: Array(options.workingDirectory.utf8),
                                         network: options.network != .none)
        defer { unlink(bundlePath) }

        let memoryMiB = options.memorySize >> 20
        var argv = [
            qemu, "-M", "microvm,x-option-roms=off,rtc=off,pit=off,pic=off,isa-serial=on",
            "-accel", "tcg", "-cpu", "max", "-m", "\(memoryMiB)M", "-smp", "1",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
            "-kernel", kernelPath, "-initrd", bundlePath,
        ]
        switch options.network {
        case .none:
            break
        case .user:
            // QEMU's own user-mode network (slirp): the same addresses as apus's (guest
            // 10.0.2.15, gateway 10.0.2.2, DNS 10.0.2.3); -p becomes hostfwd. virtio-mmio in its
            // modern (virtio 1.x) form, which is all the kernel's driver speaks.
            // outbound=off is slirp's restrict=on: the guest reaches no host and no network
            // (10.0.2.2 included); forwarded ports still reach it.
            var netdev = "user,id=net0" + (options.networkPolicy.outbound ? "" : ",restrict=on")
            for f in options.publish {
                netdev += ",hostfwd=\(f.proto == .tcp ? "tcp" : "udp"):\(f.hostAddress):\(f.hostPort)-:\(f.guestPort)"
            }
            argv += ["-global", "virtio-mmio.force-legacy=false", "-netdev", netdev,
                     "-device", "virtio-net-device,netdev=net0"]
        case .tap:
            throw RunError("--network tap is not available with --vmm qemu (use the default user network)")
        }
        var pipeFDs: [Int32] = [-1, -1], inputFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0, pipe(&inputFDs) == 0 else { throw RunError("pipe: \(String(cString: strerror(errno)))") }
        for fd in pipeFDs + inputFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        // QEMU in its own process group (Ctrl-C on the terminal reaches apus alone, which hands
        // it to the guest; a second one kills the group), dying with apus, and killed at
        // --timeout.
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { for p in cArgs { free(p) } }
        let pid = ckvm_spawn_qemu(qemu, cArgs, environ, inputFDs[0], pipeFDs[1], options.timeoutMilliseconds)
        close(pipeFDs[1])
        close(inputFDs[0])
        guard pid > 0 else {
            close(pipeFDs[0])
            close(inputFDs[1])
            throw RunError("cannot start \(qemu): \(String(cString: strerror(-pid)))")
        }
        _ = HostChannel.forwardedSignals.withUnsafeBufferPointer {
            ckvm_forward_signals_to_serial(inputFDs[1], pid, $0.baseAddress, Int32($0.count),
                                           UInt64((options.stopTimeoutSeconds * 1000).rounded(.up)), options.terminal ? 1 : 0)
        }
        StdinForwarder.start(to: inputFDs[1])

        var decoder = SerialFrameDecoder()
        var console = HostConsole()
        console.rawTerminal = options.terminal
        var status: ExitStatus? = nil
        var guestTimeline: Timeline? = nil
        var exitArrival: UInt64 = 0
        var panicText: String? = nil
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(pipeFDs[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            for frame in decoder.feed(buffer[0..<n]) {
                frame.payload.withUnsafeBytes { bytes in
                    switch SerialFrame.Kind(rawValue: frame.kind) {
                    case .stdout: console.write(.stdout, bytes)
                    case .stderr, .kernel: console.write(.stderr, bytes)
                    case .panic: panicText = String(decoding: bytes, as: UTF8.self)
                    case .signal, .window: break  // host to guest only
                    case .exit:
                        guard bytes.count >= 8 else { break }
                        status = ExitStatus(encoded: bytes.readLE(UInt64.self, at: 0))
                        exitArrival = monotonicNanos()
                        if bytes.count >= 8 + 32 { guestTimeline = Timeline(decoding: UnsafeRawBufferPointer(rebasing: bytes[8...])) }
                    case nil: break
                    }
                }
            }
        }
        close(pipeFDs[0])
        var waitStatus: Int32 = 0
        while waitpid(pid, &waitStatus, 0) < 0 && errno == EINTR {}

        if options.timings {
            Timings.printQEMU(guest: guestTimeline, tscKHz: tscKHz, exitArrival: exitArrival, qemuExit: monotonicNanos(),
                              start: startNanos)
        }
        if let panicText { throw kernelPanicError(panicText, options: options) }
        let forced = ckvm_serial_forced_status()
        if status == nil && forced == -1 {
            throw RunError("the guest did not finish within \(options.timeoutMilliseconds) ms and was stopped",
                           exitCode: HostExitCode.vmFailure)
        }
        if status == nil && forced == 128 + SIGINT { throw RunError("interrupted twice: the VM was stopped", exitCode: forced) }
        if status == nil && forced == 128 + SIGKILL {
            throw RunError(VMMError.stopTimeoutMessage(milliseconds: UInt64((options.stopTimeoutSeconds * 1000).rounded(.up))), exitCode: forced)
        }
        guard let status else {
            if options.timeoutSeconds > 0 && waitStatus & 0x7f == SIGKILL {
                throw RunError("the guest did not finish within \(options.timeoutMilliseconds) ms and was stopped",
                               exitCode: HostExitCode.vmFailure)
            }
            let how = waitStatus & 0x7f == 0 ? "QEMU exited with status \((waitStatus >> 8) & 0xff)" : "QEMU was killed by signal \(waitStatus & 0x7f)"
            throw RunError("the VM stopped without reporting an exit status (\(how))", exitCode: HostExitCode.vmFailure)
        }
        return status.shellStatus
    }

    /// The boot bundle: BootInfo page, argument block, then the image at 64 KiB.
    private static func writeBundle(image: UnsafeRawBufferPointer, arguments: [[UInt8]], environment: [[UInt8]],
                                    tscKHz: UInt64, flags: UInt64, terminalSize: (rows: UInt16, columns: UInt16), hostname: [UInt8],
                                    workingDirectory: [UInt8], network: Bool) throws(RunError) -> String {
        var info = BootInfo()
        if network {
            // microvm's 24 virtio-mmio slots (QEMU fills them from the last); the kernel probes
            // each for a device.
            info.network.virtioBase = 0xfeb0_0000
            info.network.virtioStride = 0x200
            info.network.virtioSlotCount = 24
            info.network.virtioFirstIRQ = 5
            info.network.ipv4Address = 0x0a00_020f
            info.network.ipv4PrefixLength = 24
            info.network.ipv4Gateway = 0x0a00_0202
            info.network.ipv4DNS = 0x0a00_0203
        }
        info.platform = .native
        info.flags = flags
        (info.terminalRows, info.terminalColumns) = terminalSize
        info.hostname = hostname
        info.streams = hostStreamKinds()  // apus's own, not the pipes QEMU gets
        info.imageSize = UInt64(image.count)
        let block: [UInt8]
        do {
            block = try ArgumentBlock.encode(arguments: arguments, environment: environment,
                                             workingDirectory: workingDirectory, capacity: Int(GuestABI.argumentsCapacity))
        } catch {
            throw RunError("arguments and environment do not fit in the boot information")
        }
        info.argumentsSize = UInt64(block.count)
        info.argc = UInt32(arguments.count)
        info.envc = UInt32(environment.count)
        info.workingDirectoryLength = UInt32(workingDirectory.count)
        info.tscFrequencyKHz = tscKHz
        info.seed = hostSeed()
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        info.realtimeNanosAtBoot = UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
        info.bootTSC = 0  // QEMU's guest TSC is not the host's: the kernel anchors at its entry

        var header = [UInt8](repeating: 0, count: Int(QEMUBundle.imageOffset))
        header.withUnsafeMutableBytes { raw in
            info.encode(into: raw)
            block.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: raw[Int(QEMUBundle.argumentsOffset)...]).copyMemory(from: $0) }
        }
        let directory = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(directory)/apus-boot-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw RunError("cannot create a temporary file in \(directory): \(String(cString: strerror(errno)))") }
        let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        defer { close(fd) }
        func writeAll(_ bytes: UnsafeRawBufferPointer) -> Bool {
            var offset = 0
            while offset < bytes.count {
                let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 { if errno == EINTR { continue }; return false }
                offset += n
            }
            return true
        }
        let ok = header.withUnsafeBytes { writeAll($0) } && writeAll(image)
        guard ok else {
            unlink(path)
            throw RunError("cannot write the boot bundle: \(String(cString: strerror(errno)))")
        }
        return path
    }

    /// The host TSC frequency, measured against CLOCK_MONOTONIC over 5 ms. QEMU's TCG guest
    /// TSC advances at the host's rate.
    static func calibrateTSCKHz() -> UInt64 {
        let t0 = monotonicNanos(), c0 = readHostTSC()
        var t1 = t0
        while t1 - t0 < 5_000_000 { t1 = monotonicNanos() }
        let c1 = readHostTSC()
        return (c1 - c0) * 1_000_000 / (t1 - t0)
    }

    static func findExecutable(_ name: String) -> String? {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }
}

/// Copies apus's stdin to QEMU's serial input as `SerialFrame`s: data frames, then one
/// end-of-file frame. Runs on its own thread because reading stdin blocks; it ends with the
/// process.
enum StdinForwarder {
    nonisolated(unsafe) static var target: Int32 = -1

    static func start(to fd: Int32) {
        target = fd
        var thread = pthread_t()
        _ = pthread_create(&thread, nil, { _ in
            StdinForwarder.forward()
            return nil
        }, nil)
        pthread_detach(thread)
    }

    static func forward() {
        // A whole frame is at most PIPE_BUF (4096) bytes, so that each write is atomic and a
        // signal frame written by apus's handler never lands inside it.
        let payload = 4096 - SerialFrame.headerSize
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress! + SerialFrame.headerSize, payload) }
            if n < 0 && errno == EINTR { continue }
            let h = SerialFrame.header(kind: n > 0 ? .stdout : .exit, length: max(n, 0))
            buffer[0] = h.0; buffer[1] = h.1; buffer[2] = h.2; buffer[3] = h.3
            let total = SerialFrame.headerSize + max(n, 0)
            var offset = 0
            while offset < total {
                let w = buffer.withUnsafeBytes { write(target, $0.baseAddress! + offset, total - offset) }
                if w < 0 { if errno == EINTR { continue }; return }  // QEMU is gone
                offset += w
            }
            // The pipe stays open after the end-of-file frame: QEMU stops reading a chardev
            // whose input hangs up, which would drop frames still in the pipe.
            if n <= 0 { return }
        }
    }
}
