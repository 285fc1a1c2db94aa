import Foundation
import SCMGraph
import SCMRuntime
@testable import SCMOptimize
import TestSupport

func floatInput(_ name: String, _ shape: [Int]) -> ValueInfo {
    ValueInfo(name, TensorType(elementType: .float, shape: shape.map { .value($0) }))
}

func model(_ nodes: [Node], inits: [Tensor], inputs: [ValueInfo], outputs: [String], opset: Int = 21) -> Model {
    Model(graph: Graph(name: "test", nodes: nodes, initializers: inits, inputs: inputs,
                       outputs: outputs.map { ValueInfo($0, TensorType(elementType: .float, shape: nil)) }),
          opsetImports: [OpsetImport(domain: "", version: opset)])
}

/// Runs `model` on `feeds` (by input name; inputs the model no longer has are skipped).
func run(_ model: Model, _ feeds: [String: Tensor]) throws -> [[Float]] {
    let plan = try Compiler.compile(model)
    let ins = model.graph.inputs.compactMap { feeds[$0.name] }
    return try plan.makeSession(threads: 1).run(ins).map { $0.scalars(as: Float.self)! }
}

/// max |a - b| / max |b| over all outputs.
func relativeError(_ a: [[Float]], _ b: [[Float]]) -> Float {
    var err: Float = 0, scale: Float = 1e-30
    for (x, y) in zip(a, b) {
        for (u, v) in zip(x, y) { err = max(err, abs(u - v)); scale = max(scale, abs(v)) }
    }
    return err / scale
}

/// Applies one pass and returns the result and its change log.
func apply(_ pass: any Pass, _ m: Model, _ context: PassContext = PassContext()) throws -> (Model, [String]) {
    var changes: [String] = []
    let out = try pass.run(m, context, changes: &changes)
    return (out, changes)
}

func ops(_ m: Model) -> [String] { m.graph.nodes.map { $0.domain.isEmpty ? $0.opType : "\($0.domain):\($0.opType)" } }

/// y = x * Sigmoid(x) as two nodes named after `out`.
func siluNodes(_ x: String, _ out: String) -> [Node] {
    [Node("Sigmoid", inputs: [x], outputs: ["\(out)_s"], name: "\(out)_sig"),
     Node("Mul", inputs: [x, "\(out)_s"], outputs: [out], name: out)]
}
