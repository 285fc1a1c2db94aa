import Foundation
import SCMGraph

/// A TrigFlow model file, loaded and checked against the model-file contract once
/// (`schemas/README.md`): inputs `x` [N, ...] and `t` [N], output 0 the shape of `x`, and the
/// `scm.*` metadata. Make samplers from it with `sampler(steps:)` or `odeSampler(steps:solver:)`.
///
/// A value type holding immutable data: share it freely between tasks.
public struct TrigFlowModel: Sendable {
    /// Values that replace or supply `scm.*` metadata entries (for files without them).
    public struct Overrides: Sendable {
        /// Replaces `scm.sigma_data`.
        public var sigmaData: Float?
        /// Replaces `scm.t_max`.
        public var tMax: Float?
        /// Replaces `scm.data_range` (low, high).
        public var dataRange: (Float, Float)?
        /// Replaces `scm.parameterization`.
        public var parameterization: TrigFlowMetadata.Parameterization?

        /// Overrides with only the given values set.
        public init(sigmaData: Float? = nil, tMax: Float? = nil, dataRange: (Float, Float)? = nil,
                    parameterization: TrigFlowMetadata.Parameterization? = nil) {
            self.sigmaData = sigmaData
            self.tMax = tMax
            self.dataRange = dataRange
            self.parameterization = parameterization
        }
    }

    /// The model, reduced to output 0 (the only one sampling reads).
    public let model: Model
    /// The checked `scm.*` metadata, with the overrides applied.
    public let metadata: TrigFlowMetadata
    /// One sample's shape without the batch dimension: [C, H, W] for images, [D] for vectors.
    public let sampleShape: [Int]
    /// The name of the graph input `x`.
    public let xName: String
    /// The name of the graph input `t`.
    public let tName: String
    /// The declared length of `t` when the file fixes it (e.g. [1], broadcast over the batch);
    /// nil for the contract's [N].
    let fixedTimeLength: Int?
    /// The batch size when the file fixes it (an export without a dynamic batch axis); samplers
    /// then run every batch at this size, padding the last.
    public let fixedBatch: Int?

    /// Elements of one sample.
    public var sampleElements: Int { sampleShape.reduce(1, *) }

    /// Whether samples are images ([C, H, W]) rather than vectors ([D]).
    public var isImage: Bool { sampleShape.count == 3 }

    /// Loads and checks the model file at `path`, within `limits` (see `ResourceLimits`; give
    /// samplers the same limits in `Sampler.Options.limits` for the compile-time checks).
    public init(path: String, overrides: Overrides = Overrides(), limits: ResourceLimits = .standard) throws(SamplerError) {
        let model = try SamplerError.wrap { try ModelFile.load(path: path, limits: limits) }
        try self.init(model, overrides: overrides)
    }

