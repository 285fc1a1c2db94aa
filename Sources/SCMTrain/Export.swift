import Foundation
import SCMGraph
import SCMRuntime
import SCMTrigFlow

/// The model file `scm-run` samples, from a checkpoint's EMA weights and the same network
/// definition that was trained (without the log-variance head).
public enum CheckpointExport {
    private typealias Key = TrigFlowMetadata.Key

    /// sCM's two-step intermediate time, t = 1.1 (with sigma_d = 0.5, t_max = atan(80 / 0.5)).
    public static let twoStepTime: Float = 1.1

    /// Inputs x [N, ...] and t [N]. For sCT/sCD checkpoints the output is the consistency function
    /// f(x, t) = cos(t) x - sigma_d sin(t) F(x / sigma_d, t) (`scm.parameterization=consistency`);
    /// for flow checkpoints the velocity network F(x / sigma_d, t) (`velocity`). Metadata: the whole
    /// `scm.*` contract (`schemas/README.md`), with schedules for 1, 2 and 4 steps, the dataset, its
    /// classes and data range, and a one-line training summary.
    public static func model(_ ckpt: Checkpoint) throws -> Model {
        let c = ckpt.config
        let dataRange: (Float, Float)? = c.dataRange.flatMap { $0.count == 2 ? ($0[0], $0[1]) : nil }
        let classNames = c.classes
        var net = try Networks.build(c.network, seed: c.seed, parameters: ckpt.exportWeights, logvar: false)
        // The network reads x / sigma_d: rename its input and divide the new input x.
        let scaled = "x_scaled"
        for i in net.graph.nodes.indices {
            net.graph.nodes[i].inputs = net.graph.nodes[i].inputs.map { $0 == "x" ? scaled : $0 }
        }
        let sigma = try Tensor(shape: [], scalars: [c.sigmaData], name: "sigma_data")
        var pre = [Node("Div", inputs: ["x", sigma.meta.name], outputs: [scaled], name: "scale_input")]
        var inits = [sigma]
        let rank = c.network.sampleShape.count + 1
        var output = net.graph.outputs[0]
        var post: [Node] = []
        let consistency = c.objective != .flow
        if consistency {
            let shape = try Tensor(shape: [rank], scalars: [Int64(-1)] + Array(repeating: Int64(1), count: rank - 1), name: "t_shape")
            inits.append(shape)
            // A multistep model (`segments`) maps to its segment's start: the angle is
            // u = t - s(t), s(t) the largest boundary below t (else 0), as in the loss.
            var k = 0
            let angle = try ConsistencyLoss.segmentAngle(of: "t", boundaries: c.segmentBoundaries, node: { type, ins, attrs in
                k += 1
                post.append(Node(type, inputs: ins, outputs: ["segment_\(k)"], name: "segment_\(k)", attributes: attrs))
                return "segment_\(k)"
            }, scalar: { v in
                k += 1
                inits.append(try Tensor(shape: [], scalars: [v], name: "segment_\(k)"))
                return "segment_\(k)"
            })
            post += [Node("Reshape", inputs: [angle, shape.meta.name], outputs: ["t_b"], name: "t_b"),
                    Node("Cos", inputs: ["t_b"], outputs: ["cos_t"], name: "cos_t"),
                    Node("Sin", inputs: ["t_b"], outputs: ["sin_t"], name: "sin_t"),
                    Node("Mul", inputs: ["cos_t", "x"], outputs: ["cos_x"], name: "cos_x"),
                    Node("Mul", inputs: ["sin_t", sigma.meta.name], outputs: ["c_out"], name: "c_out"),
                    Node("Mul", inputs: ["c_out", output.name], outputs: ["sin_F"], name: "sin_F"),
                    Node("Sub", inputs: ["cos_x", "sin_F"], outputs: ["f"], name: "consistency")]
            output = ValueInfo("f", output.type)
        }
        pre += net.graph.nodes
        net.graph.nodes = pre + post
        net.graph.initializers += inits
        net.graph.outputs = [output]
        net.graph.name = "trigflow_\(c.objective.rawValue)"
        net.producerName = "scm-train"
        let tMax = TrigFlowMetadata.defaultTMax(sigmaData: c.sigmaData)
        let f7 = { (v: Float) in String(format: "%.7f", v) }
        var meta: [(String, String)] = [
            (Key.format, TrigFlowMetadata.format),
            (Key.parameterization, consistency ? "consistency" : "velocity"),
            (Key.sigmaData, String(c.sigmaData)),
            (Key.tMax, f7(tMax)),
        ]
        if c.segmentBoundaries.isEmpty {
            meta += [(Key.schedule(1), f7(tMax)),
                     (Key.schedule(2), "\(f7(tMax)),\(f7(twoStepTime))"),
                     (Key.schedule(4), TrigFlowMetadata.defaultSchedule(steps: 4, tMax: tMax).map(f7).joined(separator: ","))]
        } else {
            let down = c.segmentBoundaries.reversed()
            meta += [(Key.segments, down.map(f7).joined(separator: ",")),
                     (Key.schedule(down.count + 1), ([tMax] + down).map(f7).joined(separator: ","))]
        }
        meta += [
            (Key.sampleShape, c.network.sampleShape.map(String.init).joined(separator: ",")),
            (Key.dataset, c.data),
            (Key.training, "\(c.objective.rawValue), \(ckpt.step) steps, batch \(c.batch), lr \(c.lr), seed \(c.seed), EMA \(c.emaStd.map { "power, std \($0)" } ?? "\(c.emaDecay)\(c.emaRamp == false ? " (no ramp)" : "")")"
                + (c.initialize.map { ", initialized from \($0)" } ?? "") + (c.teacher.map { ", teacher \($0)" } ?? "")),
        ]
        if let r = dataRange { meta.append((Key.dataRange, "\(r.0),\(r.1)")) }
        if let names = classNames { meta.append((Key.classes, names.joined(separator: ","))) }
        net.metadata = meta.map { MetadataEntry($0.0, $0.1) }
        try net.verify()
        return net
    }
}
