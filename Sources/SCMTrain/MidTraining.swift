import Foundation
import SCMGraph
import SCMRuntime
import SCMTrigFlow

/// Consistency mid-training (CMT; Hu, Lai, Mitsufuji and Ermon, arXiv 2509.24526): a stage between
/// flow pretraining and sCD. The teacher's PF-ODE is integrated from pure noise to its clean end
/// x̂_0 by the sampler's own ODE integrator, and the student learns to map every point
/// (x̂_{t_i}, t_i) of a trajectory straight to its end:
///
///     loss = mean_i d(f(x̂_{t_i}, t_i), x̂_0),  f(x, t) = cos t x - sin t sigma_d F(x / sigma_d, t)
///
/// with d the squared L2 distance per element (`l2`) or iCT's pseudo-Huber distance
/// sqrt(||a - b||^2 + c^2) - c, c = 0.00054 sqrt(D) (`pseudoHuber`). The trajectories are drawn
/// once per run into a pool (deterministic, keyed by their seed) and each step draws its pairs
/// (trajectory, grid point) from the pool, keyed by (seed, step, sample).
public enum MidTraining {
    /// How the trajectories are made: the teacher's PF-ODE in `steps` steps of `solver` from
    /// `count` noise draws keyed by `seed` (the sampler's `odeSampler(steps:solver:)`).
    public struct Trajectories: Codable, Sendable, Equatable {
        public var solver: Sampler.Solver
        public var steps: Int
        public var count: Int
        public var seed: UInt64

        public init(solver: Sampler.Solver = .heun, steps: Int = 16, count: Int = 16384, seed: UInt64 = 1000) {
            self.solver = solver
            self.steps = steps
            self.count = count
            self.seed = seed
        }

        /// The cache file's name for a teacher with this digest.
        func fileName(teacherDigest: String) -> String {
            "trajectories-\(teacherDigest)-\(solver.rawValue)\(steps)-n\(count)-s\(seed).npy"
        }
    }

    /// The distance d between the student's jump and the trajectory's end.
    public enum Distance: String, Codable, Sendable, CaseIterable {
        case l2
        case pseudoHuber = "pseudo-huber"
    }

    /// The CMT loss graph of `network` (inputs x, t; output 0 F): inputs `sct_x0` (the
    /// trajectory's end x̂_0), `sct_z` (the trajectory's point x̂_t, not divided by sigma_d) and
    /// `sct_t` ([N]); output the mean over the batch of d(f(x̂_t, t), x̂_0).
    static func loss(network: Model, sigmaData: Float, distance: Distance) throws -> Model {
        let g = network.graph
        let b = GraphBuilder(names: NameAllocator(avoiding: g))
        let x = g.inputs[0].name, t = g.inputs[1].name
        guard let shape = g.inputs[0].type?.shape else { throw TrainError(at: "network", "input x has no declared shape") }
        let rank = shape.count
        let target = ConsistencyLoss.dataInput, point = ConsistencyLoss.noiseInput, tIn = ConsistencyLoss.timeInput
        let sigma = try b.scalar(sigmaData)
        _ = b.op("Div", [point, sigma], name: x)
        _ = b.op("Identity", [tIn], name: t)
        let wiring = b.takeNodes()
        let tb = b.op("Reshape", [tIn, try b.ints([-1] + Array(repeating: 1, count: rank - 1))])
        let cosT = b.op("Cos", [tb]), sinT = b.op("Sin", [tb])
        let f = b.op("Sub", [b.op("Mul", [cosT, point]), b.op("Mul", [b.op("Mul", [sinT, sigma]), g.outputs[0].name])])
        let diff = b.op("Sub", [f, target])
        let squared = b.op("Mul", [diff, diff])
        let lossName = "cmt_loss"
        switch distance {
        case .l2:
            _ = b.op("ReduceMean", [squared, try b.ints(Array(0..<rank))], [Attribute("keepdims", .int(0))], name: lossName)
        case .pseudoHuber:
            let elements = shape.dropFirst().reduce(1) { n, d in if case .value(let v) = d { return n * v } else { return n } }
            let c = Float(0.00054 * Double(elements).squareRoot())
            let perSample = b.op("ReduceSum", [squared, try b.ints(Array(1..<rank))], [Attribute("keepdims", .int(0))])
            let root = b.op("Sqrt", [b.op("Add", [perSample, try b.scalar(c * c)])])
            _ = b.op("ReduceMean", [b.op("Sub", [root, try b.scalar(c)]), try b.ints([0])], [Attribute("keepdims", .int(0))], name: lossName)
        }
        var m = network
        m.graph.nodes = wiring + g.nodes + b.nodes
        m.graph.initializers = g.initializers + b.initializers
        m.graph.inputs = [ValueInfo(target, g.inputs[0].type), ValueInfo(point, g.inputs[0].type), ValueInfo(tIn, g.inputs[1].type)]
        m.graph.outputs = [ValueInfo(lossName, TensorType(elementType: .float, shape: []))]
        m.graph.valueInfo = []
        return m
    }

