// swift-tools-version:5.4
// Tools version < 5.5 on purpose: newer manifests make SwiftPM link executables with
// `--defsym main=<Module>_main`, which `-parse-as-library` never emits; a libFuzzer target needs
// `-parse-as-library` so that libFuzzer's own `main` drives it.
import PackageDescription

/// Swift 6 mode, `any` spelled out, no warnings: the main package's settings.
let strict: [SwiftSetting] = [.unsafeFlags(["-swift-version", "6", "-enable-upcoming-feature", "ExistentialAny", "-warnings-as-errors"])]

/// One libFuzzer target per line: its folder under Sources/ and the edmmd libraries it imports.
/// scripts/fuzz.sh finds every `Sources/*Fuzz` folder and its `Corpus/`, `Regressions/` and
/// `Dictionaries/` entries by name (ProtocolFuzz -> protocol).
let fuzzTargets: [(name: String, libraries: [String])] = [
    ("ProtocolFuzz", ["EDMMProtocol", "EDMMCore"]),
    ("ConfigFuzz", ["EDMMConfig"]),
]

let package = Package(
    name: "FuzzTesting",
    dependencies: [.package(name: "edmmd", path: "..")],
    targets: fuzzTargets.map {
        .executableTarget(
            name: $0.name, dependencies: $0.libraries.map { .product(name: $0, package: "edmmd") }, swiftSettings: strict)
    } + [
        // Writes the seed corpus of ProtocolFuzz. A plain executable: build it without the fuzzer
        // flags (`swift run ProtocolSeeds Corpus/protocol`).
        .executableTarget(
            name: "ProtocolSeeds", dependencies: ["EDMMProtocol", "EDMMCore"].map { .product(name: $0, package: "edmmd") },
            swiftSettings: strict)
    ]
)
