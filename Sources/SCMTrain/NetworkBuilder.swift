import Foundation
import SCMGraph
import SCMTrigFlow

/// Builds an IR graph node by node: value names are unique and readable (`prefix/op_k`), parameters
/// become initializers under the names given, initial values come from a seeded generator.
final class GraphBuilder {
    private(set) var nodes: [Node] = []
    private(set) var parameters: [Tensor] = []
    private var constants: [Tensor] = []
    private var counter = 0
    private var scope: [String] = []
    private let rng: Philox4x32
    private var draws: UInt32 = 0
    /// Values given for parameters by name (a checkpoint's), used instead of the initial ones.
    let given: [String: Tensor]

    init(seed: UInt64, given: [String: Tensor] = [:]) {
        rng = Philox4x32(key: (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)))
        self.given = given
    }

    /// Runs `body` with names prefixed by `name/`.
    func scoped<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
        scope.append(name)
        defer { scope.removeLast() }
        return try body()
    }

    private var prefix: String { scope.isEmpty ? "" : scope.joined(separator: "/") + "/" }

    private func fresh(_ base: String) -> String {
        counter += 1
        return "\(prefix)\(base)_\(counter)"
    }

    /// Emits `op` and returns its output.
    @discardableResult
    func op(_ type: String, _ inputs: [String], _ attributes: [Attribute] = [], domain: String = "", name: String? = nil) -> String {
        let out = name ?? fresh(type.lowercased())
        nodes.append(Node(type, inputs: inputs, outputs: [out], name: out, domain: domain, attributes: attributes))
        return out
    }

    /// A constant (not a parameter) as a Constant node.
    func constant(_ values: [Float], _ shape: [Int]) throws -> String {
        let out = fresh("const")
        nodes.append(Node("Constant", inputs: [], outputs: [out], name: out,
                          attributes: [Attribute("value", .tensor(try Tensor(shape: shape, scalars: values)))]))
        return out
    }

    /// An int64 constant (shapes, axes) as an initializer: never a float parameter.
    func ints(_ values: [Int]) throws -> String {
        let name = fresh("ints")
        constants.append(try Tensor(shape: [values.count], scalars: values.map(Int64.init), name: name))
        return name
    }

    /// A parameter named `prefix + name`, initialized by `initial(count)` unless given.
    func parameter(_ name: String, _ shape: [Int], _ initial: (Int) -> [Float]) throws -> String {
        let full = prefix + name
        let n = shape.reduce(1, *)
        if let g = given[full] {
            guard g.shape == shape, g.dtype == .float else {
                throw TrainError(at: "parameter '\(full)'", "has shape \(g.shape) (\(g.dtype)), the network needs \(shape) (float)")
            }
            var t = g
            t.meta.name = full
            parameters.append(t)
        } else {
            parameters.append(try Tensor(shape: shape, scalars: initial(n), name: full))
        }
        return full
    }

    /// `n` normal draws times `std` (Philox + Box-Muller, a stream of its own per parameter).
    func normal(_ n: Int, std: Float) -> [Float] {
        draws += 1
        var out = [Float](repeating: 0, count: n)
        out.withUnsafeMutableBufferPointer { buf in
            GaussianNoise.fill(buf.baseAddress!, count: n, seed: UInt64(rng.key.0) | UInt64(rng.key.1) << 32, sample: draws, step: 0xFFFF_FFFF)
        }
        return out.map { $0 * std }
    }

    /// The graph: `inputs`, `outputs`, the parameters and int constants as initializers.
    func model(name: String, inputs: [ValueInfo], outputs: [ValueInfo]) -> Model {
        let graph = Graph(name: name, nodes: nodes, initializers: parameters + constants, inputs: inputs, outputs: outputs)
        var model = Model(graph: graph, opsetImports: [OpsetImport(domain: "", version: 21)])
        model.declareSCMDomainIfUsed()
        return model
    }
}

/// An error of the trainer (and of the evaluation, `EvalError`): what is wrong and where (a flag,
/// a file, a parameter, a step).
public struct TrainError: Error, CustomStringConvertible, Sendable {
    public var location: String
    public var message: String
    public init(at location: String, _ message: String) {
        self.location = location
        self.message = message
    }
    public var description: String { location.isEmpty ? message : "\(location): \(message)" }
}
