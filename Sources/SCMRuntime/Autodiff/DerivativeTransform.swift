import SCMGraph

/// What forward and reverse mode share: the model analysed at concrete shapes (symbolic dims as
/// 2), a builder that knows every name of the graph, each node's rule, types and values, and the
/// zero outputs of values with no derivative.
struct DerivativeTransform {
    let model: Model
    /// Names of the initializers.
    let initializers: Set<String>
    /// The graph inputs that are no initializers.
    let graphInputs: [ValueInfo]
    let analysis: GraphAnalysis
    let builder: DerivativeBuilder
    /// The default domain's opset.
    let opset: Int

    init(_ model: Model, shapes: [String: TensorSpec]) throws {
        let g = model.graph
        self.model = model
        initializers = Set(g.initializers.map(\.meta.name))
        graphInputs = g.inputs.filter { [initializers] in !initializers.contains($0.name) }
        var specs = shapes
        for vi in graphInputs where specs[vi.name] == nil {
            guard let t = vi.type, let dtype = t.elementType, let shape = t.shape else {
                throw RuntimeError(.invalidModel, at: "input '\(vi.name)'", "has no declared type and shape")
            }
            specs[vi.name] = TensorSpec(dtype, shape.map { if case .value(let v) = $0 { v } else { 2 } })
        }
        analysis = try Compiler.analyze(model, shapes: specs)
        builder = DerivativeBuilder(names: NameAllocator(avoiding: g))
        opset = model.opsetVersion("") ?? 0
    }

    /// Node `i`, its label, its op's definition (`key` names it in errors) and what a rule sees of
    /// it: input and output types, input values known at compile time, its domain's opset.
    func node(_ i: Int) throws -> (node: Node, label: String, key: String, op: any Operator.Type,
                                   inputs: [TensorSpec?], outputs: [TensorSpec], values: [Tensor?], opset: Int) {
        let node = model.graph.nodes[i]
        let label = node.label(index: i)
        let key = node.op.key
        guard let op = OpRegistry.op(key) else { throw RuntimeError(.unsupported, at: label, "op \(key) is not supported") }
        let outs = try node.outputs.map { o -> TensorSpec in
            guard let s = analysis.specs[o] else { throw RuntimeError(.invalidModel, at: label, "output '\(o)' has no type") }
            return s
        }
        return (node, label, key, op, node.inputs.map { $0.isEmpty ? nil : analysis.specs[$0] }, outs,
                node.inputs.map { $0.isEmpty ? nil : analysis.constants[$0] },
                Model.isDefaultDomain(node.domain) ? opset : (model.opsetVersion(node.domain) ?? 1))
    }

    /// Nodes that make `name` either `source` itself or zeros of `like`'s runtime shape and `dtype`.
    func output(_ name: String, from source: String?, zerosLike like: String, dtype: DType) throws -> [Node] {
        if let source { return [Node("Identity", inputs: [source], outputs: [name], name: builder.fresh(name + "_node"))] }
        let zero: Tensor = dtype == .float64 ? try Tensor(shape: [1], scalars: [Double(0)]) : try Tensor(shape: [1], scalars: [Float(0)])
        let shape = builder.fresh(name + "_shape")
        return [Node("Shape", inputs: [like], outputs: [shape], name: builder.fresh(shape + "_node")),
                Node("ConstantOfShape", inputs: [shape], outputs: [name], name: builder.fresh(name + "_node"),
                     attributes: [Attribute("value", .tensor(zero))])]
    }
}
