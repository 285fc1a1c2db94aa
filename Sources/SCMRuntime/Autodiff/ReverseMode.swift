import SCMGraph

/// An op that can be differentiated in reverse mode. Its rule, in the op's own file beside its
/// schema, kernel and forward-mode rule, emits IR nodes that compute the cotangent (gradient) of
/// each input from the cotangents of the outputs (VJP: vector-Jacobian product).
public protocol ReverseDifferentiable: Operator {
    /// Emits the cotangent of each input `i` with `rule.needs(i)`; returns one name per input,
    /// nil where the input gets none (not needed, not differentiable, or zero). Called only when
    /// some output has a cotangent and some input needs one.
    static func vjp(_ rule: VJPRule) throws -> [String?]
}

/// What a reverse-mode rule sees of one node: its types, compile-time values, the cotangents of
/// its outputs, which inputs need a cotangent, and the emitting helpers of `RuleEmitter`.
public struct VJPRule: RuleEmitter {
    public let node: Node
    public let label: String
    public let opset: Int
    public let defaultOpset: Int
    public let inputs: [TensorSpec?]
    public let outputs: [TensorSpec]
    public let values: [Tensor?]
    /// The cotangent of each output (nil: zero).
    public let cotangents: [String?]
    /// Whether each input needs a cotangent (it depends on a differentiated value).
    let needed: [Bool]
    public let builder: DerivativeBuilder
    public var hint: String { (node.inputs.first { !$0.isEmpty } ?? "v") + "_grad" }

    /// The cotangent of output `o`, nil when it is zero.
    public func cotangent(_ o: Int = 0) -> String? { o < cotangents.count ? cotangents[o] : nil }
    /// Whether input `i` needs a cotangent.
    public func needs(_ i: Int) -> Bool { i < needed.count && needed[i] }

    /// `g`, a cotangent of output `o`'s shape, summed over the axes along which the op broadcast
    /// input `i`, and reshaped to the input's runtime shape.
    public func unbroadcast(_ g: String, toInput i: Int, fromOutput o: Int = 0) -> String {
        unbroadcast(g, toInput: i, from: outputs[o].shape)
    }

    /// `g`, of shape `out`, summed over the axes along which `out` broadcasts input `i`'s shape,
    /// and reshaped to the input's runtime shape.
    public func unbroadcast(_ g: String, toInput i: Int, from out: [Int]) -> String {
        guard let spec = inputs[i] else { return g }
        guard spec.shape != out else { return g }
        let lead = out.count - spec.shape.count
        var axes = Array(0..<max(lead, 0))
        for (k, d) in spec.shape.enumerated() where d == 1 && out[lead + k] != 1 { axes.append(lead + k) }
        let summed = axes.isEmpty ? g : reduce("ReduceSum", g, axes: axes)
        return reshape(summed, like: input(i))
    }
}

/// Reverse-mode differentiation of a model (`scm-export grad`).
public enum ReverseMode {
    /// The suffix of cotangent inputs.
    public static let cotangentSuffix = "_cotangent"
    /// The suffix of gradient outputs.
    public static let gradSuffix = "_grad"
    /// In `wrt`, every float initializer that some op differentiates.
    public static let parameters = "params"

