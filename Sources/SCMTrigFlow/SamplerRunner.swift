import Foundation
import SCMGraph
import SCMRuntime

/// The errors of a loop's indices, the first by index (set from any thread).
final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [(Int, Error)] = []
    func set(_ i: Int, _ e: Error) {
        lock.lock()
        errors.append((i, e))
        lock.unlock()
    }
    var first: Error? { errors.min { $0.0 < $1.0 }?.1 }
}

/// One batch size's sessions (one per evaluation and part, all in one workspace) and buffers.
/// The batch runs as chunks (`Sampler.Options.chunk`): one after another on all the threads when
/// it has one chunk (or one thread), else side by side, each thread running whole chunks in its
/// own single-thread workspace (`lanes`): no barrier between the ops of a chunk, no op too small
/// to split, each core's cache holding its own chunk. By batch and thread invariance every sample
/// is bitwise the same either way. Used by one `sample` call at a time.
final class Runner: @unchecked Sendable {
    let batch: Int
    /// Network input x, noise z, network output y, the samples, and ODE work buffers.
    let x: FloatBuffer, z: FloatBuffer, y: FloatBuffer, result: FloatBuffer, d1: FloatBuffer, d2: FloatBuffer, base: FloatBuffer
    /// The threads (noise, mixing, and every network run), and the arena and scratch of the
    /// sessions when there is a single lane.
    let workspace: Workspace
    /// Per lane: per part (a chunk size), its sessions, one per evaluation. One lane, in
    /// `workspace`, runs the chunks one after another on all the threads; with several chunks and
    /// threads, one lane per thread, each in its own one-thread workspace, runs whole chunks side
    /// by side.
    private let lanes: [[[Session]]]
    /// The `t` input of each evaluation, per part, for plans that take it (unoptimized; else empty).
    private let timeInputs: [[Tensor]]
    /// The batch's chunks in order: the part that runs it, its x and its y.
    private let segments: [(part: Int, x: Tensor, y: UnsafeMutableRawBufferPointer)]

    /// Sessions for the plans of every part (one per evaluation, at `times`) in one workspace.
    init(parts: [(size: Int, plans: [Plan])], times: [Float], batch: Int, model: TrigFlowModel, threads: Int) throws {
        self.batch = batch
        let e = model.sampleElements, n = batch * e
        x = FloatBuffer(n)
        z = FloatBuffer(n)
        y = FloatBuffer(n)
        result = FloatBuffer(n)
        d1 = FloatBuffer(n)
        d2 = FloatBuffer(n)
        base = FloatBuffer(n)
        timeInputs = try parts.map { part in
            let tLength = model.timeLength(batch: part.size)
            return part.plans.first?.inputs.count == 2
                ? try times.map { try Tensor(shape: [tLength], scalars: [Float](repeating: $0, count: tLength)) } : []
        }
        var segs: [(part: Int, x: Tensor, y: UnsafeMutableRawBufferPointer)] = []
        var first = 0
        while first < batch {
            let p = parts.firstIndex { first + $0.size <= batch } ?? parts.count - 1
            let size = parts[p].size, bytes = size * e * 4
            let xs = UnsafeRawBufferPointer(start: x.pointer + first * e, count: bytes)
            let xt = try Tensor(dtype: .float, shape: [size] + model.sampleShape,
                                data: .bytes(TensorStorage(borrowing: xs, owner: x)))
            segs.append((p, xt, UnsafeMutableRawBufferPointer(start: y.pointer + first * e, count: bytes)))
            first += size
        }
        segments = segs
        let plans = parts.flatMap(\.plans)
        func sessions(in w: Workspace) throws -> [[Session]] { try parts.map { try $0.plans.map { try $0.makeSession(in: w) } } }
        if threads > 1 && segs.count > 1 && Runner.lanesEnabled {
            workspace = Workspace(threads: threads, arenaBytes: 0, scratchBytes: 0)
            lanes = try (0..<workspace.threads).map { _ in try sessions(in: Workspace(threads: 1, for: plans)) }
        } else {
            workspace = Workspace(threads: threads, for: plans)
            lanes = [try sessions(in: workspace)]
        }
    }

    /// SCM_SAMPLER_LANES=0 runs the chunks one after another on all the threads, for comparisons.
    static var lanesEnabled: Bool { RuntimeOverrides.samplerLanes }

    /// Runs evaluation `k` on x into y, chunk by chunk (side by side when there are lanes).
    func evaluate(_ k: Int) throws {
        /// Chunk i on lane `lane`.
        func run(_ i: Int, lane: Int) throws {
            let s = segments[i], t = timeInputs[s.part]
            try lanes[lane][s.part][k].run(t.isEmpty ? [s.x] : [s.x, t[k]], into: [s.y])
        }
        guard lanes.count > 1 else {
            for i in segments.indices { try run(i, lane: 0) }
            return
        }
        let failures = Failures()
        workspace.parallelFor(segments.count) { i, worker in
            do { try run(i, lane: worker) } catch { failures.set(i, error) }
        }
        if let e = failures.first { throw e }
    }
}
