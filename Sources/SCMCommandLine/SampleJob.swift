import Foundation
import SCM
import SCMRuntime

/// The library side of `scm-run`: load a model, draw samples, write the PNG grid, per-sample
/// PNGs and `.npy` file asked for, and report speed. Errors name the command-line flags.
///
/// `validate()` checks everything that needs no file (ranges, flags that contradict or would be
/// ignored, outputs that name one file twice); `run()` calls it, then checks the model and the
/// output paths before sampling, and writes every file to a temporary name, renaming them into
/// place only when all are written (a failure leaves no output behind).
public struct SampleJob: Sendable {
    /// The model file.
    public var modelPath: String
    /// Consistency steps (nil: the length of `schedule`, else 2). Not with `odeSteps`.
    public var steps: Int?
    /// Comma-separated times replacing the model's schedule (they win over `scm.schedule.N`).
    public var schedule: String?
    /// Run the PF-ODE baseline with this many steps instead of consistency sampling.
    public var odeSteps: Int?
    /// The ODE solver (nil: Heun). Only with `odeSteps`.
    public var solver: Sampler.Solver?
    /// Samples to draw (nil: 64, or the noise file's N).
    public var count: Int?
    /// Noise seed (nil: 0). Not with `noisePath`.
    public var seed: UInt64?
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
    /// Images per grid row (nil: the ceiling of the square root of the count). Only with `out`.
    public var nrow: Int?
    /// Metadata overrides.
    public var overrides = TrigFlowModel.Overrides()
    /// Show a progress line on standard error (samples done, images/s, ETA); nil: only when
    /// standard error is a terminal.
    public var showProgress: Bool?

    /// A job for the model at `modelPath` with the defaults.
    public init(modelPath: String) { self.modelPath = modelPath }

    /// Whether the job writes anything.
    public var writesFiles: Bool { out != nil || outDir != nil || npy != nil }

    /// The name of per-sample file `index` in `outDir`.
    public static func sampleFileName(_ index: Int) -> String { String(format: "sample_%05ld.png", index) }

    /// What a run did and how fast.
    public struct Report: Sendable {
        /// `consistency` or `ode-euler` / `ode-heun`.
        public var method: String
        /// Evaluation times of one sample, in order.
        public var times: [Float]
        /// The ODE's time grid t_max ... 0 (empty for consistency sampling).
        public var grid: [Float] = []
        /// Samples drawn.
        public var count: Int
        /// Batch size (of the first batch; see `Sampler.batchSizes(count:)`) and threads used.
        public var batch: Int, threads: Int
        /// Samples per plan run of that batch (`Sampler.Options.chunk`).
        public var chunk: Int = 0
        /// The convolutions' arithmetic the plans ran (`Sampler.Options.effectivePrecision`).
        public var precision: Precision = .fp32
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

        /// Every figure, as `--json` prints it.
        public var figures: Figures {
            Figures(method: method, nfe: timing.evaluationsPerSample, times: times, grid: grid, count: count, batch: batch, chunk: chunk,
                    precision: precision.rawValue, threads: threads, optimized: optimized, imagesPerSecond: imagesPerSecond,
                    msPerStep: msPerStep, networkMsPerStep: networkMsPerStep, sampleSeconds: timing.sampleSeconds,
                    prepareSeconds: timing.prepareSeconds, files: files)
        }

        /// The report's figures as one JSON object.
        public struct Figures: Codable, Sendable {
            public var method: String
            public var nfe: Int
            public var times: [Float], grid: [Float]
            public var count: Int, batch: Int, chunk: Int
            public var precision: String
            public var threads: Int
            public var optimized: Bool
            public var imagesPerSecond: Double, msPerStep: Double, networkMsPerStep: Double
            public var sampleSeconds: Double, prepareSeconds: Double
            public var files: [String]

            enum CodingKeys: String, CodingKey {
                case method, nfe, times, grid, count, batch, chunk, precision, threads, optimized
                case imagesPerSecond = "images_per_second", msPerStep = "ms_per_step", networkMsPerStep = "network_ms_per_step"
                case sampleSeconds = "sample_seconds", prepareSeconds = "prepare_seconds", files
            }
        }