    /// The model with a cotangent input `<output>_cotangent` after its inputs for each float
    /// output, and a gradient output `<name>_grad` after its outputs for each name in `wrt`
    /// (float graph inputs or initializers; `params` stands for every float initializer that
    /// feeds a differentiable input of its op): the sum over outputs of cotangent x Jacobian.
    /// Names with no path to an output get zeros. Returns the model and the differentiated names.
    ///
    /// Symbolic dims are analysed as 2 unless `shapes` says otherwise; the rules emit
    /// shape-generic nodes (reductions over broadcast axes, reshapes to runtime shapes).
    public static func vjp(_ model: Model, wrt: [String], shapes: [String: TensorSpec] = [:]) throws -> (model: Model, names: [String]) {
        // Initializers stay constants of the analysis (shapes and compile-time inputs such as
        // Resize's scales keep their values); activity below does not depend on it.
        let transform = try DerivativeTransform(model, shapes: shapes)
        let g = model.graph, inits = transform.initializers, graphInputs = transform.graphInputs
        let analysis = transform.analysis, builder = transform.builder
        let isFloat = { (d: DType?) in d == .float || d == .float64 }
        let (names, allParameters) = try requested(wrt, graph: g, graphInputs: graphInputs)
        // With `params`, every float initializer is a candidate; those no rule differentiates drop out.
        var candidates = names
        if allParameters {
            for t in g.initializers where isFloat(t.dtype) && !candidates.contains(t.meta.name) { candidates.append(t.meta.name) }
        }

        // Activity: values that depend on a candidate.
        var active = Set(candidates)
        for i in analysis.order {
            let n = g.nodes[i]
            if n.inputs.contains(where: { active.contains($0) }) {
                for o in n.outputs where !o.isEmpty && isFloat(analysis.specs[o]?.dtype) { active.insert(o) }
            }
        }

        // The gradient outputs' names first, so that no intermediate value takes them.
        var gradName: [String: String] = [:]
        for c in candidates { gradName[c] = builder.fresh(c + gradSuffix) }

        // Cotangent contributions per value, summed (in the order they arrive) when read.
        var contributions: [String: [String]] = [:]
        var seedInputs: [ValueInfo] = []
        for out in g.outputs {
            guard let s = analysis.specs[out.name], isFloat(s.dtype) else { continue }
            let name = builder.fresh(out.name + cotangentSuffix)
            seedInputs.append(ValueInfo(name, out.type ?? TensorType(elementType: s.dtype, shape: s.shape.map { .value($0) })))
            contributions[out.name, default: []].append(name)
        }
        var summed: [String: String] = [:]
        func cotangent(of v: String) -> String? {
            if let s = summed[v] { return s }
            guard let parts = contributions[v], var total = parts.first else { return nil }
            for p in parts.dropFirst() { total = builder.emit("Add", [total, p], hint: v + "_grad")[0] }
            summed[v] = total
            return total
        }
        for i in analysis.order.reversed() {
            let needed = g.nodes[i].inputs.map { !$0.isEmpty && active.contains($0) }
            guard needed.contains(true) else { continue }
            let cots = g.nodes[i].outputs.map { $0.isEmpty ? nil : cotangent(of: $0) }
            guard cots.contains(where: { $0 != nil }) else { continue }
            let (node, label, key, op, ins, outs, vals, domainOpset) = try transform.node(i)
            guard let rule = op as? any ReverseDifferentiable.Type else {
                throw RuntimeError(.notDifferentiable, at: label, "op \(key) has no reverse-mode (VJP) rule")
            }
            let ctx = VJPRule(node: node, label: label, opset: domainOpset, defaultOpset: transform.opset, inputs: ins, outputs: outs,
                              values: vals, cotangents: cots, needed: needed, builder: builder)
            let result = try rule.vjp(ctx)
            guard result.count <= node.inputs.count else {
                throw RuntimeError(.invalidModel, at: label, "VJP rule returned \(result.count) cotangents for \(node.inputs.count) inputs")
            }
            for (k, c) in result.enumerated() {
                guard let c, needed[k] else { continue }
                contributions[node.inputs[k], default: []].append(c)
            }
        }

        // Gradients out; with `params`, initializers no rule reached are not differentiated.
        var differentiated: [String] = names
        if allParameters {
            for c in candidates where !names.contains(c) && inits.contains(c) && contributions[c] != nil { differentiated.append(c) }
        }
        var m = model
        var finalNodes: [Node] = []
        var gradOutputs: [ValueInfo] = []
        for name in differentiated {
            let out = gradName[name] ?? builder.fresh(name + gradSuffix)
            let type: TensorType? = graphInputs.first { $0.name == name }?.type
                ?? g.initializer(name).map { TensorType(elementType: $0.dtype, shape: $0.shape.map { .value($0) }) }
            finalNodes += try transform.output(out, from: cotangent(of: name), zerosLike: name, dtype: type?.elementType ?? .float)
            gradOutputs.append(ValueInfo(out, type))
        }
        m.graph.nodes = g.nodes + builder.nodes + finalNodes
        m.graph.inputs = graphInputs + seedInputs + g.inputs.filter { inits.contains($0.name) }
        m.graph.outputs = g.outputs + gradOutputs
        m.declareSCMDomainIfUsed()
        return (m, differentiated)
    }

    /// The names of `wrt` checked (float graph inputs or initializers, each once, in order) and
    /// whether it asks for every parameter (`params`).
    static func requested(_ wrt: [String], graph g: Graph, graphInputs: [ValueInfo]) throws -> (names: [String], all: Bool) {
        let isFloat = { (d: DType?) in d == .float || d == .float64 }
        var names: [String] = []
        var all = false
        for name in wrt {
            if name == parameters {
                all = true
                continue
            }
            if let vi = graphInputs.first(where: { $0.name == name }) {
                guard isFloat(vi.type?.elementType) else { throw RuntimeError(.badInput, at: "grad", "input '\(name)' is not float") }
            } else if let t = g.initializer(name) {
                guard isFloat(t.dtype) else { throw RuntimeError(.badInput, at: "grad", "initializer '\(name)' is not float") }
            } else {
                throw RuntimeError(.badInput, at: "grad", "'\(name)' is neither a graph input nor an initializer")
            }
            if !names.contains(name) { names.append(name) }
        }
        return (names, all)
    }
}
