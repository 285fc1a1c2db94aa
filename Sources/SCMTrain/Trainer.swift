import Foundation
import SCMGraph
import SCMRuntime
import SCMTrigFlow

/// Set by SIGINT/SIGTERM; the training loop saves a checkpoint and stops at the next step.
nonisolated(unsafe) private var stopRequested: sig_atomic_t = 0

/// The training loop of `scm-train`: compiles one training step for the configuration, then runs
/// it on batches and noise drawn as pure functions of (seed, step), logging the loss, saving
/// checkpoints atomically every `checkpointEvery` steps, at the end and on SIGINT/SIGTERM, and
/// drawing a sample grid from the EMA weights with each checkpoint.
public struct Trainer {
    public var config: TrainConfig
    /// Stop after this many steps in total (counting a resumed run's earlier steps).
    public var steps: Int?
    /// Or stop after this many minutes of this process's training.
    public var minutes: Double?
    /// The run's folder: `loss.csv`, `checkpoints/step_<n>.ckpt`, `samples_step_<n>.png`.
    public var out: String
    /// Continue from the latest checkpoint in `out` (its configuration must equal `config`).
    public var resume = false
    public var threads = 1
    public var checkpointEvery = 500
    /// Progress on standard error: a redrawn line (terminal), plain lines (otherwise), or none.
    public var progress: Progress = .auto
    public enum Progress: Sendable { case auto, lines, none }
    /// The data source of `config.data` when the caller has opened it already (else `run` opens it).
    public var data: DataSource?
    /// Where CMT keeps its teacher's trajectories between runs (nil: the run folder); a file there
    /// is reused by every run with the same teacher and trajectory settings.
    public var trajectoryCache: String?

    public init(config: TrainConfig, out: String) {
        self.config = config
        self.out = out
    }

    /// What a run did.
    public struct Report: Sendable {
        public var startStep: Int
        public var steps: Int
        public var seconds: Double
        public var finalLoss: Float
        public var checkpoint: String
        public var samples: String?
        public var interrupted: Bool
        public var secondsPerStep: Double { steps > startStep ? seconds / Double(steps - startStep) : 0 }

        public var json: String {
            let esc = { (s: String) in s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") }
            return String(format: "{\"start_step\":%ld,\"steps\":%ld,\"seconds\":%.3f,\"seconds_per_step\":%.5f,\"final_loss\":%.6g,\"checkpoint\":\"%@\",\"samples\":%@,\"interrupted\":%@}",
                          startStep, steps, seconds, secondsPerStep, Double(finalLoss), esc(checkpoint),
                          samples.map { "\"\(esc($0))\"" } ?? "null", interrupted ? "true" : "false")
        }
    }

    /// The checkpoint file of `step` in `dir`.
    public static func checkpointPath(_ dir: String, step: Int) -> String {
        (dir as NSString).appendingPathComponent(String(format: "checkpoints/step_%08ld.ckpt", step))
    }

    /// The latest checkpoint in the run folder `dir`, or nil.
    public static func latestCheckpoint(_ dir: String) -> String? {
        let folder = (dir as NSString).appendingPathComponent("checkpoints")
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return nil }
        let steps = names.compactMap { n -> Int? in
            guard n.hasPrefix("step_"), n.hasSuffix(".ckpt") else { return nil }
            return Int(n.dropFirst(5).dropLast(5))
        }
        return steps.max().map { checkpointPath(dir, step: $0) }
    }

