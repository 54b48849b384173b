// docker's defaults in the VM: the environment a program starts with (PATH, HOSTNAME, HOME
// from the VM's /etc/passwd, -e NAME from apus's own environment, --env-file, an image's
// variables), the accounts of a static program's VM, and interpreters run without a recipe
// (python3 and perl with their standard library; java on this host's VMM).

import Foundation
import XCTest

/// docker's PATH for images that set none.
enum ContainerPath {
    static let docker = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}

extension VMMMatrix {
    /// The variables the args guest printed ("envp[i] (n) = [NAME=VALUE]" lines), in order.
    func printedEnvironment(_ result: RunResult) -> [String] {
        result.stdoutText.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("envp["), let open = line.firstIndex(of: "["),
                  let start = line[line.index(after: open)...].firstIndex(of: "["), line.hasSuffix("]") else { return nil }
            return String(line[line.index(after: start)..<line.index(before: line.endIndex)])
        }
    }

    /// `apus run --vmm VMM ARGS` from `cwd` (default: the guests directory), with apus's
    /// environment plus `extra`.
    func apusRun(_ args: [String], cwd: String = Harness.guestsDir, extra: [String: String] = [:],
                 timeout: TimeInterval? = nil) throws -> RunResult {
        var environment = Harness.apusEnvironment
        for (k, v) in extra { environment[k] = v }
        return try Runner.run(Harness.apusBinary, ["run", "--vmm", vmm] + args, cwd: cwd, environment: environment,
                              timeout: timeout ?? Harness.timeout(vmm: vmm))
    }

    /// PATH, HOSTNAME and HOME as docker sets them, for a static program and a dynamic one
    /// (built on the fly), with --hostname, and -e overriding each in place.
    func environmentDefaults() throws {
        for variant in ["musl", "gcc"] {
            var r = try apusRun(["./args.\(variant)"])
            XCTAssertEqual(r.status, 0, "[\(vmm)] args.\(variant): \(r.stderrText)")
            XCTAssertEqual(printedEnvironment(r), ["PATH=\(ContainerPath.docker)", "HOSTNAME=apus", "HOME=/root"],
                           "[\(vmm)] args.\(variant)")
            r = try apusRun(["--hostname", "box", "-e", "HOME=/srv", "-e", "A=1", "-e", "PATH=/opt/bin", "./args.\(variant)"])
            XCTAssertEqual(r.status, 0, "[\(vmm)] args.\(variant): \(r.stderrText)")
            XCTAssertEqual(printedEnvironment(r), ["PATH=/opt/bin", "HOSTNAME=box", "HOME=/srv", "A=1"], "[\(vmm)] args.\(variant)")
        }
    }

    /// -e NAME passes apus's own NAME (an empty value too) and nothing when apus has none;
    /// no other variable of apus's environment reaches the guest.
    func environmentFromHost() throws {
        let r = try apusRun(["-e", "APUS_PASSED", "-e", "APUS_EMPTY", "-e", "APUS_NOT_SET", "./args.musl"],
                            extra: ["APUS_PASSED": "from the host ✓", "APUS_EMPTY": "", "APUS_OTHER": "not asked for"])
        XCTAssertEqual(r.status, 0, r.stderrText)
        XCTAssertEqual(printedEnvironment(r), ["PATH=\(ContainerPath.docker)", "HOSTNAME=apus", "APUS_PASSED=from the host ✓",
                                               "APUS_EMPTY=", "HOME=/root"], "[\(vmm)]")
    }

    /// --env-file: comments, blank lines, values verbatim, a bare name passing apus's value;
    /// -e wins over the file whatever the order; a bad line is an error naming file and line.
    func environmentFile() throws {
        let dir = try scratchDirectory("envfile")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/app.env"
        try Data("# settings\n\nGREETING=hello world  \nQUOTED=\"kept\"\n  INDENTED=yes\nFROM_HOST\nNOT_ON_HOST\nB=file\n".utf8)
            .write(to: URL(fileURLWithPath: file))
        var r = try apusRun(["-e", "B=flag", "--env-file", file, "./args.glibc"], extra: ["FROM_HOST": "host value"])
        XCTAssertEqual(r.status, 0, r.stderrText)
        XCTAssertEqual(printedEnvironment(r), ["PATH=\(ContainerPath.docker)", "HOSTNAME=apus", "GREETING=hello world  ",
                                               "QUOTED=\"kept\"", "INDENTED=yes", "FROM_HOST=host value", "B=flag", "HOME=/root"],
                       "[\(vmm)]")

        try Data("GOOD=1\nBAD NAME=2\n".utf8).write(to: URL(fileURLWithPath: dir + "/bad.env"))
        r = try apusRun(["--env-file", dir + "/bad.env", "./args.musl"])
        XCTAssertEqual(r.status, 125, r.stderrText)
        XCTAssertTrue(r.stderrText.hasPrefix("apus: --env-file \(dir)/bad.env, line 2: the name 'BAD NAME' contains whitespace"),
                      r.stderrText)
        XCTAssertTrue(r.stdoutText.isEmpty)
        r = try apusRun(["--env-file", dir + "/missing.env", "./args.musl"])
        XCTAssertEqual(r.status, 125, r.stderrText)
        XCTAssertTrue(r.stderrText.contains("--env-file \(dir)/missing.env: No such file or directory"), r.stderrText)
    }

    /// An image's variables sit between docker's defaults and the run's (its PATH replaces
    /// the default), and HOME comes from the image's own /etc/passwd; a static program's VM
    /// whose /etc/passwd has no root (a volume) gets HOME=/.
    func environmentOfImages() throws {
        let dir = try scratchDirectory("envimage")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("root:x:0:0:admin:/home/admin:/bin/sh\n".utf8).write(to: URL(fileURLWithPath: dir + "/passwd"))
        try Data("app:x:1000:1000::/home/app:/bin/sh\n".utf8).write(to: URL(fileURLWithPath: dir + "/passwd-noroot"))
        let image = "envimg-\(vmm)"
        let build = try apusCommand(["build", "-t", image, "-e", "PATH=/opt/bin:/bin", "-e", "A=image", "-e", "B=image",
                                     "--add", dir + "/passwd:/etc/passwd", Harness.guestPath("args.musl")])
        XCTAssertEqual(build.status, 0, build.stderrText)
        guard build.status == 0 else { return }
        var r = try apusRun(["-e", "B=flag", image])
        XCTAssertEqual(r.status, 0, r.stderrText)
        XCTAssertEqual(printedEnvironment(r), ["PATH=/opt/bin:/bin", "HOSTNAME=apus", "A=image", "B=flag", "HOME=/home/admin"],
                       "[\(vmm)]")
        r = try apusRun(["-v", dir + "/passwd-noroot:/etc/passwd", "./args.musl"])
        XCTAssertEqual(r.status, 0, r.stderrText)
        XCTAssertEqual(printedEnvironment(r), ["PATH=\(ContainerPath.docker)", "HOSTNAME=apus", "HOME=/"], "[\(vmm)]")
    }

    /// A static program's VM has /etc/passwd and /etc/group with root and nobody, as a
    /// minimal container image has: whoami names root.
    func accountsOfStaticPrograms() throws {
        guard let busybox = try requireBusybox() else { return }
        var r = try apusRun([busybox, "whoami"])
        XCTAssertEqual(r.status, 0, r.stderrText)
        XCTAssertEqual(r.stdoutText, "root\n", "[\(vmm)] \(r.stderrText)")
        r = try apusRun([busybox, "sh", "-c", "cat /etc/passwd /etc/group; echo \"$HOME $HOSTNAME $PATH\""])
        XCTAssertEqual(r.status, 0, r.stderrText)
        XCTAssertEqual(r.stdoutText, """
            root:x:0:0:root:/root:/bin/sh
            nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
            root:x:0:
            nogroup:x:65534:
            /root apus \(ContainerPath.docker)

            """, "[\(vmm)] \(r.stderrText)")
    }

    /// `apus run /usr/bin/python3 …` without a recipe: the standard library (json, email,
    /// sqlite3 with its extension module and library) is found; a script given by a relative
    /// or an absolute path is copied in and run, its argument unchanged.
    func pythonWithoutRecipe() throws {
        guard let python = try requireProgram("/usr/bin/python3", package: "python3") else { return }
        let code = "import json, email.utils, sqlite3, sys; print(json.dumps({'addr': email.utils.parseaddr('Apus <apus@example.org>'), 'sqlite': sqlite3.connect(':memory:').execute('select 6*7').fetchone()[0]}))"
        try compareNative([python, "-c", code], memory: "512M")
        let dir = try scratchDirectory("pyscript")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("import sys, textwrap, collections\nprint(sys.argv, textwrap.shorten('the standard library is here', 20), collections.Counter('apus').most_common(1))\n".utf8)
            .write(to: URL(fileURLWithPath: dir + "/script.py"))
        try compareNative([python, "script.py", "one", "two"], cwd: dir, memory: "512M")
        try compareNative([python, dir + "/script.py", "abs"], cwd: "/", memory: "512M")
    }

    /// perl without a recipe: core modules from @INC (List::Util is an XS module: its .so
    /// and perl's own library), with -e and with a script file.
    func perlWithoutRecipe() throws {
        guard let perl = try requireProgram("/usr/bin/perl", package: "perl") else { return }
        try compareNative([perl, "-MList::Util=sum,max", "-MPOSIX=floor", "-e", "print sum(1..10), ' ', max(3, 9, 2), ' ', floor(2.7), \"\\n\""])
        let dir = try scratchDirectory("perlscript")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("use strict; use warnings; use Data::Dumper; $Data::Dumper::Terse = 1; $Data::Dumper::Indent = 0;\nprint Dumper([@ARGV, $0]), \"\\n\";\n".utf8)
            .write(to: URL(fileURLWithPath: dir + "/tool.pl"))
        try compareNative([perl, "tool.pl", "x y"], cwd: dir)
    }

    /// java (this host's VMM only: the JVM's start under QEMU's emulation takes minutes):
    /// the JDK the binary belongs to is found from its layout, a source file runs.
    func javaWithoutRecipe() throws {
        let java = "/usr/lib/jvm/java-17-openjdk-amd64/bin/java"
        guard Harness.isExecutableFile(java) else { throw XCTSkip("\(java) is missing (apt-get install openjdk-17-jre-headless)") }
        let dir = try scratchDirectory("java")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("public class Hello { public static void main(String[] a) { System.out.println(\"hello \" + String.join(\",\", a) + \" \" + java.util.List.of(1, 2, 3).stream().mapToInt(i -> i).sum()); } }\n".utf8)
            .write(to: URL(fileURLWithPath: dir + "/Hello.java"))
        try compareNative([java, "Hello.java", "a", "b"], cwd: dir, memory: "1G", timeout: 120)

        // apus build of the JDK without workarounds: --add of the directory that holds the
        // program and the libraries the resolver placed is no conflict; its dangling
        // symlinks (if any) are skipped with a warning.
        let home = (java as NSString).deletingLastPathComponent.replacingOccurrences(of: "/bin", with: "", options: .anchored.union(.backwards))
        let image = "jdk-\(vmm)"
        let build = try apusCommand(["build", "-t", image, java, "--add", home, "--add", dir + "/Hello.java:/app/Hello.java"])
        XCTAssertEqual(build.status, 0, "[\(vmm)] apus build of the JDK: \(build.stderrText)")
        for line in build.stderrText.split(separator: "\n") {
            XCTAssertTrue(line.hasPrefix("apus: warning: --add: skipping ") && line.contains("a dangling symlink"), String(line))
        }
        let run = try apusRun(["-m", "1G", image, "/app/Hello.java", "image"], timeout: 120)
        XCTAssertEqual(run.status, 0, run.stderrText)
        XCTAssertEqual(run.stdoutText, "hello image 6\n", run.stderrText)
    }

    /// Runs `command` natively (empty environment) and as `apus run -m MEMORY COMMAND`, both
    /// from `cwd`, comparing stdout and status.
    private func compareNative(_ command: [String], cwd: String = "/", memory: String = "256M", timeout: TimeInterval? = nil,
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let native = try Runner.run(command[0], Array(command.dropFirst()), cwd: cwd, environment: [:], timeout: 60)
        let apus = try apusRun(["-m", memory] + command, cwd: cwd, timeout: timeout ?? Harness.timeout(vmm: vmm) * 2)
        let what = "[\(vmm)] \(command.map { $0.count > 50 ? String($0.prefix(47)) + "…" : $0 }.joined(separator: " "))"
        XCTAssertEqual(native.status, 0, "\(what): natively: \(native.stderrText)", file: file, line: line)
        XCTAssertFalse(native.stdoutText.isEmpty, "\(what): natively printed nothing", file: file, line: line)
        XCTAssertEqual(apus.status, native.status, "\(what): status\napus stderr: \(apus.stderrText)", file: file, line: line)
        XCTAssertEqual(apus.stdoutText, native.stdoutText, "\(what): stdout\napus stderr: \(apus.stderrText)", file: file, line: line)
    }
}
