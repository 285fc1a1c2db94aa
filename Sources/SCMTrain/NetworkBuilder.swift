import Foundation
import SCMGraph
import SCMTrigFlow

/// The networks' builder: `GraphBuilder` plus parameters, which become initializers under the
/// names given, initialized by a seeded generator unless a checkpoint's values are given.
final class NetworkBuilder: GraphBuilder {
    private let rng: Philox4x32
    private var draws: UInt32 = 0
    /// Values given for parameters by name (a checkpoint's), used instead of the initial ones.
    let given: [String: Tensor]
    /// The parameters, in the order they were made.
    private(set) var parameters: [Tensor] = []

    init(seed: UInt64, given: [String: Tensor] = [:]) {
        rng = Philox4x32(key: (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)))
        self.given = given
        super.init()
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
        addInitializer(parameters[parameters.count - 1])
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
}

/// Errors of the trainer and of the evaluation (`EvalError`): the library's one error type,
/// `SCMError`, usually `.invalidArgument` at a setting, a file or a step.
public typealias TrainError = SCMError
