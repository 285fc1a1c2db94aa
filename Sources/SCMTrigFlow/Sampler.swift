import Foundation
import SCMGraph
import SCMOptimize
import SCMRuntime

/// Draws samples from a TrigFlow model: consistency sampling in N steps, or the
/// probability-flow ODE baseline. Made by `TrigFlowModel.sampler(steps:)` or
/// `TrigFlowModel.odeSampler(steps:solver:)`.
///
/// The consistency rule (the model-file contract): at t_0 = t_max, x = sigma_d z_0 and
/// x0 = f(x, t_0); for each next time s = t_k: x = cos(s) x0 + sin(s) sigma_d z_k and
/// x0 = f(x, s); the sample is the last x0. A multistep model (`scm.segments`) takes no fresh
/// noise: x = f(x, t_k) at t_max and then at each boundary. The noise z_k of sample i is
/// `GaussianNoise` keyed by (seed, i, k), so sample i is bitwise the same for any batch size,
/// thread count, or caller.
///
/// Each network evaluation runs a plan specialized and optimized for its time and batch size;
/// plans are compiled once and cached by the sampler. `sample` may be called from many tasks at
/// once: each call takes its own workspace (threads and memory) from a pool the sampler keeps.
public final class Sampler: @unchecked Sendable {
    /// Integration rule of the ODE baseline.
    public enum Solver: String, Sendable, CaseIterable, Codable {
        /// One evaluation per step: x += h D(x, t).
        case euler
        /// Heun's second-order rule: two evaluations per step, Euler on a last step ending at 0.
        case heun
    }

    /// How samples are drawn.
    public enum Method: Sendable, Equatable {
        /// Consistency sampling at these decreasing times (the first is t_max).
        case consistency(times: [Float])
        /// The PF-ODE dx/dt = sigma_d F(x / sigma_d, t) from t_max to 0 in this many steps.
        case ode(steps: Int, solver: Solver)
    }

    /// Execution settings.
    public struct Options: Sendable {
        /// Samples per network evaluation (the last batch of a call may be smaller).
        public var batch: Int
        /// Worker threads per `sample` call, including the caller's.
        public var threads: Int
        /// Specialize and optimize a plan per time (true), or run the model as stored with t as
        /// an input (false).
        public var optimize: Bool
        /// Optimizer passes instead of the default pipeline (nil: the default).
        public var passes: [String]?
        /// What each compiled plan may need (tensor elements, constants, planned activation
        /// memory at the batch size): a plan over them is a `.limitExceeded` error, not an
        /// allocation.
        public var limits: ResourceLimits
        /// Samples per plan run: a batch runs as consecutive chunks of this many samples (and one
        /// smaller chunk for the rest), so that an evaluation's activations stay in cache; by
        /// batch invariance the samples are bitwise the same for any chunk size. nil: the
        /// largest power of two whose planned activations fit in `chunkBytes` (measured on the
        /// plan at the full batch size), the whole batch when the file fixes its batch size.
        public var chunk: Int?
        /// The activation budget of an automatic chunk.
        public var chunkBytes: Int
        /// The convolutions' arithmetic (`Precision`): fp32, the exact default, or the opt-in
        /// bf16 (float32 on a CPU without AVX512-BF16: `effectivePrecision`).
        public var precision: Precision

        /// Options with batch 64, 1 thread, optimization on, the default pipeline, the default
        /// limits, automatic chunks of at most 8 MiB of activations, float32.
        public init(batch: Int = 64, threads: Int = 1, optimize: Bool = true, passes: [String]? = nil,
                    limits: ResourceLimits = .standard, chunk: Int? = nil, chunkBytes: Int = 8 << 20,
                    precision: Precision = .fp32) {
            self.batch = batch
            self.threads = threads
            self.optimize = optimize
            self.passes = passes
            self.limits = limits
            self.chunk = chunk
            self.chunkBytes = chunkBytes
            self.precision = precision
        }

        /// The precision the plans run here.
        public var effectivePrecision: Precision { precision.effective }
    }

    /// The model sampled.
    public let model: TrigFlowModel
    /// How samples are drawn.
    public let method: Method
    /// Execution settings (`batch` is the file's when it fixes the batch size).
    public let options: Options
    /// The times at which the network runs, in order, for each sample.
    public let evaluationTimes: [Float]
    /// The ODE's time grid t_0 = t_max > ... > t_K = 0 (empty for consistency sampling).
    public let odeGrid: [Float]

    /// Network evaluations per sample.
    public var evaluations: Int { evaluationTimes.count }

    /// Noise draws per sample: one per consistency step, one for the ODE's start. A noise array
    /// given to `sample(noise:)` has shape [noiseSteps, count, sample shape...].
    public var noiseSteps: Int { rule.noiseSteps }

