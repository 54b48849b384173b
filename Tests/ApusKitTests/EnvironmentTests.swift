// apus run's environment (docker's defaults, --env-file, -e, HOME from /etc/passwd) and the
// interpreter recipes' pure parts, on the host.
//   swift test --filter ApusKitTests.EnvironmentTests

@testable import ApusKit
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class EnvironmentTests: XCTestCase {
    let path = "PATH=" + ContainerEnvironment.defaultPath
    let host: (String) -> String? = { ["USER": "alice", "EMPTY": ""][$0] }

    // MARK: Composition and precedence

    func testDefaultsAreDockers() {
        let env = ContainerEnvironment.compose(image: [], user: [], hostname: "", terminal: false) { "/root" }
        XCTAssertEqual(env, [path, "HOSTNAME=apus", "HOME=/root"])
        let withTerminal = ContainerEnvironment.compose(image: [], user: [], hostname: "box", terminal: true) { "/" }
        XCTAssertEqual(withTerminal, [path, "HOSTNAME=box", "TERM=xterm", "HOME=/"])
    }

    /// image < --env-file < -e, each replacing in place; the image's PATH replaces docker's.
    func testPrecedence() {
        let image = ["PATH=/opt/bin:/usr/bin", "A=image", "B=image"]
        let fromFile = ["B=file", "C=file"]
        let fromFlags = ["C=flag", "D=flag"]
        let env = ContainerEnvironment.compose(image: image, user: fromFile + fromFlags, hostname: "h", terminal: false) { "/root" }
        XCTAssertEqual(env, ["PATH=/opt/bin:/usr/bin", "HOSTNAME=h", "A=image", "B=file", "C=flag", "D=flag", "HOME=/root"])
    }

    /// HOME given anywhere wins over the passwd lookup, which then is not made; TERM and
    /// HOSTNAME can be overridden like any variable.
    func testHomeAndDefaultsCanBeOverridden() {
        var asked = false
        let env = ContainerEnvironment.compose(image: ["HOME=/srv"], user: ["HOSTNAME=x", "TERM=dumb"], hostname: "h",
                                               terminal: true) { asked = true; return "/root" }
        XCTAssertEqual(env, [path, "HOSTNAME=x", "TERM=dumb", "HOME=/srv"])
        XCTAssertFalse(asked)
    }

    /// A bare NAME (a pass-through variable the host lacks) unsets NAME, image default included.
    func testBareNameRemoves() {
        XCTAssertEqual(ContainerEnvironment.replaceOrAppend(["A=1", "B=2", "A=3"], ["A"]), ["B=2"])
        let env = ContainerEnvironment.compose(image: ["A=image"], user: ["A", "PATH"], hostname: "", terminal: false) { "/" }
        XCTAssertEqual(env, ["HOSTNAME=apus", "HOME=/"])
    }

    func testResolvePassesTheHostsValue() {
        XCTAssertEqual(ContainerEnvironment.resolve("USER", host: host), "USER=alice")
        XCTAssertEqual(ContainerEnvironment.resolve("EMPTY", host: host), "EMPTY=")
        XCTAssertEqual(ContainerEnvironment.resolve("MISSING", host: host), "MISSING")
        XCTAssertEqual(ContainerEnvironment.resolve("USER=bob", host: host), "USER=bob")
        XCTAssertNotNil(ContainerEnvironment.problem(with: "=x"))
        XCTAssertNotNil(ContainerEnvironment.problem(with: ""))
        XCTAssertNil(ContainerEnvironment.problem(with: "A=b=c"))
    }

    // MARK: --env-file

    func testEnvFileFormat() throws {
        let text = "\u{FEFF}# a comment\n\n   \nA=1\n  B=two words  \nC=\"quoted\"\r\nD==x=\nUSER\nMISSING\n\t# indented comment\nEMPTY\nE=#not a comment"
        let settings = try ContainerEnvironment.parseEnvFile(Array(text.utf8), path: "app.env", host: host).get()
        XCTAssertEqual(settings, ["A=1", "B=two words  ", "C=\"quoted\"", "D==x=", "USER=alice", "MISSING", "EMPTY=", "E=#not a comment"])
    }

    func testEnvFileErrorsNameFileAndLine() {
        func problem(_ text: String) -> String? {
            if case .failure(let error) = ContainerEnvironment.parseEnvFile(Array(text.utf8), path: "x.env", host: host) {
                return error.description
            }
            return nil
        }
        XCTAssertEqual(problem("A=1\n\nBAD NAME=2\n"), "--env-file x.env, line 3: the name 'BAD NAME' contains whitespace (expected NAME=VALUE or NAME)")
        XCTAssertEqual(problem("=value"), "--env-file x.env, line 1: no variable name before '=' (=value)")
        XCTAssertEqual(problem("A B"), "--env-file x.env, line 1: the name 'A B' contains whitespace (expected NAME=VALUE or NAME)")
        let invalid: [UInt8] = Array("A=1\nB=".utf8) + [0xff, 0xfe]
        if case .failure(let error) = ContainerEnvironment.parseEnvFile(invalid, path: "x.env", host: host) {
            XCTAssertEqual(error.description, "--env-file x.env, line 2: not UTF-8 text")
        } else {
            XCTFail("invalid UTF-8 must be refused")
        }
        XCTAssertEqual(try ContainerEnvironment.parseEnvFile([], path: "x.env", host: host).get(), [])
    }

    /// docker's order: every --env-file first, then -e, whatever the command line's order.
    func testRunOptionsReadEnvFilesBeforeFlags() throws {
        let file = "/tmp/apus-env-test-\(getpid()).env"
        try Array("A=file\nB=file\n".utf8).withUnsafeBytes { bytes in
            let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            XCTAssertGreaterThanOrEqual(fd, 0)
            XCTAssertEqual(Glibc.write(fd, bytes.baseAddress, bytes.count), bytes.count)
            close(fd)
        }
        defer { unlink(file) }
        let options = try RunOptions.make(program: "./p", arguments: [], environment: ["A=flag"], memory: "", vmm: "apus",
                                          timings: false, timeout: 0, envFiles: [file]).get()
        XCTAssertEqual(options.environment, ["A=file", "B=file", "A=flag"])
        let env = ContainerEnvironment.compose(image: [], user: options.environment, hostname: "", terminal: false) { "/" }
        XCTAssertEqual(env, [path, "HOSTNAME=apus", "A=flag", "B=file", "HOME=/"])
        guard case .failure(let missing) = RunOptions.make(program: "./p", arguments: [], environment: [], memory: "",
                                                           vmm: "apus", timings: false, timeout: 0,
                                                           envFiles: [file + ".missing"]) else {
            return XCTFail("a missing env file must be an error")
        }
        XCTAssertEqual(missing.description, "--env-file \(file).missing: No such file or directory")
        XCTAssertNotNil(FastRunParser.parse(["run", "--env-file", file, "./p"]))
        XCTAssertEqual(FastRunParser.parse(["run", "--env-file", file, "-e", "C=3", "./p"])?.environment, ["A=file", "B=file", "C=3"])
    }

    // MARK: HOME from /etc/passwd

    func testHomeDirectory() {
        let passwd = Array("daemon:x:1:1::/usr/sbin:/bin/false\nroot:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/nonexistent:/x\n".utf8)
        XCTAssertEqual(ContainerEnvironment.homeDirectory(passwd: passwd, uid: 0), "/root")
        XCTAssertEqual(ContainerEnvironment.homeDirectory(passwd: passwd, uid: 65534), "/nonexistent")
        XCTAssertNil(ContainerEnvironment.homeDirectory(passwd: passwd, uid: 1000))
        XCTAssertNil(ContainerEnvironment.homeDirectory(passwd: Array("root:x:0:0:root::/bin/sh\n".utf8), uid: 0))
        XCTAssertNil(ContainerEnvironment.homeDirectory(passwd: Array("garbage\nroot:x:zero:0::/r:/s\n".utf8), uid: 0))
        let generated = ImageBuild.accountFiles.first { $0.path == "/etc/passwd" }!.text
        XCTAssertEqual(ContainerEnvironment.homeDirectory(passwd: Array(generated.utf8), uid: 0), "/root")
    }

    // MARK: Interpreters

    func testInterpreterFamilies() {
        XCTAssertEqual(InterpreterFamily.of(fileName: "python3.11"), .python)
        XCTAssertEqual(InterpreterFamily.of(fileName: "python3"), .python)
        XCTAssertEqual(InterpreterFamily.of(fileName: "perl5.36.0"), .perl)
        XCTAssertEqual(InterpreterFamily.of(fileName: "ruby3.1"), .ruby)
        XCTAssertEqual(InterpreterFamily.of(fileName: "php8.2"), .php)
        XCTAssertEqual(InterpreterFamily.of(fileName: "nodejs"), .node)
        XCTAssertEqual(InterpreterFamily.of(fileName: "java"), .java)
        XCTAssertNil(InterpreterFamily.of(fileName: "python3-config"))
        XCTAssertNil(InterpreterFamily.of(fileName: "perldoc"))
        XCTAssertNil(InterpreterFamily.of(fileName: "javac"))
        XCTAssertNil(InterpreterFamily.of(fileName: "sqlite3"))
    }

    func testScriptIndex() {
        XCTAssertEqual(Interpreters.scriptIndex(.python, arguments: ["app.py", "-v"]), 0)
        XCTAssertEqual(Interpreters.scriptIndex(.python, arguments: ["-u", "-W", "ignore", "app.py"]), 3)
        XCTAssertNil(Interpreters.scriptIndex(.python, arguments: ["-c", "print(1)", "app.py"]))
        XCTAssertNil(Interpreters.scriptIndex(.python, arguments: ["-cprint(1)"]))
        XCTAssertNil(Interpreters.scriptIndex(.python, arguments: ["-m", "http.server"]))
        XCTAssertNil(Interpreters.scriptIndex(.python, arguments: ["-"]))
        XCTAssertNil(Interpreters.scriptIndex(.python, arguments: []))
        XCTAssertEqual(Interpreters.scriptIndex(.perl, arguments: ["-w", "-I", "lib", "tool.pl"]), 3)
        XCTAssertNil(Interpreters.scriptIndex(.perl, arguments: ["-MList::Util=sum", "-e", "print sum(1..3)"]))
        XCTAssertEqual(Interpreters.scriptIndex(.java, arguments: ["-Xmx64m", "-jar", "app.jar", "x"]), 2)
        XCTAssertEqual(Interpreters.scriptIndex(.java, arguments: ["-cp", "lib", "Hello.java"]), 2)
        XCTAssertEqual(Interpreters.scriptIndex(.php, arguments: ["-f", "index.php"]), 1)
        XCTAssertEqual(Interpreters.scriptIndex(.node, arguments: ["--", "-odd.js"]), 1)
    }

    func testQueryOutputDirectories() {
        let output = "\n/usr/lib/python311.zip\n/usr/lib/python3.11\n/usr/lib/python3.11/lib-dynload\nrelative\n/usr/lib/python3.11/\n/\n/opt/x/\n"
        XCTAssertEqual(Interpreters.directories(fromQueryOutput: output),
                       ["/usr/lib/python311.zip", "/usr/lib/python3.11", "/opt/x"])
        // A parent listed after its child replaces it.
        XCTAssertEqual(Interpreters.directories(fromQueryOutput: "/a/b\n/c\n/a\n"), ["/c", "/a"])
    }

    func testPythonLayout() {
        let present: Set<String> = ["/opt/py/lib/python3.12/os.py"]
        XCTAssertEqual(Interpreters.pythonStandardLibrary(ofPython: "/opt/py/bin/python3.12", exists: present.contains),
                       "/opt/py/lib/python3.12")
        XCTAssertNil(Interpreters.pythonStandardLibrary(ofPython: "/opt/py/bin/python3", exists: { _ in true }))
        XCTAssertNil(Interpreters.pythonStandardLibrary(ofPython: "/opt/py/bin/python3.11", exists: present.contains))
        XCTAssertNil(Interpreters.pythonStandardLibrary(ofPython: "/opt/py/python3.12", exists: { _ in true }))
    }

    /// Only a program installed as packages are (root's, writable by nobody else) is asked.
    func testOnlySystemProgramsAreAsked() throws {
        XCTAssertNil(Interpreters.untrustedReason("/bin/sh"))
        let dir = "/tmp/apus-untrusted-\(getpid())"
        XCTAssertEqual(mkdir(dir, 0o777), 0)
        defer { rmdir(dir) }
        chmod(dir, 0o777)
        XCTAssertEqual(Interpreters.untrustedReason(dir + "/python3"), "it cannot be examined (No such file or directory)")
        let fd = open(dir + "/python3", O_WRONLY | O_CREAT, 0o755)
        close(fd)
        defer { unlink(dir + "/python3") }
        let reason = try XCTUnwrap(Interpreters.untrustedReason(dir + "/python3"))
        XCTAssertTrue(reason == "its directory is writable by other users" || reason == "it is not owned by root", reason)
    }

    func testJavaHomeLayouts() {
        let modular: Set<String> = ["/jvm/17/lib/modules", "/jvm/17/bin", "/jvm/17/conf", "/jvm/17/lib", "/jvm/17/release"]
        XCTAssertEqual(Interpreters.javaHome(ofJava: "/jvm/17/bin/java", exists: modular.contains),
                       ["/jvm/17/bin", "/jvm/17/conf", "/jvm/17/lib", "/jvm/17/release"])
        XCTAssertEqual(Interpreters.javaHome(ofJava: "/jvm/8/jre/bin/java", exists: { $0 == "/jvm/8/jre/lib/rt.jar" }),
                       ["/jvm/8/jre"])
        XCTAssertNil(Interpreters.javaHome(ofJava: "/opt/java", exists: { _ in true }))
        XCTAssertNil(Interpreters.javaHome(ofJava: "/somewhere/bin/java", exists: { _ in false }))
    }
}

