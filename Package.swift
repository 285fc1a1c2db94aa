// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "scm",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "SCM", targets: ["SCM"]),
        .executable(name: "scm-inspect", targets: ["scm-inspect"]),
        .executable(name: "scm-infer", targets: ["scm-infer"]),
        .executable(name: "scm-export", targets: ["scm-export"]),
        .executable(name: "scm-run", targets: ["scm-run"]),
        .executable(name: "scm-train", targets: ["scm-train"]),
        .executable(name: "scm-eval", targets: ["scm-eval"]),
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
        // The system CBLAS (OpenBLAS): SGEMM for Conv, ConvTranspose, Gemm and MatMul.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS/include"),
        // Our own CPU kernels (direct convolution, activations): per-function target attributes
        // chosen once at run time by cpuid, with a portable fallback; no global -march.
        .target(name: "CKernels", path: "Sources/CKernels"),
        .target(
            name: "SCMRuntime",
            dependencies: ["SCMGraph", "CBLAS", "CKernels"]
        ),
        // Graph passes: specialization, constant folding, DCE, CSE and fusions into ai.scm ops.
        .target(name: "SCMOptimize", dependencies: ["SCMGraph", "SCMRuntime"]),
        // TrigFlow sampling: schedules, counter-based noise, the sampler, PNG and .npy output.
        // The system libpng, through its simplified png_image API.
        .systemLibrary(name: "CPNG", path: "Sources/CPNG/include"),
        .target(name: "SCMTrigFlow", dependencies: ["SCMGraph", "SCMRuntime", "SCMOptimize", "CPNG"]),
        // The system zlib (gzipped IDX data files).
        .systemLibrary(name: "CZlib", path: "Sources/CZlib/include"),
        // The trainer: networks as graph builders, data, objectives, checkpoints, the training loop.
        .target(name: "SCMTrain", dependencies: ["SCMGraph", "SCMRuntime", "SCMOptimize", "SCMTrigFlow", "CPNG", "CZlib"]),
        // Sample quality: FD/KID in a trained classifier's features, class histograms, nearest
        // neighbours, energy distance and sliced W1 for 2-D data (scm-eval).
        .target(name: "SCMEval", dependencies: ["SCMGraph", "SCMRuntime", "SCMTrigFlow", "SCMTrain", "CBLAS"]),
        .target(name: "SCM", dependencies: ["SCMGraph", "SCMRuntime", "SCMOptimize", "SCMTrigFlow", "SCMTrain"]),
        // What the executables share: limits checks, UTF-8 arguments, exit statuses.
        .target(
            name: "SCMCommandLine",
            dependencies: ["SCM", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "scm-inspect",
            dependencies: ["SCM", "SCMCommandLine", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "scm-infer",
            dependencies: ["SCM", "SCMCommandLine", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "scm-export",
            dependencies: ["SCM", "SCMCommandLine", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "scm-train",
            dependencies: ["SCM", "SCMCommandLine", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "scm-run",
            dependencies: ["SCM", "SCMCommandLine", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "scm-eval",
            dependencies: ["SCMEval", "SCMCommandLine", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // Helpers the test targets share (repository root, deterministic random tensors).
        .target(name: "TestSupport", dependencies: ["SCMGraph"], path: "Tests/TestSupport"),
        .testTarget(name: "SCMGraphTests", dependencies: ["SCMGraph", "TestSupport"]),
        .testTarget(name: "SCMRuntimeTests", dependencies: ["SCMRuntime", "TestSupport"]),
        // Test-only: counts a thread's heap allocations (interposes malloc in the executable that
        // links it, on Linux), and `make alloc-check`'s release-built check of Session.run(_:into:).
        .target(name: "CAllocCounter", path: "Tests/CAllocCounter"),
        .executableTarget(
            name: "scm-alloc-check",
            dependencies: ["SCMRuntime", "SCMOptimize", "SCMTrigFlow", "TestSupport", "CAllocCounter"],
            path: "Tests/AllocCheck"
        ),
        // The libFuzzer target (LLVMFuzzerTestOneInput): a plain library here; tools/fuzz.sh builds
        // it and the library with -sanitize=fuzzer,address and links them with lld.
        .target(name: "SCMFuzz", dependencies: ["SCMGraph", "SCMRuntime"], path: "Tests/Fuzz"),
        // `make idle-check`: CPU use of a process holding an idle sampler (release build).
        .executableTarget(name: "scm-idle-check", dependencies: ["SCMTrigFlow"], path: "Tests/IdleCheck"),
        .testTarget(name: "SCMOptimizeTests", dependencies: ["SCMOptimize", "SCMTrigFlow", "TestSupport"]),
        .testTarget(name: "SCMTrigFlowTests", dependencies: ["SCMTrigFlow", "CPNG", "TestSupport"]),
        .testTarget(name: "SCMTrainTests", dependencies: ["SCMTrain", "SCMCommandLine", "TestSupport"]),
        .testTarget(name: "SCMEvalTests", dependencies: ["SCMEval", "SCMTrain", "TestSupport"]),
    ]
)
