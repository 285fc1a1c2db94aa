// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "scm",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "SCM", targets: ["SCM"]),
        .executable(name: "scm-inspect", targets: ["scm-inspect"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // protoc-c output for schemas/model.proto (regenerate with tools/gen-proto.sh), linked to
        // the system libprotobuf-c.
        .target(
            name: "CModelProto",
            path: "Sources/CModelProto",
            linkerSettings: [.linkedLibrary("protobuf-c")]
        ),
        .target(name: "SCMGraph", dependencies: ["CModelProto"]),
        .target(name: "SCM", dependencies: ["SCMGraph"]),
        .executableTarget(
            name: "scm-inspect",
            dependencies: ["SCM", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(name: "SCMGraphTests", dependencies: ["SCMGraph"]),
    ]
)
