import Foundation
import SCMGraph

/// The repository root, found from this file's path.
public let repoRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// Deterministic pseudo-random floats in [-2, 2) (a fixed LCG: tests must not depend on the
/// system RNG).
public func randomFloats(_ n: Int, seed: UInt64) -> [Float] {
    var s = seed &* 6364136223846793005 &+ 1442695040888963407
    return (0..<n).map { _ in
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: s >> 11) % 2000 - 1000) / 500
    }
}

/// A float tensor of `shape` filled by `randomFloats`.
public func tensor(_ shape: [Int], seed: UInt64, name: String = "") throws -> Tensor {
    try Tensor(shape: shape, scalars: randomFloats(shape.reduce(1, *), seed: seed), name: name)
}
