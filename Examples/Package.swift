// swift-tools-version: 6.0
// An example service that embeds scm: it depends on the library by path, as another Swift
// package would by URL. Built and run by `make example` (part of `make test`).
import PackageDescription

let package = Package(
    name: "scm-example",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "scm", path: ".."),
    ],
    targets: [
        .executableTarget(name: "sample-grid", dependencies: [.product(name: "SCM", package: "scm")]),
    ]
)