        /// A human-readable summary.
        public var summary: String {
            // The ODE's grid, not its evaluation times (Heun evaluates each inner time twice).
            let shownTimes = grid.isEmpty ? times : grid
            let shown = shownTimes.count <= 8 ? shownTimes.map { String(format: "%.4g", $0) }.joined(separator: ", ")
                : shownTimes.prefix(3).map { String(format: "%.4g", $0) }.joined(separator: ", ") + ", ..., " + String(format: "%.4g", shownTimes.last ?? 0)
            var s = String(format: "scm-run: %ld sample%@, %@ at t = %@, %ld network evaluation%@ per sample, batch %ld, %ld thread%@%@%@\n",
                           count, count == 1 ? "" : "s", method, shown, timing.evaluationsPerSample,
                           timing.evaluationsPerSample == 1 ? "" : "s", batch, threads, threads == 1 ? "" : "s", optimized ? "" : ", unoptimized",
                           precision == .bf16 ? ", bf16 convolutions" : "")
            s += String(format: "  %.1f images/s, %.3f ms per step (network %.3f ms), sampling %.3f s, plans %.3f s",
                        imagesPerSecond, msPerStep, networkMsPerStep, timing.sampleSeconds, timing.prepareSeconds)
            for f in files { s += "\n  wrote \(f)" }
            return s
        }
    }

    /// Throws unless the job's settings make sense on their own (no file is read): numbers in
    /// `Limits`, no flag that would be ignored, no two outputs on one file.
    public func validate() throws(SamplerError) {
        func bad(_ flag: String, _ message: String) -> SamplerError { SamplerError(.invalidArgument, at: flag, message) }
        func range(_ flag: String, _ value: Int?, _ r: ClosedRange<Int>) throws(SamplerError) {
            if let v = value, let m = Limits.violation(v, r) { throw bad(flag, m) }
        }
        try range("--steps", steps, Limits.steps)
        try range("--ode-steps", odeSteps, Limits.steps)
        try range("--count", count, Limits.count)
        try range("--batch", options.batch, Limits.batch)
        try range("--threads", options.threads, Limits.threads)
        try range("--chunk", options.chunk, Limits.batch)
        if let n = nrow, n < 1 { throw bad("--nrow", "must be at least 1, is \(n)") }
        if odeSteps != nil {
            if steps != nil { throw bad("--steps", "sets consistency steps; with --ode-steps it would be ignored (give one of them)") }
            if schedule != nil { throw bad("--schedule", "applies to consistency sampling, not --ode-steps") }
        } else if solver != nil {
            throw bad("--solver", "applies to the ODE baseline only: give --ode-steps too")
        }
        if seed != nil && noisePath != nil { throw bad("--seed", "keys the generated noise; with --noise it would be ignored (give one of them)") }
        if nrow != nil && out == nil { throw bad("--nrow", "shapes the --out grid; without --out it would be ignored") }
        if let text = schedule {
            let times = try SamplerError.wrap { try TrigFlowMetadata.parseTimes(text, source: "--schedule") }
            if let n = steps, times.count != n { throw bad("--schedule", "lists \(times.count) times for \(n) steps") }
            try range("--schedule", times.count, Limits.steps)
        }
        if let sd = overrides.sigmaData, let m = TrigFlowMetadata.sigmaDataViolation(sd) { throw bad("--sigma-data", m) }
        if let tm = overrides.tMax, let m = TrigFlowMetadata.timeViolation(tm) { throw bad("--t-max", m) }
        if let r = overrides.dataRange, !(r.0.isFinite && r.1.isFinite && r.0 < r.1) {
            throw bad("--data-range", "must be 'low,high' with low < high, is \(r.0),\(r.1)")
        }
        // Outputs on one file.
        var named: [(flag: String, path: String)] = []
        for (flag, path) in [("--out", out), ("--npy", npy)] {
            guard let path else { continue }
            guard !path.isEmpty else { throw bad(flag, "is empty") }
            named.append((flag, ModelFile.canonicalPath(path)))
        }
        if named.count == 2, named[0].path == named[1].path {
            throw bad("--out", "names the same file as --npy ('\(out ?? "")')")
        }
        if let dir = outDir {
            guard !dir.isEmpty else { throw bad("--out-dir", "is empty") }
            let folder = ModelFile.canonicalPath(dir)
            for (flag, path) in named where (path as NSString).deletingLastPathComponent == folder
                && (path as NSString).lastPathComponent.wholeMatch(of: /sample_[0-9]{5,}\.png/) != nil {
                throw bad(flag, "names '\(path)', one of the per-sample files of --out-dir")
            }
        }
    }

