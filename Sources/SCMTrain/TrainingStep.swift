import Foundation
import SCMGraph
import SCMRuntime

/// The settings of the fused optimizer update (`ai.scm:AdamUpdate`).
public struct AdamOptions: Sendable, Equatable {
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float
    /// AdamW's decoupled weight decay (0: plain Adam).
    public var weightDecay: Float
    /// Global-norm gradient clipping (0: none).
    public var maxGradNorm: Float
    /// Decay of the exponential moving average of the weights (0: no EMA).
    public var emaDecay: Float
    /// RAdam's rectification instead of plain Adam.
    public var rectified: Bool = false
    /// The EMA's decay ramps up as min(emaDecay, (1 + step) / (10 + step)).
    public var emaWarmup: Bool = false
    /// > 0: EDM2's power-function EMA, decay (1 - 1/step)^(emaGamma + 1), instead of `emaDecay`
    /// (which must still be > 0: it says the EMA exists). `AdamOptions.emaGamma(std:)` gives
    /// the exponent of a relative standard deviation.
    public var emaGamma: Float = 0

    /// The exponent gamma of EDM2's power-function EMA whose averaging profile has the relative
    /// standard deviation `std` (sigma_rel = sqrt((g + 1) / ((g + 2)^2 (g + 3))), which falls from
    /// 0.289 at g = 0 toward 0 as g grows); nil outside (0, 0.288].
    public static func emaGamma(std: Double) -> Double? {
        guard std > 0, std <= 0.288 else { return nil }
        func rel(_ g: Double) -> Double { ((g + 1) / ((g + 2) * (g + 2) * (g + 3))).squareRoot() }
        var lo = 0.0, hi = 1e7
        for _ in 0..<200 {
            let mid = (lo + hi) / 2
            if rel(mid) > std { lo = mid } else { hi = mid }
        }
        return (lo + hi) / 2
    }

    public init(beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0,
                maxGradNorm: Float = 0, emaDecay: Float = 0) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.maxGradNorm = maxGradNorm
        self.emaDecay = emaDecay
    }
}

/// A training step as one graph: the loss, its gradient with respect to the parameters (reverse
/// mode), and the optimizer update, compiled once like any model.
public enum TrainingStep {
    /// Names of the step graph's inputs and outputs besides the data inputs.
    public static let stepInput = "train_step", lrInput = "train_lr", lossOutput = "train_loss", normOutput = "train_grad_norm"

