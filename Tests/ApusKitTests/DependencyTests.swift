import ApusKit
import Foundation
import XCTest

// MARK: - Helpers

/// A temporary directory used as the resolver's root; removed when released.
final class Sysroot {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("apus-sysroot-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func host(_ imagePath: String) -> String { path + imagePath }

    func mkdir(_ imagePath: String) throws {
        try FileManager.default.createDirectory(atPath: host(imagePath), withIntermediateDirectories: true)
    }

    func write(_ imagePath: String, _ bytes: [UInt8]) throws {
        try mkdir((imagePath as NSString).deletingLastPathComponent)
        try Data(bytes).write(to: URL(fileURLWithPath: host(imagePath)))
    }

    func symlink(_ imagePath: String, to target: String) throws {
        try mkdir((imagePath as NSString).deletingLastPathComponent)
        try FileManager.default.createSymbolicLink(atPath: host(imagePath), withDestinationPath: target)
    }

    /// The Debian merged-/usr layout: /lib → usr/lib, /lib64 → usr/lib64 and the
    /// interpreter's link /usr/lib64/ld-linux-x86-64.so.2 → /lib/x86_64-linux-gnu/….
    func mergedUsr() throws {
        try mkdir("/usr/lib/x86_64-linux-gnu")
        try mkdir("/usr/lib64")
        try symlink("/lib", to: "usr/lib")
        try symlink("/lib64", to: "usr/lib64")
        try symlink("/usr/lib64/ld-linux-x86-64.so.2", to: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    }
}

/// A minimal ELF64 object for the resolver: one PT_LOAD over the whole 0x1000-byte file with
/// PT_INTERP at 0x200, the string table at 0x400 and PT_DYNAMIC at 0x800.
func syntheticELF(type: UInt16 = 3, machine: UInt16 = 62, elfClass: UInt8 = 2, interpreter: String? = nil,
                  needed: [String] = [], soname: String? = nil, rpath: String? = nil, runpath: String? = nil,
                  flags1: UInt64 = 0, dynamic: Bool = true) -> [UInt8] {
    var b = [UInt8](repeating: 0, count: 0x1000)
    func put(_ v: UInt64, _ width: Int, at o: Int) { for i in 0..<width { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
    b.replaceSubrange(0..<8, with: [0x7f, 0x45, 0x4c, 0x46, elfClass, 1, 1, 0])
    put(UInt64(type), 2, at: 16)
    put(UInt64(machine), 2, at: 18)
    put(1, 4, at: 20)
    put(0x100, 8, at: 24)
    put(64, 8, at: 32)
    put(64, 2, at: 52)
    put(56, 2, at: 54)
    var headers: [(type: UInt32, offset: UInt64, size: UInt64)] = [(1, 0, 0x1000)]
    if let interpreter {
        let bytes = Array(interpreter.utf8) + [0]
        b.replaceSubrange(0x200..<(0x200 + bytes.count), with: bytes)
        headers.insert((3, 0x200, UInt64(bytes.count)), at: 0)
    }
    if dynamic {
        var table: [UInt8] = [0]
        func add(_ s: String) -> UInt64 { defer { table += Array(s.utf8) + [0] }; return UInt64(table.count) }
        var entries: [(UInt64, UInt64)] = needed.map { (1, add($0)) }
        if let soname { entries.append((14, add(soname))) }
        if let rpath { entries.append((15, add(rpath))) }
        if let runpath { entries.append((29, add(runpath))) }
        entries += [(5, 0x400), (10, UInt64(table.count)), (0x6fff_fffb, flags1), (0, 0)]
        b.replaceSubrange(0x400..<(0x400 + table.count), with: table)
        for (i, e) in entries.enumerated() {
            put(e.0, 8, at: 0x800 + 16 * i)
            put(e.1, 8, at: 0x800 + 16 * i + 8)
        }
        headers.append((2, 0x800, UInt64(16 * entries.count)))
    }
    put(UInt64(headers.count), 2, at: 56)
    for (i, h) in headers.enumerated() {
        let o = 64 + 56 * i
        put(UInt64(h.type), 4, at: o)
        put(h.type == 1 ? 5 : 4, 4, at: o + 4)
        put(h.offset, 8, at: o + 8)
        put(h.offset, 8, at: o + 16)
        put(h.offset, 8, at: o + 24)
        put(h.size, 8, at: o + 32)
        put(h.size, 8, at: o + 40)
        put(h.type == 1 ? 0x1000 : 8, 8, at: o + 48)
    }
    return b
}

let standardInterpreter = "/lib64/ld-linux-x86-64.so.2"

/// A sysroot with the merged-/usr layout, a synthetic interpreter and a libc needing it.
func syntheticBase() throws -> Sysroot {
    let root = try Sysroot()
    try root.mergedUsr()
    try root.write("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", syntheticELF(soname: "ld-linux-x86-64.so.2"))
    try root.write("/usr/lib/x86_64-linux-gnu/libc.so.6", syntheticELF(needed: ["ld-linux-x86-64.so.2"], soname: "libc.so.6"))
    return root
}

func resolveOrError(_ program: String, _ root: Sysroot) -> Result<Dependencies, DependencyError> {
    do throws(DependencyError) {
        return .success(try DependencyResolver.resolve(program: program, root: root.path))
    } catch {
        return .failure(error)
    }
}

/// Follows `path` through the image `entries` would make (directories implied by the paths
/// under them, symlinks as recorded) and returns the file entry's path it reaches.
func imageResolve(_ path: String, in entries: [ImageEntry]) -> String? {
    var links = [String: String](), files = Set<String>()
    for entry in entries {
        switch entry {
        case .symlink(let p, let target): links[p] = target
        case .file(let p, _): files.insert(p)
        }
    }
    var directory: [Substring] = []
    var pending = Array(path.split(separator: "/").reversed())
    var followed = 0
    while let component = pending.popLast() {
        if component == "." { continue }
        if component == ".." { _ = directory.popLast(); continue }
        let current = "/" + (directory + [component]).joined(separator: "/")
        if let target = links[current] {
            followed += 1
            guard followed < 40 else { return nil }
            if target.hasPrefix("/") { directory = [] }
            pending += target.split(separator: "/").reversed()
        } else if files.contains(current) {
            return pending.isEmpty ? current : nil
        } else {
            directory.append(component)
        }
    }
    return nil
}

func findTool(_ name: String) -> String? {
    ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":")
        .map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// Runs `tool`; its stdout if it exits with 0.
@discardableResult
func runTool(_ tool: String, _ arguments: [String]) -> String? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: tool)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return nil }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return process.terminationStatus == 0 ? String(decoding: data, as: UTF8.self) : nil
}

func realPath(_ path: String) -> String {
    URL(fileURLWithPath: path).resolvingSymlinksInPath().path
}

// MARK: - The host against ldd

final class DependencyTests: XCTestCase {
    /// The libraries, their order and the paths the loader opens are what `ldd` prints.
    func testHostProgramsMatchLdd() throws {
        guard let ldd = findTool("ldd") else { throw XCTSkip("ldd not found") }
        var programs = ["/usr/bin/python3", "/bin/ls", "/usr/bin/sqlite3", "/usr/bin/node"]
        // The Swift toolchain's compiler: DT_RUNPATH with $ORIGIN/.., libraries needing
        // libraries through their own $ORIGIN.
        if let swift = findTool("swift") {
            programs.append((realPath(swift) as NSString).deletingLastPathComponent + "/swift-frontend")
        }
        var tested = 0
        for program in programs {
            guard FileManager.default.fileExists(atPath: program), let output = runTool(ldd, [program]) else { continue }
            var lddLibraries: [(name: String, path: String)] = []
            var lddInterpreter: String?
            for line in output.split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespaces) }) {
                let withoutAddress = line.components(separatedBy: " (0x")[0]
                if let arrow = withoutAddress.range(of: " => ") {
                    lddLibraries.append((String(withoutAddress[..<arrow.lowerBound]), String(withoutAddress[arrow.upperBound...])))
                } else if withoutAddress.hasPrefix("/") {
                    lddInterpreter = withoutAddress
                }
            }
            let deps: Dependencies
            do { deps = try DependencyResolver.resolve(program: program) } catch {
                XCTFail("\(program): \(error)"); continue
            }
            XCTAssertEqual(deps.interpreter, lddInterpreter, program)
            XCTAssertEqual(deps.libraries.map(\.name), lddLibraries.map(\.name), program)
            XCTAssertEqual(deps.libraries.map(\.path), lddLibraries.map(\.path), program)
            XCTAssertEqual(Set(deps.libraries.map { realPath($0.path) }), Set(lddLibraries.map { realPath($0.path) }), program)
            XCTAssertEqual(deps.libraries.first?.neededBy, program)

