import Foundation
import SCMGraph
import SCMRuntime

/// Continuous-time consistency training (sCT, `../shared/seeds/000`) as a graph: the network's
/// output and its JVP along the TrigFlow trajectory, the tangent with warmup and normalization,
/// the stop-gradient target and the adaptively weighted loss; `TrainingStep.make` then adds the
/// gradient and the optimizer update.
public enum ConsistencyLoss {
    /// Settings of the loss.
    public struct Options: Sendable {
        /// The data's standard deviation sigma_d.
        public var sigmaData: Float
        /// The constant c of the tangent normalization g / (||g|| + c) (the seed's 0.1).
        public var tangentNormConstant: Float
        /// Segment boundaries in (0, pi/2) of a multistep consistency model (empty: one segment,
        /// sCM's consistency function). With boundaries, f maps x_t to the PF-ODE's point at the
        /// start s(t) of t's segment (the largest boundary below t, else 0), so a model with K
        /// boundaries samples deterministically in K + 1 steps: t_max, then each boundary.
        public var segments: [Float]

        public init(sigmaData: Float = 0.5, tangentNormConstant: Float = 0.1, segments: [Float] = []) {
            self.sigmaData = sigmaData
            self.tangentNormConstant = tangentNormConstant
            self.segments = segments
        }
    }

    /// Emits the angle u = t - s(t) of a multistep consistency model into a graph: s(t) is the
    /// largest of `boundaries` below t (else 0), built as the sum over the sorted boundaries b_k of
    /// (b_k - b_(k-1)) Cast(Greater(t, b_k)). The loss and the exported model both use it, so the
    /// trained and the sampled function split t alike. Returns `t` itself without boundaries.
    /// `node(type, inputs, attributes)` emits a node and returns its output; `scalar` a float
    /// constant's name. Boundaries must be distinct times in (0, pi/2).
    public static func segmentAngle(of t: String, boundaries: [Float], node: (String, [String], [Attribute]) -> String,
                                    scalar: (Float) throws -> String) throws -> String {
        let sorted = boundaries.sorted()
        var u = t
        for (lower, b) in zip([0] + sorted, sorted) {
            guard b > lower, b < Float.pi / 2 else {
                throw RuntimeError(.invalidModel, at: "segments", "boundaries must be distinct times in (0, pi/2), are \(boundaries)")
            }
            let above = node("Cast", [node("Greater", [t, try scalar(b)], [])], [Attribute("to", .int(Int(DType.float.rawValue)))])
            u = node("Sub", [u, node("Mul", [above, try scalar(b - lower)], [])], [])
        }
        return u
    }

    /// Names of the loss graph's inputs.
    public static let dataInput = "sct_x0", noiseInput = "sct_z", timeInput = "sct_t", warmupInput = "sct_r", lossOutput = "sct_loss"

