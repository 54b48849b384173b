// swift-tools-version:6.0
import PackageDescription

// `apus` is built as a fully static executable (scripts/build.sh: --static-swift-stdlib
// -Xswiftc -static-executable): process start is most of the boot budget.
// Portable targets (GuestABI, ELF, ImageFormat, LinuxABI, VFS, NetStack) import nothing but the Swift
// standard library: the kernel compiles the same sources in Embedded Swift (Kernel/build.sh).
let portable: [SwiftSetting] = [.unsafeFlags(["-warnings-as-errors"])]

let package = Package(
    name: "Apus",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "apus", targets: ["apus"]),
        .executable(name: "apus-manifest", targets: ["apus-manifest"]),
        // For the libFuzzer harnesses in Fuzz/ (a separate package that depends on this one
        // by path): the parsers of untrusted input. Nothing else links it.
        .library(name: "ApusFuzzTargets", targets: ["ELF", "ImageFormat", "GuestABI", "NetStack", "VMM"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Manifests (`apus build -f`). Yams brings Foundation, so only ApusManifest imports it,
        // and only the apus-manifest helper links it: never the `apus run` path.
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        .target(name: "GuestABI", swiftSettings: portable),
        .target(name: "ELF", swiftSettings: portable),
        .target(name: "ImageFormat", swiftSettings: portable),
        .target(name: "LinuxABI", swiftSettings: portable),
        .target(name: "VFS", dependencies: ["ImageFormat", "LinuxABI"], swiftSettings: portable),
        .target(name: "NetStack", dependencies: ["LinuxABI"], swiftSettings: portable),
        .target(name: "CKVM"),
        .target(name: "VMM", dependencies: ["CKVM", "GuestABI", "ELF", "NetStack", "LinuxABI"]),
        .target(name: "ApusKit", dependencies: ["VMM", "CKVM", "GuestABI", "ELF", "ImageFormat"]),
        .target(name: "ApusManifest", dependencies: ["ApusKit", .product(name: "Yams", package: "Yams")]),
        .executableTarget(
            name: "apus",
            dependencies: ["ApusKit", "GuestABI", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(name: "apus-manifest", dependencies: ["ApusKit", "ApusManifest"]),
        .testTarget(name: "GuestABITests", dependencies: ["GuestABI"]),
        .testTarget(name: "ELFTests", dependencies: ["ELF"]),
        .testTarget(name: "ImageFormatTests", dependencies: ["ImageFormat"]),
        .testTarget(name: "LinuxABITests", dependencies: ["LinuxABI"]),
        .testTarget(name: "VFSTests", dependencies: ["VFS", "ImageFormat", "LinuxABI"]),
        .testTarget(name: "NetStackTests", dependencies: ["NetStack", "LinuxABI"]),
        .testTarget(name: "VMMTests", dependencies: ["VMM", "GuestABI", "NetStack"]),
        .testTarget(name: "ApusKitTests", dependencies: ["ApusKit", "ApusManifest", "ImageFormat"]),
        .testTarget(name: "IntegrationTests", dependencies: ["ApusKit"]),
    ]
)
