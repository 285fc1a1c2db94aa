import Foundation
import SCMGraph

/// The library side of `scm-run`: load a model, draw samples, write the PNG grid, per-sample
/// PNGs and `.npy` file asked for, and report speed. Every check that can fail before sampling
/// (flags, metadata, output paths) runs before sampling starts; every file is written to a
/// temporary name and renamed.
public struct SampleJob: Sendable {
    /// The model file.
    public var modelPath: String
    /// Consistency steps (ignored with `odeSteps`).
    public var steps = 2
    /// Comma-separated times replacing the model's schedule for `steps`.
    public var schedule: String?
    /// Run the PF-ODE baseline with this many steps instead of consistency sampling.
    public var odeSteps: Int?
    /// The ODE solver.
    public var solver: Sampler.Solver = .heun
    /// Samples to draw (nil: 64, or the noise file's N).
    public var count: Int?
    /// Noise seed.
    public var seed: UInt64 = 0
    /// Execution settings (batch, threads, optimization).
    public var options = Sampler.Options()
    /// A `.npy` file of noise [steps, N, ...] to use instead of the seeded generator.
    public var noisePath: String?
    /// The PNG to write: a grid of images, or a scatter plot of 2-D vectors.
    public var out: String?
    /// A folder that receives one PNG per sample (`sample_00000.png`, ...).
    public var outDir: String?
    /// The `.npy` file for the raw samples [N, ...] in the data range.
    public var npy: String?
    /// Images per grid row (nil: the ceiling of the square root of the count).
    public var nrow: Int?
    /// Metadata overrides.
    public var overrides = TrigFlowModel.Overrides()

    /// A job for the model at `modelPath` with the defaults.
    public init(modelPath: String) { self.modelPath = modelPath }

    /// What a run did and how fast.
    public struct Report: Sendable {
        /// `consistency` or `ode-euler` / `ode-heun`.
        public var method: String
        /// Evaluation times of one sample, in order.
        public var times: [Float]
        /// Samples drawn.
        public var count: Int
        /// Batch size (of the first batch; see `Sampler.batchSizes(count:)`) and threads used.
        public var batch: Int, threads: Int
        /// Whether plans were optimized per time.
        public var optimized: Bool
        /// Timings of the sampling call.
        public var timing: Samples.Timing
        /// Files written.
        public var files: [String]

        /// Samples per second of sampling (noise, network, mixing; plan compilation excluded).
        public var imagesPerSecond: Double { timing.sampleSeconds > 0 ? Double(count) / timing.sampleSeconds : 0 }
        /// Milliseconds of one step over one batch: sampling time / (batches x evaluations).
        public var msPerStep: Double { timing.batchEvaluations > 0 ? 1000 * timing.sampleSeconds / Double(timing.batchEvaluations) : 0 }
        /// Milliseconds of one network evaluation over one batch.
        public var networkMsPerStep: Double { timing.batchEvaluations > 0 ? 1000 * timing.networkSeconds / Double(timing.batchEvaluations) : 0 }

        /// One JSON object with every figure.
        public var json: String {
            let ts = times.map { String($0) }.joined(separator: ",")
            let fs = files.map { "\"" + $0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }.joined(separator: ",")
            return String(format: "{\"method\":\"%@\",\"nfe\":%ld,\"times\":[%@],\"count\":%ld,\"batch\":%ld,\"threads\":%ld,\"optimized\":%@,\"images_per_second\":%.3f,\"ms_per_step\":%.4f,\"network_ms_per_step\":%.4f,\"sample_seconds\":%.6f,\"prepare_seconds\":%.6f,\"files\":[%@]}",
                          method, timing.evaluationsPerSample, ts, count, batch, threads, optimized ? "true" : "false", imagesPerSecond, msPerStep,
                          networkMsPerStep, timing.sampleSeconds, timing.prepareSeconds, fs)
        }

        /// A human-readable summary.
        public var summary: String {
            let shown = times.count <= 8 ? times.map { String(format: "%.4g", $0) }.joined(separator: ", ")
                : times.prefix(3).map { String(format: "%.4g", $0) }.joined(separator: ", ") + ", ..., " + String(format: "%.4g", times.last ?? 0)
            var s = String(format: "scm-run: %ld samples, %@ at t = %@, %ld network evaluation%@ per sample, batch %ld, %ld thread%@%@\n",
                           count, method, shown, timing.evaluationsPerSample,
                           timing.evaluationsPerSample == 1 ? "" : "s", batch, threads, threads == 1 ? "" : "s", optimized ? "" : ", unoptimized")
            s += String(format: "  %.1f images/s, %.3f ms per step (network %.3f ms), sampling %.3f s, plans %.3f s",
                        imagesPerSecond, msPerStep, networkMsPerStep, timing.sampleSeconds, timing.prepareSeconds)
            for f in files { s += "\n  wrote \(f)" }
            return s
        }
    }