    /// The sCT loss of `network` (inputs x [N, ...] and t [N]; output 0 the network F(x / sigma_d, t)
    /// in TrigFlow's velocity parameterization, the network reading x already divided by sigma_d;
    /// optional output 1 the log-variance head [N] or [N, 1] of adaptive weighting).
    ///
    /// Inputs: `sct_x0` (data, the shape of x), `sct_z` (noise times sigma_d), `sct_t` ([N], in
    /// (0, pi/2)), `sct_r` (the tangent warmup factor in [0, 1], a scalar). Output `sct_loss`:
    ///
    ///     x_t = cos t x0 + sin t z,  dx_t/dt = cos t z - sin t x0
    ///     (F, dF) = JVP of the network at (x_t / sigma_d, t) along (cos t sin t dx_t/dt / sigma_d, cos t sin t)
    ///     g = -cos^2 t (sigma_d F - dx_t/dt) - r (cos t sin t x_t + sigma_d dF)
    ///     g = g / (rms(g) + c)            (rms over each sample's elements)
    ///     loss = mean(exp(-logvar) (F - stopgrad(F + g))^2 + logvar)
    ///
    /// F and the target share one evaluation; the target is under `ai.scm:StopGradient`.
    ///
    /// With `options.segments` (multistep consistency), f(x_t, t) = cos u x_t - sin u sigma_d F
    /// with u = t - s(t), and the same derivation gives the tangent with u in place of t in its
    /// factors (x_t, dx_t/dt and the network's t stay):
    ///
    ///     (F, dF) = JVP along (cos u sin u dx_t/dt / sigma_d, cos u sin u)
    ///     g = -cos^2 u (sigma_d F - dx_t/dt) - r (cos u sin u x_t + sigma_d dF)  = cos u df/dt
    ///
    /// which is sCM's g when s(t) = 0, and near a boundary (u -> 0) the flow-matching residual
    /// dx_t/dt - sigma_d F: the segment's map starts as one Euler step of the ODE.
    ///
    /// With `teacher` (a velocity network with the same inputs, its weights as initializers), this
    /// is sCD: dx_t/dt = sigma_d F_teacher(x_t / sigma_d, t) instead of the CT estimate, the
    /// teacher's evaluation compiled into the same graph (its values named `teacher/...`; train
    /// only the network's parameters: pass them to `TrainingStep.make`).
    public static func sct(network: Model, teacher: Model? = nil, options: Options = Options()) throws -> Model {
        let g = network.graph
        let inits = Set(g.initializers.map(\.meta.name))
        let inputs = g.inputs.filter { !inits.contains($0.name) }
        guard inputs.count == 2, g.outputs.count >= 1 else {
            throw RuntimeError(.invalidModel, at: "network", "needs inputs x and t and an output F (has \(inputs.count) inputs, \(g.outputs.count) outputs)")
        }
        let x = inputs[0], t = inputs[1]
        guard let xs = x.type?.shape, xs.count >= 2, x.type?.elementType == .float else {
            throw RuntimeError(.invalidModel, at: "input '\(x.name)'", "must be float [N, ...]")
        }
        let rank = xs.count
        let jvp = try ForwardMode.jvp(network, wrt: [x.name, t.name], fusedOps: true)
        let jg = jvp.graph
        let hasLogvar = g.outputs.count >= 2
        // The JVP graph's extra inputs and outputs, by position.
        let xTangent = jg.inputs[2].name, tTangent = jg.inputs[3].name
        let fName = g.outputs[0].name
        let fTangent = jg.outputs[g.outputs.count].name

        let b = GraphBuilder(names: NameAllocator(avoiding: jg))
        func fresh(_ base: String) -> String { b.names.fresh(base) }
        func op(_ type: String, _ ins: [String], _ attrs: [Attribute] = [], domain: String = "", to out: String? = nil) -> String {
            b.op(type, ins, attrs, domain: domain, name: out)
        }
        // Float constants as Constant nodes, not initializers: they are no parameters to train.
        func const(_ v: [Float], _ shape: [Int]) throws -> String { try b.constant(v, shape) }
        func ints(_ v: [Int]) throws -> String { try b.ints(v) }
        let x0 = fresh(dataInput), z = fresh(noiseInput), tIn = fresh(timeInput), r = fresh(warmupInput)
        let sigma = try const([options.sigmaData], [])
        // t as [N, 1, ...] to broadcast over a sample.
        let tb = op("Reshape", [tIn, try ints([-1] + Array(repeating: 1, count: rank - 1))])
        let cosT = op("Cos", [tb]), sinT = op("Sin", [tb])
        let xt = op("Add", [op("Mul", [cosT, x0]), op("Mul", [sinT, z])])
        // The tangent's angle u = t - s(t) ([N] and broadcast), t itself without segments.
        let uFlat = try segmentAngle(of: tIn, boundaries: options.segments, node: { op($0, $1, $2) }, scalar: { try const([$0], []) })
        let cosU: String, sinU: String
        if options.segments.isEmpty {
            (cosU, sinU) = (cosT, sinT)
        } else {
            let ub = op("Reshape", [uFlat, try ints([-1] + Array(repeating: 1, count: rank - 1))])
            (cosU, sinU) = (op("Cos", [ub]), op("Sin", [ub]))
        }
        let cs = op("Mul", [cosU, sinU])
        // The network's inputs and their tangents.
        _ = op("Div", [xt, sigma], to: x.name)
        _ = op("Identity", [tIn], to: t.name)
        var teacherInits: [Tensor] = []
        let dxt: String
        if let teacher {
            let (teacherF, inits) = try splice(teacher, into: b, x: x.name, t: t.name)
            teacherInits = inits
            dxt = op("Mul", [sigma, teacherF])
        } else {
            dxt = op("Sub", [op("Mul", [cosT, z]), op("Mul", [sinT, x0])])
        }
        _ = op("Div", [op("Mul", [cs, dxt]), sigma], to: xTangent)
        _ = op("Mul", [op("Cos", [uFlat]), op("Sin", [uFlat])], to: tTangent)
        // Tangent, warmup, normalization.
        let first = op("Neg", [op("Mul", [op("Mul", [cosU, cosU]), op("Sub", [op("Mul", [sigma, fName]), dxt])])])
        let second = op("Mul", [r, op("Add", [op("Mul", [cs, xt]), op("Mul", [sigma, fTangent])])])
        let tangent = op("Sub", [first, second])
        let axes = try ints(Array(1..<rank))
        let rms = op("Sqrt", [op("ReduceMean", [op("Mul", [tangent, tangent]), axes], [Attribute("keepdims", .int(1))])])
        let normalized = op("Div", [tangent, op("Add", [rms, try const([options.tangentNormConstant], [])])])
        let target = op("StopGradient", [op("Add", [fName, normalized])], domain: Model.scmDomain)
        let diff = op("Sub", [fName, target])
        var perElement = op("Mul", [diff, diff])
        if hasLogvar {
            let lv = op("Reshape", [g.outputs[1].name, try ints([-1] + Array(repeating: 1, count: rank - 1))])
            perElement = op("Add", [op("Mul", [op("Exp", [op("Neg", [lv])]), perElement]), lv])
        }
        let all = try ints(Array(0..<rank))
        let loss = op("ReduceMean", [perElement, all], [Attribute("keepdims", .int(0))], to: fresh(lossOutput))
        var m = jvp
        // The wiring nodes must come before the network's nodes that read them.
        let wiring = b.nodes.prefix { n in ![fName, fTangent].contains(where: n.inputs.contains) }
        let rest = b.nodes.dropFirst(wiring.count)
        m.graph.nodes = Array(wiring) + jg.nodes + Array(rest)
        m.graph.initializers = jg.initializers + b.initializers + teacherInits
        let scalar = TensorType(elementType: .float, shape: [])
        m.graph.inputs = [ValueInfo(x0, x.type), ValueInfo(z, x.type), ValueInfo(tIn, t.type), ValueInfo(r, scalar)]
        m.graph.outputs = [ValueInfo(loss, scalar)]
        m.graph.valueInfo = []
        m.declareSCMDomainIfUsed()
        return m
    }

