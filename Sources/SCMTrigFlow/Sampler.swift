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
    public var noiseSteps: Int {
        if case .consistency(let times) = method { return times.count }
        return 1
    }

    private let lock = NSLock()
    private var plans: [PlanKey: Plan] = [:]
    private var idle: [Int: [Runner]] = [:]
    private var plansCompiled = 0
    /// Chunk sizes chosen per batch size.
    private var chunks: [Int: Int] = [:]
    private var workspacesCreated = 0

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
            evaluationTimes = times
            odeGrid = []
        case .ode(let k, let solver):
            let tMax = Double(model.metadata.tMax)
            let grid = (0...k).map { Float(tMax * Double(k - $0) / Double(k)) }
            odeGrid = grid
            var evals: [Float] = []
            for i in 0..<k {
                evals.append(grid[i])
                if solver == .heun && grid[i + 1] > 0 { evals.append(grid[i + 1]) }
            }
            evaluationTimes = evals
        }
    }

    // MARK: Plans

    struct PlanKey: Hashable {
        /// The bits of t, or nil for the unoptimized plan (t an input).
        let t: UInt32?
        let batch: Int
    }

    /// The plan for time `t` at `batch` (compiled once, then cached).
    private func plan(t: Float, batch: Int) throws(SamplerError) -> Plan {
        let key = PlanKey(t: options.optimize ? t.bitPattern : nil, batch: batch)
        lock.lock()
        defer { lock.unlock() }
        if let p = plans[key] { return p }
        let m = model, opts = options
        let p = try SamplerError.wrap { () throws -> Plan in
            let xSpec = TensorSpec(.float, [batch] + m.sampleShape)
            if opts.optimize {
                let (optimized, _) = try Optimizer.optimize(m.model, t: t, batch: batch, passes: opts.passes)
                return try Compiler.compile(optimized, shapes: [m.xName: xSpec], limits: opts.limits, precision: opts.precision)
            }
            return try Compiler.compile(m.model, shapes: [m.xName: xSpec, m.tName: TensorSpec(.float, [m.timeLength(batch: batch)])],
                                        limits: opts.limits, precision: opts.precision)
        }
        let expected = TensorSpec(.float, [batch] + model.sampleShape)
        guard let out = p.outputs.first, out.spec == expected else {
            throw SamplerError(.invalidModel, at: "output '\(p.outputs.first?.name ?? "")'",
                               "is \(p.outputs.first.map { "\($0.spec)" } ?? "missing"); the contract wants \(expected), the shape of x")
        }
        plans[key] = p
        plansCompiled += 1
        return p
    }

    /// The batch sizes a call for `count` samples runs: full batches of `options.batch`, then
    /// the rest in one batch rounded up to a power of two p (at most `options.batch`), padded with
    /// samples that are computed and dropped; when p runs in chunks of c < p samples, the rest is
    /// rounded up to whole chunks instead (a rest of 33 runs 40 samples in chunks of 8, not 64),
    /// which needs no plans beyond the chunk's. Batch invariance makes the padding invisible, and
    /// the rounding bounds the plans a long-lived sampler compiles and keeps to about
    /// log2(batch) + 1 batch sizes, whatever counts its callers ask for (its runners, one
    /// workspace each, to those plus batch / c multiples of a chunk).
    /// Empty when `count` is outside `Limits.count`.
    public func batchSizes(count: Int) -> [Int] {
        guard Limits.count.contains(count) else { return [] }
        let full = options.batch
        var sizes = [Int](repeating: full, count: count / full)
        let rest = count % full
        if rest > 0 && model.fixedBatch != nil {
            sizes.append(full)
        } else if rest > 0 {
            var p = 1
            while p < rest { p <<= 1 }
            p = min(p, full)
            // An error here is the call's own (its runner compiles the same plan and throws it).
            if let c = try? chunkSize(batch: p), c < p, case let q = (rest + c - 1) / c * c, q < p {
                lock.lock()
                chunks[q] = c
                lock.unlock()
                p = q
            }
            sizes.append(p)
        }
        return sizes
    }

    /// Compiles the plans a call for `count` samples needs, so that the call only runs;
    /// returns the seconds it took (0 when they were already compiled).
    @discardableResult
    public func prepare(count: Int) throws(SamplerError) -> Double {
        if let m = Limits.violation(count, Limits.count) { throw SamplerError(.invalidArgument, at: "count", m) }
        let t0 = DispatchTime.now().uptimeNanoseconds
        for b in Set(batchSizes(count: count)) { _ = try parts(batch: b) }
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }

    private func plans(batch: Int) throws(SamplerError) -> [Plan] {
        var out: [Plan] = []
        for t in evaluationTimes { out.append(try plan(t: t, batch: batch)) }
        return out
    }

    /// The samples per plan run of a batch of `batch` (see `Options.chunk`).
    public func chunkSize(batch: Int) throws(SamplerError) -> Int {
        if model.fixedBatch != nil || batch <= 1 { return batch }
        if let c = options.chunk { return min(c, batch) }
        lock.lock()
        if let c = chunks[batch] { lock.unlock(); return c }
        lock.unlock()
        let probe = try plan(t: evaluationTimes.first ?? model.metadata.tMax, batch: batch)
        let perSample = max(1, probe.arenaBytes / batch)
        var c = 1
        while c * 2 <= batch && c * 2 * perSample <= options.chunkBytes { c *= 2 }
        if c * 2 > batch && batch * perSample <= options.chunkBytes { c = batch }
        lock.lock()
        chunks[batch] = c
        lock.unlock()
        return c
    }

    /// The plans of a batch of `batch`: those at the chunk size, then those at the rest of the
    /// batch when the chunk does not divide it.
    private func parts(batch: Int) throws(SamplerError) -> [(size: Int, plans: [Plan])] {
        let c = try chunkSize(batch: batch)
        var out = [(size: c, plans: try plans(batch: c))]
        if batch % c != 0 { out.append((batch % c, try plans(batch: batch % c))) }
        return out
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
        var stopped = false
        // A stop asked for after the last batch comes too late to save work: the samples are returned.
        return try run(count: count, noise: .seed(seed), progress: { done, total in
            if let progressHandler, !progressHandler(done, total) { stopped = true }
        }, shouldStop: { stopped || Task.isCancelled })
    }

    /// `sample(count:seed:)` for synchronous callers that may stop it: `progressHandler` is called
    /// between batches, and returning false stops the call with a `.cancelled` error (as
    /// `generateSamples` does for tasks).
    public func sample(count: Int, seed: UInt64, progressHandler: @escaping ProgressHandler) throws(SamplerError) -> Samples {
        var stopped = false
        return try run(count: count, noise: .seed(seed), progress: { done, total in
            if !progressHandler(done, total) { stopped = true }
        }, shouldStop: { stopped })
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

    /// The key of one sample's noise: its z_k is `GaussianNoise` of (seed, sample, k), as for
    /// sample `sample` of a `sample(count:seed:)` call with that seed.
    public struct NoiseKey: Sendable, Hashable {
        public var seed: UInt64
        public var sample: UInt32
        public init(seed: UInt64, sample: UInt32) {
            self.seed = seed
            self.sample = sample
        }
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
        var stopped = false
        return try run(count: keys.count, noise: .keyed(keys), progress: { done, total in
            if !progressHandler(done, total) { stopped = true }
        }, shouldStop: { stopped })
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
        guard case .ode = method else {
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

    enum NoiseSource {
        case seed(UInt64)
        case given([Float])
        case keyed([NoiseKey])
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

    /// A runner for `batch` samples: an idle one, or a new one with its own workspace.
    private func runner(batch: Int) throws(SamplerError) -> Runner {
        lock.lock()
        if var free = idle[batch], let r = free.popLast() {
            idle[batch] = free
            lock.unlock()
            return r
        }
        lock.unlock()
        let ps = try parts(batch: batch)
        let r = try SamplerError.wrap {
            try Runner(parts: ps, times: evaluationTimes, batch: batch, model: model, threads: options.threads)
        }
        lock.lock()
        workspacesCreated += 1
        lock.unlock()
        return r
    }

    private func giveBack(_ r: Runner) {
        lock.lock()
        idle[r.batch, default: []].append(r)
        lock.unlock()
    }

    /// Draws samples first..<first + real into `r.result` (its first `real` samples; the rest of
    /// the batch is padding: seeded noise is drawn for the following indices, given noise is
    /// zero). Returns the network seconds.
    private func draw(_ r: Runner, first: Int, real: Int, count: Int, noise: NoiseSource, record: Recorder? = nil) throws(SamplerError) -> Double {
        let e = model.sampleElements, n = r.batch * e
        let sigma = model.metadata.sigmaData
        let x = r.x.pointer, z = r.z.pointer, y = r.y.pointer, out = r.result.pointer
        // The batch's noise and mixing run in parts of at most 256 values of one sample, on the
        // workspace's threads: the double-precision Box-Muller noise costs about a tenth of a
        // small network's evaluation, and at batch 1 it is worth both threads.
        let partLength = 256, partsPerSample = (e + partLength - 1) / partLength
        /// Part p of the batch: its sample and its elements within the sample.
        func part(_ p: Int) -> (j: Int, range: Range<Int>) {
            let j = p / partsPerSample, lo = (p % partsPerSample) * partLength
            return (j, lo..<min(e, lo + partLength))
        }
        /// The noise z of sample j at `step`, elements `range`.
        func fillNoise(_ j: Int, _ range: Range<Int>, step: Int) {
            switch noise {
            case .seed(let seed):
                GaussianNoise.fill(z + j * e, elements: range, seed: seed, sample: UInt32(truncatingIfNeeded: first + j), step: UInt32(step))
            case .keyed(let keys):
                // Padding past the last key: any noise (its samples are dropped).
                let k = first + j < keys.count ? keys[first + j] : NoiseKey(seed: 0, sample: UInt32(truncatingIfNeeded: first + j))
                GaussianNoise.fill(z + j * e, elements: range, seed: k.seed, sample: k.sample, step: UInt32(step))
            case .given(let values):
                if j < real {
                    values.withUnsafeBufferPointer { src in
                        (z + j * e + range.lowerBound).update(from: src.baseAddress! + (step * count + first + j) * e + range.lowerBound,
                                                              count: range.count)
                    }
                } else {
                    (z + j * e + range.lowerBound).update(repeating: 0, count: range.count)
                }
            }
        }
        var seconds = 0.0
        /// y = the model's f(x, t) (consistency) or F (velocity), for evaluation `k`.
        func evaluate(_ k: Int) throws(SamplerError) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try SamplerError.wrap { try r.evaluate(k) }
            seconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        }
        /// cos(t) and sigma_d sin(t), computed in double and rounded to float (the contract).
        func coefficients(_ t: Float) -> (cos: Float, sigmaSin: Float) {
            (Float(cos(Double(t))), Float(Double(sigma) * sin(Double(t))))
        }
        let velocity = model.metadata.parameterization == .velocity
        // Both methods start from x = sigma_d z_0 at t_max.
        r.workspace.parallelFor(r.batch * partsPerSample) { p, _ in
            let (j, range) = part(p)
            fillNoise(j, range, step: 0)
            for i in range { x[j * e + i] = sigma * z[j * e + i] }
        }
        switch method {
        case .consistency(let times):
            for (k, t) in times.enumerated() {
                let (c, s) = coefficients(t)
                if k > 0 && model.metadata.segments != nil {
                    x.update(from: out, count: n)
                } else if k > 0 {
                    r.workspace.parallelFor(r.batch * partsPerSample) { p, _ in
                        let (j, range) = part(p)
                        fillNoise(j, range, step: k)
                        for i in range { x[j * e + i] = c * out[j * e + i] + s * z[j * e + i] }
                    }
                }
                try evaluate(k)
                if velocity {
                    for i in 0..<n { out[i] = c * x[i] - s * y[i] }
                } else {
                    out.update(from: y, count: n)
                }
            }
        case .ode(_, let solver):
            try integrate(r, solver: solver, first: first, real: real, record: record, evaluate: evaluate)
        }
        return seconds
    }

    /// The PF-ODE from r.x (sigma_d z_0 at t_max) to 0 in `solver`'s steps on `odeGrid`, its
    /// end into r.result; `evaluate(k)` runs evaluation k on r.x into r.y; `record` sees every
    /// grid point.
    private func integrate(_ r: Runner, solver: Solver, first: Int, real: Int, record: Recorder?,
                           evaluate: (Int) throws(SamplerError) -> Void) throws(SamplerError) {
        let n = r.batch * model.sampleElements, sigma = model.metadata.sigmaData
        let x = r.x.pointer, y = r.y.pointer
        let velocity = model.metadata.parameterization == .velocity
        // d = dx/dt at (x, t) from y = the network's output at (x, t).
        func derivative(_ xv: UnsafeMutablePointer<Float>, _ t: Float, into d: UnsafeMutablePointer<Float>) {
            if velocity {
                for i in 0..<n { d[i] = sigma * y[i] }
            } else {
                let c = Float(cos(Double(t))), s = Float(sin(Double(t)))
                for i in 0..<n { d[i] = (c * xv[i] - y[i]) / s }
            }
        }
        let d1 = r.d1.pointer, d2 = r.d2.pointer, base = r.base.pointer
        var k = 0
        record?(0, first, real, x)
        for step in 0..<(odeGrid.count - 1) {
            let t = odeGrid[step], next = odeGrid[step + 1], h = next - t
            try evaluate(k)
            k += 1
            derivative(x, t, into: d1)
            if solver == .heun && next > 0 {
                base.update(from: x, count: n)
                for i in 0..<n { x[i] = base[i] + h * d1[i] }
                try evaluate(k)
                k += 1
                derivative(x, next, into: d2)
                let half = h * 0.5
                for i in 0..<n { x[i] = base[i] + half * (d1[i] + d2[i]) }
            } else {
                for i in 0..<n { x[i] = x[i] + h * d1[i] }
            }
            record?(step + 1, first, real, x)
        }
        r.result.pointer.update(from: x, count: n)
    }
}