    /// The step graph for `lossModel` (output 0: a float scalar loss; the data are its graph
    /// inputs) training the float initializers `parameters` (nil: every one the loss depends on).
    ///
    /// Inputs: the loss model's inputs, `train_step` (1-based) and `train_lr` (float scalars), then
    /// per parameter P: P, P + "_adam_m", P + "_adam_v" (and P + "_ema" with EMA). Outputs:
    /// `train_loss`, `train_grad_norm`, then P', M', V' (and E') per parameter, named with
    /// "_next". The parameters are not initializers of the result: their values are inputs.
    /// Returns the graph and the trained parameter names, in input order.
    public static func make(_ lossModel: Model, parameters: [String]? = nil,
                            options: AdamOptions = AdamOptions()) throws -> (model: Model, parameters: [String]) {
        TrainingOps.register()
        guard let loss = lossModel.graph.outputs.first else { throw RuntimeError(.invalidModel, at: "loss", "the model has no output") }
        var reduced = lossModel
        reduced.graph.outputs = [loss]
        let (grad, names) = try ReverseMode.vjp(reduced, wrt: parameters ?? [ReverseMode.parameters])
        guard !names.isEmpty else { throw RuntimeError(.invalidModel, at: "parameters", "the loss depends on no float initializer") }
        let inits = Set(lossModel.graph.initializers.map(\.meta.name))
        for n in names where !inits.contains(n) {
            throw RuntimeError(.badInput, at: "parameters", "'\(n)' is not an initializer of the loss model")
        }
        var m = grad
        let g = m.graph
        // The loss's cotangent is 1.
        guard let seed = g.inputs.first(where: { $0.name == loss.name + ReverseMode.cotangentSuffix }) else {
            throw RuntimeError(.invalidModel, at: "output '\(loss.name)'", "the loss must be a float output")
        }
        let seedShape: [Int] = seed.type?.shape?.compactMap { (d: Dim) -> Int? in if case .value(let v) = d { v } else { nil } } ?? []
        guard seedShape.reduce(1, *) == 1, (seed.type?.shape?.count ?? 0) == seedShape.count else {
            throw RuntimeError(.invalidModel, at: "output '\(loss.name)'", "the loss must be a scalar, is \(seed.type?.shape?.shapeDescription ?? "?")")
        }
        var one = try Tensor(shape: seedShape, scalars: [Float(1)])
        one.meta.name = seed.name
        var allocator = NameAllocator(avoiding: g)
        func fresh(_ base: String) -> String { allocator.fresh(base) }
        let trained = Set(names)
        let paramTensors = try names.map { n in
            guard let t = g.initializers.first(where: { $0.meta.name == n }) else {
                throw RuntimeError(.invalidModel, at: "parameters", "'\(n)' has no initial value")
            }
            return t
        }
        let data = g.inputs.filter { $0.name != seed.name && !inits.contains($0.name) }
        let stepName = fresh(stepInput), lrName = fresh(lrInput)
        let scalar = TensorType(elementType: .float, shape: [])
        func vi(_ name: String, _ t: Tensor) -> ValueInfo { ValueInfo(name, t.dtype, t.shape.map { .value($0) }) }
        let useEMA = options.emaDecay > 0
        let mNames = names.map { fresh($0 + "_adam_m") }, vNames = names.map { fresh($0 + "_adam_v") }
        let eNames = useEMA ? names.map { fresh($0 + "_ema") } : []
        var inputs = data + [ValueInfo(stepName, scalar), ValueInfo(lrName, scalar)]
        for (j, t) in paramTensors.enumerated() {
            inputs.append(vi(names[j], t))
            inputs.append(vi(mNames[j], t))
            inputs.append(vi(vNames[j], t))
            if useEMA { inputs.append(vi(eNames[j], t)) }
        }
        let gradOutputs = Array(g.outputs.dropFirst())
        let nextP = names.map { fresh($0 + "_next") }, nextM = mNames.map { fresh($0 + "_next") }
        let nextV = vNames.map { fresh($0 + "_next") }, nextE = eNames.map { fresh($0 + "_next") }
        let lossOut = fresh(lossOutput), normOut = fresh(normOutput)
        var attrs = [Attribute("beta1", .float(options.beta1)), Attribute("beta2", .float(options.beta2)),
                     Attribute("epsilon", .float(options.epsilon)), Attribute("weight_decay", .float(options.weightDecay)),
                     Attribute("max_grad_norm", .float(options.maxGradNorm))]
        if useEMA { attrs.append(Attribute("ema_decay", .float(options.emaDecay))) }
        if options.rectified { attrs.append(Attribute("rectified", .int(1))) }
        if useEMA && options.emaWarmup { attrs.append(Attribute("ema_warmup", .int(1))) }
        if useEMA && options.emaGamma > 0 { attrs.append(Attribute("ema_gamma", .float(options.emaGamma))) }
        let update = Node("AdamUpdate", inputs: [stepName, lrName] + names + gradOutputs.map(\.name) + mNames + vNames + eNames,
                          outputs: nextP + nextM + nextV + nextE + [normOut], name: fresh("adam_update"), domain: Model.scmDomain,
                          attributes: attrs)
        m.graph.nodes = g.nodes + [Node("Identity", inputs: [loss.name], outputs: [lossOut], name: fresh("loss_out")), update]
        m.graph.initializers = g.initializers.filter { !trained.contains($0.meta.name) } + [one]
        m.graph.inputs = inputs
        var outputs = [ValueInfo(lossOut, scalar), ValueInfo(normOut, scalar)]
        for (j, t) in paramTensors.enumerated() {
            outputs.append(vi(nextP[j], t))
            outputs.append(vi(nextM[j], t))
            outputs.append(vi(nextV[j], t))
            if useEMA { outputs.append(vi(nextE[j], t)) }
        }
        m.graph.outputs = outputs
        m.graph.valueInfo = []
        m.declareSCMDomainIfUsed()
        return (m, names)
    }
}

/// A compiled training step with its state: parameters, Adam moments and (optionally) their EMA
/// in buffers that persist between steps; `step` copies them in and the updated values back into
/// the same buffers, allocating nothing but what the caller's data tensors hold.
public final class TrainingSession: @unchecked Sendable {
    /// The trained parameters' names, in the step graph's order.
    public let parameters: [String]
    /// Steps taken.
    public private(set) var stepCount: Int = 0
    /// The compiled step.
    public let plan: Plan
    private let session: Session
    private let dataCount: Int
    private let buffers: [FloatBuffer]   // per parameter: P, M, V (, E)
    private let stepBuffer = FloatBuffer(1), lrBuffer = FloatBuffer(1), lossBuffer = FloatBuffer(1), normBuffer = FloatBuffer(1)
    private let inputs: [Tensor]         // the state's tensors, borrowing the buffers
    private let outputs: [UnsafeMutableRawBufferPointer]
    private let perParameter: Int

    /// The suffixes of the state tensors besides the parameters, in `state()` and `initial`.
    public static let momentSuffixes = (m: "_adam_m", v: "_adam_v", ema: "_ema")

