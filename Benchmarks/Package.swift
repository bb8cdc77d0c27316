// swift-tools-version:6.1
import PackageDescription

// Micro-benchmarks of EDMMCore (ordo-one/benchmark). Run with `swift package benchmark` here.
let package = Package(
    name: "edmmd-benchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "edmmd", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "CoreBenchmarks",
            dependencies: [
                .product(name: "EDMMCore", package: "edmmd"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/CoreBenchmarks",
            swiftSettings: [.enableUpcomingFeature("ExistentialAny"), .unsafeFlags(["-warnings-as-errors"])],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ]
)