            // The entries reproduce the host's paths: each symlink as the host has it, each
            // file real, and each library path leads to its file through them.
            var files: [String] = []
            for entry in deps.entries {
                switch entry {
                case .symlink(let path, let target):
                    XCTAssertEqual(try? FileManager.default.destinationOfSymbolicLink(atPath: path), target, path)
                case .file(let path, let hostPath):
                    XCTAssertEqual(path, hostPath)
                    XCTAssertEqual(realPath(path), path, "a file entry has no symlink on its path")
                    files.append(path)
                }
            }
            XCTAssertEqual(Set(files).count, files.count)
            for library in deps.libraries {
                XCTAssertEqual(imageResolve(library.path, in: deps.entries), realPath(library.path), library.path)
            }
            if let interpreter = deps.interpreter {
                XCTAssertEqual(imageResolve(interpreter, in: deps.entries), realPath(interpreter))
            }
            XCTAssertEqual(try DependencyResolver.resolve(program: program), deps, "deterministic")
            tested += 1
        }
        if tested == 0 { throw XCTSkip("none of the host programs exists") }
    }

    /// A module the program would dlopen (Python's _sqlite3 extension) brings its own
    /// library; a module needing a library nowhere to be found is reported, not fatal.
    func testModulesLoadedLater() throws {
        let module = "/usr/lib/python3.11/lib-dynload/_sqlite3.cpython-311-x86_64-linux-gnu.so"
        guard FileManager.default.fileExists(atPath: "/usr/bin/python3.11"), FileManager.default.fileExists(atPath: module) else {
            throw XCTSkip("python3.11 and its _sqlite3 module are not installed")
        }
        let plain = try DependencyResolver.resolve(program: "/usr/bin/python3.11")
        XCTAssertFalse(plain.libraries.contains { $0.name == "libsqlite3.so.0" })
        let (withModule, missing) = try DependencyResolver.resolve(program: "/usr/bin/python3.11", alsoLoading: [module, "/etc/hostname"])
        XCTAssertTrue(missing.isEmpty)
        let sqlite = try XCTUnwrap(withModule.libraries.first { $0.name == "libsqlite3.so.0" })
        XCTAssertEqual(sqlite.neededBy, module)
        XCTAssertTrue(withModule.entries.contains { entry in
            switch entry {
            case .file(let p, _), .symlink(let p, _): return sqlite.path.hasSuffix(p.split(separator: "/").last.map(String.init) ?? "")
            }
        }, "no entry for \(sqlite.path) in \(withModule.entries)")
        XCTAssertEqual(Array(withModule.libraries.prefix(plain.libraries.count)), plain.libraries)
    }

    func testStaticProgramNeedsNothing() throws {
        let root = try Sysroot()
        try root.write("/app/static", syntheticELF(type: 2, dynamic: false))
        let deps = try resolveOrError("/app/static", root).get()
        XCTAssertEqual(deps, Dependencies(interpreter: nil, libraries: [], entries: []))
    }

    /// The host's cache as parsed here against `ldconfig -p` (its x86-64 entries without a
    /// hwcap).
    func testHostCacheMatchesLdconfig() throws {
        guard let ldconfig = findTool("ldconfig") ?? ["/sbin/ldconfig", "/usr/sbin/ldconfig"].first(where: {
            FileManager.default.isExecutableFile(atPath: $0)
        }), let data = FileManager.default.contents(atPath: "/etc/ld.so.cache"),
              let output = runTool(ldconfig, ["-p"]) else { throw XCTSkip("no ldconfig or /etc/ld.so.cache") }
        let cache = try XCTUnwrap([UInt8](data).withUnsafeBytes { LoaderCache(bytes: $0) })
        var expected: [String] = []
        for line in output.split(separator: "\n") where line.contains("(libc6,x86-64)") && !line.contains("hwcap") {
            let parts = line.trimmingCharacters(in: .whitespaces).components(separatedBy: " (libc6,x86-64) => ")
            if parts.count == 2 { expected.append(parts[0] + " " + parts[1]) }
        }
        XCTAssertFalse(expected.isEmpty)
        XCTAssertEqual(cache.entries.map { $0.name + " " + $0.path }, expected)
        XCTAssertNotNil(cache.path(for: "libc.so.6"))
        XCTAssertNil(cache.path(for: "libdoesnotexist.so.42"))
    }
}

