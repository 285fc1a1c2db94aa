import Foundation
import SCMGraph
import SCMRuntime
import SCMTrigFlow

/// Everything that determines a training run's numbers. Stored in each checkpoint (as JSON in
/// `scm.train.config`); `--resume` refuses a checkpoint whose configuration differs.
///
/// Defaults and their reasons:
/// - `sigmaData` 0.5: the data's standard deviation in sCM (images scaled to [-1, 1] have about 0.5).
/// - `pMean` -1.0, `pStd` 1.4: the log-normal proposal over sigma of sCM's sCT runs
///   (log sigma ~ N(-1.0, 1.4^2), t = atan(sigma / sigma_d)); flow pretraining uses the same;
///   `scm-train` gives sCD sCM's sCD proposal (-0.8, 1.6) unless `--p-mean`/`--p-std` say otherwise.
/// - `tangentWarmup` 1000 steps: the seed's ("warmup_steps typically 1000").
/// - `tangentNormC` 0.1: the seed's constant c of g / (||g|| + c).
/// - `lr` 1e-3 with Adam (beta 0.9, 0.999): the top of the seed's range 1e-4..1e-3, for short CPU
///   runs of small networks; `lrWarmup` 200 steps of linear warmup (Adam's early steps are noisy);
///   then constant, or `lrDecayStart` > 0: lr sqrt(start / step) after it (EDM2's inverse square root).
/// - `maxGradNorm` 100: the seed's clipping value.
/// - `emaDecay` 0.999, ramped up as min(0.999, (1 + step) / (10 + step)): the exported weights
///   average about the last 1000 steps, and a short run's EMA does not keep its random start
///   (measured: with a constant 0.999, the grid of a 500-step fashion-mnist run was noise).
///   The ramp counts the run's own steps, so it caps the decay at 1 - 9 / (10 + step) whatever
///   `emaDecay` says: 0.991 at step 1000, 0.9955 at 2000 (an average of about the last 10% of the
///   run); `emaRamp` false drops it for runs that start from trained weights (`--init`), whose EMA
///   then holds `emaDecay` from the first step.
/// - `batch` 64.
/// - `initialize`: none for flow and sct (random start); for scd, `scm-train` initializes from the
///   teacher when their networks match (sCM's recipe: the consistency model starts as the diffusion
///   model, whose one-step jump f(x, t) = cos t x - sin t sigma_d F is already a blurry sample).
public struct TrainConfig: Codable, Sendable, Equatable {
    public enum Objective: String, Codable, Sendable, CaseIterable { case flow, sct, scd, cmt }
    public enum OptimizerKind: String, Codable, Sendable { case adam, radam }

    public var data: String
    public var objective: Objective
    /// The flow checkpoint or flow model whose velocity network supplies dx_t/dt (sCD) or the
    /// PF-ODE trajectories (CMT).
    public var teacher: String?
    /// CMT: how the teacher's trajectories are made (nil for the other objectives).
    public var trajectories: MidTraining.Trajectories?
    /// CMT: the distance between the student's jump and the trajectory's end (nil: L2).
    public var distance: MidTraining.Distance?
    /// A digest of the teacher file's bytes (`fnvDigest`, hex), set by `Trainer.run`: `--resume`
    /// accepts a teacher that moved (another path, the same bytes). Absent in older checkpoints.
    public var teacherDigest: String?
    /// A checkpoint of the same network whose EMA weights initialize the network (instead of the
    /// seeded random initialization): sCM fine-tunes consistency models from the pretrained
    /// diffusion (flow) model, so `scm-train --objective scd` defaults to its teacher.
    public var initialize: String?
    public var network: NetworkConfig
    public var batch = 64
    public var seed: UInt64 = 0
    public var lr: Float = 1e-3
    public var lrWarmup = 200
    public var lrDecayStart = 0
    public var optimizer: OptimizerKind = .adam
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var weightDecay: Float = 0
    public var maxGradNorm: Float = 100
    public var emaDecay: Float = 0.999
    /// EDM2's power-function EMA with this relative standard deviation (e.g. 0.05: the average of
    /// about the last tenth of the run) instead of the fixed `emaDecay`; nil: the fixed decay.
    public var emaStd: Float?
    /// The EMA's ramp min(emaDecay, (1 + step) / (10 + step)); nil (the default, and every
    /// checkpoint written before the field existed): on; false: off, the fixed `emaDecay` from step 1.
    public var emaRamp: Bool?
    /// Segment boundaries of a multistep consistency model (`ConsistencyLoss.Options.segments`):
    /// f maps x_t to the PF-ODE's point at the largest boundary below t, and the exported model
    /// samples deterministically in one step per segment. nil: sCM's one segment.
    public var segments: [Float]?
    /// The boundaries in increasing order (empty without segments).
    public var segmentBoundaries: [Float] { (segments ?? []).sorted() }
    public var sigmaData: Float = 0.5
    public var pMean: Float = -1.0
    public var pStd: Float = 1.4
    public var tangentWarmup = 1000
    public var tangentNormC: Float = 0.1
    /// The data's range (low, high) and class names, recorded for the exported model's metadata.
    public var dataRange: [Float]?
    public var classes: [String]?

    public init(data: String, objective: Objective, network: NetworkConfig) {
        self.data = data
        self.objective = objective
        self.network = network
    }

