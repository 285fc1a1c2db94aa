import SCMGraph

/// An op that can be differentiated in forward mode. Its rule, written in the op's own file beside
/// its schema and kernel, emits IR nodes that compute the tangent of each output from the tangents
/// of the inputs (JVP: Jacobian-vector product).
public protocol ForwardDifferentiable: Operator {
    /// Emits the tangent of each output through `rule`; returns one name per output, nil where the
    /// output has no tangent (not float, or independent of every input that has one). Called only
    /// when at least one float input has a tangent.
    static func jvp(_ rule: JVPRule) throws -> [String?]
}

/// Collects the nodes and constants a derivative transform emits, with fresh value names.
public final class DerivativeBuilder {
    private(set) var nodes: [Node] = []
    private var names: NameAllocator

    init(names: NameAllocator) { self.names = names }

    /// A value name not used anywhere in the graph, derived from `base`.
    func fresh(_ base: String) -> String { names.fresh(base) }

    /// Appends a node and returns its output names.
    func emit(_ op: String, _ inputs: [String], _ attributes: [Attribute] = [], domain: String = "", outputs: Int = 1,
              hint: String) -> [String] {
        let outs = (0..<outputs).map { fresh(outputs == 1 ? hint : "\(hint)_\($0)") }
        nodes.append(Node(op, inputs: inputs, outputs: outs, name: fresh("\(hint)_node"), domain: domain, attributes: attributes))
        return outs
    }

    /// Emits `tensor` as a Constant node and returns its name. Constants of derivative rules are
    /// nodes, not initializers, so that nothing takes them for parameters (`params`).
    func constant(_ tensor: Tensor, hint: String) -> String {
        let name = fresh(hint)
        nodes.append(Node("Constant", inputs: [], outputs: [name], name: fresh(name + "_node"), attributes: [Attribute("value", .tensor(tensor))]))
        return name
    }
}

/// What a forward-mode rule sees of one node: its types, compile-time values, the tangents of its
/// inputs, and a builder for the nodes it emits (helpers in `RuleEmitter`).
public struct JVPRule: RuleEmitter {
    public let node: Node
    /// The node's name for errors.
    public let label: String
    /// The opset of the node's domain.
    public let opset: Int
    /// The opset of the default domain, which every emitted standard op is read at.
    public let defaultOpset: Int
    /// Input types (nil: omitted optional input).
    public let inputs: [TensorSpec?]
    /// Output types.
    public let outputs: [TensorSpec]
    /// Input values known at compile time.
    public let values: [Tensor?]
    /// The tangent of each input (nil: zero, or not differentiable).
    public let tangents: [String?]
    public let builder: DerivativeBuilder
    /// Whether the rule may emit this runtime's fused ai.scm ops (`ForwardMode.jvp`'s `fusedOps`).
    public let fusedOps: Bool

    /// The tangent of input `i`, nil when it is zero.
    public func tangent(_ i: Int) -> String? { i < tangents.count ? tangents[i] : nil }
    public var hint: String { (node.outputs.first ?? "v") + "_tangent" }

    /// `t`, a tangent of input `i`, broadcast to output `o`'s shape when the input's shape is not
    /// the output's (an input broadcast by the op). Uses the output's runtime shape, so the graph
    /// holds for any batch size.
    public func broadcast(_ t: String, input i: Int, toOutput o: Int = 0) -> String {
        guard let spec = inputs[i], spec.shape != outputs[o].shape else { return t }
        return emit("Expand", [t, emit("Shape", [output(o)])])
    }
}

/// Forward-mode differentiation of a model (`scm-export jvp`).
public enum ForwardMode {
    /// The suffix of tangent inputs and outputs.
    public static let suffix = "_tangent"

