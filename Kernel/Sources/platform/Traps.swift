import ELF
import GuestABI
import KernelArch
import LinuxABI

/// The registers arch/entry.S saves for an exception or interrupt (layout in entry.S).
struct TrapFrame {
    static let registerNames: [StaticString] = [
        "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rdx", "rcx", "rsi", "rdi", "rax",
    ]
    let words: UnsafeMutablePointer<UInt64>
    var vector: UInt64 { words[15] }
    var errorCode: UInt64 { words[16] }
    var rip: UInt64 { words[17] }
    var rflags: UInt64 { words[19] }
    var rsp: UInt64 { words[20] }
    func register(_ i: Int) -> UInt64 { words[i] }
    /// Register values by name, in TrapFrame order (see registerNames).
    static let slots: [SyscallFrame.Slot] = [.r15, .r14, .r13, .r12, .rbp, .rbx, .r11, .r10, .r9, .r8, .rdx, .rcx,
                                             .rsi, .rdi, .rax]
}

/// Exceptions: a fault in the app runs its handler or takes its signal's default action with a
/// crash report; a fault in the kernel is a panic. `kernelWasRunning` comes from entry.S's
/// `kernel_active` flag, not from rip: an app that jumps into the kernel's part of the
/// address space (a wild pointer, or on purpose) faults there as the app and gets its SIGSEGV.
/// Every value the report prints from the frame is the app's, so nothing here computes with
/// them in a way that could trap.
@_cdecl("trap_dispatch")
func trapDispatch(_ address: UInt64, _ fpuImage: UInt64, _ kernelWasRunning: UInt32) {
    let frame = TrapFrame(words: UnsafeMutablePointer(bitPattern: UInt(address))!)
    let fromKernel = kernelWasRunning != 0
    if frame.vector == UInt64(LocalAPIC.timerVector) {
        LocalAPIC.acknowledge()
        if !fromKernel { Scheduler.timerTick(frame, fpuImage: fpuImage) }
        return
    }
    if fromKernel {
        var m = Message("kernel fault: vector ")
        m.decimal(frame.vector)
        m.append(" error ")
        m.hex(frame.errorCode)
        m.append(" rip ")
        m.hex(frame.rip)
        // The kernel runs at a random place: the link-time address is what objdump shows.
        m.append(" (linked at ")
        m.hex(frame.rip &- Kernel.virtualBase &+ GuestABI.kernelLinkBase)
        m.append(")")
        if frame.vector == 14 {
            m.append(" address ")
            m.hex(arch_read_cr2())
        }
        panic(m)
    }
    if frame.vector == 14 && LegacyVsyscall.emulate(frame) { return }
    // A write to a copy-on-write page (the native platform's fork): the page gets its own
    // frame and the write runs again.
    if frame.vector == 14 && frame.errorCode & 3 == 3 && Platform.kind == .native {
        let address = arch_read_cr2()
        if let e = try? PageTable.leaf(address, create: false), e.pointee & PageTable.copyOnWrite != 0 {
            do throws(Errno) {
                if try AddressSpace.breakCopyOnWrite(address) { return }
            } catch {
                OutOfMemory.stop("no page left for a copy-on-write page the app wrote")
            }
        }
    }
    let (signal, name) = CrashReport.signal(for: frame.vector)
    SysSignal.deliverFault(signal, frame: frame, fpuImage: fpuImage)  // returns if no handler takes it
    CrashReport.print(frame, signal: signal, name: name)
    SysSignal.terminate(signal)
}

/// The legacy vsyscall page: old static binaries (glibc before 2.14 and programs built
/// against it) call gettimeofday, time and getcpu at fixed addresses in the top page of the
/// address space (entries 0x400 bytes apart) instead of making the syscall. Nothing is mapped
/// there on either platform (on pvm the upper half is the host's and the guest cannot map
/// it): the call's instruction fetch faults in the app, a #PF with CR2 = rip, error code
/// "instruction fetch, not present", and the kernel performs the call as Linux's
/// vsyscall=emulate does: the syscall with the app's rdi/rsi (getcpu's third argument, the
/// cache, is unused), its result in rax, and a return to the address the call pushed
/// (rip = [rsp], rsp += 8). A jump to another address in the page, a return address that is
/// not readable, or a call that would fault on the app's pointers (EFAULT) is a SIGSEGV, as
/// on Linux.
enum LegacyVsyscall {
    static let page: UInt64 = 0xffff_ffff_ff60_0000

