// The guest matrix on the apus VMM (KVM; needs /dev/kvm).
// Every method is one case from GuestCases.swift; run this class alone with
//   swift test --filter IntegrationTests.ApusVMMTests
// (or one case: --filter IntegrationTests.ApusVMMTests/testArgs).

import XCTest

final class ApusVMMTests: XCTestCase {
    let matrix = VMMMatrix(vmm: "apus")

    override func setUpWithError() throws {
        try matrix.setUp()
    }

    func testHello() throws { try matrix.hello() }
    func testArgs() throws { try matrix.args() }
    func testExitCodes() throws { try matrix.exitCodes() }
    func testStdio() throws { try matrix.stdio() }
    func testStdin() throws { try matrix.stdin() }
    func testMemory() throws { try matrix.memory() }
    func testMadvise() throws { try matrix.madvise() }
    func testSharedMappings() throws { try matrix.sharedMappings() }
    func testFileMappings() throws { try matrix.fileMappings() }
    func testPython() throws { try matrix.python() }
    func testSqlite() throws { try matrix.sqlite() }
    func testNode() throws { try matrix.node() }
    func testSwiftProgram() throws { try matrix.swiftProgram() }
    func testTmpfsFull() throws { try matrix.tmpfsFull() }
    func testTime() throws { try matrix.time() }
    func testIDs() throws { try matrix.ids() }
    func testRandom() throws { try matrix.random() }
    func testSysinfo() throws { try matrix.sysinfo() }
    func testFloat() throws { try matrix.float() }
    func testTLS() throws { try matrix.tls() }
    func testSignals() throws { try matrix.signals() }
    func testEFAULT() throws { try matrix.efault() }
    func testAbort() throws { try matrix.abort() }
    func testRaise() throws { try matrix.raise() }
    func testMemoryFlag() throws { try matrix.memoryFlag() }
    func testSegfaultReport() throws { try matrix.segfaultReport() }
    func testStackOverflow() throws { try matrix.stackOverflow() }
    func testOtherFaults() throws { try matrix.otherFaults() }
    func testWildJumps() throws { try matrix.wildJumps() }
    func testWriteXorExecute() throws { try matrix.writeXorExecute() }
    func testAddressRandomization() throws { try matrix.addressRandomization() }
    func testKernelAddressProbes() throws { try matrix.kernelAddressProbes() }
    func testUnimplementedSyscall() throws { try matrix.unimplementedSyscall() }
    func testTimings() throws { try matrix.timings() }
    func testTimeout() throws { try matrix.timeout() }
    func testTrace() throws { try matrix.trace() }
    func testGaps() throws { try matrix.gaps() }
    func testMounts() throws { try matrix.mounts() }
    func testThreads() throws { try matrix.threads() }
    func testRust() throws { try matrix.rust() }
    func testSignalHandlers() throws { try matrix.signalHandlers() }
    func testFaultHandlers() throws { try matrix.faultHandlers() }
    func testFiles() throws { try matrix.files() }
    func testPipes() throws { try matrix.pipes() }
    func testSharing() throws { try matrix.sharing() }
    func testGo() throws { try matrix.go() }
    func testProcinfo() throws { try matrix.procinfo() }
    func testVDSO() throws { try matrix.vdso() }
    func testBusybox() throws { try matrix.busybox() }
    func testTimers() throws { try matrix.timers() }
    func testEvents() throws { try matrix.events() }
    func testVolumes() throws { try matrix.volumes() }
    func testProcfs() throws { try matrix.procfs() }

    // Hardening (GuestCases.swift)
    func testOddArguments() throws { try matrix.oddArguments() }
    func testManyFiles() throws { try matrix.manyFiles() }
    func testMemoryFull() throws { try matrix.memoryFull() }
    func testSyscallFuzzer() throws {
        try matrix.syscallFuzzer(calls: 100_000, seeds: [1, 2], timeoutSeconds: 25)
        try matrix.syscallFuzzer(calls: 20_000, seeds: [3], variant: "glibc-pie", timeoutSeconds: 25)
    }

    // Processes (ProcessCases.swift)
    func testProcesses() throws { try matrix.processes() }
    func testForkBomb() throws { try matrix.forkBomb() }
    func testForkWithoutMemory() throws { try matrix.forkWithoutMemory() }
    func testProcOfOtherProcess() throws { try matrix.procOfOtherProcess() }
    func testBusyboxShell() throws { try matrix.busyboxShell() }
    func testBashScript() throws { try matrix.bashScript() }
    func testPythonProcesses() throws { try matrix.pythonProcesses() }
    func testRedisBackgroundSave() throws { try matrix.redisBackgroundSave() }
    /// This VMM only: under QEMU's emulation initdb alone runs for minutes.
    func testPostgres() throws { try matrix.postgres() }