// MARK: - Fake sysroots built with gcc

final class DependencyTestsWithGcc: XCTestCase {
    var gcc: String!
    var root: Sysroot!
    var scratch: String!

    override func setUpWithError() throws {
        guard let gcc = findTool("gcc") else { throw XCTSkip("gcc not found") }
        self.gcc = gcc
        root = try Sysroot()
        scratch = root.path + ".src"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        try "int f(void) { return 1; }\n".write(toFile: scratch + "/lib.c", atomically: true, encoding: .utf8)
        try "int main(void) { return 0; }\n".write(toFile: scratch + "/main.c", atomically: true, encoding: .utf8)
        try root.mergedUsr()
        // The interpreter and a libc that needs it by its DT_SONAME, as Debian's do.
        try library("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", soname: "ld-linux-x86-64.so.2")
        try library("/usr/lib/x86_64-linux-gnu/libc.so.6", soname: "libc.so.6",
                    links: ["/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"])
    }

    override func tearDown() {
        if let scratch { try? FileManager.default.removeItem(atPath: scratch) }
        root = nil
    }

    /// Builds a shared object at `imagePath` in the root; `links` are objects (image paths)
    /// it is linked against (each becomes a DT_NEEDED with their DT_SONAME).
    func library(_ imagePath: String, soname: String, links: [String] = [], flags: [String] = []) throws {
        try root.mkdir((imagePath as NSString).deletingLastPathComponent)
        let ok = runTool(gcc, ["-shared", "-fPIC", "-nostdlib", "-o", root.host(imagePath), scratch + "/lib.c",
                               "-Wl,-soname," + soname, "-Wl,--no-as-needed"] + links.map(root.host) + flags)
        if ok == nil { throw XCTSkip("gcc cannot build shared objects") }
    }

    /// Builds a program at `imagePath` (PT_INTERP /lib64/ld-linux-x86-64.so.2, DT_NEEDED
    /// the `links` in order, then libc.so.6).
    func program(_ imagePath: String, links: [String], flags: [String] = []) throws {
        try root.mkdir((imagePath as NSString).deletingLastPathComponent)
        let ok = runTool(gcc, ["-o", root.host(imagePath), scratch + "/main.c", "-Wl,--no-as-needed"]
                            + links.map(root.host) + flags)
        if ok == nil { throw XCTSkip("gcc cannot build programs") }
    }