    static func emulate(_ frame: TrapFrame) -> Bool {
        let rip = frame.rip
        guard rip & ~0xfff == page, arch_read_cr2() == rip else { return false }
        let number: Int
        switch rip - page {
        case 0: number = SyscallNumber.gettimeofday
        case 0x400: number = SyscallNumber.time
        case 0x800: number = SyscallNumber.getcpu
        default: return false
        }
        guard let returnAddress = try? UserMemory.load(UInt64.self, frame.rsp) else { return false }
        let call = SyscallArguments(number: number, frame.register(13), frame.register(12))  // rdi, rsi
        let result: UInt64
        do {
            result = try Syscalls.handle(call)
        } catch {
            if error == .EFAULT { return false }
            result = error.negatedReturn
        }
        frame.words[14] = result         // rax
        frame.words[17] = returnAddress  // rip
        frame.words[20] = frame.rsp &+ 8 // rsp
        return true
    }
}

enum CrashReport {
    static func signal(for vector: UInt64) -> (Int32, StaticString) {
        switch vector {
        case 0: return (8, "SIGFPE")              // divide error
        case 16, 19: return (8, "SIGFPE")         // x87 / SIMD floating point
        case 1, 3: return (5, "SIGTRAP")
        case 6: return (4, "SIGILL")              // invalid opcode
        case 17: return (7, "SIGBUS")             // alignment check
        default: return (11, "SIGSEGV")           // #PF, #GP, #SS, …
        }
    }

    static func exceptionName(_ vector: UInt64) -> StaticString {
        switch vector {
        case 0: return "divide error"
        case 1: return "debug trap"
        case 3: return "breakpoint"
        case 6: return "invalid opcode"
        case 13: return "general protection fault"
        case 14: return "page fault"
        case 12: return "stack segment fault"
        case 16: return "x87 floating-point error"
        case 17: return "alignment check"
        case 19: return "SIMD floating-point error"
        default: return "exception"
        }
    }

    /// apus: process 1 (segv) killed by SIGSEGV: page fault writing 0x10 (page not present)
    /// apus:   at rip 0x401136 <crash_here+0x6>
    /// apus:   rax 0x… rbx 0x… …
    static func print(_ frame: TrapFrame, signal: Int32, name: StaticString) {
        // The process: its pid and command name (as ps shows them).
        var m = Message("apus: process ")
        m.decimal(UInt64(Process.current.pid))
        m.append(" (")
        m.append(bytes: Scheduler.current.name)
        m.append(") killed by ")
        m.append(name)
        m.append(": ")
        m.append(exceptionName(frame.vector))
        if frame.vector == 14 {
            let e = frame.errorCode
            m.append(e & 16 != 0 ? " executing " : e & 2 != 0 ? " writing " : " reading ")
            m.hex(arch_read_cr2())
            m.append(e & 1 != 0 ? " (protection violation)" : " (page not mapped)")
        } else if frame.vector == 13 && frame.errorCode != 0 {
            m.append(" (selector ")
            m.hex(frame.errorCode)
            m.append(")")
        }
        Console.kernelLine(m)

        var at = Message("apus:   at rip ")
        at.hex(frame.rip)
        // The program's symbols are at link-time addresses: rip - loadBase, when rip is at or
        // above the load base (rip 0 in a PIE, from a NULL function pointer, is below it).
        if let program = Process.current.program, frame.rip >= program.loadBase, let bytes = program.elfBytes,
           let elf = try? ELFFile(bytes: bytes),
           let symbol = elf.symbol(containing: frame.rip - program.loadBase) {
            at.append(" <")
            at.append(bytes: symbol.name)
            at.append("+")
            at.hex(symbol.offset)
            at.append(">")
        }
        at.append(" rsp ")
        at.hex(frame.rsp)
        Console.kernelLine(at)

        var line = Message("apus:  ")
        for i in stride(from: 14, through: 0, by: -1) {
            line.append(" ")
            line.append(TrapFrame.registerNames[i])
            line.append(" ")
            line.hex(frame.register(i), width: 16)
            if i % 4 == 3 || i == 0 {
                Console.kernelLine(line)
                line = Message("apus:  ")
            }
        }
    }
}