    public func run() throws -> Report {
        guard steps != nil || minutes != nil else { throw TrainError(at: "--steps", "give --steps or --minutes") }
        let fm = FileManager.default
        do { try fm.createDirectory(atPath: (out as NSString).appendingPathComponent("checkpoints"), withIntermediateDirectories: true) } catch {
            throw TrainError(at: out, "cannot create the run folder: \(error.localizedDescription)")
        }
        // Resume.
        var start = 0
        var initial: [String: Tensor] = [:]
        var config = self.config
        if let teacher = config.teacher { config.teacherDigest = try Self.digest(ofFile: teacher) }
        if resume, let path = Self.latestCheckpoint(out) {
            let ckpt = try Checkpoint.load(path: path)
            var stored = ckpt.config
            // A resumed run takes its weights from the checkpoint: --init only starts a run, so its
            // path may differ (and the record keeps the original). A teacher may have moved: the
            // same bytes at another path continue the run.
            config.initialize = stored.initialize
            if let teacher = config.teacher, let old = stored.teacher, (old, stored.teacherDigest) != (teacher, config.teacherDigest) {
                // Older checkpoints record no digest: the recorded file's, when it is still there.
                let recorded = try stored.teacherDigest
                    ?? (old == teacher ? config.teacherDigest : FileManager.default.fileExists(atPath: old) ? Self.digest(ofFile: old) : nil)
                guard let recorded else {
                    throw TrainError(at: path, "was trained with the teacher \(old), which no longer exists (and the checkpoint predates teacher digests): put it back at that path to resume")
                }
                if recorded == config.teacherDigest { stored.teacher = teacher; stored.teacherDigest = recorded }
            }
            if stored != config {
                throw TrainError(at: path, "was made with another configuration (differs in: \(try Self.differences(stored, config).joined(separator: ", "))); resume with the same flags, or train into another folder")
            }
            start = ckpt.step
            initial = ckpt.state
        } else if !resume, Self.latestCheckpoint(out) != nil {
            throw TrainError(at: out, "already holds checkpoints: pass --resume to continue, or choose another --out")
        }
        let data = try self.data ?? DataSource.open(config.data)
        guard data.sampleShape == config.network.sampleShape else {
            throw TrainError(at: config.data, "samples have shape \(data.sampleShape), the network takes \(config.network.sampleShape)")
        }
        if initial.isEmpty, let path = config.initialize { initial = try TrainingSource.initialWeights(path, config: config) }
        let pool = try config.objective == .cmt ? trajectoryPool(config) : nil
        // The step graph (CMT's plain distance needs no weighting head).
        let network = try Networks.build(config.network, seed: config.seed, parameters: initial, logvar: config.weightingHead, dropout: true)
        // Parameters the start lacks (all of them, or the weighting head of a model file) start
        // from the seeded initialization.
        for t in network.graph.initializers where initial[t.meta.name] == nil { initial[t.meta.name] = t }
        let loss: Model
        let options = ConsistencyLoss.Options(sigmaData: config.sigmaData, tangentNormConstant: config.tangentNormC, segments: config.segmentBoundaries)
        switch config.objective {
        case .sct: loss = try ConsistencyLoss.sct(network: network, options: options)
        case .flow: loss = try Objectives.flow(network: network, sigmaData: config.sigmaData)
        case .scd: loss = try ConsistencyLoss.sct(network: network, teacher: try Self.teacher(config), options: options)
        case .cmt: loss = try MidTraining.loss(network: network, sigmaData: config.sigmaData, distance: config.distance ?? .l2)
        }
        // Only the network's own parameters are trained (not a teacher's).
        let trained = network.graph.initializers.filter { $0.dtype == .float }.map(\.meta.name)
        let (stepModel, parameters) = try TrainingStep.make(loss, parameters: trained, options: config.adam)
        let b = config.batch, shape = data.sampleShape, e = shape.reduce(1, *)
        var shapes: [String: TensorSpec] = [ConsistencyLoss.dataInput: TensorSpec(.float, [b] + shape),
                                            ConsistencyLoss.noiseInput: TensorSpec(.float, [b] + shape),
                                            ConsistencyLoss.timeInput: TensorSpec(.float, [b])]
        let takesWarmup = config.objective == .sct || config.objective == .scd
        if takesWarmup { shapes[ConsistencyLoss.warmupInput] = TensorSpec(.float, []) }
        let session = try TrainingSession(step: stepModel, parameters: parameters, initial: initial, dataShapes: shapes,
                                          threads: threads, steps: start)
        // Logs.
        let csv = (out as NSString).appendingPathComponent("loss.csv")
        try Self.trimLog(csv, upTo: start)
        guard let log = FileHandle(forWritingAtPath: csv) else { throw TrainError(at: csv, "cannot open the loss log for writing") }
        defer { try? log.close() }
        _ = try? log.seekToEnd()

        stopRequested = 0
        let previousInt = signal(SIGINT) { _ in stopRequested = 1 }
        let previousTerm = signal(SIGTERM) { _ in stopRequested = 1 }
        defer {
            signal(SIGINT, previousInt)
            signal(SIGTERM, previousTerm)
        }
        let terminal = isatty(STDERR_FILENO) == 1
        let mode: Progress = progress == .auto ? (terminal ? .auto : .lines) : progress
        var x0 = [Float](repeating: 0, count: b * e), z = [Float](repeating: 0, count: b * e), t = [Float](repeating: 0, count: b)
        var r: Float = 0
        let clock = DispatchTime.now().uptimeNanoseconds
        let seconds = { Double(DispatchTime.now().uptimeNanoseconds - clock) / 1e9 }
        var step = start, lastLoss: Float = .nan, lastDraw = 0.0
        var lastCheckpoint = start > 0 ? Self.checkpointPath(out, step: start) : ""
        var samples: String? = nil
        var interrupted = false
        func save() throws {
            let ckpt = Checkpoint(config: config, step: step, state: try session.state(), parameters: parameters)
            let path = Self.checkpointPath(out, step: step)
            try ckpt.save(to: path)
            lastCheckpoint = path
            samples = try? drawGrid(ckpt, data: data)
        }
        while true {
            if let n = steps, step >= n { break }
            if let m = minutes, seconds() >= m * 60 { break }
            if stopRequested != 0 {
                interrupted = true
                break
            }
            if let pool {
                pool.fill(step: step, seed: config.seed, points: &z, targets: &x0, times: &t)
            } else {
                x0.withUnsafeMutableBufferPointer { data.batch(step: step, size: b, seed: config.seed, into: $0.baseAddress!) }
                drawNoise(step: step, z: &z, t: &t, elements: e)
            }
            r = config.warmup(step: step)
            var inputs = [try Tensor(shape: [b] + shape, scalars: x0), try Tensor(shape: [b] + shape, scalars: z), try Tensor(shape: [b], scalars: t)]
            if takesWarmup { inputs.append(try Tensor(shape: [], scalars: [r])) }
            let (l, norm) = try session.step(inputs, lr: config.learningRate(step: step))
            guard l.isFinite, norm.isFinite else {
                throw TrainError(at: "step \(step + 1)", "the loss is \(l) (gradient norm \(norm)): training stopped; the last good checkpoint is \(lastCheckpoint.isEmpty ? "none (no checkpoint was saved yet)" : lastCheckpoint)")
            }
            step += 1
            lastLoss = l
            log.write(Data(String(format: "%ld,%.6g,%.6g,%.6g,%.3f\n", step, Double(l), Double(norm), Double(config.learningRate(step: step - 1)), seconds()).utf8))
            let now = seconds()
            if mode != .none, now - lastDraw >= (mode == .auto ? 0.2 : 10) || step == steps {
                lastDraw = now
                let rate = Double(step - start) / max(now, 1e-9)
                var eta = ""
                if let n = steps { eta = String(format: ", ETA %.0f s", Double(n - step) / max(rate, 1e-9)) }
                let line = String(format: "step %ld%@, %.2f steps/s, loss %.4f%@", step, steps.map { "/\($0)" } ?? "", rate, Double(l), eta)
                FileHandle.standardError.write(Data((mode == .auto ? "\r\(line)\u{1B}[K" : line + "\n").utf8))
            }
            if step % checkpointEvery == 0 { try save() }
        }
        if mode == .auto { FileHandle.standardError.write(Data("\n".utf8)) }
        if step > start || lastCheckpoint.isEmpty { try save() }
        return Report(startStep: start, steps: step, seconds: seconds(), finalLoss: lastLoss, checkpoint: lastCheckpoint, samples: samples,
                      interrupted: interrupted)
    }