    /// Compiles `step` (from `TrainingStep.make`) for the data shapes `dataShapes` and starts from
    /// `initial`: parameter values by name, and optionally their moments and EMA under the name
    /// plus `_adam_m`, `_adam_v`, `_ema` (a checkpoint's state; else zero moments, EMA = the
    /// parameter), after `steps` steps already taken (Adam's bias correction counts them);
    /// `limits` bound the plan (its activation memory, its tensors).
    public init(step: Model, parameters: [String], initial: [String: Tensor], dataShapes: [String: TensorSpec],
                threads: Int = 1, steps: Int = 0, limits: ResourceLimits = .standard) throws {
        self.parameters = parameters
        TrainingOps.register()
        plan = try Compiler.compile(step, shapes: dataShapes, limits: limits)
        session = plan.makeSession(threads: threads)
        let update = step.graph.nodes.first { $0.opType == "AdamUpdate" && $0.domain == Model.scmDomain }
        let useEMA = (update?.attribute("ema_decay")).map { if case .float(let v) = $0.value { v > 0 } else { false } } ?? false
        perParameter = useEMA ? 4 : 3
        dataCount = plan.inputs.count - 2 - perParameter * parameters.count
        guard dataCount >= 0 else { throw RuntimeError(.invalidModel, at: "training step", "has fewer inputs than its state needs") }
        var bufs: [FloatBuffer] = []
        var tensors: [Tensor] = []
        for (j, p) in parameters.enumerated() {
            guard let t = initial[p], t.dtype == .float, let values = t.scalars(as: Float.self) else {
                throw RuntimeError(.badInput, at: "parameter '\(p)'", "needs a float initial value")
            }
            let spec = plan.inputs[dataCount + 2 + perParameter * j].spec
            guard spec.shape == t.shape else { throw RuntimeError(.badInput, at: "parameter '\(p)'", "is \(t.shape), the step wants \(spec.shape)") }
            let suffixes = ["", Self.momentSuffixes.m, Self.momentSuffixes.v, Self.momentSuffixes.ema]
            for r in 0..<perParameter {
                let b = FloatBuffer(values.count)
                var source: [Float]? = r == 0 || r == 3 ? values : nil
                if r > 0, let given = initial[p + suffixes[r]] {
                    guard given.shape == t.shape, let v = given.scalars(as: Float.self) else {
                        throw RuntimeError(.badInput, at: "state '\(p + suffixes[r])'", "must be float \(t.shape)")
                    }
                    source = v
                }
                if let source { source.withUnsafeBufferPointer { b.pointer.update(from: $0.baseAddress!, count: values.count) } }
                bufs.append(b)
                tensors.append(try b.tensor(shape: t.shape))
            }
        }
        buffers = bufs
        inputs = [try stepBuffer.tensor(shape: []), try lrBuffer.tensor(shape: [])] + tensors
        // Outputs: loss, norm, then P', M', V' (E') grouped by kind in the graph's order.
        var outs: [UnsafeMutableRawBufferPointer] = [lossBuffer.raw, normBuffer.raw]
        for j in 0..<parameters.count {
            for r in 0..<perParameter { outs.append(bufs[perParameter * j + r].raw) }
        }
        outputs = outs
        stepCount = steps
    }

    /// Every state tensor by name: the parameters, and their `_adam_m`, `_adam_v` (and `_ema`).
    public func state() throws -> [String: Tensor] {
        let suffixes = ["", Self.momentSuffixes.m, Self.momentSuffixes.v, Self.momentSuffixes.ema]
        var out: [String: Tensor] = [:]
        for (j, p) in parameters.enumerated() {
            let spec = plan.inputs[dataCount + 2 + perParameter * j].spec
            for r in 0..<perParameter {
                let b = buffers[perParameter * j + r]
                out[p + suffixes[r]] = try Tensor(shape: spec.shape, scalars: Array(UnsafeBufferPointer(start: b.pointer, count: b.count)),
                                                  name: p + suffixes[r])
            }
        }
        return out
    }

    /// One step on `data` (the loss model's inputs, in order) at learning rate `lr`; returns the
    /// loss (before the update) and the gradient norm (before clipping).
    public func step(_ data: [Tensor], lr: Float) throws -> (loss: Float, gradNorm: Float) {
        guard data.count == dataCount else { throw RuntimeError(.badInput, at: "step", "expected \(dataCount) data tensors, got \(data.count)") }
        stepBuffer.pointer[0] = Float(stepCount + 1)
        lrBuffer.pointer[0] = lr
        try session.run(data + inputs, into: outputs)
        stepCount += 1
        return (lossBuffer.pointer[0], normBuffer.pointer[0])
    }

    /// The current value of a parameter (`ema`: its moving average, when the step keeps one).
    public func value(of name: String, ema: Bool = false) throws -> Tensor {
        guard let j = parameters.firstIndex(of: name) else { throw RuntimeError(.badInput, at: name, "is not a trained parameter") }
        guard !ema || perParameter == 4 else { throw RuntimeError(.badInput, at: name, "the step keeps no EMA") }
        let b = buffers[perParameter * j + (ema ? 3 : 0)]
        let spec = plan.inputs[dataCount + 2 + perParameter * j].spec
        return try Tensor(shape: spec.shape, scalars: Array(UnsafeBufferPointer(start: b.pointer, count: b.count)))
    }
}
