import SCMGraph
import SCMRuntime

/// Fuses a Conv's epilogue into one `ai.scm:FusedConv(X, W, B?, Z?)` node: the residual
/// `Add(conv, z)` (z with the conv output's shape) and a trailing SiLU (`y * Sigmoid(y)`), so the
/// output is written once. The kernel adds bias, residual and activation in the unfused order,
/// so results are bitwise equal. A Conv with nothing to absorb stays a Conv.
public struct FuseConvEpilogue: Pass {
    public let name = "fuse-conv"

    public init() {}

    public func run(_ model: Model, _ context: PassContext, changes: inout [String]) throws -> Model {
        let analysis = try context.analyze(model)
        let g = model.graph
        let ud = UseDef(g)
        var rewrite = FusionRewrite(g)
        for i in analysis.order where !rewrite.isClaimed(i) {
            let conv = g.nodes[i]
            guard conv.op == .conv, conv.outputs.count == 1,
                  (2...3).contains(conv.inputs.count), let out = analysis.specs[conv.outputs[0]] else { continue }
            var removed: Set<Int> = [i]
            var value = conv.outputs[0]
            var residual: String? = nil
            if let use = ud.soleConsumer(value), g.nodes[use.node].op == .add,
               g.nodes[use.node].inputs.count == 2 {
                let add = g.nodes[use.node], z = add.inputs[1 - use.input]
                if z != value, analysis.specs[z] == out, analysis.specs[add.outputs[0]] == out {
                    residual = z
                    removed.insert(use.node)
                    value = add.outputs[0]
                }
            }
            var silu = false
            if let (sig, mul) = siluNodes(reading: value, g, ud) {
                silu = true
                removed.formUnion([sig, mul])
                value = g.nodes[mul].outputs[0]
            }
            guard removed.count > 1 else { continue }
            var inputs = conv.inputs
            if let residual {
                if inputs.count == 2 { inputs.append("") }
                inputs.append(residual)
            }
            var attrs = conv.attributes.filter { $0.name != "activation" }
            attrs.append(Attribute("activation", .string(Array((silu ? "silu" : "none").utf8))))
            let node = Node("FusedConv", inputs: inputs, outputs: [value], name: rewrite.freshName("fconv_\(value)"),
                            domain: FusedOps.domain, attributes: attrs)
            if rewrite.fuse(removed, into: node) {
                changes.append("fused \(removed.sorted().map { g.nodes[$0].opType }.joined(separator: ", ")) into FusedConv '\(node.name)'")
            }
        }
        return rewrite.apply(to: model)
    }
}

/// The Sigmoid and Mul nodes of `value * Sigmoid(value)` when they are `value`'s only readers.
func siluNodes(reading value: String, _ g: Graph, _ ud: UseDef) -> (sigmoid: Int, mul: Int)? {
    guard !ud.graphOutputs.contains(value), let uses = ud.consumers[value], uses.count == 2,
          let sig = uses.first(where: { g.nodes[$0.node].op == .sigmoid }),
          let mulUse = ud.soleConsumer(g.nodes[sig.node].outputs[0]) else { return nil }
    let mul = g.nodes[mulUse.node]
    guard mul.op == .mul, mul.inputs.count == 2,
          uses.contains(where: { $0.node == mulUse.node }) else { return nil }
    return (sig.node, mulUse.node)
}