    // Network (NetworkCases.swift)
    func testNetSockets() throws { try matrix.netSockets() }
    func testNetOutbound() throws { try matrix.netOutbound() }
    func testNetPolicy() throws { try matrix.netPolicy() }
    func testNetHostsVolumeOverImage() throws { try matrix.netHostsVolumeOverImage() }
    func testNetBulk() throws { try matrix.netBulk() }
    func testNetPublishedHTTP() throws { try matrix.netPublishedHTTP() }
    func testNetStopBySignal() throws { try matrix.netStopBySignal() }
    func testNetRedis() throws { try matrix.netRedis() }
    func testNetRedisDefaultBind() throws { try matrix.netRedisDefaultBind() }
    func testNetNginx() throws { try matrix.netNginx() }
    func testNetNginxMasterWorkers() throws { try matrix.netNginxMasterWorkers() }
    func testNetPublishErrors() throws { try matrix.netPublishErrors() }

    // The VMM's sandbox (SandboxCases.swift).
    func testSandboxStopsAForbiddenCall() throws { try matrix.sandboxStopsAForbiddenCall() }
    func testSandboxIsOnByDefault() throws { try matrix.sandboxIsOnByDefault() }
    func testInterruptsWithoutSyscalls() throws { try matrix.interruptsWithoutSyscalls() }
    func testPrivilegedInstruction() throws { try matrix.privilegedInstruction() }
    func testGoPreemption() throws { try matrix.goPreemption() }
    func testHostSignalWakesPause() throws { try matrix.hostSignalWakesPause() }
    func testHostSignalInterruptsSpinning() throws { try matrix.hostSignalInterruptsSpinning() }
    func testHostSignalDefaultsAndForcedStops() throws { try matrix.hostSignalDefaultsAndForcedStops() }
    func testGoServerGracefulShutdown() throws { try matrix.goServerGracefulShutdown() }
    func testPythonServerGracefulShutdown() throws { try matrix.pythonServerGracefulShutdown() }
    func testStandardStreamKinds() throws { try matrix.standardStreamKinds() }
    func testPreemption() throws { try matrix.preemption() }
    func testRunsAsAnOrdinaryUser() throws { try matrix.runsAsAnOrdinaryUser() }

    // I/O and memory gaps (IOCases.swift)
    func testIOGaps() throws { try matrix.ioGaps() }
    // docker's defaults and interpreters without a recipe (EnvironmentCases.swift)
    func testEnvironmentDefaults() throws { try matrix.environmentDefaults() }
    func testEnvironmentFromHost() throws { try matrix.environmentFromHost() }
    func testEnvironmentFile() throws { try matrix.environmentFile() }
    func testEnvironmentOfImages() throws { try matrix.environmentOfImages() }
    func testAccountsOfStaticPrograms() throws { try matrix.accountsOfStaticPrograms() }
    func testPythonWithoutRecipe() throws { try matrix.pythonWithoutRecipe() }
    func testPerlWithoutRecipe() throws { try matrix.perlWithoutRecipe() }
    /// This VMM only: the JVM's start under QEMU's emulation takes minutes.
    func testJavaWithoutRecipe() throws { try matrix.javaWithoutRecipe() }
    // Terminals, apus run -t (TerminalCases.swift). terminalResizeFromHost needs the host's
    // SIGWINCH to reach Terminal.windowChanged (the VMM's host-signal path): it fails until then.
    func testTerminalShell() throws { try matrix.terminalShell() }
    func testTerminalCanonicalMode() throws { try matrix.terminalCanonicalMode() }
    func testTerminalPythonREPL() throws { try matrix.terminalPythonREPL() }
    func testTerminalJobControl() throws { try matrix.terminalJobControl() }
    func testTerminalVi() throws { try matrix.terminalVi() }
    func testTerminalResizeInside() throws { try matrix.terminalResizeInside() }
    func testTerminalResizeFromHost() throws { try matrix.terminalResizeFromHost() }
    func testTerminalRestoredAfterCrashAndKill() throws { try matrix.terminalRestoredAfterCrashAndKill() }
    func testTerminalRequiresATTY() throws { try matrix.terminalRequiresATTY() }
    // Gaps: memfd, getdents, mknod, limits, hostname, SysV IPC, robust/PI futexes, netlink (IPCCases.swift)
    func testFileGaps() throws { try matrix.fileGaps() }
    func testSethostname() throws { try matrix.sethostname() }
    func testIPC() throws { try matrix.ipc() }
    func testNetlinkInterfaces() throws { try matrix.netlinkInterfaces() }
    // Faults: vsyscall page, memory past --memory, out of memory in a fault, stack overflow (FaultCases.swift)
    func testLegacyVsyscall() throws { try matrix.legacyVsyscall() }
    func testMappingsPastMemory() throws { try matrix.mappingsPastMemory() }
    func testOutOfMemoryInAFault() throws { try matrix.outOfMemoryInAFault() }
    func testStackOverflowOnAlternateStack() throws { try matrix.stackOverflowOnAlternateStack() }
}
