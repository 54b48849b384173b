// The image store and `apus build` on the host, without booting anything: SHA-256, the
// config and cache formats, image files read back through ImageReader, the build cache,
// atomicity of interrupted builds, rmi's garbage collection, and manifests.
//   swift test --filter ApusKitTests.StoreTests

@testable import ApusKit
import ApusManifest
import ImageFormat
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class StoreTests: XCTestCase {
    var directory = ""
    var store: ImageStore!
    var program = ""

    override func setUpWithError() throws {
        var template = Array("/tmp/apus-store-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        directory = String(cString: try XCTUnwrap(made))
        store = ImageStore(root: directory + "/home")
        program = directory + "/prog"
        try write(program, minimalELF(), mode: 0o755)
    }

    override func tearDownWithError() throws {
        _ = system("rm -rf '\(directory)'")
    }

    // MARK: SHA-256

    func testSHA256KnownAnswers() {
        XCTAssertEqual(SHA256.hash("").hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hash("abc").hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hash("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").hex,
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        var million = SHA256()
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 1000)
        for _ in 0..<1000 { million.update(chunk) }
        XCTAssertEqual(million.finalize().hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testSHA256SplitUpdatesMatchOneShot() {
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let whole = SHA256.hash(bytes)
        for split in [1, 55, 56, 63, 64, 65, 127, 999] {
            var h = SHA256()
            h.update(Array(bytes[..<split]))
            h.update(Array(bytes[split...]))
            XCTAssertEqual(h.finalize(), whole, "split at \(split)")
        }
        var zeros = SHA256()
        zeros.updateZeros(70000)
        XCTAssertEqual(zeros.finalize(), SHA256.hash([UInt8](repeating: 0, count: 70000)))
    }

    // MARK: Formats

    func testConfigRoundTripsEveryField() throws {
        var c = ImageConfig(imageDigest: String(repeating: "ab", count: 32), imageSize: 8192, created: 1_700_000_000,
                            entrypoint: "/usr/bin/python3.11", command: "/usr/bin/python3")
        c.arguments = ["-c", "print('a b')", "", "back\\slash", "new\nline\ttab"]
        c.environment = ["A=1", "B=x y=z"]
        c.workdir = "/app dir"
        c.hostname = "web-1"
        c.memory = 256 << 20
        c.interpreter = "/lib64/ld-linux-x86-64.so.2"
        c.libraries = [.init(name: "libc.so.6", path: "/lib/x86_64-linux-gnu/libc.so.6")]
        c.source = "/usr/bin/python3"
        c.fileCount = 3
        c.fileBytes = 1234
        XCTAssertEqual(ImageConfig.decode(c.encoded()), c)
        let minimal = ImageConfig(imageDigest: String(repeating: "0", count: 64), imageSize: 4096, created: 0,
                                  entrypoint: "/p", command: "/p")
        XCTAssertEqual(ImageConfig.decode(minimal.encoded()), minimal)
    }

    func testConfigRejectsMalformedText() {
        let good = ImageConfig(imageDigest: String(repeating: "0", count: 64), imageSize: 4096, created: 0,
                               entrypoint: "/p", command: "/p").encoded()
        for bad in ["", "apus-image-config 2\n", good.replacingOccurrences(of: "size 4096", with: "size four"),
                    good + "colour blue\n", good.replacingOccurrences(of: "entrypoint /p\n", with: ""),
                    good + "arg bad\\qescape\n", good.replacingOccurrences(of: String(repeating: "0", count: 64), with: "xyz")] {
            XCTAssertNil(ImageConfig.decode(bad), bad)
        }
    }

    func testFileSpecs() throws {
        XCTAssertEqual(try FileSpec.parse("./app.py:/app/app.py").get(), FileSpec(host: "./app.py", image: "/app/app.py"))
        XCTAssertEqual(try FileSpec.parse("/usr/lib/python3.11").get(), FileSpec(host: "/usr/lib/python3.11"))
        XCTAssertEqual(try FileSpec.parse("a:b:/x").get(), FileSpec(host: "a:b", image: "/x"))
        XCTAssertThrowsError(try FileSpec.parse(":/x").get())
    }

    func testEnvironmentOverrides() {
        XCTAssertEqual(ContainerEnvironment.replaceOrAppend(["A=1", "B=2", "A=3"], ["A=9", "C=4", "B="]), ["A=9", "B=", "C=4"])
        XCTAssertEqual(ContainerEnvironment.replaceOrAppend([], ["X=1"]), ["X=1"])
    }

    func testRunOptionsDropTheSeparatorAndKnowWhetherMemoryWasGiven() throws {
        let o = try RunOptions.make(program: "p", arguments: ["--", ":memory:", "--"], environment: [], memory: "",
                                    vmm: "apus", timings: false, timeout: 0).get()
        XCTAssertEqual(o.arguments, [":memory:", "--"])
        XCTAssertFalse(o.memoryExplicit)
        XCTAssertEqual(o.memorySize, 128 << 20)
        let m = try RunOptions.make(program: "p", arguments: [], environment: [], memory: "64M",
                                    vmm: "apus", timings: false, timeout: 0).get()
        XCTAssertTrue(m.memoryExplicit)
    }

    func testHumanFormats() {
        XCTAssertEqual(StoreCommands.humanSize(812), "812 B")
        XCTAssertEqual(StoreCommands.humanSize(4096), "4.1 kB")
        XCTAssertEqual(StoreCommands.humanSize(58_200_000), "58.2 MB")
        XCTAssertEqual(StoreCommands.humanSize(999_999), "1.0 MB")
        XCTAssertEqual(StoreCommands.relativeTime(100, now: 100), "just now")
        XCTAssertEqual(StoreCommands.relativeTime(0, now: 59), "59 seconds ago")
        XCTAssertEqual(StoreCommands.relativeTime(0, now: 3600), "1 hour ago")
        XCTAssertEqual(StoreCommands.isoTime(1_700_000_000), "2023-11-14T22:13:20Z")
        XCTAssertEqual(StoreCommands.relativeTime(1_700_000_000, now: 1_800_000_000), "2023-11-14")
    }

    func testMissingLibrariesAreNamedWithWhoNeedsThem() {
        let error = DependencyError(missing: [(name: "libfoo.so", neededBy: "/x/prog"),
                                              (name: "libbar.so.1", neededBy: "/usr/lib/libbaz.so")])
        let message = ImageBuild.dependencyMessage(error, program: "/x/prog")
        XCTAssertTrue(message.contains("libfoo.so (needed by /x/prog)"), message)
        XCTAssertTrue(message.contains("libbar.so.1 (needed by /usr/lib/libbaz.so)"), message)
        XCTAssertFalse(message.contains("\n"))
    }

    // MARK: Building

    /// The image file reads back through ImageReader with every entry and byte in place.
    func testImageFileRoundTrip() throws {
        let data = directory + "/data"
        try makeDirectory(data)
        try makeDirectory(data + "/sub")
        try write(data + "/a.txt", Array("alpha\n".utf8))
        try write(data + "/sub/big.bin", (0..<10000).map { UInt8(truncatingIfNeeded: $0) }, mode: 0o600)
        XCTAssertEqual(symlink("sub/big.bin", data + "/link"), 0)
        var spec = BuildSpec(program: program)
        spec.name = "round"
        spec.arguments = ["x", "y z"]
        spec.environment = ["K=V"]
        spec.workdir = "/srv/app"
        spec.files = [FileSpec(host: data, image: "/data"), FileSpec(host: data + "/a.txt", image: "/etc/passwd")]
        let result = try ImageBuild.build(spec, store: store)
        XCTAssertFalse(result.cacheHit)

        let image = try store.find("round")
        XCTAssertEqual(image.config.arguments, ["x", "y z"])
        XCTAssertEqual(image.config.environment, ["K=V"])
        XCTAssertEqual(image.config.workdir, "/srv/app")
        XCTAssertEqual(image.config.entrypoint, program)
        let file = try ImageFile(path: image.blobPath, label: "round")
        XCTAssertEqual(UInt64(file.bytes.count), image.config.imageSize)
        XCTAssertEqual(sha256OfFile(image.blobPath), image.config.imageDigest, "the blob is named by its SHA-256")
        let reader = file.reader
        XCTAssertEqual(String(decoding: reader.entrypoint.path, as: UTF8.self), program)
        XCTAssertEqual(Array(reader.contents(of: reader.entrypoint)), minimalELF())
        XCTAssertEqual(contents(reader, "/data/a.txt"), "alpha\n")
        let big = try XCTUnwrap(reader.lookup(path: "/data/sub/big.bin"))
        XCTAssertEqual(Array(reader.contents(of: big)), (0..<10000).map { UInt8(truncatingIfNeeded: $0) })
        XCTAssertEqual(big.mode, 0o600)
        let link = try XCTUnwrap(reader.lookup(path: "/data/link"))
        XCTAssertEqual(link.kind, .symlink)
        XCTAssertEqual(String(decoding: try XCTUnwrap(link.linkTarget), as: UTF8.self), "sub/big.bin")
        // Generated files, except where --add put one.
        XCTAssertEqual(contents(reader, "/etc/passwd"), "alpha\n")
        XCTAssertEqual(contents(reader, "/etc/group"), "root:x:0:\nnogroup:x:65534:\n")
        XCTAssertNil(reader.lookup(path: "/etc/hosts"), "the kernel provides /etc/hosts; a volume may bring one")
        XCTAssertTrue(contents(reader, "/etc/nsswitch.conf")?.contains("hosts:     files dns") ?? false)
        XCTAssertEqual(reader.lookup(path: "/tmp")?.mode, 0o1777)
        XCTAssertEqual(reader.lookup(path: "/srv/app")?.kind, .directory)
        if fileExists("/etc/localtime") { XCTAssertNotNil(reader.lookup(path: "/etc/localtime")) }
    }

    /// A program reached through symlinks keeps them in the image; the file is the entrypoint.
    func testProgramSymlinksAreKept() throws {
        try makeDirectory(directory + "/bin-real")
        try write(directory + "/bin-real/tool-1.0", minimalELF(), mode: 0o755)
        XCTAssertEqual(symlink("tool-1.0", directory + "/bin-real/tool"), 0)
        XCTAssertEqual(symlink("bin-real", directory + "/bin"), 0)
        let result = try ImageBuild.build(BuildSpec(program: directory + "/bin/tool"), store: store)
        XCTAssertEqual(result.image.name, "tool")
        XCTAssertEqual(result.image.config.command, directory + "/bin/tool")
        XCTAssertEqual(result.image.config.entrypoint, directory + "/bin-real/tool-1.0")
        let file = try ImageFile(path: result.image.blobPath, label: "tool")
        let reader = file.reader
        XCTAssertEqual(reader.lookup(path: directory + "/bin")?.kind, .symlink)
        XCTAssertEqual(reader.lookup(path: directory + "/bin-real/tool")?.kind, .symlink)
        XCTAssertEqual(reader.lookup(path: directory + "/bin-real/tool-1.0")?.kind, .file)
    }

    func testCacheHitsUntilAnInputChanges() throws {
        let data = directory + "/data"
        try makeDirectory(data)
        try write(data + "/f", Array("one".utf8))
        var spec = BuildSpec(program: program)
        spec.name = "cached"
        spec.files = [FileSpec(host: data, image: "/data")]
        let first = try ImageBuild.build(spec, store: store)
        XCTAssertFalse(first.cacheHit)
        let second = try ImageBuild.build(spec, store: store)
        XCTAssertTrue(second.cacheHit, "unchanged inputs")
        XCTAssertEqual(second.image.digest, first.image.digest)

        // Same size, new mtime: a miss (the contents may differ).
        try write(data + "/f", Array("two".utf8))
        var times = [timespec(tv_sec: 1_000_000, tv_nsec: 0), timespec(tv_sec: 1_000_000, tv_nsec: 0)]
        XCTAssertEqual(utimensat(AT_FDCWD, data + "/f", &times, 0), 0)
        let third = try ImageBuild.build(spec, store: store)
        XCTAssertFalse(third.cacheHit, "a changed file")
        XCTAssertNotEqual(third.image.config.imageDigest, first.image.config.imageDigest)
        XCTAssertTrue(try ImageBuild.build(spec, store: store).cacheHit)

        // A new file in an added directory.
        try write(data + "/g", Array("new".utf8))
        XCTAssertFalse(try ImageBuild.build(spec, store: store).cacheHit, "a file added to a directory")
        // Another option is another key.
        spec.environment = ["X=1"]
        XCTAssertFalse(try ImageBuild.build(spec, store: store).cacheHit, "a changed option")
        // Back to the old options: that image went when the name moved on (cache entries
        // keep no image alive by themselves), so it is built again, then cached.
        spec.environment = []
        XCTAssertFalse(try ImageBuild.build(spec, store: store).cacheHit)
        XCTAssertTrue(try ImageBuild.build(spec, store: store).cacheHit)
        // The program itself.
        chmod(program, 0o700)
        XCTAssertFalse(try ImageBuild.build(spec, store: store).cacheHit, "a changed mode")
        // Old images no name points at any more were collected along the way.
        XCTAssertEqual(store.configDigests().count, 1)
        XCTAssertEqual(listDirectory(store.root + "/blobs").count, 1)
    }

    /// A build that dies before its files are in place leaves nothing; one that dies inside
    /// the commit leaves no name and only files the next collection removes.
    func testInterruptedBuildsLeaveNothing() throws {
        struct Crash: Error {}
        var spec = BuildSpec(program: program)
        spec.name = "victim"
        XCTAssertThrowsError(try ImageBuild.build(spec, store: store, auto: false) { (stage) throws(StoreError) in
            if stage == .imageWritten { throw StoreError(.io, "simulated crash") }
        })
        XCTAssertEqual(listDirectory(store.root + "/tmp"), [], "the half-built image is gone")
        XCTAssertEqual(listDirectory(store.root + "/blobs"), [])
        XCTAssertEqual(listDirectory(store.root + "/names"), [])
        XCTAssertThrowsError(try store.find("victim"))

        XCTAssertThrowsError(try ImageBuild.build(spec, store: store, auto: false) { (stage) throws(StoreError) in
            if stage == .blobCommitted { throw StoreError(.io, "simulated crash") }
        })
        XCTAssertEqual(listDirectory(store.root + "/names"), [], "no dangling name")
        XCTAssertEqual(listDirectory(store.root + "/configs"), [])
        XCTAssertEqual(listDirectory(store.root + "/cache"), [])
        try store.collectGarbage()
        XCTAssertEqual(listDirectory(store.root + "/blobs"), [], "the orphaned image file is collected")

        // A build process killed mid-write leaves a tmp file named by its pid: collected once
        // that process is gone.
        try write(store.root + "/tmp/999999999.dead", [1, 2, 3])
        try store.collectGarbage()
        XCTAssertEqual(listDirectory(store.root + "/tmp"), [])

        // And the store still works.
        XCTAssertFalse(try ImageBuild.build(spec, store: store).cacheHit)
        XCTAssertNoThrow(try store.find("victim"))
    }

    func testRmiRemovesNamesAndCollectsGarbage() throws {
        var spec = BuildSpec(program: program)
        spec.name = "one"
        let built = try ImageBuild.build(spec, store: store)
        spec.name = "two"
        XCTAssertTrue(try ImageBuild.build(spec, store: store).cacheHit, "a second name for the same build")
        XCTAssertEqual(store.names().map(\.name), ["one", "two"])

        var removal = try store.remove("one")
        XCTAssertEqual(removal.untagged, ["one"])
        XCTAssertEqual(removal.deleted, [], "\"two\" still points at the image")
        XCTAssertNoThrow(try store.find("two"))
        XCTAssertTrue(fileExists(built.image.blobPath))

        removal = try store.remove("two")
        XCTAssertEqual(removal.deleted, ["sha256:" + built.image.digest])
        XCTAssertEqual(store.configDigests(), [])
        XCTAssertEqual(listDirectory(store.root + "/blobs"), [])
        XCTAssertEqual(listDirectory(store.root + "/cache"), [])

        XCTAssertThrowsError(try store.remove("two")) { error in
            XCTAssertEqual((error as? StoreError)?.kind, .notFound)
            XCTAssertTrue("\(error)".contains("two"), "the error names the image: \(error)")
        }
    }

    func testRmiByDigestAndUnnamedImages() throws {
        // `apus run` of a dynamic program keeps its image without a name.
        let auto = try ImageBuild.build(BuildSpec(program: program), store: store, auto: true)
        XCTAssertNil(auto.image.name)
        XCTAssertEqual(store.names().count, 0)
        XCTAssertEqual(store.configDigests(), [auto.image.digest])
        XCTAssertTrue(try ImageBuild.build(BuildSpec(program: program), store: store, auto: true).cacheHit)
        XCTAssertTrue(StoreCommands.imagesTable(store, now: 0).contains("<none>"))

        var spec = BuildSpec(program: program)
        spec.name = "named"
        _ = try ImageBuild.build(spec, store: store)
        let found = try store.find(String(auto.image.digest.prefix(12)))
        XCTAssertEqual(found.digest, auto.image.digest)
        XCTAssertEqual(try store.find("sha256:" + auto.image.digest).digest, auto.image.digest)
        let removal = try store.remove(String(auto.image.digest.prefix(8)))
        XCTAssertEqual(removal.untagged, ["named"])
        XCTAssertEqual(store.configDigests(), [])
    }

    func testCorruptStoreFilesAreErrorsNamingTheImage() throws {
        var spec = BuildSpec(program: program)
        spec.name = "broken"
        let built = try ImageBuild.build(spec, store: store)
        chmod(built.image.blobPath, 0o644)
        let fd = open(built.image.blobPath, O_WRONLY)
        XCTAssertEqual(pwrite(fd, "XXXXXXXX", 8, 0), 8)
        close(fd)
        XCTAssertThrowsError(try ImageFile(path: built.image.blobPath, label: "broken")) { error in
            XCTAssertEqual((error as? StoreError)?.kind, .corrupt)
            XCTAssertTrue("\(error)".contains("image broken is corrupt"), "\(error)")
        }
        try write(store.root + "/configs/" + built.image.digest, Array("garbage".utf8))
        XCTAssertThrowsError(try store.find("broken")) { error in
            XCTAssertTrue("\(error)".contains("broken"), "\(error)")
        }
    }

    /// Blobs are checked against their names before they boot: a built image passes on its
    /// build's stamp, a changed byte is caught (mtime put back or not), and a missing or stale
    /// stamp costs one hash, after which the stamp is current again.
    func testBlobsAreVerifiedAgainstTheirDigest() throws {
        var spec = BuildSpec(program: program)
        spec.name = "checked"
        let built = try ImageBuild.build(spec, store: store)
        let hex = built.image.config.imageDigest
        let stampPath = store.root + "/verified/" + hex
        XCTAssertTrue(FileManager.default.fileExists(atPath: stampPath), "the build leaves a stamp")
        XCTAssertNoThrow(try store.verifyBlob(ImageFile(path: built.image.blobPath, label: "checked").file, hex: hex, label: "checked"))

        unlink(stampPath)
        XCTAssertNoThrow(try store.verifyBlob(ImageFile(path: built.image.blobPath, label: "checked").file, hex: hex, label: "checked"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: stampPath), "a hash that matched leaves a stamp")

        // One bit of the program's bytes (past the index, so the image still parses), with the
        // file's times put back as they were.
        var before = stat()
        XCTAssertEqual(stat(built.image.blobPath, &before), 0)
        chmod(built.image.blobPath, 0o644)
        let fd = open(built.image.blobPath, O_RDWR)
        let offset = off_t(before.st_size - 1)
        var byte: UInt8 = 0
        XCTAssertEqual(pread(fd, &byte, 1, offset), 1)
        byte ^= 0x10
        XCTAssertEqual(pwrite(fd, &byte, 1, offset), 1)
        var times = [before.st_atim, before.st_mtim]
        XCTAssertEqual(futimens(fd, &times), 0)
        close(fd)
        chmod(built.image.blobPath, 0o444)
        let file = try ImageFile(path: built.image.blobPath, label: "checked")
        XCTAssertThrowsError(try store.verifyBlob(file.file, hex: hex, label: "checked")) { error in
            XCTAssertEqual((error as? StoreError)?.kind, .corrupt)
            XCTAssertTrue("\(error)".contains("image checked is corrupt"), "\(error)")
            XCTAssertTrue("\(error)".contains("apus rmi checked"), "\(error)")
        }
        _ = try store.remove("checked")
        XCTAssertFalse(FileManager.default.fileExists(atPath: stampPath), "garbage collection removes the stamp")
    }

    func testBuildErrors() throws {
        func problem(_ spec: BuildSpec) -> String {
            do { _ = try ImageBuild.build(spec, store: store); return "" } catch { return error.message }
        }
        XCTAssertTrue(problem(BuildSpec(program: directory + "/nope")).contains("nope"))
        XCTAssertTrue(problem(BuildSpec(program: "surely-not-on-path-xyz")).contains("not found on PATH"))
        var spec = BuildSpec(program: program)
        spec.files = [FileSpec(host: directory + "/missing", image: "/m")]
        XCTAssertTrue(problem(spec).contains("--add \(directory)/missing"), problem(spec))
        spec = BuildSpec(program: program)
        spec.name = "bad/name"
        XCTAssertTrue(problem(spec).contains("image name"))
        try write(directory + "/script", Array("#!/bin/sh\necho hi\n".utf8), mode: 0o755)
        XCTAssertTrue(problem(BuildSpec(program: directory + "/script")).contains("is a script"))
        spec = BuildSpec(program: program)
        // The program's own file at its path is no conflict; another file there is.
        spec.files = [FileSpec(host: directory + "/script", image: directory + "/prog")]
        XCTAssertTrue(problem(spec).contains("already in the image"), problem(spec))
        XCTAssertEqual(listDirectory(store.root + "/names"), [])
    }

    // MARK: Manifests

    func testManifestWithEveryKey() throws {
        let spec = try Manifest.parse("""
            name: pyapp
            program: /usr/bin/python3
            args: [/app/app.py, --port, 8080]
            env:
              PYTHONUNBUFFERED: "1"
              GREETING: hello world
            workdir: /app
            files:
              - ./app.py:/app/app.py
              - /usr/lib/python3.11
              - {from: data, to: /data}
            hostname: web-1
            memory: 256M
            ca-certificates: true
            """, label: "Apusfile.yaml", directory: "/proj")
        var expected = BuildSpec(program: "/usr/bin/python3")
        expected.name = "pyapp"
        expected.arguments = ["/app/app.py", "--port", "8080"]
        expected.environment = ["PYTHONUNBUFFERED=1", "GREETING=hello world"]
        expected.workdir = "/app"
        expected.files = [FileSpec(host: "./app.py", image: "/app/app.py"), FileSpec(host: "/usr/lib/python3.11"),
                          FileSpec(host: "data", image: "/data")]
        expected.hostname = "web-1"
        expected.memory = 256 << 20
        expected.caCertificates = true
        expected.baseDirectory = "/proj"
        XCTAssertEqual(spec, expected)

        let list = try Manifest.parse("program: ./server\nenv: [A=1, B=2=3]\n", label: "m.yaml", directory: "/d")
        XCTAssertEqual(list.environment, ["A=1", "B=2=3"])
        XCTAssertEqual(list.program, "./server")
    }

    /// What the apus-manifest helper prints, apus reads back unchanged.
    func testBuildSpecRoundTripsThroughItsTransferText() throws {
        var spec = BuildSpec(program: "/usr/bin/python3")
        spec.name = "pyapp"
        spec.arguments = ["-c", "print('a b')", ""]
        spec.environment = ["A=1 2"]
        spec.workdir = "/app"
        spec.hostname = "h"
        spec.memory = 1 << 30
        spec.caCertificates = true
        spec.files = [FileSpec(host: "./a b"), FileSpec(host: "x", image: "/y z")]
        spec.baseDirectory = "/proj dir"
        XCTAssertEqual(BuildSpec.decode(spec.encoded()), spec)
        XCTAssertEqual(BuildSpec.decode(BuildSpec(program: "p").encoded()), BuildSpec(program: "p"))
        XCTAssertNil(BuildSpec.decode("apus-build-spec 1\nprogram\n"))
    }

    /// Yams composes recursively: deep nesting is refused before it gets there, in every
    /// form YAML has for it; the README's own manifest and ordinary ones are not.
    func testDeeplyNestedManifestIsRefusedNotAStackOverflow() {
        let depth = 200_000
        let documents = [
            "program: /p\nargs: " + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "\n",
            "program: /p\nenv: " + String(repeating: "{a: ", count: depth) + "b" + String(repeating: "}", count: depth) + "\n",
            "program: /p\nargs:\n" + String(repeating: "- ", count: depth) + "x\n",
            "program: /p\nfiles:\n" + (0..<2_000).map { String(repeating: " ", count: $0 + 1) + "k\($0):\n" }.joined() + "   x\n",
        ]
        for text in documents {
            do {
                _ = try Manifest.parse(text, label: "deep.yaml", directory: "/")
                XCTFail("accepted a document nested \(depth) deep")
            } catch {
                XCTAssertTrue(error.message.contains("nested more than 64 levels"), error.message)
                XCTAssertFalse(error.message.contains("\n"))
            }
        }
        let ordinary = """
            # comment with [[[[ brackets and - - - dashes
            name: web
            program: ./server
            args: ["--config", '[[[not nesting]]]', "a - b"]
            env:
              A: "x: [y"
              B: |
                [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[
                - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
            files:
              - ./static:/srv/static
              - {from: ./conf, to: /etc/conf}
            """
        XCTAssertNoThrow(try Manifest.parse(ordinary, label: "ok.yaml", directory: "/"))
    }

    func testManifestErrorsNameTheKey() {
        func problem(_ text: String) -> String {
            do { _ = try Manifest.parse(text, label: "Apusfile.yaml", directory: "/"); return "" } catch { return error.message }
        }
        let cases: [(String, [String])] = [
            ("program: /p\nnmae: x\n", ["Apusfile.yaml:2", "unknown key 'nmae'"]),
            ("program: /p\nargs: hello\n", ["args", "expected a list of strings"]),
            ("program: /p\nargs: [a, {b: c}]\n", ["args[1]", "expected a string"]),
            ("program: [a]\n", ["program", "expected a string"]),
            ("program: /p\nenv: 5\n", ["env", "expected a map"]),
            ("program: /p\nenv: [NOEQUALS]\n", ["env", "KEY=VALUE"]),
            ("program: /p\nmemory: lots\n", ["memory", "expected a size"]),
            ("program: /p\nmemory: 256\n", ["memory: 256 is out of range"]),
            ("program: /p\nca-certificates: maybe\n", ["ca-certificates", "true or false"]),
            ("program: /p\nfiles: ./a:/b\n", ["files", "expected a list"]),
            ("program: /p\nfiles: [{from: a, dest: /b}]\n", ["files[0]", "unknown key"]),
            ("program: /p\nfiles: [{from: a, to: rel}]\n", ["files[0]", "absolute"]),
            ("program: /p\nprogram: /q\n", ["appears twice"]),
            ("name: x\n", ["'program' is missing"]),
            ("- a\n- b\n", ["expected a map of keys"]),
            ("program: [unclosed\n", ["not valid YAML"]),
        ]
        for (text, needles) in cases {
            let message = problem(text)
            XCTAssertFalse(message.isEmpty, "accepted: \(text)")
            XCTAssertFalse(message.contains("\n"), "one line: \(message)")
            for needle in needles { XCTAssertTrue(message.contains(needle), "\(text) → \(message) (wanted \(needle))") }
        }
    }

    func testManifestFilesAreRelativeToItsDirectory() throws {
        try makeDirectory(directory + "/proj")
        try write(directory + "/proj/app.txt", Array("app".utf8))
        try write(directory + "/proj/Apusfile.yaml", Array("""
            name: relative
            program: ../prog
            files: [app.txt:/app/app.txt]
            """.utf8))
        let spec = try Manifest.load(path: directory + "/proj/Apusfile.yaml")
        let result = try ImageBuild.build(spec, store: store)
        let file = try ImageFile(path: result.image.blobPath, label: "relative")
        XCTAssertEqual(contents(file.reader, "/app/app.txt"), "app")
        XCTAssertEqual(result.image.config.entrypoint, program)
    }

    /// --add of a directory that holds the program (the JDK's case: --add of the JDK with
    /// its bin/java as PROGRAM) is no conflict; a dangling symlink in it is skipped with a
    /// warning; another file at the program's path still is a conflict.
    func testAddOfADirectoryHoldingTheProgram() throws {
        let home = directory + "/jdk"
        try makeDirectory(home)
        try makeDirectory(home + "/bin")
        try write(home + "/bin/java", minimalELF(), mode: 0o755)
        try write(home + "/release", Array("JAVA_VERSION=\"17\"\n".utf8))
        XCTAssertEqual(symlink("../release", home + "/bin/release-link"), 0)
        XCTAssertEqual(symlink("../../nowhere/src.zip", home + "/src.zip"), 0)
        var spec = BuildSpec(program: home + "/bin/java")
        spec.name = "jdk"
        spec.files = [FileSpec(host: home)]
        let result = try ImageBuild.build(spec, store: store)
        XCTAssertEqual(result.warnings.count, 1, "\(result.warnings)")
        XCTAssertTrue(result.warnings.first?.contains("skipping \(home)/src.zip: a dangling symlink") ?? false, "\(result.warnings)")
        let file = try ImageFile(path: result.image.blobPath, label: "jdk")
        XCTAssertEqual(Array(file.reader.contents(of: try XCTUnwrap(file.reader.lookup(path: home + "/bin/java")))), minimalELF())
        XCTAssertEqual(file.reader.lookup(path: home + "/bin/release-link")?.kind, .symlink)
        XCTAssertNil(file.reader.lookup(path: home + "/src.zip"))

        try write(directory + "/other", Array("not the program".utf8))
        spec.files = [FileSpec(host: directory + "/other", image: home + "/bin/java")]
        XCTAssertThrowsError(try ImageBuild.build(spec, store: store)) { error in
            XCTAssertTrue("\(error)".contains("already in the image"), "\(error)")
        }
    }

    /// An interpreter's library trees: a tree through a symlinked path is placed at its real
    /// path with the link kept; a symlink out of it to a host file brings that file; a path
    /// the user's --add filled keeps the user's file.
    func testLibraryTrees() throws {
        let lib = directory + "/lib"
        try makeDirectory(lib)
        try makeDirectory(lib + "/5.36.0")
        try write(lib + "/5.36.0/strict.pm", Array("1;\n".utf8))
        try write(lib + "/5.36.0/user.pm", Array("library's\n".utf8))
        XCTAssertEqual(symlink("5.36.0", lib + "/5.36"), 0)
        try makeDirectory(directory + "/etc-outside")
        try write(directory + "/etc-outside/jvm.cfg", Array("-server KNOWN\n".utf8))
        XCTAssertEqual(symlink(directory + "/etc-outside/jvm.cfg", lib + "/5.36.0/jvm.cfg"), 0)
        try write(directory + "/mine.pm", Array("user's\n".utf8))

        var plan = BuildPlan()
        try plan.add((host: directory + "/mine.pm", image: lib + "/5.36.0/user.pm"))
        try plan.addLibraryTrees([lib + "/5.36"])
        let origins = try XCTUnwrap(plan.importer.origins)
        XCTAssertEqual(origins[lib + "/5.36"], .symlink(target: "5.36.0"))
        XCTAssertEqual(origins[lib + "/5.36.0/strict.pm"], try fileOrigin(lib + "/5.36.0/strict.pm"))
        XCTAssertEqual(origins[directory + "/etc-outside/jvm.cfg"], try fileOrigin(directory + "/etc-outside/jvm.cfg"),
                       "the link's target came along")
        XCTAssertEqual(origins[lib + "/5.36.0/user.pm"], try fileOrigin(directory + "/mine.pm"), "the user's --add wins")

        // The user's --add of the whole tree first (as `apus build java --add JDK`): its
        // links out are followed all the same.
        var second = BuildPlan()
        try second.add((host: lib + "/5.36.0", image: lib + "/5.36.0"))
        XCTAssertNil(second.importer.origins?[directory + "/etc-outside/jvm.cfg"])
        try second.addLibraryTrees([lib + "/5.36"])
        XCTAssertEqual(second.importer.origins?[directory + "/etc-outside/jvm.cfg"], try fileOrigin(directory + "/etc-outside/jvm.cfg"))
    }

    func fileOrigin(_ path: String) throws -> VolumeImporter.EntryOrigin {
        var st = stat()
        guard stat(path, &st) == 0 else { throw StoreError(.io, "\(path): \(errnoText())") }
        return .file(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    /// A program named like an interpreter that does not answer the library query (here
    /// the host's dynamic /bin/false named perl) is built anyway, with a warning naming what
    /// to add.
    func testInterpreterWithoutAnAnswerIsAWarning() throws {
        let host = try MappedFile(path: "/bin/false")
        guard case .dynamic = try ProgramCheck.classify(host) else {
            throw XCTSkip("/bin/false is not dynamically linked here")
        }
        try makeDirectory(directory + "/fake")
        let fake = directory + "/fake/perl"
        try withExtendedLifetime(host) { try write(fake, Array(host.bytes), mode: 0o755) }
        var spec = BuildSpec(program: fake)
        spec.name = "fakeperl"
        let result = try ImageBuild.build(spec, store: store)
        let warning = try XCTUnwrap(result.interpreterWarning)
        XCTAssertTrue(warning.hasPrefix("apus: warning: \(fake) looks like perl, but its library directories are unknown"), warning)
        XCTAssertTrue(warning.contains("exit status 1") && warning.contains("--add DIR"), warning)
        XCTAssertTrue(result.warnings.contains(warning))
    }

    // MARK: Helpers

    /// A minimal static x86-64 executable: one R+X PT_LOAD, code that exits 0.
    func minimalELF() -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 4096)
        func put(_ value: UInt64, at offset: Int, _ size: Int) {
            for i in 0..<size { b[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
        }
        b.replaceSubrange(0..<8, with: [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0])
        put(2, at: 16, 2)             // e_type ET_EXEC
        put(62, at: 18, 2)            // e_machine x86-64
        put(1, at: 20, 4)             // e_version
        put(0x40_0078, at: 24, 8)     // e_entry
        put(64, at: 32, 8)            // e_phoff
        put(64, at: 52, 2)            // e_ehsize
        put(56, at: 54, 2)            // e_phentsize
        put(1, at: 56, 2)             // e_phnum
        put(1, at: 64, 4)             // PT_LOAD
        put(5, at: 68, 4)             // R+X
        put(0, at: 72, 8)             // p_offset
        put(0x40_0000, at: 80, 8)     // p_vaddr
        put(0x40_0000, at: 88, 8)     // p_paddr
        put(4096, at: 96, 8)          // p_filesz
        put(4096, at: 104, 8)         // p_memsz
        put(4096, at: 112, 8)         // p_align
        b.replaceSubrange(0x78..<0x81, with: [0xb8, 0x3c, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05])  // exit(0)
        return b
    }

    func write(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode)
        guard fd >= 0 else { throw StoreError(.io, "\(path): \(errnoText())") }
        defer { close(fd) }
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        XCTAssertEqual(n, bytes.count)
        fchmod(fd, mode)
    }

    func makeDirectory(_ path: String) throws {
        guard mkdir(path, 0o755) == 0 else { throw StoreError(.io, "\(path): \(errnoText())") }
    }

    func contents(_ reader: ImageReader, _ path: String) -> String? {
        reader.lookup(path: path).map { String(decoding: reader.contents(of: $0), as: UTF8.self) }
    }

    func sha256OfFile(_ path: String) -> String {
        let file = try? MappedFile(path: path)
        var h = SHA256()
        if let file { h.update(file.bytes) }
        return h.finalize().hex
    }
}