    /// Runs the job.
    public func run() throws(SamplerError) -> Report {
        try validate()
        let model: TrigFlowModel
        do {
            model = try TrigFlowModel(path: modelPath, overrides: overrides, limits: options.limits)
        } catch {
            throw Self.naming(error)
        }
        let sampler: Sampler
        if let k = odeSteps {
            sampler = try model.odeSampler(steps: k, solver: solver ?? .heun, options: options)
        } else {
            let times = try Self.naming(SamplerError.wrap { try model.metadata.schedule(steps: steps, override: schedule, source: "--schedule") })
            sampler = try model.sampler(steps: times.count, schedule: times, options: options)
        }
        // Everything that can be checked before sampling.
        if out != nil {
            try Self.naming(Samples.checkPNG(sampleShape: model.sampleShape, dataRange: model.metadata.dataRange, perSample: false))
        }
        if outDir != nil {
            try Self.naming(Samples.checkPNG(sampleShape: model.sampleShape, dataRange: model.metadata.dataRange, perSample: true))
        }
        for (flag, path) in [("--out", out), ("--npy", npy)] {
            if let path { try Self.checkWritableFile(path, flag: flag) }
        }
        var noise: (shape: [Int], values: [Float])?
        if let path = noisePath {
            let n = try NPY.read(path: path)
            if let c = count, n.shape.count >= 2, n.shape[1] != c {
                throw SamplerError(.invalidArgument, at: "--count", "is \(c) but the noise file '\(path)' holds \(n.shape[1]) samples")
            }
            noise = n
        }
        let total = noise.map { $0.shape.count >= 2 ? $0.shape[1] : 0 } ?? count ?? 64
        if let dir = outDir { try Self.checkOutputFolder(dir, count: total) }
        try Self.checkMemory(count: total, sampleShape: model.sampleShape, copies: (npy != nil ? 1 : 0) + (out != nil || outDir != nil ? 1 : 0))
        let display = SampleProgressLine(enabled: showProgress ?? (isatty(STDERR_FILENO) == 1))
        let samples: Samples
        if let noise {
            do {
                samples = try sampler.sample(noise: noise.values, shape: noise.shape, progress: display.update)
            } catch {
                var e = SCMError(wrapping: error)
                if e.location == "noise" { e.location = noisePath ?? "noise" }
                throw e
            }
        } else {
            // Compile first, so the sampling time is sampling alone.
            let prepare = try Self.naming(sampler.prepare(count: total))
            display.start()
            var s = try sampler.sample(count: total, seed: seed ?? 0, progress: display.update)
            s.timing.prepareSeconds += prepare
            samples = s
        }
        display.finish()
        let bad = samples.nonFiniteSamples()
        if let first = bad.first {
            throw SamplerError(.invalidModel, at: modelPath, "gave non-finite values (NaN or infinity) in \(bad.count) of \(samples.count) samples (the first: sample \(first)); nothing was written")
        }
        var files: [(path: String, bytes: [UInt8])] = []
        if let path = npy { files.append((path, samples.npy())) }
        if let path = out { files.append((path, [UInt8](try samples.png(nrow: nrow)))) }
        if let dir = outDir {
            for i in 0..<samples.count {
                files.append(((dir as NSString).appendingPathComponent(Self.sampleFileName(i)), [UInt8](try samples.png(sample: i))))
            }
        }
        try SamplerError.wrap { try ModelFile.writeAllAtomically(files, creatingFolder: outDir) }
        let method: String = switch sampler.method {
        case .consistency: "consistency"
        case .ode(_, let s): "ode-\(s.rawValue)"
        }
        let batch = sampler.batchSizes(count: samples.count).first ?? 1
        var report = Report(method: method, times: sampler.evaluationTimes, grid: sampler.odeGrid, count: samples.count,
                            batch: batch, threads: options.threads, optimized: options.optimize, timing: samples.timing,
                            files: [npy, out, outDir].compactMap { $0 })
        report.chunk = try sampler.chunkSize(batch: batch)
        report.precision = options.effectivePrecision
        return report
    }

