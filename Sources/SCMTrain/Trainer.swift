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
    /// Called after every step, on the training thread (a progress display throttles itself).
    public var onStep: ((TrainingProgress) -> Void)?
    /// Called with what the run does besides its steps (integrating CMT's trajectories).
    public var onNote: ((String) -> Void)?
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
    public struct Report: Sendable, Codable {
        public var startStep: Int
        public var steps: Int
        public var seconds: Double
        public var finalLoss: Float
        public var checkpoint: String
        public var samples: String?
        public var interrupted: Bool
        public var secondsPerStep: Double { steps > startStep ? seconds / Double(steps - startStep) : 0 }

        enum CodingKeys: String, CodingKey {
            case startStep = "start_step", steps, seconds, secondsPerStep = "seconds_per_step", finalLoss = "final_loss"
            case checkpoint, samples, interrupted
        }

        public init(startStep: Int, steps: Int, seconds: Double, finalLoss: Float, checkpoint: String, samples: String?, interrupted: Bool) {
            self.startStep = startStep
            self.steps = steps
            self.seconds = seconds
            self.finalLoss = finalLoss
            self.checkpoint = checkpoint
            self.samples = samples
            self.interrupted = interrupted
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(startStep: try c.decode(Int.self, forKey: .startStep), steps: try c.decode(Int.self, forKey: .steps),
                      seconds: try c.decode(Double.self, forKey: .seconds), finalLoss: try c.decode(Float.self, forKey: .finalLoss),
                      checkpoint: try c.decode(String.self, forKey: .checkpoint), samples: try c.decodeIfPresent(String.self, forKey: .samples),
                      interrupted: try c.decode(Bool.self, forKey: .interrupted))
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(startStep, forKey: .startStep)
            try c.encode(steps, forKey: .steps)
            try c.encode(seconds, forKey: .seconds)
            try c.encode(secondsPerStep, forKey: .secondsPerStep)
            try c.encode(finalLoss, forKey: .finalLoss)
            try c.encode(checkpoint, forKey: .checkpoint)
            try c.encode(samples, forKey: .samples)
            try c.encode(interrupted, forKey: .interrupted)
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

    /// Trains: resumes or starts the run, compiles its step, then steps until `steps` or
    /// `minutes` (or SIGINT/SIGTERM), saving checkpoints on the way and at the end.
    public func run() throws -> Report {
        guard steps != nil || minutes != nil else { throw SCMError(at: "steps", "give a step count or a time limit") }
        try Self.checkRunFolder(out)
        var config = self.config
        let (start, restored) = try startingPoint(&config)
        if let n = steps, start >= n {
            throw SCMError(at: "steps", "is \(n), and the run in \(out) is already at step \(start): give a larger step count to continue it")
        }
        let data = try self.data ?? DataSource.open(config.data)
        guard data.sampleShape == config.network.sampleShape else {
            throw SCMError(at: config.data, "samples have shape \(data.sampleShape), the network takes \(config.network.sampleShape)")
        }
        let step = try compiledStep(config, start: start, restored: restored)
        // The run folder appears only once the run is known to start.
        try ModelFile.makeFolders((out as NSString).appendingPathComponent("checkpoints"))
        return try loop(step, config: config, data: data, start: start)
    }

    /// Throws unless `out` is a folder, or can be made one (an existing file is not).
    static func checkRunFolder(_ out: String) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: out, isDirectory: &isDir) {
            guard isDir.boolValue else { throw SCMError(.io, at: out, "exists and is not a folder: give a folder for the run") }
            guard access(out, W_OK) == 0 else { throw SCMError(.io, at: out, "the run folder is not writable") }
            return
        }
        if let folder = ModelFile.uncreatableAncestor(of: out) {
            throw SCMError(.io, at: out, "cannot be created: '\(folder)' is not a writable folder")
        }
    }

    /// The newest checkpoint of `dir` that loads, or the error naming the newest that does not
    /// and the newest readable one before it.
    static func newestCheckpoint(_ dir: String) throws -> Checkpoint? {
        guard let path = latestCheckpoint(dir) else { return nil }
        do { return try Checkpoint.load(path: path) } catch {
            let folder = (dir as NSString).appendingPathComponent("checkpoints")
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasPrefix("step_") && $0.hasSuffix(".ckpt") }
            let older = names.sorted(by: >).map { (folder as NSString).appendingPathComponent($0) }.filter { $0 != path }
            let good = older.first { (try? Checkpoint.load(path: $0)) != nil }
            let hint = good.map { "the newest readable one is \($0): remove \(path) to resume from it" } ?? "no older checkpoint of the run reads either"
            throw SCMError(.io, at: path, "the newest checkpoint cannot be read (\(error)); \(hint)")
        }
    }

    /// The run's first step and the state it starts from (a checkpoint's on resume, else empty),
    /// with `config` completed (the teacher's digest; on resume, the recorded start).
    func startingPoint(_ config: inout TrainConfig) throws -> (Int, [String: Tensor]) {
        if let teacher = config.teacher { config.teacherDigest = try Self.digest(ofFile: teacher) }
        if resume, let ckpt = try Self.newestCheckpoint(out), let path = Self.latestCheckpoint(out) {
            var stored = ckpt.config
            // A resumed run takes its weights from the checkpoint: the start (`initialize`) only
            // starts a run, so its path may differ (and the record keeps the original). A teacher
            // may have moved: the same bytes at another path continue the run.
            config.initialize = stored.initialize
            try Self.acceptMovedTeacher(&stored, config: config, checkpoint: path)
            if stored != config {
                throw SCMError(at: path, "was made with another configuration (differs in: \(try Self.differences(stored, config).joined(separator: ", "))); resume with the same settings, or train into another folder")
            }
            return (ckpt.step, ckpt.state)
        }
        if !resume, Self.latestCheckpoint(out) != nil {
            throw SCMError(at: "resume", "\(out) already holds checkpoints: continue that run, or train into another folder")
        }
        if let logged = LossLog.loggedSteps(in: out) {
            throw SCMError(.io, at: out, "holds the loss log of an earlier run (\(logged) step\(logged == 1 ? "" : "s") in loss.csv) but no checkpoint, so it cannot be resumed; a new run would overwrite the log: remove loss.csv or train into another folder")
        }
        if resume { onNote?("\(out) holds no checkpoint to resume: a new run starts") }
        return (0, [:])
    }

    /// Records `config`'s teacher in `stored` when it is the recorded one moved (the same bytes).
    static func acceptMovedTeacher(_ stored: inout TrainConfig, config: TrainConfig, checkpoint path: String) throws {
        guard let teacher = config.teacher, let old = stored.teacher, (old, stored.teacherDigest) != (teacher, config.teacherDigest) else { return }
        // Older checkpoints record no digest: the recorded file's, when it is still there.
        let recorded = try stored.teacherDigest
            ?? (old == teacher ? config.teacherDigest : FileManager.default.fileExists(atPath: old) ? Self.digest(ofFile: old) : nil)
        guard let recorded else {
            throw SCMError(at: path, "was trained with the teacher \(old), which no longer exists (and the checkpoint predates teacher digests): put it back at that path to resume")
        }
        if recorded == config.teacherDigest {
            stored.teacher = teacher
            stored.teacherDigest = recorded
        }
    }

    /// A run's compiled step and what feeds it.
    struct CompiledStep {
        let session: TrainingSession
        let parameters: [String]
        /// CMT's trajectories (nil for the objectives that draw data and noise).
        let pool: MidTraining.Pool?
        /// Whether the step takes sCT/sCD's tangent warmup factor.
        let takesWarmup: Bool
    }

    /// The training step of `config`'s objective, compiled, with its state: `restored` (a
    /// resumed run's), else the configured start's weights, else the seeded initialization.
    func compiledStep(_ config: TrainConfig, start: Int, restored: [String: Tensor]) throws -> CompiledStep {
        var initial = restored
        if initial.isEmpty, let path = config.initialize {
            do { initial = try TrainingSource.initialWeights(path, config: config) } catch let e as SCMError {
                throw SCMError(e.kind, at: "init", "\(e)")
            }
        }
        let pool = try config.objective == .cmt ? trajectoryPool(config) : nil
        // The step graph (CMT's plain distance needs no weighting head).
        let network = try Networks.build(config.network, seed: config.seed, parameters: initial, logvar: config.weightingHead, dropout: true)
        // Parameters the start lacks (all of them, or the weighting head of a model file) start
        // from the seeded initialization.
        for t in network.graph.initializers where initial[t.meta.name] == nil { initial[t.meta.name] = t }
        let loss = try Self.loss(network, config: config)
        // Only the network's own parameters are trained (not a teacher's).
        let trained = network.graph.initializers.filter { $0.dtype == .float }.map(\.meta.name)
        let (stepModel, parameters) = try TrainingStep.make(loss, parameters: trained, options: config.adam)
        let b = config.batch, shape = config.network.sampleShape
        var shapes: [String: TensorSpec] = [ConsistencyLoss.dataInput: TensorSpec(.float, [b] + shape),
                                            ConsistencyLoss.noiseInput: TensorSpec(.float, [b] + shape),
                                            ConsistencyLoss.timeInput: TensorSpec(.float, [b])]
        let takesWarmup = config.objective == .sct || config.objective == .scd
        if takesWarmup { shapes[ConsistencyLoss.warmupInput] = TensorSpec(.float, []) }
        // The step's activations must fit the memory free now, or the batch is refused by name.
        var limits = ResourceLimits.standard
        if let free = SystemMemory.available { limits.maxActivationBytes = min(limits.maxActivationBytes, free) }
        let session: TrainingSession
        do {
            session = try TrainingSession(step: stepModel, parameters: parameters, initial: initial, dataShapes: shapes,
                                          threads: threads, steps: start, limits: limits)
        } catch let e as SCMError where e.kind == .limitExceeded {
            throw SCMError(.limitExceeded, at: "batch", "a batch of \(b) does not fit: \(e.location): \(e.message) (the limit, \(limits.maxActivationBytes >> 20) MiB, is the memory free now, at most 16 GiB); give a smaller batch")
        }
        return CompiledStep(session: session, parameters: parameters, pool: pool, takesWarmup: takesWarmup)
    }

    /// The loss graph of `config.objective` over `network`.
    static func loss(_ network: Model, config: TrainConfig) throws -> Model {
        let options = ConsistencyLoss.Options(sigmaData: config.sigmaData, tangentNormConstant: config.tangentNormC, segments: config.segmentBoundaries)
        switch config.objective {
        case .sct: return try ConsistencyLoss.sct(network: network, options: options)
        case .flow: return try Objectives.flow(network: network, sigmaData: config.sigmaData)
        case .scd: return try ConsistencyLoss.sct(network: network, teacher: try teacher(config), options: options)
        case .cmt: return try MidTraining.loss(network: network, sigmaData: config.sigmaData, distance: config.distance ?? .l2)
        }
    }

    /// Steps from `start` until the run's end, logging each step, saving checkpoints every
    /// `checkpointEvery` steps and at the end; SIGINT/SIGTERM end it after the current step.
    func loop(_ compiled: CompiledStep, config: TrainConfig, data: DataSource, start: Int) throws -> Report {
        let log = try LossLog(folder: out, keepingUpTo: start)
        stopRequested = 0
        let previousInt = signal(SIGINT) { _ in stopRequested = 1 }
        let previousTerm = signal(SIGTERM) { _ in stopRequested = 1 }
        defer {
            signal(SIGINT, previousInt)
            signal(SIGTERM, previousTerm)
        }
        var batch = Batch(batch: config.batch, shape: data.sampleShape)
        let clock = DispatchTime.now().uptimeNanoseconds
        let seconds = { Double(DispatchTime.now().uptimeNanoseconds - clock) / 1e9 }
        var step = start, lastLoss: Float = .nan, interrupted = false
        var lastCheckpoint = start > 0 ? Self.checkpointPath(out, step: start) : "", samples: String? = nil
        func save() throws {
            let ckpt = Checkpoint(config: config, step: step, state: try compiled.session.state(), parameters: compiled.parameters)
            let path = Self.checkpointPath(out, step: step)
            try ckpt.save(to: path)
            lastCheckpoint = path
            samples = try? drawGrid(ckpt, data: data)
        }
        while steps.map({ step < $0 }) ?? true, minutes.map({ seconds() < $0 * 60 }) ?? true {
            if stopRequested != 0 {
                interrupted = true
                break
            }
            let inputs = try batch.inputs(step: step, trainer: self, config: config, data: data, pool: compiled.pool, warmup: compiled.takesWarmup)
            let lr = config.learningRate(step: step)
            let (l, norm) = try compiled.session.step(inputs, lr: lr)
            guard l.isFinite, norm.isFinite else {
                throw SCMError(.invalidArgument, at: "step \(step + 1)", "the loss is \(l) (gradient norm \(norm)): training stopped; the last good checkpoint is \(lastCheckpoint.isEmpty ? "none (no checkpoint was saved yet)" : lastCheckpoint)")
            }
            step += 1
            lastLoss = l
            log.append(step: step, loss: l, gradNorm: norm, lr: lr, seconds: seconds())
            onStep?(TrainingProgress(step: step, startStep: start, totalSteps: steps, loss: l, seconds: seconds()))
            if step % checkpointEvery == 0 { try save() }
        }
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
        let note = onNote
        return try MidTraining.Pool.make(teacher: teacher, teacherDigest: digest, spec: spec, threads: threads, cache: trajectoryCache ?? out) { line in
            note?(line)
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
        // Batches of 16, so that SIGINT or SIGTERM stops the grid between them.
        let options = Sampler.Options(batch: 16, threads: threads)
        let sampler = config.objective == .flow ? try model.odeSampler(steps: 16, solver: .heun, options: options)
            : try model.sampler(steps: 2, options: options)
        let samples = try sampler.sample(count: model.isImage ? 64 : 2000, seed: 0) { _, _ in stopRequested == 0 }
        let path = (out as NSString).appendingPathComponent(String(format: "samples_step_%08ld.png", ckpt.step))
        try ModelFile.writeAtomically([UInt8](try samples.png(nrow: model.isImage ? 8 : nil)), to: path)
        return path
    }


    /// `fnvDigest` of a file, as 16 hex digits (identifies a teacher across moves).
    static func digest(ofFile path: String) throws -> String {
        guard let h = fnvDigest(ofFile: path) else { throw SCMError(.io, at: path, "cannot read the teacher") }
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

/// One training step done, for progress displays.
public struct TrainingProgress: Sendable {
    /// Steps done in all (a resumed run's earlier ones included).
    public var step: Int
    /// The step this process started from.
    public var startStep: Int
    /// The run's last step, when it ends at a step count.
    public var totalSteps: Int?
    public var loss: Float
    /// Seconds since this process started stepping.
    public var seconds: Double

    /// This process's steps per second.
    public var stepsPerSecond: Double { Double(step - startStep) / max(seconds, 1e-9) }
    /// Seconds left at this rate, when the run ends at a step count.
    public var secondsLeft: Double? { totalSteps.map { Double($0 - step) / max(stepsPerSecond, 1e-9) } }
}

/// A run's `loss.csv` (step, loss, grad_norm, lr, seconds), appended to as the run steps.
final class LossLog {
    static let header = "step,loss,grad_norm,lr,seconds\n"
    private let handle: FileHandle

    /// Opens `folder/loss.csv`, keeping the header and the lines of steps <= `step` (a resumed
    /// run rewrites the rest).
    init(folder: String, keepingUpTo step: Int) throws {
        let path = Self.path(in: folder)
        var text = Self.header
        if step > 0, let old = try? String(contentsOfFile: path, encoding: .utf8) {
            for line in old.split(separator: "\n").dropFirst() {
                if let s = Int(line.split(separator: ",").first ?? ""), s <= step { text += line + "\n" }
            }
        }
        try ModelFile.writeAtomically(Array(text.utf8), to: path)
        guard let h = FileHandle(forWritingAtPath: path) else { throw SCMError(.io, at: path, "cannot open the loss log for writing") }
        _ = try? h.seekToEnd()
        handle = h
    }

    deinit { try? handle.close() }

    /// `folder/loss.csv`.
    static func path(in folder: String) -> String { (folder as NSString).appendingPathComponent("loss.csv") }

    /// The steps logged in `folder/loss.csv` (nil when there is none, or only its header).
    static func loggedSteps(in folder: String) -> Int? {
        guard let text = try? String(contentsOfFile: path(in: folder), encoding: .utf8) else { return nil }
        let lines = text.split(separator: "\n").dropFirst().count
        return lines > 0 ? lines : nil
    }

    func append(step: Int, loss: Float, gradNorm: Float, lr: Float, seconds: Double) {
        handle.write(Data(String(format: "%ld,%.6g,%.6g,%.6g,%.3f\n", step, Double(loss), Double(gradNorm), Double(lr), seconds).utf8))
    }
}

/// The host-side buffers of a step's inputs: data and noise (or CMT's trajectory pairs), times
/// and the tangent warmup factor, drawn as pure functions of (seed, step).
struct Batch {
    var x0: [Float], z: [Float], t: [Float]
    let shape: [Int]

    init(batch: Int, shape: [Int]) {
        let n = batch * shape.reduce(1, *)
        x0 = [Float](repeating: 0, count: n)
        z = [Float](repeating: 0, count: n)
        t = [Float](repeating: 0, count: batch)
        self.shape = shape
    }

    mutating func inputs(step: Int, trainer: Trainer, config: TrainConfig, data: DataSource, pool: MidTraining.Pool?,
                         warmup: Bool) throws -> [Tensor] {
        let b = t.count
        if let pool {
            pool.fill(step: step, seed: config.seed, points: &z, targets: &x0, times: &t)
        } else {
            x0.withUnsafeMutableBufferPointer { data.batch(step: step, size: b, seed: config.seed, into: $0.baseAddress!) }
            trainer.drawNoise(step: step, z: &z, t: &t, elements: shape.reduce(1, *))
        }
        var inputs = [try Tensor(shape: [b] + shape, scalars: x0), try Tensor(shape: [b] + shape, scalars: z), try Tensor(shape: [b], scalars: t)]
        if warmup { inputs.append(try Tensor(shape: [], scalars: [config.warmup(step: step)])) }
        return inputs
    }
}
