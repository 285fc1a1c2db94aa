import Foundation
import SCMGraph

/// The library side of `scm-infer`: load a model and TensorProto inputs, compile, run, write
/// `output_<i>.pb` files.
public enum Inference {
    public struct Report: Sendable {
        public var plan: Plan
        /// Wall-clock milliseconds of each run.
        public var milliseconds: [Double]
        /// Mean seconds per op type over the profiled runs, largest first (empty unless profiled).
        public var profile: [(op: String, seconds: Double)] = []
        /// The inputs and outputs holding NaN or infinite values, described (float tensors; a
        /// model may compute them on purpose, so they are reported, not refused).
        public var nonFinite: [String] = []
        /// Median milliseconds per run.
        public var medianMilliseconds: Double {
            let sorted = milliseconds.sorted()
            return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
        }

        /// The plan's figures and the timings (`kernels`: the kernels a run executes; `folded`:
        /// nodes evaluated at compile time), and the profile when profiled, as `--json` prints them.
        public var figures: Figures {
            let total = profile.reduce(0) { $0 + $1.seconds }
            return Figures(kernels: plan.stepCount, folded: plan.foldedNodes, arenaBytes: plan.arenaBytes, unplannedBytes: plan.unplannedBytes,
                           flops: plan.flops, precision: plan.precision.rawValue, runs: milliseconds.count, medianMs: medianMilliseconds,
                           minMs: milliseconds.min() ?? 0,
                           profile: profile.map { .init(op: $0.op, ms: $0.seconds * 1000, share: total > 0 ? $0.seconds / total : 0) })
        }

        public struct Figures: Codable, Sendable {
            public var kernels: Int, folded: Int, arenaBytes: Int, unplannedBytes: Int, flops: Int
            public var precision: String
            public var runs: Int
            public var medianMs: Double, minMs: Double
            public var profile: [ProfileRow]

            public struct ProfileRow: Codable, Sendable {
                public var op: String, ms: Double, share: Double
            }

            enum CodingKeys: String, CodingKey {
                case kernels, folded, arenaBytes = "arena_bytes", unplannedBytes = "unplanned_bytes", flops, precision, runs
                case medianMs = "median_ms", minMs = "min_ms", profile
            }
        }

        /// One line of figures, then the profile table (when profiled) with aligned columns.
        public var summary: String {
            var s = String(format: "scm-infer: %ld kernel%@ (%ld node%@ folded at compile time), arena %ld bytes (%ld without reuse), %ld run%@, median %.3f ms",
                           plan.stepCount, plan.stepCount == 1 ? "" : "s", plan.foldedNodes, plan.foldedNodes == 1 ? "" : "s",
                           plan.arenaBytes, plan.unplannedBytes, milliseconds.count, milliseconds.count == 1 ? "" : "s", medianMilliseconds)
            let total = profile.reduce(0) { $0 + $1.seconds }
            let width = profile.map(\.op.count).max() ?? 0
            for p in profile {
                let name = p.op.padding(toLength: width, withPad: " ", startingAt: 0)
                s += "\n  " + name + String(format: " %10.3f ms %5.1f%%", p.seconds * 1000, total > 0 ? 100 * p.seconds / total : 0)
            }
            return s
        }
    }

    /// Runs the model at `modelPath` on the tensors in `inputPaths` (graph-input order, initializer
    /// defaults excluded) and writes the outputs to `outputDir` when given.
    /// Whether a tensor of `shape` can be the value of an input declared `declared` (same rank;
    /// fixed dims equal; symbolic and unknown dims anything).
    static func fits(_ shape: [Int], _ declared: Shape) -> Bool {
        guard shape.count == declared.count else { return false }
        for (d, s) in zip(shape, declared) { if case .value(let v) = s, v != d { return false } }
        return true
    }

