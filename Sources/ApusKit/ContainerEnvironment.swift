// The environment a program starts with in `apus run`, composed as docker composes a
// container's:
//
//   1. the defaults: PATH (docker's default), HOSTNAME (the VM's hostname), TERM=xterm
//      when the run has a terminal (-t);
//   2. over them, the image's environment (`apus build -e`), then --env-file, then -e: a
//      NAME=VALUE replaces an earlier NAME in place, a new NAME is appended, a bare NAME
//      (a pass-through variable the host does not have) removes NAME;
//   3. HOME appended last when nothing set it: the home directory of the program's user in
//      the VM's /etc/passwd, "/" when it has none (what runc does).
//
// Nothing of apus's own environment reaches the guest unless named with `-e NAME` or a bare
// NAME line of an env file. Everything here is pure (the host's variables come through a
// lookup function), so the host tests cover it.

public enum ContainerEnvironment {
    /// docker's PATH for Linux containers whose image sets none.
    public static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    /// TERM with -t, as docker sets it.
    public static let terminalType = "xterm"
    /// The hostname the kernel reports when the run names none (Kernel/Sources/files: uname
    /// and the generated /etc/hosts use the same word).
    public static let defaultHostname = "apus"
    /// The user every program runs as in the VM (the kernel starts pid 1 with uid 0).
    public static let programUID: UInt32 = 0

    /// The variable's name: everything before the first '=' (all of it for a bare name).
    public static func name(of variable: String) -> Substring {
        variable.prefix { $0 != "=" }
    }

    /// `base` with `overrides` applied in order: NAME=VALUE replaces every earlier NAME (in
    /// the place of the first), a new NAME is appended; a bare NAME removes every NAME.
    public static func replaceOrAppend(_ base: [String], _ overrides: [String]) -> [String] {
        var result = base
        for variable in overrides {
            let key = name(of: variable)
            let matches = result.indices.filter { name(of: result[$0]) == key }
            guard variable.contains("=") else {
                for i in matches.reversed() { result.remove(at: i) }
                continue
            }
            if let first = matches.first {
                result[first] = variable
                for i in matches.dropFirst().reversed() { result.remove(at: i) }
            } else {
                result.append(variable)
            }
        }
        return result
    }

    /// The program's whole environment (see the top of this file). `user`: the resolved
    /// --env-file and -e settings in that order (NAME=VALUE, or a bare NAME to remove);
    /// `home`: what HOME is when nothing set it.
    public static func compose(image: [String], user: [String], hostname: String, terminal: Bool,
                               home: () -> String) -> [String] {
        var defaults = ["PATH=" + defaultPath, "HOSTNAME=" + (hostname.isEmpty ? defaultHostname : hostname)]
        if terminal { defaults.append("TERM=" + terminalType) }
        // One pass, defaults then image then run, gives docker's order (the image's and the
        // run's variables merged first, then laid over the defaults) and lets a bare NAME of
        // the run remove a default too.
        var environment = replaceOrAppend(replaceOrAppend(defaults, image), user)
        if !environment.contains(where: { name(of: $0) == "HOME" }) {
            environment.append("HOME=" + home())
        }
        return environment
    }

    /// One -e value: NAME=VALUE as given; a bare NAME becomes NAME=VALUE with the host's
    /// value, or stays bare (removing NAME) when the host has none, as docker does.
    public static func resolve(_ setting: String, host: (String) -> String?) -> String {
        if setting.contains("=") { return setting }
        if let value = host(setting) { return setting + "=" + value }
        return setting
    }

    /// The problem with one -e value, or nil: the name must not be empty (docker's only
    /// check: "=VALUE" and "" are refused, anything else is the program's business).
    public static func problem(with setting: String) -> String? {
        name(of: setting).isEmpty ? "--env \(setting): expected NAME=VALUE or NAME (the name is empty)" : nil
    }

    /// An --env-file's settings in file order, the way docker reads one: UTF-8 text (a
    /// leading byte-order mark dropped), one setting per line (LF or CRLF); leading
    /// whitespace ignored; blank lines and lines starting with '#' skipped; NAME=VALUE with
    /// the value kept byte for byte (no quotes removed, trailing spaces kept); a bare NAME
    /// passes the host's value (see `resolve`). A name that is empty or holds whitespace is
    /// an error naming the file and the line.
    public static func parseEnvFile(_ bytes: [UInt8], path: String, host: (String) -> String?)
        -> Result<[String], RunOptionsError>
    {
        var body = bytes[...]
        if body.starts(with: [0xEF, 0xBB, 0xBF]) { body = body.dropFirst(3) }
        var settings: [String] = []
        var lineNumber = 0
        for rawLine in body.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = rawLine
            if line.last == 0x0D { line = line.dropLast() }
            guard let text = String(validatingUTF8Bytes: line) else {
                return .failure(RunOptionsError("--env-file \(path), line \(lineNumber): not UTF-8 text"))
            }
            let trimmed = text.drop { $0 == " " || $0 == "\t" || $0 == "\u{0B}" || $0 == "\u{0C}" || $0 == "\r" }
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let key = name(of: String(trimmed))
            if key.isEmpty {
                return .failure(RunOptionsError("--env-file \(path), line \(lineNumber): no variable name before '=' (\(trimmed))"))
            }
            if key.contains(where: { $0.isWhitespace }) {
                return .failure(RunOptionsError("--env-file \(path), line \(lineNumber): the name '\(key)' contains whitespace (expected NAME=VALUE or NAME)"))
            }
            settings.append(resolve(String(trimmed), host: host))
        }
        return .success(settings)
    }

    /// The home directory of user `uid` in passwd text (`name:password:uid:gid:gecos:home:
    /// shell` lines), from the first line with that uid; nil when none has it (or its home
    /// field is empty).
    public static func homeDirectory(passwd: [UInt8], uid: UInt32) -> String? {
        for line in passwd.split(separator: 0x0A) {
            let fields = line.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
            guard fields.count >= 6, let text = String(validatingUTF8Bytes: fields[2]), UInt32(text) == uid else { continue }
            let home = String(decoding: fields[5], as: UTF8.self)
            return home.isEmpty ? nil : home
        }
        return nil
    }
}

extension String {
    /// The bytes as a String when they are valid UTF-8, else nil.
    init?<Bytes: Collection>(validatingUTF8Bytes bytes: Bytes) where Bytes.Element == UInt8 {
        // Decoding replaces each invalid sequence with U+FFFD: a byte-exact round trip
        // proves there was none.
        let text = String(decoding: bytes, as: UTF8.self)
        guard text.utf8.elementsEqual(bytes) else { return nil }
        self = text
    }
}
