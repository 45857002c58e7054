// swift-tools-version:6.1
import PackageDescription

/// Every target is Swift 6 language mode with strict concurrency (the tools-version default).
let package = Package(
    name: "ChunkRelay",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "chunkrelay", targets: ["chunkrelay"]),
        .executable(name: "map-render", targets: ["map-render"]),
        .executable(name: "chaos", targets: ["chaos"]),
        .executable(name: "map-tiles", targets: ["map-tiles"]),
        .executable(name: "fuzz-sse", targets: ["fuzz-sse"]),
        .executable(name: "fuzz-ingest", targets: ["fuzz-ingest"]),
        .library(name: "RelayProtocol", targets: ["RelayProtocol"]),
        .library(name: "RelayClient", targets: ["RelayClient"]),
        .library(name: "FunctionKit", targets: ["FunctionKit"]),
        .library(name: "Gateway", targets: ["Gateway"]),
        .library(name: "FaultInjection", targets: ["FaultInjection"]),
        .library(name: "LocalRuntime", targets: ["LocalRuntime"]),
        .library(name: "ChunkRelayServer", targets: ["ChunkRelayServer"]),
        .library(name: "ChunkRelayTesting", targets: ["ChunkRelayTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.0"),
        .package(url: "https://github.com/apple/swift-async-algorithms.git", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-http-structured-headers.git", from: "1.7.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.4.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.5.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation.git", from: "0.9.20"),
    ],
    targets: [
        // Shared wire types: no I/O.
        .target(
            name: "RelayProtocol",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "RawStructuredFieldValues", package: "swift-http-structured-headers"),
            ]
        ),
        // Faults on demand (`serve --faults`), shared by the gateway and the Function URLs.
        .target(
            name: "FaultInjection",
            dependencies: [
                "RelayProtocol",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
            ]
        ),
        .target(
            name: "Gateway",
            dependencies: [
                "FaultInjection",
                "RelayProtocol",
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "_NIOFileSystem", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .target(
            name: "RelayClient",
            dependencies: [
                "RelayProtocol",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_NIOFileSystem", package: "swift-nio"),
            ]
        ),
        .target(
            name: "FunctionKit",
            dependencies: [
                "RelayProtocol",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .target(
            name: "LocalRuntime",
            dependencies: [
                "FaultInjection",
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
                "RelayProtocol",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
            ],
            path: "local-runtime/Sources/LocalRuntime",
            // The bootstraps that run Python and Node.js handlers, and the chunk modules beside them.
            resources: [.copy("Support")]
        ),
        // The map-render generator function: a library (testable renderer + PNG encoder) and its executable.
        .target(
            name: "MapRender",
            dependencies: ["RelayProtocol"],
            path: "functions/map-render/Sources/MapRender"
        ),
        .executableTarget(
            name: "map-render",
            dependencies: ["MapRender", "FunctionKit", "RelayProtocol", .product(name: "Logging", package: "swift-log")],
            path: "functions/map-render/Sources/map-render"
        ),
        // A function that misbehaves on request, for tests of the runtime and the gateway.
        .executableTarget(
            name: "chaos",
            dependencies: ["FunctionKit", "RelayProtocol", .product(name: "Logging", package: "swift-log")],
            path: "functions/chaos/Sources/chaos"
        ),
        // The Swift sample: a 3×3 grid of map tiles rendered at once through RelayClient.
        .executableTarget(
            name: "map-tiles",
            dependencies: ["RelayClient", "RelayProtocol"],
            path: "samples/swift/Sources/map-tiles"
        ),
        // What `serve` runs (gateway and runtime wired together), for the CLI and for ChunkRelayTesting.
        .target(
            name: "ChunkRelayServer",
            dependencies: [
                "FaultInjection",
                "Gateway",
                "LocalRuntime",
                "RelayProtocol",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // `withChunkRelay(functions:)` for users' own test suites.
        .target(
            name: "ChunkRelayTesting",
            dependencies: [
                "FaultInjection",
                .product(name: "NIOHTTP1", package: "swift-nio"),
                "ChunkRelayServer",
                "RelayClient",
                "RelayProtocol",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // `chunkrelay bench`: the benchmarks and their peers (nginx, nchan), apart from the CLI's commands.
        .target(
            name: "ChunkRelayBench",
            dependencies: [
                "ChunkRelayServer",
                "LocalRuntime",
                "RelayClient",
                "RelayProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "chunkrelay",
            dependencies: [
                "FaultInjection",
                "LocalRuntime",
                "ChunkRelayBench",
                "ChunkRelayServer",
                "ChunkRelayTesting",
                "RelayClient",
                "RelayProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Helpers shared by the test targets.
        // libFuzzer targets (`.ci/fuzz` builds them with -sanitize=fuzzer); plain builds replay input files.
        .target(name: "FuzzSupport", path: "Tests/Fuzz/FuzzSupport"),
        .executableTarget(name: "fuzz-sse", dependencies: ["RelayProtocol", "FuzzSupport"], path: "Tests/Fuzz/FuzzSSE"),
        .executableTarget(name: "fuzz-ingest", dependencies: ["RelayProtocol", "FuzzSupport"], path: "Tests/Fuzz/FuzzIngest"),
        .target(
            name: "TestSupport",
            dependencies: [
                "RelayProtocol",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/TestSupport"
        ),
        .testTarget(
            name: "RelayProtocolTests",
            dependencies: ["RelayProtocol", "TestSupport"]
        ),
        .testTarget(
            name: "RelayClientTests",
            dependencies: [
                "RelayClient",
                "RelayProtocol",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        .testTarget(
            name: "MapRenderTests",
            dependencies: ["MapRender", "RelayProtocol"]
        ),
        .testTarget(
            name: "FunctionKitTests",
            dependencies: [
                "FunctionKit",
                "RelayProtocol",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
        .testTarget(
            name: "GatewayTests",
            dependencies: [
                "TestSupport",
                "FaultInjection",
                "Gateway",
                "RelayProtocol",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "LocalRuntimeTests",
            dependencies: [
                "TestSupport",
                "LocalRuntime",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "TestSupport",
                "chunkrelay",
                "ChunkRelayBench",
                "ChunkRelayServer",
                "ChunkRelayTesting",
                "Gateway",
                "LocalRuntime",
                "RelayClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
            ]
        ),
    ]
)