    /// A run's trajectories: every grid point of each, and the draw of a step's pairs.
    struct Pool {
        let trajectories: Sampler.Trajectories
        /// Grid points per trajectory, the end excluded (the points the student learns from).
        var starts: Int { trajectories.times.count - 1 }
        var count: Int { trajectories.sampleShape[0] }

        /// The pairs of `step`: sample i takes trajectory j at grid point k, (j, k) uniform and
        /// keyed by (seed, step, i); `points` gets x̂_{t_k}, `targets` x̂_0, `times` t_k.
        func fill(step: Int, seed: UInt64, points: UnsafeMutablePointer<Float>, targets: UnsafeMutablePointer<Float>, times: inout [Float]) {
            let e = trajectories.elements, n = count, last = trajectories.times.count - 1
            let philox = Philox4x32(key: (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32) ^ 0x434D_5400))
            trajectories.points.withUnsafeBufferPointer { src in
                for i in 0..<times.count {
                    let w = philox.block((UInt32(i), UInt32(truncatingIfNeeded: step), UInt32(truncatingIfNeeded: step >> 32), 0))
                    let pick = (UInt64(w.0) << 32 | UInt64(w.1)) % UInt64(n * starts)
                    let j = Int(pick) / starts, k = Int(pick) % starts
                    (points + i * e).update(from: src.baseAddress! + (k * n + j) * e, count: e)
                    (targets + i * e).update(from: src.baseAddress! + (last * n + j) * e, count: e)
                    times[i] = trajectories.times[k]
                }
            }
        }

        /// The pool for `spec` from `teacher`: read from `cache` when a file of this teacher and
        /// spec is there, else integrated and written there (atomically).
        static func make(teacher: TrigFlowModel, teacherDigest: String, spec: Trajectories, threads: Int, cache: String,
                         report: @escaping (String) -> Void) throws -> Pool {
            guard teacher.metadata.parameterization == .velocity else {
                throw TrainError(at: "teacher", "is a consistency model; CMT's trajectories come from a flow (velocity) model's PF-ODE")
            }
            let sampler = try teacher.odeSampler(steps: spec.steps, solver: spec.solver, options: Sampler.Options(batch: 64, threads: threads))
            let path = (cache as NSString).appendingPathComponent(spec.fileName(teacherDigest: teacherDigest))
            let shape = [sampler.odeGrid.count, spec.count] + teacher.sampleShape
            if FileManager.default.fileExists(atPath: path) {
                let (s, values) = try NPY.read(path: path)
                guard s == shape else { throw TrainError(at: path, "holds trajectories of shape \(s), this run needs \(shape): remove it") }
                report("trajectories: read \(spec.count) from \(path)")
                return Pool(trajectories: Sampler.Trajectories(times: sampler.odeGrid, points: values, sampleShape: [spec.count] + teacher.sampleShape))
            }
            report("trajectories: integrating \(spec.count) (\(spec.solver.rawValue), \(spec.steps) steps, \(sampler.evaluations) evaluations each)")
            var next = 0.1
            let made = try sampler.trajectories(count: spec.count, seed: spec.seed) { done, total in
                if Double(done) >= next * Double(total) {
                    report("trajectories: \(done)/\(total)")
                    next += 0.1
                }
            }
            try ModelFile.makeFolders(cache)
            try NPY.write(made.points, shape: shape, to: path)
            report("trajectories: written to \(path)")
            return Pool(trajectories: made)
        }
    }
}
