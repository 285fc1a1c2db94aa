import SCMGraph
import SCMRuntime

/// Fuses adaptive double normalization into one `ai.scm:AdaptiveGroupNorm` node:
///
///     GroupNorm(x) [* gamma + beta] * scale(t) + shift(t) [-> SiLU]
///
/// The group normalization is either ONNX's `GroupNormalization` or PyTorch's export form
/// `Reshape [N,G,L] -> InstanceNormalization -> Reshape back`. After it, a chain of Mul and Add by
/// tensors that vary only over sample and channel (constants after folding, or runtime values
/// computed from `t`) is absorbed: the first Mul and Add go to the op's `mul`/`add` inputs, and
/// when more follow, constant per-channel factors are first folded into its per-channel
/// `scale`/`bias`. A trailing `x * Sigmoid(x)` becomes `activation = "silu"`. Every absorbed value
/// must be read by the next node of the chain only.
public struct FuseAdaptiveGroupNorm: Pass {
    public let name = "fuse-adn"

    public init() {}

    public func run(_ model: Model, _ context: PassContext, changes: inout [String]) throws -> Model {
        let analysis = try context.analyze(model)
        let g = model.graph
        let ud = UseDef(g)
        let opset = model.opsetVersion("") ?? 0
        var rewrite = FusionRewrite(g)
        for i in analysis.order {
            guard !rewrite.isClaimed(i), var match = core(at: i, g, ud, analysis, opset: opset) else { continue }
            absorb(&match, g, ud, analysis)
            guard !match.removed.contains(where: rewrite.isClaimed) else { continue }
            let scale = try operandName(match.scale, "\(match.output)_adn_scale", &rewrite)
            let bias = try operandName(match.bias, "\(match.output)_adn_bias", &rewrite)
            var inputs = [match.x, scale, bias, match.mul ?? "", match.add ?? ""]
            while inputs.last == "" { inputs.removeLast() }
            let node = Node("AdaptiveGroupNorm", inputs: inputs, outputs: [match.output],
                            name: rewrite.freshName("adn_\(match.output)"), domain: FusedOps.domain,
                            attributes: [Attribute("num_groups", .int(match.groups)), Attribute("epsilon", .float(match.eps)),
                                         Attribute("activation", .string(Array((match.silu ? "silu" : "none").utf8)))])
            if rewrite.fuse(match.removed, into: node) {
                let ops = match.removed.sorted().map { g.nodes[$0].opType }.joined(separator: ", ")
                changes.append("fused \(match.removed.count) nodes (\(ops)) into AdaptiveGroupNorm '\(node.name)'")
            }
        }
        return rewrite.apply(to: model)
    }

    /// A per-channel operand: an existing [C] float value, or values computed here.
    enum PerChannel {
        case value(String)
        case floats([Float])
    }

    struct Match {
        var removed: Set<Int>
        var x: String
        var spec: TensorSpec
        var groups: Int
        var eps: Float
        var scale, bias: PerChannel
        var mul, add: String?
        var silu = false
        var output: String
    }

    /// The group normalization starting or ending at node `i`.
    func core(at i: Int, _ g: Graph, _ ud: UseDef, _ a: GraphAnalysis, opset: Int) -> Match? {
        let n = g.nodes[i]
        guard n.outputs.count == 1 else { return nil }
        switch n.op {
        case .groupNormalization:
            guard n.inputs.count == 3, let x = a.specs[n.inputs[0]], x.dtype == .float, x.rank >= 2,
                  case .int(let groups)? = n.attribute("num_groups")?.value, groups >= 1, x.shape[1] % groups == 0 else { return nil }
            if case .int(let st)? = n.attribute("stash_type")?.value, st != 1 { return nil }
            let c = x.shape[1]
            var scale = PerChannel.value(n.inputs[1]), bias = PerChannel.value(n.inputs[2])
            if opset < 21 {  // scale and bias per group: expand to channels
                guard let s = a.constants[n.inputs[1]].flatMap(Constants.float), let b = a.constants[n.inputs[2]].flatMap(Constants.float),
                      s.count == groups, b.count == groups else { return nil }
                scale = .floats((0..<c).map { s[$0 / (c / groups)] })
                bias = .floats((0..<c).map { b[$0 / (c / groups)] })
            } else {
                guard a.specs[n.inputs[1]] == TensorSpec(.float, [c]), a.specs[n.inputs[2]] == TensorSpec(.float, [c]) else { return nil }
            }
            return Match(removed: [i], x: n.inputs[0], spec: x, groups: groups, eps: epsilon(n), scale: scale, bias: bias,
                         output: n.outputs[0])
        case .instanceNormalization:
            // Reshape(x, [N, G, L]) -> InstanceNormalization -> Reshape(back to x's shape)
            guard n.inputs.count == 3, let r0 = ud.producer[n.inputs[0]], g.nodes[r0].op == .reshape,
                  ud.soleConsumer(n.inputs[0]) != nil,
                  let back = ud.soleConsumer(n.outputs[0]), g.nodes[back.node].op == .reshape, back.input == 0 else { return nil }
            let xName = g.nodes[r0].inputs[0]
            guard let x = a.specs[xName], x.dtype == .float, x.rank >= 2, let r = a.specs[n.inputs[0]], r.rank == 3,
                  r.shape[0] == x.shape[0], a.specs[g.nodes[back.node].outputs[0]] == x else { return nil }
            let c = x.shape[1], groups = r.shape[1]
            guard groups >= 1, c % groups == 0,
                  let s = a.constants[n.inputs[1]].flatMap(Constants.float), let b = a.constants[n.inputs[2]].flatMap(Constants.float),
                  s.count == groups, b.count == groups else { return nil }
            return Match(removed: [r0, i, back.node], x: xName, spec: x, groups: groups, eps: epsilon(n),
                         scale: .floats((0..<c).map { s[$0 / (c / groups)] }), bias: .floats((0..<c).map { b[$0 / (c / groups)] }),
                         output: g.nodes[back.node].outputs[0])
        default:
            return nil
        }
    }