    /// An object built elsewhere, linked against and then left out of the root.
    func absentLibrary(soname: String) throws -> String {
        let path = scratch + "/" + soname
        guard runTool(gcc, ["-shared", "-fPIC", "-nostdlib", "-o", path, scratch + "/lib.c", "-Wl,-soname," + soname]) != nil
        else { throw XCTSkip("gcc cannot build shared objects") }
        return path
    }

    func resolve(_ program: String) throws -> Dependencies {
        try resolveOrError(program, root).get()
    }

    /// Symlink chains and symlinked directories become symlink entries, in the order the
    /// loader meets them; the interpreter's DT_SONAME satisfies libc's DT_NEEDED.
    func testSymlinksAndInterpreter() throws {
        let dir = "/usr/lib/x86_64-linux-gnu"
        try library(dir + "/libchain.so.1.2.3", soname: "libchain.so.1")
        try root.symlink(dir + "/libchain.so.1.2", to: "libchain.so.1.2.3")
        try root.symlink(dir + "/libchain.so.1", to: "libchain.so.1.2")
        try program("/app/bin/prog", links: [dir + "/libchain.so.1"])

        let deps = try resolve("/app/bin/prog")
        XCTAssertEqual(deps.interpreter, standardInterpreter)
        XCTAssertEqual(deps.libraries, [
            Library(name: "libchain.so.1", path: "/lib/x86_64-linux-gnu/libchain.so.1", neededBy: "/app/bin/prog"),
            Library(name: "libc.so.6", path: "/lib/x86_64-linux-gnu/libc.so.6", neededBy: "/app/bin/prog"),
        ])
        XCTAssertEqual(deps.entries, [
            .symlink(path: "/lib64", target: "usr/lib64"),
            .symlink(path: "/usr/lib64/ld-linux-x86-64.so.2", target: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
            .symlink(path: "/lib", target: "usr/lib"),
            .file(path: dir + "/ld-linux-x86-64.so.2", hostPath: root.host(dir + "/ld-linux-x86-64.so.2")),
            .symlink(path: dir + "/libchain.so.1", target: "libchain.so.1.2"),
            .symlink(path: dir + "/libchain.so.1.2", target: "libchain.so.1.2.3"),
            .file(path: dir + "/libchain.so.1.2.3", hostPath: root.host(dir + "/libchain.so.1.2.3")),
            .file(path: dir + "/libc.so.6", hostPath: root.host(dir + "/libc.so.6")),
        ])
    }

    /// DT_RPATH (the loader's, then up its loaders to the program's) before DT_RUNPATH before
    /// the default directories; DT_RUNPATH only for the object's own DT_NEEDED and it turns
    /// DT_RPATH off.
    func testRunpathAndRpathPrecedence() throws {
        let dir = "/usr/lib/x86_64-linux-gnu"
        for d in ["/opt/rp", "/opt/run", "/opt/rp2", dir] { try library(d + "/libx.so", soname: "libx.so") }
        try library("/opt/rp/liby.so", soname: "liby.so")
        try library(dir + "/libmid.so", soname: "libmid.so", links: ["/opt/rp/liby.so"])
        try library(dir + "/libmidrun.so", soname: "libmidrun.so", links: ["/opt/rp/liby.so"],
                    flags: ["-Wl,--enable-new-dtags", "-Wl,-rpath,/opt/run"])
        try library(dir + "/libmidrp.so", soname: "libmidrp.so", links: ["/opt/rp2/libx.so"],
                    flags: ["-Wl,--disable-new-dtags", "-Wl,-rpath,/opt/rp2"])
        let rpath = ["-Wl,--disable-new-dtags", "-Wl,-rpath,/opt/rp"]
        let runpath = ["-Wl,--enable-new-dtags", "-Wl,-rpath,/opt/run"]
        try program("/app/rpath", links: [dir + "/libx.so"], flags: rpath)
        try program("/app/runpath", links: [dir + "/libx.so"], flags: runpath)
        try program("/app/plain", links: [dir + "/libx.so"])
        try program("/app/inherit", links: [dir + "/libmid.so"], flags: rpath)
        try program("/app/notinherited", links: [dir + "/libmid.so"], flags: ["-Wl,--enable-new-dtags", "-Wl,-rpath,/opt/rp"])
        try program("/app/runpathstops", links: [dir + "/libmidrun.so"], flags: rpath)
        try program("/app/loaderfirst", links: [dir + "/libmidrp.so"], flags: rpath)

        func path(_ name: String, _ deps: Dependencies) -> String? { deps.libraries.first { $0.name == name }?.path }
        XCTAssertEqual(path("libx.so", try resolve("/app/rpath")), "/opt/rp/libx.so")
        XCTAssertEqual(path("libx.so", try resolve("/app/runpath")), "/opt/run/libx.so")
        XCTAssertEqual(path("libx.so", try resolve("/app/plain")), "/lib/x86_64-linux-gnu/libx.so")

        // liby.so, needed by libmid.so, is found through the program's DT_RPATH.
        let inherit = try resolve("/app/inherit")
        XCTAssertEqual(inherit.libraries.map(\.name), ["libmid.so", "libc.so.6", "liby.so"], "breadth first")
        XCTAssertEqual(inherit.libraries.last, Library(name: "liby.so", path: "/opt/rp/liby.so",
                                                      neededBy: "/lib/x86_64-linux-gnu/libmid.so"))

        // The program's DT_RUNPATH does not apply to libmid.so's needs.
        XCTAssertEqual(resolveOrError("/app/notinherited", root).failed?.missing.map(\.name), ["liby.so"])
        XCTAssertEqual(resolveOrError("/app/notinherited", root).failed?.missing.map(\.neededBy),
                       ["/lib/x86_64-linux-gnu/libmid.so"])
        // libmidrun.so has DT_RUNPATH, so no DT_RPATH (its own or the program's) is used.
        XCTAssertEqual(resolveOrError("/app/runpathstops", root).failed?.missing.map(\.name), ["liby.so"])
        // The loading object's DT_RPATH comes before the program's.
        XCTAssertEqual(path("libx.so", try resolve("/app/loaderfirst")), "/opt/rp2/libx.so")
    }

    /// $ORIGIN is the program's real directory (ld.so reads /proc/self/exe) and a library's
    /// directory as opened; $LIB and $PLATFORM as Debian's loader expands them.
    func testOriginLibAndPlatform() throws {
        try library("/app/lib/sub/libsub.so", soname: "libsub.so")
        try library("/app/lib/liborigin.so", soname: "liborigin.so", links: ["/app/lib/sub/libsub.so"],
                    flags: ["-Wl,--enable-new-dtags", "-Wl,-rpath,${ORIGIN}/sub"])
        try program("/app/bin/prog", links: ["/app/lib/liborigin.so"], flags: ["-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN/../lib"])
        try root.symlink("/usr/local/bin/prog", to: "/app/bin/prog")
        try library("/opt/lib/x86_64-linux-gnu/libl.so", soname: "libl.so")
        try library("/opt/x86_64/libp.so", soname: "libp.so")
        try program("/app/tokens", links: ["/opt/lib/x86_64-linux-gnu/libl.so", "/opt/x86_64/libp.so"],
                    flags: ["-Wl,--disable-new-dtags", "-Wl,-rpath,/opt/$LIB:/opt/${PLATFORM}"])

        let deps = try resolve("/usr/local/bin/prog")
        XCTAssertEqual(deps.libraries, [
            Library(name: "liborigin.so", path: "/app/bin/../lib/liborigin.so", neededBy: "/usr/local/bin/prog"),
            Library(name: "libc.so.6", path: "/lib/x86_64-linux-gnu/libc.so.6", neededBy: "/usr/local/bin/prog"),
            Library(name: "libsub.so", path: "/app/bin/../lib/sub/libsub.so", neededBy: "/app/bin/../lib/liborigin.so"),
        ])
        XCTAssertTrue(deps.entries.contains(.file(path: "/app/lib/sub/libsub.so", hostPath: root.host("/app/lib/sub/libsub.so"))))
        for library in deps.libraries {
            XCTAssertNotNil(imageResolve(library.path, in: deps.entries + [.file(path: "/app/bin/prog", hostPath: "")]),
                            library.path)
        }

        let tokens = try resolve("/app/tokens")
        XCTAssertEqual(tokens.libraries.map(\.path), ["/opt/lib/x86_64-linux-gnu/libl.so", "/opt/x86_64/libp.so",
                                                      "/lib/x86_64-linux-gnu/libc.so.6"])
    }

    /// Every missing library is reported with the object that needs it, in one error.
    func testMissingLibraries() throws {
        let dir = "/usr/lib/x86_64-linux-gnu"
        let gone = try absentLibrary(soname: "libgone.so.1")
        let gone2 = try absentLibrary(soname: "libgone2.so")
        try library(dir + "/libq.so", soname: "libq.so", links: [], flags: ["-Wl,--no-as-needed", gone2])
        try program("/app/prog", links: [dir + "/libq.so"], flags: [gone])
        let error = try XCTUnwrap(resolveOrError("/app/prog", root).failed)
        XCTAssertEqual(error, DependencyError(missing: [("libgone.so.1", "/app/prog"),
                                                        ("libgone2.so", "/lib/x86_64-linux-gnu/libq.so")]))
        XCTAssertEqual(error.description, "library libgone.so.1 (needed by /app/prog) not found; "
                       + "library libgone2.so (needed by /lib/x86_64-linux-gnu/libq.so) not found")
    }

    /// A library file the loader would stop at (truncated, not ELF) is an error naming it
    /// and its needer.
    func testCorruptLibrary() throws {
        let dir = "/usr/lib/x86_64-linux-gnu"
        try library(dir + "/libbad.so.1", soname: "libbad.so.1")
        try program("/app/prog", links: [dir + "/libbad.so.1"])
        let good = try XCTUnwrap(FileManager.default.contents(atPath: root.host(dir + "/libbad.so.1")))
        XCTAssertNoThrow(try resolve("/app/prog"))

        try root.write(dir + "/libbad.so.1", Array([UInt8](good)[0..<40]))
        var problem = try XCTUnwrap(resolveOrError("/app/prog", root).failed?.problem)
        XCTAssertTrue(problem.contains("/lib/x86_64-linux-gnu/libbad.so.1"), problem)
        XCTAssertTrue(problem.contains("needed by /app/prog"), problem)
        XCTAssertTrue(problem.contains("truncated"), problem)
        XCTAssertFalse(problem.contains("\n"))

        try root.write(dir + "/libbad.so.1", Array("INPUT(libbad.so.1.real)\n".utf8))
        problem = try XCTUnwrap(resolveOrError("/app/prog", root).failed?.problem)
        XCTAssertTrue(problem.contains("libbad.so.1") && problem.contains("not an ELF file"), problem)

        // Every prefix of the real library either resolves or fails with a problem.
        var bytes = [UInt8](good)
        for length in stride(from: 0, through: bytes.count, by: 7) {
            try root.write(dir + "/libbad.so.1", Array(bytes[0..<length]))
            if case .failure(let e) = resolveOrError("/app/prog", root) { XCTAssertNotNil(e.problem, "length \(length)") }
        }
        // Random byte flips in its headers and dynamic data never trap.
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            bytes = [UInt8](good)
            for _ in 0..<3 { bytes[Int.random(in: 0..<min(bytes.count, 0x1000), using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            try root.write(dir + "/libbad.so.1", bytes)
            _ = resolveOrError("/app/prog", root)
        }
    }
}

// MARK: - Synthetic objects (no compiler needed)

final class DependencyTestsSynthetic: XCTestCase {
    /// Objects for another machine or class are skipped and the search goes on, as ld.so does.
    func testOtherArchitecturesAreSkipped() throws {
        let root = try Sysroot()
        try root.mkdir("/usr/lib")
        try root.write("/lib64/ld-linux-x86-64.so.2", syntheticELF(soname: "ld-linux-x86-64.so.2"))
        try root.write("/lib/x86_64-linux-gnu/libarch.so.1", syntheticELF(machine: 183))
        try root.write("/usr/lib/x86_64-linux-gnu/libarch.so.1", syntheticELF(elfClass: 1))
        try root.write("/usr/lib/libarch.so.1", syntheticELF(soname: "libarch.so.1"))
        try root.write("/app/prog", syntheticELF(interpreter: standardInterpreter, needed: ["libarch.so.1"]))
        let deps = try resolveOrError("/app/prog", root).get()
        XCTAssertEqual(deps.libraries, [Library(name: "libarch.so.1", path: "/usr/lib/libarch.so.1", neededBy: "/app/prog")])
        XCTAssertEqual(deps.entries, [
            .file(path: "/lib64/ld-linux-x86-64.so.2", hostPath: root.host("/lib64/ld-linux-x86-64.so.2")),
            .file(path: "/usr/lib/libarch.so.1", hostPath: root.host("/usr/lib/libarch.so.1")),
        ])
    }

    func testInterpreterProblems() throws {
        let root = try Sysroot()
        try root.write("/app/prog", syntheticELF(interpreter: standardInterpreter))
        XCTAssertEqual(resolveOrError("/app/prog", root).failed?.problem,
                       "/app/prog: interpreter /lib64/ld-linux-x86-64.so.2 not found")
        try root.write("/lib64/ld-linux-x86-64.so.2", syntheticELF(elfClass: 1))
        XCTAssertEqual(resolveOrError("/app/prog", root).failed?.problem,
                       "/lib64/ld-linux-x86-64.so.2 (interpreter of /app/prog): 32-bit ELF (ELFCLASS32), expected 64-bit")
        XCTAssertEqual(resolveOrError("/app/missing", root).failed?.problem, "/app/missing: no such regular file")
        try root.write("/app/script", Array("#!/bin/sh\necho hi\n".utf8))
        XCTAssertEqual(resolveOrError("/app/script", root).failed?.problem, "/app/script: not an ELF file (bad magic)")
    }

    /// Executables are not libraries: glibc refuses ET_EXEC and DF_1_PIE objects.
    func testExecutablesAreNotLibraries() throws {
        let root = try syntheticBase()
        try root.write("/usr/lib/x86_64-linux-gnu/libexec.so", syntheticELF(type: 2))
        try root.write("/usr/lib/x86_64-linux-gnu/libpie.so", syntheticELF(flags1: 0x0800_0000))
        try root.write("/app/a", syntheticELF(interpreter: standardInterpreter, needed: ["libexec.so"]))
        try root.write("/app/b", syntheticELF(interpreter: standardInterpreter, needed: ["libpie.so"]))
        XCTAssertTrue(resolveOrError("/app/a", root).failed?.problem?.contains("libexec.so") ?? false)
        XCTAssertTrue(resolveOrError("/app/b", root).failed?.problem?.contains("position-independent executable") ?? false)
    }

    /// Names with a '/' are paths ($ORIGIN expanded), not searched; a loaded object answers
    /// to its DT_SONAME; one file reached by two names is one library whose second path
    /// still gets its symlinks.
    func testNamesSonamesAndAliases() throws {
        let root = try syntheticBase()
        let dir = "/usr/lib/x86_64-linux-gnu"
        try root.write("/opt/direct/libd.so", syntheticELF(needed: ["$ORIGIN/plug/libp.so"]))
        try root.write("/opt/direct/plug/libp.so", syntheticELF())
        try root.write(dir + "/libreal.so.1", syntheticELF(soname: "libreal.so.1"))
        try root.symlink(dir + "/libalias.so", to: "libreal.so.1")
        try root.write(dir + "/libnoname.so", syntheticELF())
        try root.symlink(dir + "/libother.so", to: "libnoname.so")
        try root.write("/app/prog", syntheticELF(interpreter: standardInterpreter, needed: [
            "/opt/direct/libd.so", "libalias.so", "libreal.so.1", "libnoname.so", "libother.so", "libc.so.6",
        ]))
        let deps = try resolveOrError("/app/prog", root).get()
        XCTAssertEqual(deps.libraries.map(\.name), ["/opt/direct/libd.so", "libalias.so", "libnoname.so", "libc.so.6",
                                                   "$ORIGIN/plug/libp.so"])
        XCTAssertEqual(deps.libraries.last?.path, "/opt/direct/plug/libp.so")
        XCTAssertTrue(deps.entries.contains(.symlink(path: dir + "/libother.so", target: "libnoname.so")))
        XCTAssertEqual(imageResolve("/lib/x86_64-linux-gnu/libother.so", in: deps.entries), dir + "/libnoname.so")

        try root.write("/app/slashmissing", syntheticELF(interpreter: standardInterpreter, needed: ["/nowhere/libz.so"]))
        XCTAssertEqual(resolveOrError("/app/slashmissing", root).failed?.missing.map(\.name), ["/nowhere/libz.so"])
    }

    /// DF_1_NODEFLIB: neither the default directories nor cache entries in them.
    func testNoDefaultLibraries() throws {
        let root = try syntheticBase()
        try root.write("/app/prog", syntheticELF(interpreter: standardInterpreter, needed: ["libc.so.6"],
                                                 flags1: 0x800))
        XCTAssertEqual(resolveOrError("/app/prog", root).failed?.missing.map(\.name), ["libc.so.6"])
        try root.write("/app/prog2", syntheticELF(interpreter: standardInterpreter, needed: ["libc.so.6"],
                                                  runpath: "/lib/x86_64-linux-gnu", flags1: 0x800))
        XCTAssertNoThrow(try resolveOrError("/app/prog2", root).get())
    }

    /// A symlink loop or a directory where a library should be.
    func testLoopsAndDirectories() throws {
        let root = try syntheticBase()
        let dir = "/usr/lib/x86_64-linux-gnu"
        try root.symlink(dir + "/libloop.so", to: "libloop2.so")
        try root.symlink(dir + "/libloop2.so", to: "libloop.so")
        try root.mkdir(dir + "/libdir.so")
        try root.write("/app/loop", syntheticELF(interpreter: standardInterpreter, needed: ["libloop.so"]))
        try root.write("/app/dir", syntheticELF(interpreter: standardInterpreter, needed: ["libdir.so"]))
        XCTAssertEqual(resolveOrError("/app/loop", root).failed?.missing.map(\.name), ["libloop.so"])
        XCTAssertTrue(resolveOrError("/app/dir", root).failed?.problem?.contains("not a regular file") ?? false)
    }

    /// Symlinks whose targets climb out with ".." or are absolute stay inside the root.
    func testSymlinksStayInsideTheRoot() throws {
        let root = try syntheticBase()
        try root.symlink("/usr/lib/x86_64-linux-gnu/libup.so", to: "../../../../../../../../opt/up/libup.so")
        try root.write("/opt/up/libup.so", syntheticELF())
        try root.write("/app/prog", syntheticELF(interpreter: standardInterpreter, needed: ["libup.so"]))
        let deps = try resolveOrError("/app/prog", root).get()
        XCTAssertEqual(deps.libraries.first?.path, "/lib/x86_64-linux-gnu/libup.so")
        XCTAssertTrue(deps.entries.contains(.file(path: "/opt/up/libup.so", hostPath: root.host("/opt/up/libup.so"))))
    }

    func testTokenExpansion() {
        let origin = "/app/bin"
        XCTAssertEqual(DependencyResolver.expandTokens("$ORIGIN/../lib", origin: origin), "/app/bin/../lib")
        XCTAssertEqual(DependencyResolver.expandTokens("${ORIGIN}/x:$ORIGIN", origin: origin), "/app/bin/x:/app/bin")
        XCTAssertEqual(DependencyResolver.expandTokens("/opt/$LIB/${PLATFORM}", origin: origin), "/opt/lib/x86_64-linux-gnu/x86_64")
        XCTAssertEqual(DependencyResolver.expandTokens("$ORIGINAL/$LIBS/$ORIGIN.d", origin: origin), "$ORIGINAL/$LIBS//app/bin.d")
        XCTAssertEqual(DependencyResolver.expandTokens("$$/${ORIGIN/$", origin: origin), "$$/${ORIGIN/$")
        XCTAssertEqual(DependencyResolver.expandTokens("plain", origin: origin), "plain")
    }

    // MARK: ld.so.cache

    /// A cache in the new format, behind an old-format part when `old` is set.
    func cacheBytes(_ entries: [(flags: UInt32, name: String, path: String, hwcap: UInt64)], old: Bool) -> [UInt8] {
        var out: [UInt8] = []
        func u32(_ v: UInt32) { for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
        func u64(_ v: UInt64) { for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
        if old {
            out += Array("ld.so-1.7.0".utf8) + [0]
            u32(1)
            u32(0x303); u32(0); u32(0)  // one old entry, ignored
            while out.count % 8 != 0 { out.append(0) }
        }
        let base = out.count
        var strings: [UInt8] = []
        let stringsStart = 48 + 24 * entries.count
        out += Array("glibc-ld.so.cache1.1".utf8)
        u32(UInt32(entries.count))
        var records: [(UInt32, UInt32, UInt32, UInt64)] = []
        for e in entries {
            let key = UInt32(stringsStart + strings.count); strings += Array(e.name.utf8) + [0]
            let value = UInt32(stringsStart + strings.count); strings += Array(e.path.utf8) + [0]
            records.append((e.flags, key, value, e.hwcap))
        }
        u32(UInt32(strings.count))
        out += [2, 0, 0, 0]
        u32(0); u32(0); u32(0); u32(0)
        precondition(out.count - base == 48)
        for r in records { u32(r.0); u32(r.1); u32(r.2); u32(0); u64(r.3) }
        return out + strings
    }

    func testLoaderCacheFormats() throws {
        let entries: [(flags: UInt32, name: String, path: String, hwcap: UInt64)] = [
            (0x303, "libcached.so.1", "/opt/hw/libcached.so.1", 1 << 62),  // hwcaps subdirectory: skipped
            (0x003, "libcached.so.1", "/opt/i386/libcached.so.1", 0),      // not x86-64: skipped
            (0x303, "libcached.so.1", "/opt/cached/libcached.so.1", 0),
            (0x303, "libcached.so.1", "/opt/later/libcached.so.1", 0),
        ]
        for old in [false, true] {
            let bytes = cacheBytes(entries, old: old)
            let cache = try XCTUnwrap(bytes.withUnsafeBytes { LoaderCache(bytes: $0) })
            XCTAssertEqual(cache.entries.map(\.path), ["/opt/cached/libcached.so.1", "/opt/later/libcached.so.1"])
            XCTAssertEqual(cache.path(for: "libcached.so.1"), "/opt/cached/libcached.so.1")
            // Every prefix and random damage: nil or a cache, never a trap.
            for length in 0..<bytes.count {
                _ = Array(bytes[0..<length]).withUnsafeBytes { LoaderCache(bytes: $0) }
            }
            var rng = SystemRandomNumberGenerator()
            for _ in 0..<2_000 {
                var b = bytes
                for _ in 0..<3 { b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
                _ = b.withUnsafeBytes { LoaderCache(bytes: $0) }
            }
        }
        XCTAssertNil(Array("not a cache".utf8).withUnsafeBytes { LoaderCache(bytes: $0) })
    }

    /// The resolver consults the root's cache after DT_RUNPATH and before the default
    /// directories.
    func testResolverUsesTheCache() throws {
        let root = try syntheticBase()
        try root.write("/opt/cached/libcached.so.1", syntheticELF(soname: "libcached.so.1"))
        try root.write("/etc/ld.so.cache", cacheBytes([
            (0x303, "libcached.so.1", "/opt/cached/libcached.so.1", 0),
            (0x303, "libgone.so", "/opt/cached/libgone.so", 0),  // stale entry: fall through
        ], old: false))
        try root.write("/usr/lib/x86_64-linux-gnu/libgone.so", syntheticELF())
        try root.write("/app/prog", syntheticELF(interpreter: standardInterpreter,
                                                 needed: ["libcached.so.1", "libgone.so", "libc.so.6"]))
        let deps = try resolveOrError("/app/prog", root).get()
        XCTAssertEqual(deps.libraries.map(\.path), ["/opt/cached/libcached.so.1", "/lib/x86_64-linux-gnu/libgone.so",
                                                    "/lib/x86_64-linux-gnu/libc.so.6"])
    }

    /// Caches written by the host's ldconfig, in its default and "compat" formats.
    func testCachesWrittenByLdconfig() throws {
        guard let ldconfig = findTool("ldconfig") ?? ["/sbin/ldconfig", "/usr/sbin/ldconfig"].first(where: {
            FileManager.default.isExecutableFile(atPath: $0)
        }) else { throw XCTSkip("ldconfig not found") }
        let root = try syntheticBase()
        try root.write("/opt/cached/libcached.so.1", syntheticELF(soname: "libcached.so.1"))
        try root.write("/etc/ld.so.conf", Array("/opt/cached\n".utf8))
        try root.write("/app/prog", syntheticELF(interpreter: standardInterpreter, needed: ["libcached.so.1"]))
        for format in ["new", "compat"] {
            guard runTool(ldconfig, ["-c", format, "-r", root.path, "-C", "/etc/ld.so.cache", "-f", "/etc/ld.so.conf"]) != nil,
                  let data = FileManager.default.contents(atPath: root.host("/etc/ld.so.cache"))
            else { throw XCTSkip("ldconfig -r does not work here") }
            let cache = try XCTUnwrap([UInt8](data).withUnsafeBytes { LoaderCache(bytes: $0) }, format)
            XCTAssertEqual(cache.path(for: "libcached.so.1"), "/opt/cached/libcached.so.1", format)
            XCTAssertEqual(try resolveOrError("/app/prog", root).get().libraries.map(\.path), ["/opt/cached/libcached.so.1"])
        }
    }
}

extension Result {
    var failed: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}
