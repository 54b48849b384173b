// apus-manifest FILE: parses an Apusfile (YAML) and prints the build it describes in the
// line format `BuildSpec.decode` reads, or one "apus: …" line on stderr and exit 1.
// `apus build -f` runs it (ManifestTool.swift says why this is a separate executable).
import ApusKit
import ApusManifest
#if canImport(Glibc)
import Glibc
#endif

func emit(_ fd: Int32, _ text: String) {
    var text = text
    text.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 { if errno == EINTR { continue }; return }
            offset += n
        }
    }
}

let arguments = CommandLine.arguments
guard arguments.count == 2 else {
    emit(2, "usage: apus-manifest FILE (apus build -f FILE runs it)\n")
    exit(2)
}
do {
    emit(1, try Manifest.load(path: arguments[1]).encoded())
} catch {
    emit(2, "apus: \(error.message)\n")
    exit(1)
}
