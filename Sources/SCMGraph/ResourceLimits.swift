/// Limits on what an untrusted model may make this process read, hold, compute at compile time
/// and plan, in one place: the loader (`ModelFile.load`), the compiler (`Compiler.compile`), the
/// sampler (`Sampler.Options.limits`) and the command-line tools (`--max-*` flags) all take one.
///
/// The defaults fit a service that loads models from strangers beside its own data: anything
/// a real model needs passes (the largest TrigFlow UNet we train plans about 170 MiB), and a file
/// whose shapes would need a terabyte fails with a `.limitExceeded` error naming the limit before
/// anything that large is allocated.
public struct ResourceLimits: Sendable, Equatable {
    /// Largest model (or tensor) file accepted, in bytes. protobuf caps a message at 2 GiB.
    public var maxFileBytes: Int = Int(Int32.max)
    /// Most nodes in the graph.
    public var maxNodes: Int = 1_000_000
    /// Most dimensions of a tensor or declared shape.
    public var maxRank: Int = 64
    /// Most bytes read from external data files, in total.
    public var maxExternalBytes: Int = 64 << 30
    /// Most elements of any one tensor: initializers, graph inputs and every value a plan computes.
    /// The runtime's own cap (`Compiler.maxTensorElements`, 2^30) applies above it.
    public var maxTensorElements: Int = 1 << 30
    /// Most bytes of constants in total: initializers (inline and external) and tensor attributes
    /// when loading; with the values the compiler evaluates at compile time when compiling.
    public var maxInitializerBytes: Int = 16 << 30
    /// Longest chain of nodes from a graph input to a graph output (a node that reads nothing
    /// computed by another node has depth 1).
    public var maxGraphDepth: Int = 100_000
    /// Most bytes of planned activation memory of one plan (arena plus scratch) for the batch it
    /// is compiled for.
    public var maxActivationBytes: Int = 16 << 30

    /// The defaults.
    public init() {}

    /// The defaults.
    public static let standard = ResourceLimits()

    /// `nil` when every limit is at least 1, else the name and value of the first that is not.
    public var invalidLimit: (name: String, value: Int)? {
        let all: [(String, Int)] = [("max-file-bytes", maxFileBytes), ("max-nodes", maxNodes), ("max-rank", maxRank),
                                    ("max-external-bytes", maxExternalBytes), ("max-tensor-elements", maxTensorElements),
                                    ("max-initializer-bytes", maxInitializerBytes), ("max-graph-depth", maxGraphDepth),
                                    ("max-activation-bytes", maxActivationBytes)]
        return all.first { $0.1 < 1 }
    }
}

/// The loader's name for `ResourceLimits` (the limits it enforces before and after protobuf-c).
public typealias LoadLimits = ResourceLimits

extension Model {
    /// Throws `.limitExceeded` when the model exceeds `limits`: node count, graph depth, the
    /// elements of any initializer or tensor attribute, or their total bytes. Cheap (linear in
    /// the graph); `ModelFile.load` and `Compiler.compile` call it.
    public func checkResources(_ limits: ResourceLimits) throws {
        let g = graph
        guard g.nodes.count <= limits.maxNodes else {
            throw ModelError(.limitExceeded, at: "graph", "has \(g.nodes.count) nodes, more than the limit of \(limits.maxNodes) (max-nodes)")
        }
        var total = 0
        func count(_ t: Tensor, _ at: @autoclosure () -> String) throws {
            guard t.elementCount <= limits.maxTensorElements else {
                throw ModelError(.limitExceeded, at: at(), "has \(t.elementCount) elements, more than the limit of \(limits.maxTensorElements) (max-tensor-elements)")
            }
            total += t.byteCount
            guard total <= limits.maxInitializerBytes else {
                throw ModelError(.limitExceeded, at: at(), "brings the constants to \(total) bytes, over the limit of \(limits.maxInitializerBytes) (max-initializer-bytes)")
            }
        }
        for (i, t) in g.initializers.enumerated() { try count(t, "initializer #\(i) '\(t.meta.name)'") }
        for (i, n) in g.nodes.enumerated() {
            for a in n.attributes {
                switch a.value {
                case .tensor(let t): try count(t, "\(n.label(index: i)) attribute '\(a.name)'")
                case .tensors(let ts): for t in ts { try count(t, "\(n.label(index: i)) attribute '\(a.name)'") }
                default: break
                }
            }
        }
        if let depth = try? g.depth(), depth.depth > limits.maxGraphDepth {
            throw ModelError(.limitExceeded, at: g.nodes[depth.deepest].label(index: depth.deepest),
                             "ends a chain of \(depth.depth) nodes, more than the limit of \(limits.maxGraphDepth) (max-graph-depth)")
        }
    }
}

extension Graph {
    /// The longest chain of nodes, each reading an output of the one before, and the node that
    /// ends it (0 and 0 for an empty graph). Throws `.cycle` for a graph that is not a DAG.
    public func depth() throws -> (depth: Int, deepest: Int) {
        var producer: [String: Int] = [:]
        for (i, n) in nodes.enumerated() { for o in n.outputs where !o.isEmpty { producer[o] = i } }
        var depth = [Int](repeating: 1, count: nodes.count)
        var best = (depth: 0, deepest: 0)
        for i in try topologicalOrder() {
            for name in nodes[i].inputs where !name.isEmpty {
                if let p = producer[name] { depth[i] = max(depth[i], depth[p] + 1) }
            }
            if depth[i] > best.depth { best = (depth[i], i) }
        }
        return best
    }
}
