import SCMGraph

/// Removes nodes none of whose outputs reach a graph output, initializers nothing reads, graph
/// inputs nothing reads, and value_info of values that no longer exist.
public struct DeadCodeElimination: Pass {
    public let name = "dce"
    /// Whether unused graph inputs are removed too (a changed interface; on by default).
    public var removeInputs: Bool

    public init(removeInputs: Bool = true) { self.removeInputs = removeInputs }

    public func run(_ model: Model, _ context: PassContext, changes: inout [String]) throws -> Model {
        var g = model.graph
        var live = Set(g.outputs.map(\.name))
        var keep = [Bool](repeating: false, count: g.nodes.count)
        for i in try g.topologicalOrder().reversed() {
            let n = g.nodes[i]
            guard n.outputs.contains(where: { !$0.isEmpty && live.contains($0) }) else { continue }
            keep[i] = true
            for v in n.inputs where !v.isEmpty { live.insert(v) }
        }
        for (i, n) in g.nodes.enumerated() where !keep[i] { changes.append("removed \(n.label(index: i))") }
        g.nodes = g.nodes.enumerated().filter { keep[$0.offset] }.map(\.element)
        let before = g.initializers.count
        g.initializers.removeAll { !live.contains($0.meta.name) }
        if g.initializers.count < before { changes.append("removed \(before - g.initializers.count) unused initializers") }
        if removeInputs {
            for vi in g.inputs where !live.contains(vi.name) { changes.append("removed unused input '\(vi.name)'") }
            g.inputs.removeAll { !live.contains($0.name) }
        }
        var defined = Set(g.inputs.map(\.name)).union(g.initializers.map(\.meta.name))
        for n in g.nodes { defined.formUnion(n.outputs) }
        g.valueInfo.removeAll { !defined.contains($0.name) }
        var m = model
        m.graph = g
        return m
    }
}