    /// The velocity network of `config.teacher` (a flow checkpoint's EMA weights or a flow model),
    /// checked against the student's data shape and sigma_d.
    static func teacher(_ config: TrainConfig) throws -> Model {
        guard let path = config.teacher else { throw TrainError(at: "teacher", "sCD needs a teacher") }
        return try TrainingSource.teacherNetwork(path, config: config)
    }

    /// CMT's trajectories of `config.teacher`, cached in `trajectoryCache` (else the run folder).
    func trajectoryPool(_ config: TrainConfig) throws -> MidTraining.Pool {
        guard let path = config.teacher, let digest = config.teacherDigest else { throw TrainError(at: "teacher", "CMT needs a teacher") }
        let spec = config.trajectories ?? MidTraining.Trajectories()
        let teacher = try TrainingSource.teacherModel(path, config: config)
        let quiet = progress == .none
        return try MidTraining.Pool.make(teacher: teacher, teacherDigest: digest, spec: spec, threads: threads, cache: trajectoryCache ?? out) { line in
            if !quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) }
        }
    }

    /// z = sigma_d N(0, I) and t = atan(sigma / sigma_d) with log sigma ~ N(P_mean, P_std^2), each
    /// sample's draws keyed by (seed, step, sample) and a stream of their own.
    func drawNoise(step: Int, z: inout [Float], t: inout [Float], elements e: Int) {
        let noiseSeed = config.seed ^ 0x5A5A_0001_0000_0000, timeSeed = config.seed ^ 0x5A5A_0002_0000_0000
        let sd = config.sigmaData
        z.withUnsafeMutableBufferPointer { buf in
            for i in 0..<t.count {
                GaussianNoise.fill(buf.baseAddress! + i * e, count: e, seed: noiseSeed, sample: UInt32(i), step: UInt32(truncatingIfNeeded: step))
            }
            for k in 0..<buf.count { buf[k] *= sd }
        }
        var n: Float = 0
        for i in 0..<t.count {
            GaussianNoise.fill(&n, count: 1, seed: timeSeed, sample: UInt32(i), step: UInt32(truncatingIfNeeded: step))
            let sigma = exp(Double(config.pMean) + Double(config.pStd) * Double(n))
            t[i] = Float(atan(sigma / Double(sd)))
        }
    }

    /// A grid of 64 two-step samples (consistency) or 16-step Heun ODE samples (flow) from the
    /// checkpoint's EMA weights, written beside the checkpoints; a scatter of 2000 for vectors.
    func drawGrid(_ ckpt: Checkpoint, data: DataSource) throws -> String {
        let model = try TrigFlowModel(CheckpointExport.model(ckpt))
        let options = Sampler.Options(batch: 64, threads: threads)
        let sampler = config.objective == .flow ? try model.odeSampler(steps: 16, solver: .heun, options: options)
            : try model.sampler(steps: 2, options: options)
        let samples = try sampler.sample(count: model.isImage ? 64 : 2000, seed: 0)
        let path = (out as NSString).appendingPathComponent(String(format: "samples_step_%08ld.png", ckpt.step))
        try ModelFile.writeAtomically([UInt8](try samples.png(nrow: model.isImage ? 8 : nil)), to: path)
        return path
    }

    /// Keeps the log's header and lines of steps <= `step` (a resumed run rewrites the rest).
    static func trimLog(_ path: String, upTo step: Int) throws {
        let header = "step,loss,grad_norm,lr,seconds\n"
        var text = header
        if step > 0, let old = try? String(contentsOfFile: path, encoding: .utf8) {
            for line in old.split(separator: "\n").dropFirst() {
                if let s = Int(line.split(separator: ",").first ?? ""), s <= step { text += line + "\n" }
            }
        }
        try ModelFile.writeAtomically(Array(text.utf8), to: path)
    }

    /// `fnvDigest` of a file, as 16 hex digits (identifies a teacher across moves).
    static func digest(ofFile path: String) throws -> String {
        guard let h = fnvDigest(ofFile: path) else { throw TrainError(at: path, "cannot read the teacher checkpoint") }
        return String(format: "%016llx", h)
    }

    /// The configuration fields in which `a` and `b` differ.
    static func differences(_ a: TrainConfig, _ b: TrainConfig) throws -> [String] {
        func dict(_ c: TrainConfig) throws -> [String: String] {
            let obj = try JSONSerialization.jsonObject(with: Data(try c.json().utf8)) as? [String: Any] ?? [:]
            // Nested values (the network) as sorted-key JSON: their description's key order varies.
            return obj.mapValues { v in
                (try? JSONSerialization.data(withJSONObject: v, options: [.sortedKeys, .fragmentsAllowed]))
                    .map { String(decoding: $0, as: UTF8.self) } ?? "\(v)"
            }
        }
        let da = try dict(a), db = try dict(b)
        return Set(da.keys).union(db.keys).sorted().filter { da[$0] != db[$0] }.map { "\($0): \(da[$0] ?? "-") vs \(db[$0] ?? "-")" }
    }
}