    /// Emits `teacher`'s nodes into `b` reading the student's inputs `x` and `t`, its other values
    /// renamed `teacher/...`; returns its output F and its initializers (renamed alike).
    static func splice(_ teacher: Model, into b: GraphBuilder, x: String, t: String) throws -> (output: String, initializers: [Tensor]) {
        let tg = teacher.graph
        let tInits = Set(tg.initializers.map(\.meta.name))
        let tInputs = tg.inputs.filter { !tInits.contains($0.name) }
        guard tInputs.count == 2, let tOut = tg.outputs.first else {
            throw RuntimeError(.invalidModel, at: "teacher", "needs inputs x and t and an output F")
        }
        var rename: [String: String] = [tInputs[0].name: x, tInputs[1].name: t]
        func renamed(_ v: String) -> String {
            if v.isEmpty { return v }
            if let r = rename[v] { return r }
            let r = b.names.fresh("teacher/" + v)
            rename[v] = r
            return r
        }
        var initializers: [Tensor] = []
        for var t0 in tg.initializers {
            t0.meta.name = renamed(t0.meta.name)
            initializers.append(t0)
        }
        for n in tg.nodes {
            var m = n
            m.inputs = n.inputs.map(renamed)
            m.outputs = n.outputs.map(renamed)
            m.name = b.names.fresh("teacher/" + n.name)
            b.append(m)
        }
        return (renamed(tOut.name), initializers)
    }
}