    /// The sampling math of `method`.
    let rule: any SamplingRule

    let lock = NSLock()
    var plans: [PlanKey: Plan] = [:]
    var idle: [Int: [Runner]] = [:]
    var plansCompiled = 0
    /// Chunk sizes chosen per batch size.
    var chunks: [Int: Int] = [:]
    var workspacesCreated = 0

    /// What a sampler has built and kept so far (read-only; for tests and monitoring).
    public struct Statistics: Sendable, Equatable {
        /// Plans compiled: one per distinct (time, batch size), or per batch size with
        /// `optimize: false`. A cached plan is never compiled again.
        public var plansCompiled: Int
        /// Workspaces (threads, arena, scratch and the sampler's buffers) created: one per batch
        /// size per concurrent call at most, since idle ones are reused.
        public var workspacesCreated: Int
        /// Workspaces idle now, waiting for the next call.
        public var workspacesIdle: Int
    }

    /// The counts of plans compiled and workspaces created so far.
    public var statistics: Statistics {
        lock.lock()
        defer { lock.unlock() }
        return Statistics(plansCompiled: plansCompiled, workspacesCreated: workspacesCreated,
                          workspacesIdle: idle.values.reduce(0) { $0 + $1.count })
    }

    init(model: TrigFlowModel, method: Method, options: Options) throws(SamplerError) {
        if let m = Limits.violation(options.batch, Limits.batch) { throw SamplerError(.invalidArgument, at: "batch", m) }
        if let m = Limits.violation(options.threads, Limits.threads) { throw SamplerError(.invalidArgument, at: "threads", m) }
        if let c = options.chunk, let m = Limits.violation(c, Limits.batch) { throw SamplerError(.invalidArgument, at: "chunk", m) }
        if let passes = options.passes {
            for p in passes where p != "specialize" {
                _ = try SamplerError.wrap { try Optimizer.pass(named: p) }
            }
        }
        self.model = model
        self.method = method
        var options = options
        // A file with a fixed batch size runs at that size (the last batch padded).
        if let fixed = model.fixedBatch { options.batch = fixed }
        self.options = options
        switch method {
        case .consistency(let times):
            rule = ConsistencyRule(times: times, multistep: model.metadata.segments != nil)
        case .ode(let k, .euler):
            rule = EulerRule(grid: EulerRule.grid(steps: k, tMax: model.metadata.tMax))
        case .ode(let k, .heun):
            rule = HeunRule(grid: HeunRule.grid(steps: k, tMax: model.metadata.tMax))
        }
        evaluationTimes = rule.evaluationTimes
        odeGrid = (rule as? any ODERule)?.grid ?? []
    }

    // MARK: Sampling

    /// Called after each batch of a sampling call with the samples done so far and the total.
    public typealias Progress = (_ done: Int, _ total: Int) -> Void

    /// Draws `count` samples with noise keyed by `seed`; `progress`, when given, is called on the
    /// calling thread after each batch.
    public func sample(count: Int, seed: UInt64, progress: Progress? = nil) throws(SamplerError) -> Samples {
        try run(count: count, noise: .seed(seed), progress: progress)
    }

    /// Called between the batches of `generateSamples` with the samples done so far and the
    /// total; returning false stops the call.
    public typealias ProgressHandler = (_ done: Int, _ total: Int) -> Bool

    /// Draws `count` samples keyed by `seed` for async callers, bitwise those of
    /// `sample(count:seed:)`. Between batches it checks the task's cancellation and calls
    /// `progressHandler`; a cancelled task or a handler that returns false stops it with a
    /// `.cancelled` error, and the samples drawn so far are dropped (nothing half-made is
    /// returned). A batch already running finishes first; a stop after the last batch returns
    /// the samples. Compile the plans beforehand with
    /// `prepare(count:)` to keep that work out of the call (load, warm up, then sample).
    public func generateSamples(count: Int, seed: UInt64, progressHandler: ProgressHandler? = nil) async throws(SamplerError) -> Samples {
        try stoppable(count: count, noise: .seed(seed), progressHandler, cancelled: { Task.isCancelled })
    }

    /// `sample(count:seed:)` for synchronous callers that may stop it: `progressHandler` is called
    /// between batches, and returning false stops the call with a `.cancelled` error (as
    /// `generateSamples` does for tasks).
    public func sample(count: Int, seed: UInt64, progressHandler: @escaping ProgressHandler) throws(SamplerError) -> Samples {
        try stoppable(count: count, noise: .seed(seed), progressHandler)
    }

