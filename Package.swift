// swift-tools-version:6.2
import PackageDescription

/// Settings shared by every target of ours: Swift 6 mode (the tools-version default),
/// `any` spelled out for existentials, and no warnings tolerated.
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .treatAllWarnings(as: .error),
]

let package = Package(
    name: "edmmd",
    products: [
        .executable(name: "edmmd", targets: ["edmmd"]),
        .executable(name: "edmmctl", targets: ["edmmctl"]),
        .executable(name: "edmm-sim", targets: ["edmm-sim"]),
        // Libraries exported for the fuzzing and benchmark sub-packages and for enclave runtimes.
        .library(name: "EDMMCore", targets: ["EDMMCore"]),
        .library(name: "EDMMProtocol", targets: ["EDMMProtocol"]),
        .library(name: "EDMMClient", targets: ["EDMMClient"]),
        .library(name: "EDMMSimHost", targets: ["EDMMSimHost"]),
        .library(name: "SGXDevice", targets: ["SGXDevice"]),
        .library(name: "SGXSimulator", targets: ["SGXSimulator"]),
        .library(name: "EDMMDaemon", targets: ["EDMMDaemon"]),
        .library(name: "EDMMConfig", targets: ["EDMMConfig"]),
        .library(name: "SGXKernel", targets: ["SGXKernel"]),
        .library(name: "SGXKernelTesting", targets: ["SGXKernelTesting"]),
        // libedmm_sim.so: the simulator's C interface (c/include/edmm/edmm_sim.h), for C hosts.
        .library(name: "edmm_sim", type: .dynamic, targets: ["EDMMSimC"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    ],
    targets: [
        // C: uapi constants and ioctls, SCM_RIGHTS, SO_PEERCRED, memfd, process-shared robust locks.
        .target(name: "CEDMMShims"),
        // libsystemd through pkg-config (libsystemd-dev).
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),

        // The POSIX calls every component makes, once: owned descriptors, SOCK_SEQPACKET messages with
        // descriptors, OS threads, errno names, standard error, small /proc files. No policy.
        .target(name: "EDMMSystem", dependencies: ["CEDMMShims"], swiftSettings: strict),
        // Pure model: pages, ranges, range sets, permissions, ledger, policies, batch planning. No I/O.
        .target(name: "EDMMCore", swiftSettings: strict),
        // The device interface, uapi types and the ioctl retry loop shared by both implementations.
        .target(name: "SGXDevice", dependencies: ["EDMMCore", "EDMMSystem"], swiftSettings: strict),
        // The real ioctls on /dev/sgx_enclave, through one mockable syscall funnel.
        .target(name: "SGXKernel", dependencies: ["SGXDevice", "EDMMSystem", "CEDMMShims"], swiftSettings: strict),
        // The funnel's test double (an in-memory file system and scripted ioctls), never in a program.
        .target(name: "SGXKernelTesting", dependencies: ["SGXKernel", "SGXDevice"], swiftSettings: strict),
        // The shared-memory EPC simulator: EPCM, driver, simulated CPU, cost model, conformance, replay.
        .target(name: "SGXSimulator", dependencies: ["SGXDevice", "EDMMSystem", "CEDMMShims"], swiftSettings: strict),
        // The daemon's configuration file: strict TOML with file:line errors. Shared by edmmd and edmmctl.
        .target(
            name: "EDMMConfig",
            dependencies: [
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict),
        // Kubernetes identity: pod and container from a peer's cgroup (SO_PEERPIDFD or /proc),
        // quantities, EPC limit annotations, NRI v0.1's JSON. Pure except PeerScopeResolver.
        .target(name: "EDMMKubernetes", dependencies: ["CEDMMShims"], swiftSettings: strict),
        // Wire format and codec. No I/O.
        .target(name: "EDMMProtocol", dependencies: ["EDMMCore"], swiftSettings: strict),
        // The service.
        .target(
            name: "EDMMDaemon",
            dependencies: [
                "EDMMCore", "EDMMConfig", "EDMMProtocol", "EDMMSystem", "SGXDevice", "SGXKernel", "SGXSimulator", "CEDMMShims",
                "CSystemd", "EDMMVersion", "EDMMKubernetes",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict),
        // The Prometheus exposition of the daemon's snapshot, and the /metrics HTTP endpoint.
        .target(
            name: "EDMMMetrics",
            dependencies: [
                "EDMMDaemon", "EDMMCore", "EDMMProtocol", "EDMMConfig", "EDMMKubernetes",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPCompression", package: "swift-nio-extras"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict),
        // The simulator from C: edmm_sim.h's structs (CEDMMSimABI) and its @_cdecl exports.
        .target(name: "CEDMMSimABI"),
        .target(
            name: "EDMMSimC",
            dependencies: ["CEDMMSimABI", "SGXSimulator", "SGXDevice", "EDMMCore"],
            swiftSettings: strict),
        // The release from VERSION (EDMMVersion); what --version prints, with the commit and date
        // make stamps (EDMMBuildInfo, for the programs only). Both generated by BuildInfoPlugin.
        .plugin(name: "BuildInfoPlugin", capability: .buildTool()),
        .target(name: "EDMMVersion", swiftSettings: strict, plugins: ["BuildInfoPlugin"]),
        .target(name: "EDMMBuildInfo", dependencies: ["EDMMVersion"], swiftSettings: strict, plugins: ["BuildInfoPlugin"]),
        // The client library an enclave runtime links: no simulator in it.
        .target(name: "EDMMClient", dependencies: ["EDMMCore", "EDMMProtocol", "EDMMSystem", "CEDMMShims"], swiftSettings: strict),
        // A simulated enclave host (the untrusted runtime and the enclave's EACCEPTs) on the client
        // library and the simulator: edmm-sim's hosts and the end-to-end tests.
        .target(
            name: "EDMMSimHost",
            dependencies: ["EDMMClient", "EDMMCore", "EDMMProtocol", "EDMMSystem", "SGXDevice", "SGXSimulator"],
            swiftSettings: strict),

        .executableTarget(
            name: "edmmd",
            dependencies: [
                "EDMMDaemon", "EDMMMetrics", "EDMMConfig", "EDMMSystem", "EDMMBuildInfo",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "edmmctl",
            dependencies: [
                "EDMMProtocol", "EDMMClient", "EDMMConfig", "EDMMCore", "EDMMSystem", "EDMMBuildInfo", "EDMMKubernetes",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "edmm-sim",
            dependencies: [
                "EDMMClient", "EDMMSimHost", "EDMMProtocol", "EDMMSystem", "SGXSimulator", "SGXDevice", "EDMMCore",
                "CEDMMShims", "EDMMBuildInfo",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),

        .testTarget(
            name: "EDMMCoreTests",
            dependencies: ["EDMMCore", .product(name: "PropertyBased", package: "swift-property-based")],
            swiftSettings: strict),
        .testTarget(
            name: "SGXDeviceTests",
            dependencies: ["SGXDevice", "SGXKernel", "SGXKernelTesting", "EDMMCore", "CEDMMShims"],
            swiftSettings: strict),
        .testTarget(
            name: "SGXSimulatorTests",
            dependencies: [
                "SGXSimulator", "SGXDevice", "CEDMMShims",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: strict),
        .testTarget(name: "EDMMKubernetesTests", dependencies: ["EDMMKubernetes", "CEDMMShims"], swiftSettings: strict),
        .testTarget(name: "EDMMConfigTests", dependencies: ["EDMMConfig"], swiftSettings: strict),
        .testTarget(
            name: "EDMMProtocolTests",
            dependencies: ["EDMMProtocol", .product(name: "PropertyBased", package: "swift-property-based")],
            swiftSettings: strict),
        .testTarget(
            name: "EDMMDaemonTests",
            dependencies: [
                "EDMMDaemon", "EDMMKubernetes", "EDMMClient", "EDMMSimHost", "EDMMConfig", "EDMMCore", "EDMMProtocol", "SGXDevice",
                "SGXSimulator",
                "SGXKernel", "SGXKernelTesting", "EDMMSystem", "CEDMMShims", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "EDMMMetricsTests",
            dependencies: [
                "EDMMMetrics", "EDMMDaemon", "EDMMKubernetes", "EDMMClient", "EDMMSimHost", "EDMMCore", "EDMMProtocol", "EDMMConfig",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "EDMMClientTests",
            dependencies: [
                "EDMMClient", "EDMMSimHost", "EDMMCore", "EDMMProtocol", "EDMMSystem", "SGXDevice", "SGXSimulator", "CEDMMShims",
            ],
            swiftSettings: strict),
        // End-to-end: real edmmd / edmm-sim / edmmctl processes over real sockets.
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "EDMMClient", "EDMMSimHost", "EDMMProtocol", "EDMMCore", "EDMMSystem", "SGXDevice", "SGXSimulator", "CEDMMShims",
            ],
            swiftSettings: strict),
    ]
)
