import Foundation
import SCMGraph
import SCMOptimize
import SCMRuntime

/// The sampler's plan cache (one plan per time and batch size, compiled once), its chunk policy
/// (how many samples a plan run takes) and its pool of runners (a workspace each, reused by later
/// calls).
extension Sampler {
    struct PlanKey: Hashable {
        /// The bits of t, or nil for the unoptimized plan (t an input).
        let t: UInt32?
        let batch: Int
    }

    /// The plan for time `t` at `batch` (compiled once, then cached).
    func plan(t: Float, batch: Int) throws(SamplerError) -> Plan {
        let key = PlanKey(t: options.optimize ? t.bitPattern : nil, batch: batch)
        lock.lock()
        defer { lock.unlock() }
        if let p = plans[key] { return p }
        let m = model, opts = options
        let p: Plan
        do {
            p = try SamplerError.wrap { () throws -> Plan in
                let xSpec = TensorSpec(.float, [batch] + m.sampleShape)
                if opts.optimize {
                    let (optimized, _) = try Optimizer.optimize(m.model, t: t, batch: batch, passes: opts.passes)
                    return try Compiler.compile(optimized, shapes: [m.xName: xSpec], limits: opts.limits, precision: opts.precision)
                }
                return try Compiler.compile(m.model, shapes: [m.xName: xSpec, m.tName: TensorSpec(.float, [m.timeLength(batch: batch)])],
                                            limits: opts.limits, precision: opts.precision)
            }
        } catch {
            // A limit passed at a batch the caller chose: the batch is what to change.
            guard error.kind == .limitExceeded, batch > 1, m.fixedBatch == nil else { throw error }
            throw SamplerError(.limitExceeded, at: "batch", "\(batch) samples per network run pass a resource limit (\(error.location): \(error.message)): a smaller batch needs less")
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

    func plans(batch: Int) throws(SamplerError) -> [Plan] {
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
    func parts(batch: Int) throws(SamplerError) -> [(size: Int, plans: [Plan])] {
        let c = try chunkSize(batch: batch)
        var out = [(size: c, plans: try plans(batch: c))]
        if batch % c != 0 { out.append((batch % c, try plans(batch: batch % c))) }
        return out
    }

    /// A runner for `batch` samples: an idle one, or a new one with its own workspace.
    func runner(batch: Int) throws(SamplerError) -> Runner {
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

    func giveBack(_ r: Runner) {
        lock.lock()
        idle[r.batch, default: []].append(r)
        lock.unlock()
    }
}
