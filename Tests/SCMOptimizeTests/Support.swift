import Foundation
import SCMGraph
import SCMRuntime
@testable import SCMOptimize
import Testing
import TestSupport

func floatInput(_ name: String, _ shape: [Int]) -> ValueInfo {
    ValueInfo(name, TensorType(elementType: .float, shape: shape.map { .value($0) }))
}

func model(_ nodes: [Node], inits: [Tensor], inputs: [ValueInfo], outputs: [String], opset: Int = 21) -> Model {
    Model(graph: Graph(name: "test", nodes: nodes, initializers: inits, inputs: inputs,
                       outputs: outputs.map { ValueInfo($0, TensorType(elementType: .float, shape: nil)) }),
          opsetImports: [OpsetImport(domain: "", version: opset)])
}

/// One output of `run`: its shape and values. `==` compares shapes and the values' bits (so
/// -0.0 differs from 0.0, and NaN equals NaN only with the same payload).
struct Output: Equatable, CustomStringConvertible {
    let shape: [Int]
    let values: [Float]

    static func == (a: Output, b: Output) -> Bool {
        a.shape == b.shape && a.values.map(\.bitPattern) == b.values.map(\.bitPattern)
    }

    var description: String { "\(shape) \(values.prefix(8))\(values.count > 8 ? "..." : "")" }
}

/// Runs `model` on `feeds` (by input name; inputs the model no longer has are skipped).
func run(_ model: Model, _ feeds: [String: Tensor]) throws -> [Output] {
    let plan = try Compiler.compile(model)
    let ins = model.graph.inputs.compactMap { feeds[$0.name] }
    return try plan.makeSession(threads: 1).run(ins).map { t in
        guard let values = t.scalars(as: Float.self) else { throw RuntimeError(.unsupported, at: "output", "is \(t.dtype), not float") }
        return Output(shape: t.shape, values: values)
    }
}

/// max |a - b| / max |b| over all outputs. Infinity (so any bound fails, with an issue recorded
/// saying why) when the outputs differ in number or shape, when there are none or they hold no
/// values, or when a difference is NaN.
func relativeError(_ a: [Output], _ b: [Output], sourceLocation: SourceLocation = #_sourceLocation) -> Float {
    guard a.count == b.count, !a.isEmpty else {
        Issue.record("\(a.count) outputs vs \(b.count)", sourceLocation: sourceLocation)
        return .infinity
    }
    var err: Float = 0, scale: Float = 1e-30
    for (i, (x, y)) in zip(a, b).enumerated() {
        guard x.shape == y.shape, x.values.count == y.values.count, !x.values.isEmpty else {
            Issue.record("output \(i): shape \(x.shape) (\(x.values.count) values) vs \(y.shape) (\(y.values.count) values)",
                         sourceLocation: sourceLocation)
            return .infinity
        }
        for (u, v) in zip(x.values, y.values) {
            let d = abs(u - v)
            guard !d.isNaN else {
                Issue.record("output \(i): NaN difference (\(u) vs \(v))", sourceLocation: sourceLocation)
                return .infinity
            }
            err = max(err, d)
            scale = max(scale, abs(v))
        }
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