    public static func run(modelPath: String, inputPaths: [String], outputDir: String?, threads: Int = 1,
                           repeats: Int = 1, profile: Bool = false, profileByNode: Bool = false,
                           minParallelElements: Int = ThreadPool.defaultMinParallelElements,
                           limits: ResourceLimits = .standard, precision: Precision = .fp32) throws -> Report {
        let model = try ModelFile.load(path: modelPath, limits: limits)
        let inits = Set(model.graph.initializers.map(\.meta.name))
        let graphInputs = model.graph.inputs.filter { !inits.contains($0.name) }
        for vi in graphInputs where vi.type == nil {
            throw RuntimeError(.unsupported, at: "input '\(vi.name)'", "is not a tensor (sequence, optional and map values are not supported)")
        }
        let names = graphInputs.map(\.name)
        guard inputPaths.count == names.count else {
            throw RuntimeError(.badInput, at: modelPath, "the graph has \(names.count) inputs (\(names.joined(separator: ", "))), \(inputPaths.count) files given")
        }
        var shapes: [String: TensorSpec] = [:], values: [String: Tensor] = [:]
        for (path, vi) in zip(inputPaths, graphInputs) {
            let name = vi.name
            let t = try ModelFile.loadTensor(path: path, limits: limits)
            guard t.storage != nil else { throw RuntimeError(.unsupported, at: path, "\(t.dtype) tensors are not supported") }
            if let type = vi.type {
                if let declared = type.elementType, declared != t.dtype {
                    throw RuntimeError(.badInput, at: path, "holds \(t.dtype) for input '\(name)', which is \(declared)")
                }
                if let declared = type.shape, !Self.fits(t.shape, declared) {
                    throw RuntimeError(.badInput, at: path, "holds shape [\(t.shape.map(String.init).joined(separator: ", "))] for input '\(name)', declared \(declared.shapeDescription)")
                }
            }
            shapes[name] = TensorSpec(t.dtype, t.shape)
            values[name] = t
        }
        let plan = try Compiler.compile(model, shapes: shapes, values: values, limits: limits, precision: precision)
        let session = plan.makeSession(threads: threads, minParallelElements: minParallelElements)
        // The plan's inputs are the graph inputs given above, in graph order.
        let ordered = plan.inputs.compactMap { values[$0.name] }
        var times: [Double] = []
        var outputs: [Tensor] = []
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            outputs = try session.run(ordered)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        }
        var byOp: [String: Double] = [:]
        if profile || profileByNode {
            for _ in 0..<repeats {
                for r in try session.profile(ordered) {
                    byOp[profileByNode ? "\(r.op) \(r.node)" : r.op, default: 0] += r.seconds / Double(repeats)
                }
            }
        }
        if let dir = outputDir {
            // Outputs of an earlier run of a model with more outputs would sit beside these.
            let stale = ModelFile.numberedFiles(in: dir, prefix: "output_", suffix: ".pb").filter { $0.number >= outputs.count }
            if let stale = stale.map(\.name).sorted().first {
                throw RuntimeError(.io, at: dir, "holds \(stale) of an earlier run, which would be left beside this model's \(outputs.count) output\(outputs.count == 1 ? "" : "s"): remove it or give an empty folder")
            }
            let files = outputs.enumerated().map { i, t in ((dir as NSString).appendingPathComponent("output_\(i).pb"), t) }
            try ModelFile.saveTensors(files, creatingFolder: dir)
        }
        var report = Report(plan: plan, milliseconds: times)
        report.nonFinite = zip(inputPaths, graphInputs).compactMap { path, vi in
            values[vi.name].flatMap(nonFiniteCount).map { "input '\(vi.name)' (\(path)) holds \($0) non-finite value\($0 == 1 ? "" : "s")" }
        } + zip(model.graph.outputs, outputs).enumerated().compactMap { i, pair in
            nonFiniteCount(pair.1).map { "output \(i) '\(pair.0.name)' holds \($0) non-finite value\($0 == 1 ? "" : "s")" }
        }
        report.profile = byOp.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map { ($0.key, $0.value) }
        return report
    }

    /// The count of NaN and infinite values of a float tensor, nil when there are none.
    static func nonFiniteCount(_ t: Tensor) -> Int? {
        guard t.dtype == .float, let values = t.scalars(as: Float.self) else { return nil }
        let n = values.reduce(0) { $0 + ($1.isFinite ? 0 : 1) }
        return n > 0 ? n : nil
    }
}