    /// Checks `model` against the contract.
    public init(_ model: Model, overrides: Overrides = Overrides()) throws(SamplerError) {
        func bad(_ at: String, _ m: String) -> SamplerError { SamplerError(.invalidModel, at: at, m) }
        try TrigFlowMetadata.refuseCheckpoint(model)
        if let f = model.metadataValue(TrigFlowMetadata.Key.format), f.trimmingCharacters(in: .whitespaces) != TrigFlowMetadata.format {
            throw bad("metadata 'scm.format'", "is '\(f)'; scm-run reads 'trigflow/1'")
        }
        var meta: TrigFlowMetadata
        do {
            meta = try TrigFlowMetadata(model, sigmaData: overrides.sigmaData, tMax: overrides.tMax)
        } catch {
            var e = SamplerError(wrapping: error)
            if e.message == TrigFlowMetadata.missingMessage {
                e.message += e.location.contains("sigma_data") ? ": supply the model's sigma_data (Overrides.sigmaData)"
                    : ": supply the model's t_max (Overrides.tMax)"
            }
            throw e
        }
        if let r = overrides.dataRange {
            guard r.0.isFinite, r.1.isFinite, r.0 < r.1 else {
                throw SamplerError(.invalidArgument, at: "data range", "\(r.0),\(r.1) is not 'low,high' with low < high")
            }
            meta.dataRange = r
        }
        if let p = overrides.parameterization { meta.parameterization = p }

        let inits = Set(model.graph.initializers.map(\.meta.name))
        let inputs = model.graph.inputs.filter { !inits.contains($0.name) }
        guard inputs.count == 2 else {
            throw bad("graph inputs", "a TrigFlow model has exactly two inputs, x [N, ...] and t [N]; this one has \(inputs.count) (\(inputs.map(\.name).joined(separator: ", ")))")
        }
        guard model.graph.inputs.count >= 2, model.graph.inputs[0].name == inputs[0].name, model.graph.inputs[1].name == inputs[1].name else {
            throw bad("graph inputs", "x and t must be the first two graph inputs")
        }
        let x = inputs[0], t = inputs[1]
        guard x.type?.elementType == .float, let xs = x.type?.shape, xs.count == 2 || xs.count == 4 else {
            throw bad("input '\(x.name)'", "must be float32 [N, C, H, W] or [N, D] with a declared shape")
        }
        guard let rest = Array(xs.dropFirst()).concrete, rest.allSatisfy({ $0 >= 1 }) else {
            throw bad("input '\(x.name)'", "has shape \(xs.shapeDescription): only the batch dimension may be symbolic")
        }
        guard t.type?.elementType == .float else { throw bad("input '\(t.name)'", "must be float32 [N]") }
        var fixedT: Int? = nil
        if let ts = t.type?.shape {
            guard ts.count == 1 else { throw bad("input '\(t.name)'", "must have rank 1 ([N]), has \(ts.shapeDescription)") }
            if case .value(let v) = ts[0] {
                let batchFixed: Int? = if case .value(let b) = xs[0] { b } else { nil }
                guard v == 1 || v == batchFixed else {
                    throw bad("input '\(t.name)'", "has fixed length \(v); it must be [N] or [1]")
                }
                fixedT = v
            }
        }
        if let s = meta.sampleShape, s != rest {
            throw bad("metadata 'scm.sample_shape'", "says \(s.map(String.init).joined(separator: ",")) but input '\(x.name)' is [N, \(rest.map(String.init).joined(separator: ", "))]")
        }
        guard let out = model.graph.outputs.first else { throw bad("graph outputs", "the model has no output") }
        if let ot = out.type {
            guard ot.elementType == .float else { throw bad("output '\(out.name)'", "must be float32 (the shape of x)") }
        }
        var m = model
        m.graph.outputs = [out]
        self.model = m
        self.metadata = meta
        self.sampleShape = rest
        self.xName = x.name
        self.tName = t.name
        self.fixedTimeLength = fixedT
        if case .value(let b) = xs[0], b >= 1 { fixedBatch = b } else { fixedBatch = nil }
    }

    /// The length `t` has in a batch of `batch` samples.
    func timeLength(batch: Int) -> Int { fixedTimeLength ?? batch }

    /// A consistency sampler for `steps` steps on `schedule` (decreasing times starting at
    /// `t_max`; the model's `scm.schedule.N` or the default rule when nil).
    public func sampler(steps: Int, schedule: [Float]? = nil, options: Sampler.Options = Sampler.Options()) throws(SamplerError) -> Sampler {
        if let m = Limits.violation(steps, Limits.steps) { throw SamplerError(.invalidArgument, at: "steps", m) }
        let times: [Float]
        if let schedule { times = schedule } else { times = try SamplerError.wrap { try metadata.schedule(steps: steps) } }
        try SamplerError.wrap { try TrigFlowMetadata.checkSchedule(times, steps: steps, tMax: metadata.tMax, source: "schedule") }
        return try Sampler(model: self, method: .consistency(times: times), options: options)
    }

    /// The probability-flow ODE baseline: `steps` solver steps from t_max to 0 on a grid uniform
    /// in t, with `solver` (Heun evaluates twice per step except the last).
    public func odeSampler(steps: Int, solver: Sampler.Solver = .heun, options: Sampler.Options = Sampler.Options()) throws(SamplerError) -> Sampler {
        if let m = Limits.violation(steps, Limits.steps) { throw SamplerError(.invalidArgument, at: "ode steps", m) }
        return try Sampler(model: self, method: .ode(steps: steps, solver: solver), options: options)
    }
}