    /// Draws samples from the given noise: `noise` holds [noiseSteps, count, sample shape...]
    /// values in C order (`shape` says so), z_k of sample i at [k, i]. For reproducing samples
    /// of another runtime exactly.
    public func sample(noise: [Float], shape: [Int], progress: Progress? = nil) throws(SamplerError) -> Samples {
        let want = [noiseSteps] + model.sampleShape
        guard shape.count == want.count + 1, shape[0] == want[0], Array(shape.dropFirst(2)) == model.sampleShape, shape[1] >= 1 else {
            throw SamplerError(.invalidArgument, at: "noise", "has shape \(shape); this sampler needs [\(noiseSteps), N, \(model.sampleShape.map(String.init).joined(separator: ", "))] (\(noiseSteps) noise draw\(noiseSteps == 1 ? "" : "s") per sample)")
        }
        guard noise.count == shape.reduce(1, *) else {
            throw SamplerError(.invalidArgument, at: "noise", "has \(noise.count) values for shape \(shape)")
        }
        if let i = noise.firstIndex(where: { !$0.isFinite }) {
            let per = shape.dropFirst(2).reduce(1, *)
            throw SamplerError(.invalidArgument, at: "noise", "holds a non-finite value (\(noise[i])) at step \(i / (per * shape[1])), sample \(i / per % shape[1]): noise must be finite")
        }
        return try run(count: shape[1], noise: .given(noise), progress: progress)
    }

    /// Draws one sample per key, sample i with the noise of `keys[i]`: several callers' requests
    /// (each its own seed and indices 0..<count) served as one batch, each caller's samples
    /// bitwise those of its own `sample(count:seed:)` call (batch invariance).
    public func sample(keys: [NoiseKey], progress: Progress? = nil) throws(SamplerError) -> Samples {
        try run(count: keys.count, noise: .keyed(keys), progress: progress)
    }

    /// `sample(keys:)` for callers that may stop it (a service whose clients have gone):
    /// `progressHandler` is called between batches, and returning false stops the call with a
    /// `.cancelled` error, as `sample(count:seed:progressHandler:)` does.
    public func sample(keys: [NoiseKey], progressHandler: @escaping ProgressHandler) throws(SamplerError) -> Samples {
        try stoppable(count: keys.count, noise: .keyed(keys), progressHandler)
    }

    /// A sampling call that stops between batches with a `.cancelled` error once `handler`
    /// returns false or `cancelled()` is true. A stop asked for after the last batch comes too
    /// late to save work: the samples are returned.
    private func stoppable(count: Int, noise: NoiseSource, _ handler: ProgressHandler?,
                           cancelled: @escaping () -> Bool = { false }) throws(SamplerError) -> Samples {
        var stopped = false
        return try run(count: count, noise: noise, progress: { done, total in
            if let handler, !handler(done, total) { stopped = true }
        }, shouldStop: { stopped || cancelled() })
    }

    /// PF-ODE trajectories: each sample's state at every point of the ODE's grid.
    public struct Trajectories: Sendable {
        /// The grid t_0 = t_max > ... > t_K = 0 (`Sampler.odeGrid`).
        public var times: [Float]
        /// [K + 1, count, sample shape...] in C order: point k of sample i at [k, i]. The last
        /// point is the sample itself, bitwise that of `sample(count:seed:)`.
        public var points: [Float]
        /// [count] + the sample shape.
        public var sampleShape: [Int]
        /// The values of one point of one sample.
        public var elements: Int { sampleShape.dropFirst().reduce(1, *) }

        public init(times: [Float], points: [Float], sampleShape: [Int]) {
            self.times = times
            self.points = points
            self.sampleShape = sampleShape
        }
    }

    /// Integrates the PF-ODE of `count` samples with noise keyed by `seed`, as
    /// `sample(count:seed:)` does, and keeps each sample's state at every grid time: the
    /// trajectories whose points consistency mid-training maps to their ends. ODE samplers only.
    public func trajectories(count: Int, seed: UInt64, progress: Progress? = nil) throws(SamplerError) -> Trajectories {
        guard rule is any ODERule else {
            throw SamplerError(.invalidArgument, at: "method", "trajectories come from the PF-ODE: make the sampler with odeSampler(steps:solver:)")
        }
        let e = model.sampleElements, points = odeGrid.count
        let (total, overflow) = count.multipliedReportingOverflow(by: e * points)
        guard !overflow, total <= 1 << 34 else {
            throw SamplerError(.invalidArgument, at: "count", "\(count) trajectories of \(points) points of \(e) values are too many")
        }
        var out = [Float](repeating: 0, count: total)
        try out.withUnsafeMutableBufferPointer { (dst) throws(SamplerError) in
            let base = dst.baseAddress!
            _ = try run(count: count, noise: .seed(seed), progress: progress) { k, first, real, x in
                (base + (k * count + first) * e).update(from: x, count: real * e)
            }
        }
        return Trajectories(times: odeGrid, points: out, sampleShape: [count] + model.sampleShape)
    }

