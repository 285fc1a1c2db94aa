import Foundation
import SCMGraph

/// The library side of `scm-infer`: load a model and TensorProto inputs, compile, run, write
/// `output_<i>.pb` files.
public enum Inference {
    public struct Report: Sendable {
        public var plan: Plan
        /// Wall-clock milliseconds of each run.
        public var milliseconds: [Double]
        /// Median milliseconds per run.
        public var medianMilliseconds: Double {
            let sorted = milliseconds.sorted()
            return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
        }

        /// One JSON object: plan figures and timings.
        public var json: String {
            String(format: "{\"steps\":%ld,\"folded\":%ld,\"arena_bytes\":%ld,\"unplanned_bytes\":%ld,\"flops\":%ld,\"runs\":%ld,\"median_ms\":%.4f,\"min_ms\":%.4f}",
                   plan.stepCount, plan.foldedNodes, plan.arenaBytes, plan.unplannedBytes, plan.flops, milliseconds.count,
                   medianMilliseconds, milliseconds.min() ?? 0)
        }

        public var summary: String {
            String(format: "scm-infer: %ld steps (%ld folded at compile time), arena %ld bytes (%ld without reuse), %ld runs, median %.3f ms",
                          plan.stepCount, plan.foldedNodes, plan.arenaBytes, plan.unplannedBytes, milliseconds.count, medianMilliseconds)
        }
    }

    /// Runs the model at `modelPath` on the tensors in `inputPaths` (graph-input order, initializer
    /// defaults excluded) and writes the outputs to `outputDir` when given.
    public static func run(modelPath: String, inputPaths: [String], outputDir: String?, threads: Int = 1,
                           repeats: Int = 1, profile: Bool = false,
                           minParallelElements: Int = ThreadPool.defaultMinParallelElements) throws -> Report {
        let model = try ModelFile.load(path: modelPath)
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
        for (path, name) in zip(inputPaths, names) {
            let t = try ModelFile.loadTensor(path: path)
            guard t.storage != nil else { throw RuntimeError(.unsupported, at: path, "\(t.dtype) tensors are not supported") }
            shapes[name] = TensorSpec(t.dtype, t.shape)
            values[name] = t
        }
        let plan = try Compiler.compile(model, shapes: shapes, values: values)
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
        if profile {
            var byOp: [String: Double] = [:]
            for _ in 0..<repeats {
                for r in try session.profile(ordered) { byOp[r.op, default: 0] += r.seconds / Double(repeats) }
            }
            let total = byOp.values.reduce(0, +)
            for (op, s) in byOp.sorted(by: { $0.value > $1.value }) {
                print(String(format: "%-22@ %9.3f ms %5.1f%%", op, s * 1000, 100 * s / total))
            }
        }
        if let dir = outputDir {
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            } catch {
                throw RuntimeError(.badInput, at: dir, "cannot create the output folder: \(error.localizedDescription)")
            }
            for (i, t) in outputs.enumerated() {
                try ModelFile.saveTensor(t, to: (dir as NSString).appendingPathComponent("output_\(i).pb"))
            }
        }
        return Report(plan: plan, milliseconds: times)
    }
}