    func epsilon(_ n: Node) -> Float {
        if case .float(let e)? = n.attribute("epsilon")?.value { return e }
        return 1e-5
    }

    /// Extends the match over the Mul/Add chain and a trailing SiLU.
    func absorb(_ m: inout Match, _ g: Graph, _ ud: UseDef, _ a: GraphAnalysis) {
        let rank = m.spec.rank, n = m.spec.shape[0], c = m.spec.shape[1]
        /// The operand's per-channel constant values (count C), when it is one.
        func channelConstant(_ name: String) -> [Float]? {
            guard let t = a.constants[name], let v = Constants.float(t), let al = TensorSpec(t.dtype, t.shape).aligned(to: rank),
                  al[0] == 1 else { return nil }
            return v.count == c ? v : (v.count == 1 ? Array(repeating: v[0], count: c) : nil)
        }
        func floats(_ p: PerChannel) -> [Float]? {
            switch p {
            case .floats(let v): return v
            case .value(let name): return a.constants[name].flatMap(Constants.float)
            }
        }
        /// Moves constant per-channel mul/add into scale/bias, freeing both slots.
        func flush() -> Bool {
            guard var s = floats(m.scale), var b = floats(m.bias) else { return false }
            let mv = m.mul.map(channelConstant), av = m.add.map(channelConstant)
            if case .some(nil) = mv { return false }
            if case .some(nil) = av { return false }
            for k in 0..<c {
                if let mk = mv??[k] { s[k] *= mk; b[k] *= mk }
                if let ak = av??[k] { b[k] += ak }
            }
            m.scale = .floats(s)
            m.bias = .floats(b)
            m.mul = nil
            m.add = nil
            return true
        }
        while let use = ud.soleConsumer(m.output) {
            let node = g.nodes[use.node]
            guard node.op == .mul || node.op == .add, node.inputs.count == 2,
                  a.specs[node.outputs[0]] == m.spec else { break }
            let other = node.inputs[1 - use.input]
            guard let o = a.specs[other], o.dtype == .float, let al = o.aligned(to: rank),
                  al.dropFirst(2).allSatisfy({ $0 == 1 }), [1, n].contains(al[0]), [1, c].contains(al[1]) else { break }
            if node.op == .mul {
                if m.mul == nil && m.add == nil {
                    m.mul = other
                } else if flush() {
                    m.mul = other
                } else { break }
            } else {
                if m.add == nil {
                    m.add = other
                } else if flush() {
                    m.add = other
                } else { break }
            }
            m.removed.insert(use.node)
            m.output = node.outputs[0]
        }
        // SiLU: y * Sigmoid(y), y read by exactly those two nodes.
        if let (sig, mul) = siluNodes(reading: m.output, g, ud) {
            m.removed.formUnion([sig, mul])
            m.output = g.nodes[mul].outputs[0]
            m.silu = true
        }
    }

    /// The name of a per-channel operand, adding an initializer for computed values.
    func operandName(_ p: PerChannel, _ base: String, _ rewrite: inout FusionRewrite) throws -> String {
        switch p {
        case .value(let name): return name
        case .floats(let v):
            let name = rewrite.freshName(base)
            rewrite.graph.initializers.append(try Constants.make(name, [v.count], v))
            return name
        }
    }
}
