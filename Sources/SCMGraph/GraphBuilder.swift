import Foundation

/// Unique names for the values and nodes a transform adds to a graph: the one place names are
/// made fresh. `fresh(base)` is `base` when nothing uses it yet, else `base_k` with the smallest
/// k >= 1 not in use.
public struct NameAllocator: Sendable {
    private var taken: Set<String>
    /// The next suffix to try per base (names only grow, so a base never needs an earlier one).
    private var next: [String: Int] = [:]

    /// An allocator that avoids `names`.
    public init<S: Sequence>(reserving names: S) where S.Element == String {
        taken = Set(names)
    }

    public init() { taken = [] }

    /// An allocator that avoids every name `graph` uses: values, node names, initializers, inputs
    /// and outputs.
    public init(avoiding graph: Graph) {
        var names = Set<String>()
        for n in graph.nodes {
            names.formUnion(n.inputs)
            names.formUnion(n.outputs)
            names.insert(n.name)
        }
        names.formUnion(graph.initializers.map(\.meta.name))
        names.formUnion(graph.inputs.map(\.name))
        names.formUnion(graph.outputs.map(\.name))
        names.remove("")
        taken = names
    }

    /// A name derived from `base` that is not in use, now reserved.
    public mutating func fresh(_ base: String) -> String {
        guard taken.contains(base) else {
            taken.insert(base)
            return base
        }
        var k = next[base, default: 1]
        while taken.contains("\(base)_\(k)") { k += 1 }
        next[base] = k + 1
        let name = "\(base)_\(k)"
        taken.insert(name)
        return name
    }

    /// Marks `name` as used (a name given explicitly).
    public mutating func reserve(_ name: String) { taken.insert(name) }

    /// Whether `name` is in use.
    public func isTaken(_ name: String) -> Bool { taken.contains(name) }
}

/// Builds graph nodes: the one node emitter of the library (networks, losses, the training step,
/// contract attachment). Names come from a `NameAllocator`, so nothing the builder adds collides
/// with the graph it extends; `scoped` prefixes readable names (`enc/conv_3`).
open class GraphBuilder {
    public private(set) var nodes: [Node] = []
    /// Initializers added by name (parameters), then the int constants (`ints`).
    public var initializers: [Tensor] { added + intConstants }
    private var added: [Tensor] = []
    private var intConstants: [Tensor] = []
    public var names: NameAllocator
    private var scope: [String] = []
    private var counter = 0

    /// A builder for a new graph, or for nodes added to one whose names `names` avoids.
    public init(names: NameAllocator = NameAllocator()) {
        self.names = names
    }

    /// Runs `body` with names prefixed by `name/`.
    public func scoped<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
        scope.append(name)
        defer { scope.removeLast() }
        return try body()
    }

    /// The current scope's prefix (`a/b/`, or empty).
    public var prefix: String { scope.isEmpty ? "" : scope.joined(separator: "/") + "/" }

    /// A fresh numbered name in the current scope: `prefix/base_k`, k counting the builder's names.
    public func fresh(_ base: String) -> String {
        counter += 1
        return names.fresh("\(prefix)\(base)_\(counter)")
    }

    /// Emits `type` and returns its (single) output: `name` when given, else a fresh one.
    @discardableResult
    public func op(_ type: String, _ inputs: [String], _ attributes: [Attribute] = [], domain: String = "", name: String? = nil) -> String {
        let out: String
        if let name {
            names.reserve(name)
            out = name
        } else {
            out = fresh(type.lowercased())
        }
        nodes.append(Node(type, inputs: inputs, outputs: [out], name: out, domain: domain, attributes: attributes))
        return out
    }

    /// Appends a node built elsewhere (its names reserved).
    public func append(_ node: Node) {
        for o in node.outputs { names.reserve(o) }
        names.reserve(node.name)
        nodes.append(node)
    }

    /// A float constant as a Constant node (a scalar when `shape` is empty).
    public func constant(_ values: [Float], _ shape: [Int]) throws -> String {
        let out = fresh("const")
        nodes.append(Node("Constant", inputs: [], outputs: [out], name: out,
                          attributes: [Attribute("value", .tensor(try Tensor(shape: shape, scalars: values)))]))
        return out
    }

    /// A float scalar constant.
    public func scalar(_ value: Float) throws -> String { try constant([value], []) }

    /// An int64 vector (shapes, axes) as an initializer.
    public func ints(_ values: [Int]) throws -> String {
        let name = fresh("ints")
        intConstants.append(try Tensor(shape: [values.count], scalars: values.map(Int64.init), name: name))
        return name
    }

    /// Adds an initializer under its own name (reserved).
    public func addInitializer(_ t: Tensor) {
        names.reserve(t.meta.name)
        added.append(t)
    }

    /// The nodes emitted so far, which the builder then forgets (to splice them into a graph in
    /// another place than the ones emitted later).
    public func takeNodes() -> [Node] {
        defer { nodes = [] }
        return nodes
    }

    /// The graph of the emitted nodes and initializers, opset 21 (and `ai.scm` when a node uses it).
    public func model(name: String, inputs: [ValueInfo], outputs: [ValueInfo]) -> Model {
        let graph = Graph(name: name, nodes: nodes, initializers: initializers, inputs: inputs, outputs: outputs)
        var model = Model(graph: graph, opsetImports: [OpsetImport(domain: "", version: 21)])
        model.declareSCMDomainIfUsed()
        return model
    }
}