    /// Runs the job.
    public func run() throws(SamplerError) -> Report {
        if let c = count, c < 1 { throw SamplerError(.invalidArgument, at: "--count", "must be at least 1, is \(c)") }
        if let n = nrow, n < 1 { throw SamplerError(.invalidArgument, at: "--nrow", "must be at least 1, is \(n)") }
        let model = try TrigFlowModel(path: modelPath, overrides: overrides)
        let sampler: Sampler
        if let k = odeSteps {
            guard schedule == nil else { throw SamplerError(.invalidArgument, at: "--schedule", "applies to consistency sampling, not --ode-steps") }
            sampler = try model.odeSampler(steps: k, solver: solver, options: options)
        } else {
            guard steps >= 1 else { throw SamplerError(.invalidArgument, at: "--steps", "must be at least 1, is \(steps)") }
            let times = try SamplerError.wrap { try model.metadata.schedule(steps: steps, override: schedule, source: "--schedule") }
            sampler = try model.sampler(steps: steps, schedule: times, options: options)
        }
        // Everything that can be checked before sampling.
        if out != nil {
            try Samples.checkPNG(sampleShape: model.sampleShape, dataRange: model.metadata.dataRange, perSample: false)
        }
        if outDir != nil {
            try Samples.checkPNG(sampleShape: model.sampleShape, dataRange: model.metadata.dataRange, perSample: true)
        }
        for (flag, path) in [("--out", out), ("--npy", npy)] {
            if let path { try Self.checkWritableFile(path, flag: flag) }
        }
        if let dir = outDir { try Self.prepareFolder(dir) }
        var noise: (shape: [Int], values: [Float])?
        if let path = noisePath {
            let n = try NPY.read(path: path)
            if let c = count, n.shape.count >= 2, n.shape[1] != c {
                throw SamplerError(.invalidArgument, at: "--count", "is \(c) but the noise file '\(path)' holds \(n.shape[1]) samples")
            }
            noise = n
        }
        let samples: Samples
        if let noise {
            do {
                samples = try sampler.sample(noise: noise.values, shape: noise.shape)
            } catch {
                var e = error
                if e.location == "noise" { e.location = noisePath ?? "noise" }
                throw e
            }
        } else {
            let n = count ?? 64
            // Compile first, so the sampling time is sampling alone.
            let prepare = try sampler.prepare(count: n)
            var s = try sampler.sample(count: n, seed: seed)
            s.timing.prepareSeconds += prepare
            samples = s
        }
        var files: [String] = []
        if let path = npy {
            try SamplerError.wrap { try ModelFile.writeAtomically(samples.npy(), to: path) }
            files.append(path)
        }
        if let path = out {
            let png = try samples.png(nrow: nrow)
            try SamplerError.wrap { try ModelFile.writeAtomically([UInt8](png), to: path) }
            files.append(path)
        }
        if let dir = outDir {
            for i in 0..<samples.count {
                let path = (dir as NSString).appendingPathComponent(String(format: "sample_%05ld.png", i))
                let png = try samples.png(sample: i)
                try SamplerError.wrap { try ModelFile.writeAtomically([UInt8](png), to: path) }
            }
            files.append(dir)
        }
        let method: String = switch sampler.method {
        case .consistency: "consistency"
        case .ode(_, let s): "ode-\(s.rawValue)"
        }
        return Report(method: method, times: sampler.evaluationTimes, count: samples.count, batch: sampler.batchSizes(count: samples.count).first ?? 1,
                      threads: options.threads, optimized: options.optimize, timing: samples.timing, files: files)
    }

    /// Throws unless a file can be created at `path`: its folder exists and is writable, and
    /// `path` is not a folder.
    static func checkWritableFile(_ path: String, flag: String) throws(SamplerError) {
        guard !path.isEmpty else { throw SamplerError(.invalidArgument, at: flag, "is empty") }
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            throw SamplerError(.io, at: path, "is a folder (\(flag) names a file)")
        }
        let dir = (path as NSString).deletingLastPathComponent
        let folder = dir.isEmpty ? "." : dir
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue else {
            throw SamplerError(.io, at: path, "the folder '\(folder)' does not exist")
        }
        guard access(folder, W_OK) == 0 else { throw SamplerError(.io, at: path, "the folder '\(folder)' is not writable") }
    }

    /// Creates `dir` (with its parents) unless it exists; throws unless it is a writable folder.
    static func prepareFolder(_ dir: String) throws(SamplerError) {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) {
            guard isDir.boolValue else { throw SamplerError(.io, at: dir, "exists and is not a folder (--out-dir)") }
        } else {
            do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
                throw SamplerError(.io, at: dir, "cannot create the folder: \(error.localizedDescription)")
            }
        }
        guard access(dir, W_OK) == 0 else { throw SamplerError(.io, at: dir, "the folder is not writable") }
    }
}
