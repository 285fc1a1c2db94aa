import SCMGraph
import SCMRuntime

/// Folds a per-channel constant added after a convolution into the Conv's bias: `Add(Conv(X, W
/// [, B]), c)`, where c is known at compile time and holds one value per output channel (shape
/// `[M, 1, 1]`, `[1, M, 1, 1]`, or one value for all), becomes `Conv(X, W, B + c)`. That is how
/// networks that keep the bias out of the convolution export it (EDM's `conv2d(x, w).add_(b.reshape(1,
/// -1, 1, 1))`), and the Conv it leaves is one the conv epilogue fusion can extend with the residual
/// add and SiLU behind it. The kernel adds the bias before the products rather than after them, so
/// results agree with the unfused graph to rounding, not bitwise.
public struct FoldConvBias: Pass {
    public let name = "fold-conv-bias"

    public init() {}

    public func run(_ model: Model, _ context: PassContext, changes: inout [String]) throws -> Model {
        let analysis = try context.analyze(model)
        let g = model.graph
        let ud = UseDef(g)
        var rewrite = FusionRewrite(g)
        var biases: [Tensor] = []
        for i in analysis.order where !rewrite.isClaimed(i) {
            let conv = g.nodes[i]
            guard conv.op == .conv, conv.outputs.count == 1, (2...3).contains(conv.inputs.count),
                  let out = analysis.specs[conv.outputs[0]], out.dtype == .float, out.rank >= 3,
                  let use = ud.soleConsumer(conv.outputs[0]), g.nodes[use.node].op == .add,
                  g.nodes[use.node].inputs.count == 2, !rewrite.isClaimed(use.node) else { continue }
            let add = g.nodes[use.node], addend = add.inputs[1 - use.input]
            guard addend != conv.outputs[0], analysis.specs[add.outputs[0]] == out,
                  var bias = analysis.constants[addend].flatMap({ perChannel($0, of: out) }) else { continue }
            if conv.inputs.count == 3, !conv.inputs[2].isEmpty {
                guard let old = analysis.constants[conv.inputs[2]]?.scalars(as: Float.self), old.count == bias.count else { continue }
                bias = zip(old, bias).map { $0 + $1 }
            }
            let biasName = rewrite.freshName("\(conv.name.isEmpty ? "conv" : conv.name)_bias")
            var folded = conv
            folded.inputs = [conv.inputs[0], conv.inputs[1], biasName]
            folded.outputs = add.outputs
            guard rewrite.fuse([i, use.node], into: folded) else { continue }
            biases.append(try Tensor(shape: [bias.count], scalars: bias, name: biasName))
            changes.append("folded Add '\(add.name)' of '\(addend)' into the bias of Conv '\(conv.name)'")
        }
        var folded = rewrite.apply(to: model)
        folded.graph.initializers += biases
        return folded
    }

    /// The M values of `c` per output channel of a convolution output `out` ([N, M, spatial...])
    /// when `c` broadcasts to it that way: every dimension but the channel's is 1.
    func perChannel(_ c: Tensor, of out: TensorSpec) -> [Float]? {
        guard c.dtype == .float, c.shape.count <= out.rank, let values = c.scalars(as: Float.self) else { return nil }
        let m = out.shape[1]
        let aligned = Array(repeating: 1, count: out.rank - c.shape.count) + c.shape
        guard aligned.enumerated().allSatisfy({ $0.offset == 1 || $0.element == 1 }) else { return nil }
        switch aligned[1] {
        case m: return values
        case 1: return Array(repeating: values[0], count: m)
        default: return nil
        }
    }
}