    /// sCM's log-normal proposal (P_mean, P_std) for an objective: (-0.8, 1.6) for sCD, (-1.0, 1.4)
    /// for sCT and flow pretraining (the struct's defaults).
    public static func proposal(_ objective: Objective) -> (mean: Float, std: Float) {
        objective == .scd ? (-0.8, 1.6) : (-1.0, 1.4)
    }

    /// sigma_d for `data`: 0.5 for images in [-1, 1] (sCM's value); for vector data, the standard
    /// deviation of 20000 exact samples pooled over the coordinates (about 2.31 for the
    /// checkerboard), since the TrigFlow parameterization assumes sigma_d is the data's scale.
    public static func defaultSigmaData(_ data: DataSource) throws -> Float {
        guard data.sampleShape.count == 1 else { return 0.5 }
        let s = try data.referenceSamples(count: 20000, seed: 12345)
        let mean = s.reduce(0.0) { $0 + Double($1) } / Double(s.count)
        let variance = s.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(s.count)
        return Float((variance + mean * mean).squareRoot() * 1000).rounded() / 1000
    }

    /// Whether the network has the log-variance head of adaptive weighting (every objective but
    /// CMT, whose plain distance weights every trajectory point alike, as the method's authors do).
    public var weightingHead: Bool { objective != .cmt }

    /// Whether the checkpoint or model file at `path` can start a run of `config`'s network
    /// (the default `--init` of sCD and CMT is the teacher when it can).
    public static func canInitialize(_ config: TrainConfig, from path: String) throws -> Bool {
        (try? TrainingSource.initialWeights(path, config: config)) != nil
    }

    /// The learning rate at `step` (0-based).
    public func learningRate(step: Int) -> Float {
        var lr = self.lr
        if lrWarmup > 0 { lr *= min(1, Float(step + 1) / Float(lrWarmup)) }
        if lrDecayStart > 0, step > lrDecayStart { lr *= (Float(lrDecayStart) / Float(step)).squareRoot() }
        return lr
    }

    /// The tangent warmup factor r at `step`.
    public func warmup(step: Int) -> Float { tangentWarmup <= 0 ? 1 : min(1, Float(step) / Float(tangentWarmup)) }

    var adam: AdamOptions {
        var o = AdamOptions(beta1: beta1, beta2: beta2, epsilon: 1e-8, weightDecay: weightDecay, maxGradNorm: maxGradNorm, emaDecay: emaDecay)
        o.rectified = optimizer == .radam
        o.emaWarmup = emaRamp ?? true
        if let s = emaStd, let g = AdamOptions.emaGamma(std: Double(s)) { o.emaGamma = Float(g) }
        return o
    }

    func json() throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return String(decoding: try e.encode(self), as: UTF8.self)
    }

    static func from(json: String, source: String) throws -> TrainConfig {
        do { return try JSONDecoder().decode(TrainConfig.self, from: Data(json.utf8)) } catch {
            throw TrainError(at: source, "the training configuration cannot be read: \(error)")
        }
    }
}

/// The loss graphs of the objectives (inputs `sct_x0`, `sct_z`, `sct_t` and, for sCT, `sct_r`).
enum Objectives {
    /// Flow (v-prediction) pretraining: loss = mean(exp(-logvar) (F - v / sigma_d)^2 + logvar)
    /// with v = cos t z - sin t x0 = dx_t/dt, F evaluated at (x_t / sigma_d, t).
    static func flow(network: Model, sigmaData: Float) throws -> Model {
        let g = network.graph
        let b = GraphBuilder(names: NameAllocator(avoiding: g))
        let x = g.inputs[0].name, t = g.inputs[1].name
        let rank = (g.inputs[0].type?.shape?.count ?? 2)
        let x0 = ConsistencyLoss.dataInput, z = ConsistencyLoss.noiseInput, tIn = ConsistencyLoss.timeInput
        let sigma = try b.scalar(sigmaData)
        let tb = b.op("Reshape", [tIn, try b.ints([-1] + Array(repeating: 1, count: rank - 1))])
        let cosT = b.op("Cos", [tb]), sinT = b.op("Sin", [tb])
        let xt = b.op("Add", [b.op("Mul", [cosT, x0]), b.op("Mul", [sinT, z])])
        let v = b.op("Sub", [b.op("Mul", [cosT, z]), b.op("Mul", [sinT, x0])])
        _ = b.op("Div", [xt, sigma], name: x)
        _ = b.op("Identity", [tIn], name: t)
        let wiring = b.takeNodes()
        let diff = b.op("Sub", [g.outputs[0].name, b.op("Div", [v, sigma])])
        var per = b.op("Mul", [diff, diff])
        if g.outputs.count > 1 {
            let lv = b.op("Reshape", [g.outputs[1].name, try b.ints([-1] + Array(repeating: 1, count: rank - 1))])
            per = b.op("Add", [b.op("Mul", [b.op("Exp", [b.op("Neg", [lv])]), per]), lv])
        }
        let loss = b.op("ReduceMean", [per, try b.ints(Array(0..<rank))], [Attribute("keepdims", .int(0))], name: "flow_loss")
        var m = network
        m.graph.nodes = wiring + g.nodes + b.nodes
        m.graph.initializers = g.initializers + b.initializers
        let scalar = TensorType(elementType: .float, shape: [])
        m.graph.inputs = [ValueInfo(x0, g.inputs[0].type), ValueInfo(z, g.inputs[0].type), ValueInfo(tIn, g.inputs[1].type)]
        m.graph.outputs = [ValueInfo(loss, scalar)]
        m.graph.valueInfo = []
        return m
    }
}