    /// Called by the ODE integration with each grid point k's state of samples first..<first + real.
    typealias Recorder = (_ k: Int, _ first: Int, _ real: Int, _ x: UnsafePointer<Float>) -> Void

    private func run(count: Int, noise: NoiseSource, progress: Progress?, record: Recorder? = nil,
                     shouldStop: (() -> Bool)? = nil) throws(SamplerError) -> Samples {
        if let m = Limits.violation(count, Limits.count) { throw SamplerError(.invalidArgument, at: "count", m) }
        let e = model.sampleElements
        let (total, overflow) = count.multipliedReportingOverflow(by: e)
        guard !overflow, total <= 1 << 32 else { throw SamplerError(.invalidArgument, at: "count", "\(count) samples of \(e) values are too many") }
        let compileStart = DispatchTime.now().uptimeNanoseconds
        let sizes = batchSizes(count: count)
        var runners: [Int: Runner] = [:]
        defer { for r in runners.values { giveBack(r) } }
        for b in Set(sizes) { runners[b] = try runner(batch: b) }
        let start = DispatchTime.now().uptimeNanoseconds
        var out = [Float](repeating: 0, count: total)
        var networkSeconds = 0.0, batchEvaluations = 0
        var first = 0
        try out.withUnsafeMutableBufferPointer { (dst) throws(SamplerError) in
            for b in sizes {
                if let shouldStop, shouldStop() {
                    throw SamplerError(.cancelled, at: "sampling", "stopped after \(first) of \(count) samples")
                }
                guard let r = runners[b] else { continue }
                let real = min(b, count - first)
                networkSeconds += try draw(r, first: first, real: real, count: count, noise: noise, record: record)
                (dst.baseAddress! + first * e).update(from: r.result.pointer, count: real * e)
                batchEvaluations += evaluations
                first += real
                progress?(first, count)
            }
        }
        let end = DispatchTime.now().uptimeNanoseconds
        let timing = Samples.Timing(prepareSeconds: Double(start - compileStart) / 1e9, sampleSeconds: Double(end - start) / 1e9,
                                    networkSeconds: networkSeconds, batchEvaluations: batchEvaluations, evaluationsPerSample: evaluations)
        return Samples(values: out, shape: [count] + model.sampleShape, dataRange: model.metadata.dataRange,
                       isImage: model.isImage, timing: timing)
    }

    /// Draws samples first..<first + real into `r.result` by the sampler's rule (its first `real`
    /// samples; the rest of the batch is padding). Returns the network seconds.
    private func draw(_ r: Runner, first: Int, real: Int, count: Int, noise: NoiseSource, record: Recorder? = nil) throws(SamplerError) -> Double {
        let e = model.sampleElements, sigma = model.metadata.sigmaData
        let x = r.x.pointer, z = r.z.pointer, out = r.result.pointer
        // The batch's noise and mixing run in parts of at most 256 values of one sample, on the
        // workspace's threads: the double-precision Box-Muller noise costs about a tenth of a
        // small network's evaluation, and at batch 1 it is worth both threads.
        let partLength = 256, partsPerSample = (e + partLength - 1) / partLength
        /// Runs `body` on every part of the batch: its sample and its elements within the sample.
        func forEachPart(_ body: @escaping (_ j: Int, _ range: Range<Int>) -> Void) {
            r.workspace.parallelFor(r.batch * partsPerSample) { p, _ in
                let j = p / partsPerSample, lo = (p % partsPerSample) * partLength
                body(j, lo..<min(e, lo + partLength))
            }
        }
        func fillNoise(_ j: Int, _ range: Range<Int>, step: Int) {
            noise.fill(z, sample: j, first: first, real: real, count: count, elements: e, range: range, step: step)
        }
        var seconds = 0.0
        // Every rule starts from x = sigma_d z_0 at t_max.
        forEachPart { j, range in
            fillNoise(j, range, step: 0)
            for i in range { x[j * e + i] = sigma * z[j * e + i] }
        }
        let batch = RuleBatch(
            x: x, y: r.y.pointer, out: out, d1: r.d1.pointer, d2: r.d2.pointer, base: r.base.pointer, n: r.batch * e,
            sigma: sigma, velocity: model.metadata.parameterization == .velocity,
            evaluate: { (k: Int) throws(SamplerError) in
                let t0 = DispatchTime.now().uptimeNanoseconds
                try SamplerError.wrap { try r.evaluate(k) }
                seconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            },
            mixNoise: { step, c, s in
                forEachPart { j, range in
                    fillNoise(j, range, step: step)
                    for i in range { x[j * e + i] = c * out[j * e + i] + s * z[j * e + i] }
                }
            },
            record: record.map { record in { k, x in record(k, first, real, x) } })
        try rule.run(batch)
        return seconds
    }
}
