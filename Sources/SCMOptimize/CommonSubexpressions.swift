import SCMGraph

/// Merges identical constants (same dtype, shape and bytes) and identical nodes (same op,
/// domain, inputs and attributes), repeating until nothing changes: reads of a duplicate are
/// redirected to the first copy, which `dce` then leaves as the only one. Graph outputs are never
/// renamed, so a duplicate that is a graph output stays.
public struct CommonSubexpressions: Pass {
    public let name = "cse"

    public init() {}

    public func run(_ model: Model, _ context: PassContext, changes: inout [String]) throws -> Model {
        var g = model.graph
        let outputs = Set(g.outputs.map(\.name))
        let inputs = Set(g.inputs.map(\.name))
        var rename: [String: String] = [:]

        // Constants: bucket by (dtype, shape, bytes).
        var firstConst: [ConstKey: String] = [:]
        for t in g.initializers where !outputs.contains(t.meta.name) && !inputs.contains(t.meta.name) {
            guard let s = t.storage else { continue }
            let key = ConstKey(dtype: t.dtype, shape: t.shape, bytes: Array(s.bytes))
            if let first = firstConst[key] {
                rename[t.meta.name] = first
            } else {
                firstConst[key] = t.meta.name
            }
        }
        if !rename.isEmpty { changes.append("merged \(rename.count) duplicate constants") }
        apply(rename, to: &g)

        // Nodes, in topological order so that merged inputs make their readers identical.
        var round = 0
        while true {
            round += 1
            var firstNode: [String: Node] = [:]
            var merged: [String: String] = [:]
            for i in try g.topologicalOrder() {
                let n = g.nodes[i]
                guard let key = Self.key(n), !n.outputs.contains(where: { outputs.contains($0) }) else { continue }
                if let first = firstNode[key] {
                    for (a, b) in zip(n.outputs, first.outputs) where !a.isEmpty && !b.isEmpty { merged[a] = b }
                    changes.append("merged \(n.label(index: i)) into '\(first.name.isEmpty ? first.outputs[0] : first.name)'")
                } else {
                    firstNode[key] = n
                }
            }
            if merged.isEmpty || round > 64 { break }
            apply(merged, to: &g)
            // The duplicates now have no readers; drop them here so the next round sees no copies.
            g.nodes.removeAll { n in n.outputs.allSatisfy { $0.isEmpty || merged[$0] != nil } }
        }
        var m = model
        m.graph = g
        return m
    }

    /// Redirects reads of each key of `rename` to its value.
    private func apply(_ rename: [String: String], to g: inout Graph) {
        guard !rename.isEmpty else { return }
        for i in g.nodes.indices {
            g.nodes[i].inputs = g.nodes[i].inputs.map { rename[$0] ?? $0 }
        }
    }

    /// The identity of a node's computation, or nil when it has attributes we do not compare
    /// (subgraphs, tensors).
    static func key(_ n: Node) -> String? {
        var parts = [n.domain, n.opType, n.inputs.joined(separator: "\u{1}"), String(n.outputs.count)]
        for a in n.attributes.sorted(by: { $0.name < $1.name }) {
            let v: String
            switch a.value {
            case .float(let f): v = "f\(f.bitPattern)"
            case .int(let i): v = "i\(i)"
            case .string(let s): v = "s\(s)"
            case .floats(let f): v = "F\(f.map(\.bitPattern))"
            case .ints(let i): v = "I\(i)"
            case .strings(let s): v = "S\(s)"
            case .tensor, .tensors, .opaque: return nil
            }
            parts.append("\(a.name)=\(v)")
        }
        return parts.joined(separator: "\u{2}")
    }
}

private struct ConstKey: Hashable {
    let dtype: DType
    let shape: [Int]
    let bytes: [UInt8]
}
