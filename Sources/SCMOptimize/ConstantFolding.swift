import SCMGraph
import SCMRuntime

/// Replaces every node whose outputs are known at optimization time by initializers holding
/// those outputs, computed by the runtime's own kernels (so they are bitwise what the unfolded
/// graph computes). Shape nodes of tensors with static shapes fold too.
///
/// Size guard: a node folds only when each output is at most `maxBytes` or no larger than the
/// constant inputs it reads, so folding never inflates the file (an `Expand` of a scalar to a
/// large tensor stays an `Expand`). Nodes left unused are removed by `dce`.
public struct ConstantFolding: Pass {
    public let name = "fold"
    /// Outputs above this size fold only when their inputs were as large (default 1 MiB).
    public var maxBytes: Int

    public init(maxBytes: Int = 1 << 20) { self.maxBytes = maxBytes }

    public func run(_ model: Model, _ context: PassContext, changes: inout [String]) throws -> Model {
        let analysis = try context.analyze(model)
        var g = model.graph
        let initNames = Set(g.initializers.map(\.meta.name))
        var folded = Set<Int>()
        for i in analysis.order {
            let node = g.nodes[i]
            let outs = node.outputs.filter { !$0.isEmpty }
            guard !outs.isEmpty, outs.allSatisfy({ analysis.constants[$0] != nil }) else { continue }
            let inBytes = node.inputs.reduce(0) { acc, n in acc + (analysis.constants[n]?.byteCount ?? 0) }
            let limit = max(maxBytes, inBytes)
            guard outs.allSatisfy({ analysis.constants[$0]!.byteCount <= limit }) else {
                changes.append("kept \(node.label(index: i)): output larger than the fold limit of \(limit) bytes")
                continue
            }
            folded.insert(i)
        }
        guard !folded.isEmpty else { return model }
        // Materialize the folded values something still reads: kept nodes and graph outputs.
        var needed: [String] = []
        var seen = Set<String>()
        for (i, n) in g.nodes.enumerated() where !folded.contains(i) {
            for v in n.inputs where !v.isEmpty && !seen.contains(v) { seen.insert(v); needed.append(v) }
        }
        for o in g.outputs where !seen.contains(o.name) { seen.insert(o.name); needed.append(o.name) }
        var producedByFolded = Set<String>()
        for i in folded { producedByFolded.formUnion(g.nodes[i].outputs) }
        for v in needed where producedByFolded.contains(v) && !initNames.contains(v) {
            guard var t = analysis.constants[v] else { continue }
            t.meta = TensorMeta(name: v)
            g.initializers.append(t)
        }
        for i in folded.sorted() {
            changes.append("folded \(g.nodes[i].label(index: i))")
        }
        g.nodes = g.nodes.enumerated().filter { !folded.contains($0.offset) }.map(\.element)
        var m = model
        m.graph = g
        return m
    }
}
