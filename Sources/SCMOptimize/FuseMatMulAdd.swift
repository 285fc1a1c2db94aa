import SCMGraph
import SCMRuntime

/// Fuses `Add(MatMul(A, B), C)` with 2-D A [M, K] and B [K, N] and a bias C that broadcasts to
/// [M, N] (ONNX Gemm's unidirectional rule) into one standard `Gemm(A, B, C)`: the bias is the
/// GEMM's accumulator start instead of a second pass over the output.
public struct FuseMatMulAdd: Pass {
    public let name = "fuse-gemm"

    public init() {}

    public func run(_ model: Model, _ context: PassContext, changes: inout [String]) throws -> Model {
        let analysis = try context.analyze(model)
        let g = model.graph
        let ud = UseDef(g)
        var rewrite = FusionRewrite(g)
        for i in analysis.order where !rewrite.isClaimed(i) {
            let mm = g.nodes[i]
            guard mm.op == .matMul, mm.inputs.count == 2, mm.outputs.count == 1,
                  let a = analysis.specs[mm.inputs[0]], let b = analysis.specs[mm.inputs[1]], a.dtype == .float,
                  a.rank == 2, b.rank == 2, let use = ud.soleConsumer(mm.outputs[0]) else { continue }
            let add = g.nodes[use.node]
            guard add.op == .add, add.inputs.count == 2,
                  let out = analysis.specs[mm.outputs[0]], analysis.specs[add.outputs[0]] == out else { continue }
            let bias = add.inputs[1 - use.input]
            guard bias != mm.outputs[0], let c = analysis.specs[bias], c.dtype == .float, c.rank <= 2,
                  let al = c.aligned(to: 2), [1, out.shape[0]].contains(al[0]), [1, out.shape[1]].contains(al[1]) else { continue }
            let node = Node("Gemm", inputs: [mm.inputs[0], mm.inputs[1], bias], outputs: add.outputs,
                            name: rewrite.freshName("gemm_\(add.outputs[0])"))
            if rewrite.fuse([i, use.node], into: node) {
                changes.append("fused \(mm.label(index: i)) and \(add.label(index: use.node)) into Gemm '\(node.name)'")
            }
        }
        return rewrite.apply(to: model)
    }
}