    /// The model with a tangent input `<name>_tangent` after its inputs for each name in `wrt`
    /// (float graph inputs), and a tangent output `<output>_tangent` after its outputs for each
    /// float output (zeros where the output does not depend on `wrt`).
    ///
    /// `shapes` gives concrete shapes to symbolic inputs for the analysis; dims left symbolic are
    /// analysed as 2. The rules emit shape-generic nodes (broadcasts use runtime shapes, reshapes
    /// use 0 and -1), so the result keeps the model's symbolic dims.
    ///
    /// `fusedOps` lets rules of standard ops emit this runtime's fused ai.scm ops where one exists
    /// (GroupNormalization and InstanceNormalization: `ai.scm:GroupNormTangent`), for graphs only
    /// this runtime runs, such as the trainer's loss. Without it the tangent of a model of standard
    /// ops is standard ONNX too, as `scm-export jvp` writes it for any runtime.
    public static func jvp(_ model: Model, wrt: [String], shapes: [String: TensorSpec] = [:], fusedOps: Bool = false) throws -> Model {
        let transform = try DerivativeTransform(model, shapes: shapes)
        let g = model.graph, graphInputs = transform.graphInputs, builder = transform.builder, analysis = transform.analysis
        for name in wrt {
            guard let vi = graphInputs.first(where: { $0.name == name }) else {
                throw RuntimeError(.badInput, at: "jvp", "'\(name)' is not a graph input (inputs: \(graphInputs.map(\.name).joined(separator: ", ")))")
            }
            guard let dt = vi.type?.elementType, dt == .float || dt == .float64 else {
                throw RuntimeError(.badInput, at: "jvp", "input '\(name)' is not float")
            }
        }
        var tangent: [String: String] = [:]
        var newInputs: [ValueInfo] = []
        for name in wrt {
            let tname = builder.fresh(name + suffix)
            tangent[name] = tname
            newInputs.append(ValueInfo(tname, graphInputs.first { $0.name == name }?.type))
        }
        // The tangent outputs' names first, so that no intermediate value takes them.
        var outputName: [String: String] = [:]
        for out in g.outputs { outputName[out.name] = builder.fresh(out.name + suffix) }
        for i in analysis.order {
            let ts = g.nodes[i].inputs.map { $0.isEmpty ? nil : tangent[$0] }
            guard ts.contains(where: { $0 != nil }) else { continue }
            let (node, label, key, op, ins, outs, vals, domainOpset) = try transform.node(i)
            guard let rule = op as? any ForwardDifferentiable.Type else {
                throw RuntimeError(.notDifferentiable, at: label, "op \(key) has no forward-mode (JVP) rule")
            }
            let ctx = JVPRule(node: node, label: label, opset: domainOpset, defaultOpset: transform.opset, inputs: ins, outputs: outs, values: vals,
                              tangents: ts.enumerated().map { k, t in
                                  // Constant inputs (folded at compile time) carry no tangent.
                                  guard let t, let s = ins[k], s.dtype == .float || s.dtype == .float64 else { return nil }
                                  return t
                              },
                              builder: builder, fusedOps: fusedOps)
            guard ctx.tangents.contains(where: { $0 != nil }) else { continue }
            let result = try rule.jvp(ctx)
            guard result.count == node.outputs.count else {
                throw RuntimeError(.invalidModel, at: label, "JVP rule returned \(result.count) tangents for \(node.outputs.count) outputs")
            }
            for (o, t) in zip(node.outputs, result) where !o.isEmpty { if let t { tangent[o] = t } }
        }
        var m = model
        m.graph.nodes += builder.nodes
        m.graph.inputs = graphInputs + newInputs + g.inputs.filter { transform.initializers.contains($0.name) }
        var finalNodes: [Node] = []
        var newOutputs: [ValueInfo] = []
        for out in g.outputs {
            guard let s = analysis.specs[out.name], s.dtype == .float || s.dtype == .float64 else { continue }
            let name = outputName[out.name] ?? builder.fresh(out.name + suffix)
            // Independent of every tangent input: zeros of the output's runtime shape.
            finalNodes += try transform.output(name, from: tangent[out.name], zerosLike: out.name, dtype: s.dtype)
            newOutputs.append(ValueInfo(name, out.type))
        }
        m.graph.nodes += finalNodes
        m.graph.outputs = g.outputs + newOutputs
        m.declareSCMDomainIfUsed()
        return m
    }
}
