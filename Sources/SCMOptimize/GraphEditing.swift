import SCMGraph
import SCMRuntime

/// Use-def information of a graph, computed once per rewrite round.
struct UseDef {
    /// For each value, the (node index, input position) pairs that read it.
    var consumers: [String: [(node: Int, input: Int)]] = [:]
    /// The node that writes each value.
    var producer: [String: Int] = [:]
    /// Names the graph exposes as outputs (never renamed or removed).
    var graphOutputs: Set<String>

    init(_ graph: Graph) {
        graphOutputs = Set(graph.outputs.map(\.name))
        for (i, n) in graph.nodes.enumerated() {
            for (k, v) in n.inputs.enumerated() where !v.isEmpty { consumers[v, default: []].append((i, k)) }
            for o in n.outputs where !o.isEmpty { producer[o] = i }
        }
    }

    /// The single node reading `value`, when exactly one input of one node reads it and the
    /// value is not a graph output (so a fusion may absorb it).
    func soleConsumer(_ value: String) -> (node: Int, input: Int)? {
        guard !graphOutputs.contains(value), let c = consumers[value], c.count == 1 else { return nil }
        return c[0]
    }

    func uses(_ value: String) -> Int { (consumers[value]?.count ?? 0) + (graphOutputs.contains(value) ? 1 : 0) }
}

extension Graph {
    /// Removes the nodes at `removed` and inserts each `inserted[i]` where node `i` was. A fusion
    /// inserts its node where the last node it replaces was: everything it reads is defined by
    /// then, so a topological order stays one.
    mutating func rewrite(removing removed: Set<Int>, inserting inserted: [Int: [Node]]) {
        var out: [Node] = []
        for (i, n) in nodes.enumerated() {
            if let add = inserted[i] { out.append(contentsOf: add) }
            if !removed.contains(i) { out.append(n) }
        }
        nodes = out
    }
}

/// Collects the rewrites of a fusion pass over one analysis of the graph: each fusion claims the
/// nodes it replaces (no node is claimed twice) and inserts its node where the last of them was.
struct FusionRewrite {
    var graph: Graph
    private var names: NameAllocator
    private var claimed = Set<Int>()
    private var inserted: [Int: [Node]] = [:]

    init(_ graph: Graph) {
        self.graph = graph
        names = NameAllocator(avoiding: graph)
    }

    func isClaimed(_ node: Int) -> Bool { claimed.contains(node) }

    /// A value or node name not yet used in the graph.
    mutating func freshName(_ base: String) -> String { names.fresh(base) }

    /// Replaces the nodes `removed` by `node`; false (and nothing done) when one is already claimed.
    mutating func fuse(_ removed: Set<Int>, into node: Node) -> Bool {
        guard let last = removed.max(), removed.isDisjoint(with: claimed) else { return false }
        claimed.formUnion(removed)
        inserted[last] = [node]
        return true
    }

    /// The model with every fusion applied (`model` itself when there was none), declaring our
    /// domain when a fused node belongs to it.
    func apply(to model: Model) -> Model {
        guard !inserted.isEmpty else { return model }
        var g = graph
        g.rewrite(removing: claimed, inserting: inserted)
        var m = model
        m.graph = g
        m.declareSCMDomainIfUsed()
        return m
    }
}


/// Names of our fused ops.
public enum FusedOps {
    /// The domain of the ops the optimizer's fusions produce.
    public static let domain = Model.scmDomain
}

/// Float tensors the passes compute at optimization time (combined per-channel constants).
enum Constants {
    static func float(_ t: Tensor) -> [Float]? { t.scalars(as: Float.self) }

    static func make(_ name: String, _ shape: [Int], _ values: [Float]) throws -> Tensor {
        try Tensor(shape: shape, scalars: values, name: name)
    }
}

extension TensorSpec {
    /// The shape right-aligned to `rank` with leading 1s.
    func aligned(to rank: Int) -> [Int]? {
        shape.count <= rank ? Array(repeating: 1, count: rank - shape.count) + shape : nil
    }
}