    /// `error` with the library's names for things replaced by the flags that set them.
    static func naming(_ error: SamplerError) -> SamplerError {
        var e = error
        let flags = ["sigma_data": "--sigma-data", "t_max": "--t-max", "steps": "--steps", "ode steps": "--ode-steps",
                     "count": "--count", "batch": "--batch", "chunk": "--chunk", "threads": "--threads", "schedule": "--schedule", "nrow": "--nrow"]
        if let flag = flags[e.location] { e.location = flag }
        if e.message.hasPrefix(TrigFlowMetadata.missingMessage) {
            if e.location.contains("sigma_data") { e.message = "is missing: give the model's sigma_data with --sigma-data" }
            if e.location.contains("t_max") { e.message = "is missing: give the model's t_max with --t-max" }
        }
        if e.kind == .invalidArgument, e.location.hasPrefix("metadata '\(TrigFlowMetadata.Key.schedulePrefix)") {
            e.message += " (--schedule)"
        }
        if e.location == "png", e.message.hasPrefix("the data range is unknown") {
            e.message = "the data range is unknown: the model has no 'scm.data_range' (give --data-range=low,high)"
        }
        return e
    }

    static func naming<T>(_ body: @autoclosure () throws(SamplerError) -> T) throws(SamplerError) -> T {
        do { return try body() } catch { throw naming(error) }
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

    /// Throws unless `dir` can take the per-sample files of a run of `count` samples: an existing
    /// writable folder holding no sample file of an earlier, longer run (which would be left
    /// beside this run's) and no folder in the place of one, or a folder that can be created
    /// (it is created only when the samples are written).
    static func checkOutputFolder(_ dir: String, count: Int) throws(SamplerError) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) else {
            if let folder = ModelFile.uncreatableAncestor(of: dir) {
                throw SamplerError(.io, at: dir, "cannot be created: '\(folder)' is not a writable folder (--out-dir)")
            }
            return
        }
        guard isDir.boolValue else { throw SamplerError(.io, at: dir, "exists and is not a folder (--out-dir)") }
        guard access(dir, W_OK) == 0 else { throw SamplerError(.io, at: dir, "the folder is not writable (--out-dir)") }
        var stale: [String] = []
        for (name, i) in ModelFile.numberedFiles(in: dir, prefix: "sample_", suffix: ".png", minDigits: 5) {
            if i >= count { stale.append(name); continue }
            let path = (dir as NSString).appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
                throw SamplerError(.io, at: path, "is a folder (--out-dir writes \(sampleFileName(0)) ... \(sampleFileName(count - 1)))")
            }
        }
        if let first = stale.sorted().first {
            throw SamplerError(.io, at: dir, "holds \(stale.count) sample file\(stale.count == 1 ? "" : "s") of an earlier run beyond this run's \(count) (\(first) ...), which would be left beside its samples: remove them or give an empty folder (--out-dir)")
        }
    }

    /// Throws unless the samples of a run, and `copies` encoded copies of them (the .npy file,
    /// the PNGs), fit in the memory available now (Linux's MemAvailable): a run sized past the
    /// machine stops before it starts, with what it needs, instead of failing to allocate.
    static func checkMemory(count: Int, sampleShape: [Int], copies: Int) throws(SamplerError) {
        let perSample = sampleShape.reduce(MemoryLayout<Float>.size, *)
        let (need, overflow) = perSample.multipliedReportingOverflow(by: count * (1 + copies))
        guard let available = SystemMemory.available else { return }
        if overflow || need > available {
            let gib = { (b: Int) in String(format: "%.1f GiB", Double(b) / Double(1 << 30)) }
            throw SamplerError(.limitExceeded, at: "--count", "\(count) samples need \(overflow ? "more than \(gib(Int.max))" : gib(need)) of memory for the samples and their files; \(gib(available)) is available: draw fewer samples per run (several runs with different --seed values)")
        }
    }
}

/// The progress line `scm-run` shows on a terminal: samples done, images/s and ETA, redrawn at
/// most every 0.2 s and at the end.
final class SampleProgressLine: @unchecked Sendable {
    let enabled: Bool
    private var started = DispatchTime.now().uptimeNanoseconds
    private var lastDraw: UInt64 = 0
    private var drawn = false

    init(enabled: Bool) { self.enabled = enabled }

    /// Restarts the clock (after plan compilation).
    func start() { started = DispatchTime.now().uptimeNanoseconds }

    func update(done: Int, total: Int) {
        guard enabled else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        guard done == total || now - lastDraw >= 200_000_000 else { return }
        lastDraw = now
        let seconds = Double(now - started) / 1e9
        let rate = seconds > 0 ? Double(done) / seconds : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let line = String(format: "\r  %ld/%ld samples, %.1f images/s, ETA %.1f s\u{1B}[K", done, total, rate, eta)
        FileHandle.standardError.write(Data(line.utf8))
        drawn = true
    }

    /// Ends the line, if one was drawn.
    func finish() {
        if drawn { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
