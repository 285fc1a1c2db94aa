// swift-tools-version: 6.0
// scm-serve: an HTTP sampling service that embeds scm, in its own package so that it depends on
// the library exactly as a user's service would (by path here, by URL there) and the main
// package's builds do not compile a web server. Built and tested by `make serve-check` (part of
// `make test`); `make load-test` measures it.
import PackageDescription

let package = Package(
    name: "scm-serve",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "scm-serve", targets: ["scm-serve"]),
        .library(name: "SamplingServer", targets: ["SamplingServer"]),
    ],
    // Direct dependencies pinned to exact versions: a service's build does not move under it.
    dependencies: [
        .package(name: "scm", path: "../.."),
        .package(url: "https://github.com/hummingbird-project/hummingbird", exact: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", exact: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-http-types", exact: "1.8.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", exact: "2.4.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio", exact: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-extras", exact: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", exact: "2.37.6"),
    ],
    targets: [
        // The service: model registry, dynamic batcher, routes, metrics (a library, so that its
        // pieces can be tested and embedded).
        .target(
            name: "SamplingServer",
            dependencies: [
                .product(name: "SCM", package: "scm"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
            ]
        ),
        // The command: argument parsing, then one library call.
        .executableTarget(
            name: "scm-serve",
            dependencies: ["SamplingServer", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
    ]
)
