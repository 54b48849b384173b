// swift-tools-version:6.0
import PackageDescription

// libFuzzer harnesses for the parsers of untrusted input (docs/ARCHITECTURE.md, "Fuzzing").
// A package of its own, so that the main `swift build` / `swift test` never see it; built by
// scripts/fuzz.sh with -sanitize=fuzzer,address into .build-fuzz at the repository root.
let package = Package(
    name: "ApusFuzz",
    dependencies: [.package(name: "Apus", path: "..")],
    targets: [
        .target(name: "CLibFuzzer"),
        .target(name: "FuzzSupport", dependencies: ["CLibFuzzer"]),
        .executableTarget(name: "FuzzELF", dependencies: ["FuzzSupport", .product(name: "ApusFuzzTargets", package: "Apus")]),
        .executableTarget(name: "FuzzImage", dependencies: ["FuzzSupport", .product(name: "ApusFuzzTargets", package: "Apus")]),
        .executableTarget(name: "FuzzGuestABI", dependencies: ["FuzzSupport", .product(name: "ApusFuzzTargets", package: "Apus")]),
        .executableTarget(name: "FuzzVirtio", dependencies: ["FuzzSupport", .product(name: "ApusFuzzTargets", package: "Apus")]),
        .executableTarget(name: "FuzzNetStack", dependencies: ["FuzzSupport", .product(name: "ApusFuzzTargets", package: "Apus")]),
    ]
)
