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

/// A conv / matmul / norm / softmax graph big enough that every kernel splits into many chunks.
public func heavyModel() throws -> Model {
    let c = 16, m = 24
    var inits = [try tensor([m, c, 3, 3], seed: 1, name: "w"), try tensor([m], seed: 2, name: "b"),
                 try tensor([m], seed: 3, name: "gs"), try tensor([m], seed: 4, name: "gb"),
                 try tensor([40 * 40, 64], seed: 5, name: "proj")]
    inits.append(try Tensor(shape: [3], scalars: [Int64(0), Int64(m), Int64(-1)], name: "shape3"))
    let nodes = [
        Node("Conv", inputs: ["x", "w", "b"], outputs: ["c"], name: "conv", attributes: [Attribute("pads", .ints([1, 1, 1, 1]))]),
        Node("GroupNormalization", inputs: ["c", "gs", "gb"], outputs: ["g"], name: "gn",
             attributes: [Attribute("num_groups", .int(4)), Attribute("epsilon", .float(1e-5))]),
        Node("Sigmoid", inputs: ["g"], outputs: ["s"], name: "sig"),
        Node("Mul", inputs: ["g", "s"], outputs: ["silu"], name: "silu"),
        Node("Reshape", inputs: ["silu", "shape3"], outputs: ["r"], name: "flat"),
        Node("MatMul", inputs: ["r", "proj"], outputs: ["p"], name: "proj"),
        Node("Softmax", inputs: ["p"], outputs: ["y"], name: "softmax", attributes: [Attribute("axis", .int(-1))]),
    ]
    let graph = Graph(name: "heavy", nodes: nodes, initializers: inits,
                      inputs: [ValueInfo("x", TensorType(elementType: .float, shape: [.param("N"), .value(c), .value(40), .value(40)]))],
                      outputs: [ValueInfo("y", TensorType(elementType: .float, shape: nil))])
    return Model(graph: graph)
}
