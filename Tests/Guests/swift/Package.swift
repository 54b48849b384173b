// swift-tools-version:5.9
// A Swift command-line program built the ordinary way (`swift build -c release`): dynamically
// linked against the Swift runtime, Foundation and glibc. Tests/Guests/build.sh builds it;
// the integration tests run it natively and in Apus.
import PackageDescription

let package = Package(name: "swifthello", targets: [.executableTarget(name: "swifthello")])
