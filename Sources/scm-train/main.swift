import ArgumentParser
import Foundation
import SCM
import SCMCommandLine

/// `scm-train --data NAME|DIR --objective flow|sct --out DIR (--steps N | --minutes M)`: train a
/// TrigFlow network; `scm-export CKPT MODEL.onnx` turns a checkpoint into a model for `scm-run`.
@main
struct Train: Tool {
    static let configuration = CommandConfiguration(
        commandName: "scm-train",
        abstract: "Train a TrigFlow network (flow pretraining or consistency training) and write checkpoints.",
        discussion: """
            Writes DIR/loss.csv (step,loss,grad_norm,lr,seconds), DIR/checkpoints/step_<n>.ckpt every \
            --checkpoint-every steps, at the end and on SIGINT/SIGTERM, and a sample grid DIR/samples_step_<n>.png \
            from the EMA weights with each checkpoint. --resume continues from the latest checkpoint, bitwise as if \
            never stopped. Defaults and recipes: docs/cli.md (scm-train) and training/README.md.
            """)

    @Option(help: "fashion-mnist, checkerboard, gaussians8, moons, swissroll, or a folder of PNGs.")
    var data: String

    @Option(help: "flow (v-prediction pretraining), sct (consistency training), scd (consistency distillation from --teacher), cmt (consistency mid-training on --teacher's PF-ODE trajectories, the stage before scd), or classify (the image classifier of scm-eval: cross-entropy, writes DIR/classifier.onnx).")
    var objective: String

    @Option(help: ArgumentHelp("The teacher of scd and cmt: a flow checkpoint, or a flow model exported by scm-export (its velocity network gives dx_t/dt, or the trajectories).", valueName: "ckpt|model.onnx"))
    var teacher: String?

    @Option(name: .customLong("init"), help: ArgumentHelp("A checkpoint, or a model exported from one, of the same network whose EMA weights start the run, or 'none' (default: none; for scd and cmt the teacher when its network is the student's, as sCM fine-tunes from the diffusion model). A model file holds no optimizer state and no weighting head: those start fresh.", valueName: "ckpt|model.onnx|none"))
    var initialize: String?

    @Option(parsing: .unconditional, help: "cmt: the teacher's PF-ODE trajectories made once per run (and cached), whose points the student maps to their ends.")
    var trajectories = 16384

    @Option(parsing: .unconditional, help: "cmt: the trajectories' ODE steps.")
    var trajectorySteps = 16

    @Option(help: "cmt: the trajectories' solver, heun or euler.")
    var trajectorySolver: Sampler.Solver = .heun

    @Option(parsing: .unconditional, help: "cmt: the seed of the trajectories' noise.")
    var trajectorySeed: UInt64 = 1000

    @Option(help: "cmt: the folder that keeps trajectory files for reuse by later runs with the same teacher and settings (default: --out).")
    var trajectoryCache: String?

    @Option(help: "cmt: the distance of the student's jump to the trajectory's end, l2 or pseudo-huber.")
    var distance: MidTraining.Distance = .l2

    @Option(help: "The run's folder.")
    var out: String

    @Option(parsing: .unconditional, help: "Train until this many steps in total.")
    var steps: Int?

    @Option(parsing: .unconditional, help: "Or train for this many minutes.")
    var minutes: Double?

    @Option(parsing: .unconditional, help: "Batch size.")
    var batch = 64

    @Option(parsing: .unconditional, help: "Peak learning rate (after a linear warmup of --lr-warmup steps).")
    var lr: Float = 1e-3

    @Option(parsing: .unconditional, help: "Learning-rate warmup steps.")
    var lrWarmup = 200

    @Option(parsing: .unconditional, help: "Decay the learning rate as sqrt(start / step) after this step (0: constant).")
    var lrDecayStart = 0

    @Option(help: "adam or radam.")
    var optimizer: TrainConfig.OptimizerKind = .adam

    @Option(parsing: .unconditional, help: "AdamW's decoupled weight decay.")
    var weightDecay: Float = 0

    @Option(parsing: .unconditional, help: "Global-norm gradient clipping (0: none).")
    var maxGradNorm: Float = 100

    @Option(parsing: .unconditional, help: "Decay of the EMA of the weights (the exported weights).")
    var emaDecay: Float = 0.999

    @Option(parsing: .unconditional, help: "EDM2's power-function EMA with this relative standard deviation (0 < S <= 0.288, e.g. 0.05) instead of --ema-decay's fixed rate.")
    var emaStd: Float?

    @Option(help: ArgumentHelp("Segment boundaries of a multistep consistency model (sct, scd): f maps x_t to the PF-ODE's point at the largest boundary below t, and the model samples deterministically in one step per segment (e.g. 1.3: two steps, t_max then 1.3).", valueName: "t1,t2,..."))
    var segments: String?

    @Flag(inversion: .prefixedNo, help: "Ramp the EMA's decay up as min(--ema-decay, (1 + step) / (10 + step)), so that a random start is forgotten; --no-ema-ramp holds --ema-decay from the first step (for runs that start from trained weights with --init).")
    var emaRamp = true

    @Option(parsing: .unconditional, help: "sigma_d, the data's standard deviation (default: 0.5 for images, as sCM; for 2-D data the distribution's own).")
    var sigmaData: Float?

    @Option(parsing: .unconditional, help: "Mean of log sigma in the log-normal proposal of t = atan(sigma / sigma_d) (default: -1.0 for flow and sct, -0.8 for scd, sCM's values).")
    var pMean: Float?

    @Option(parsing: .unconditional, help: "Standard deviation of log sigma in the proposal (default: 1.4 for flow and sct, 1.6 for scd).")
    var pStd: Float?

    @Option(parsing: .unconditional, help: "Adam's beta2 (sCM: 0.99).")
    var beta2: Float = 0.999

    @Option(parsing: .unconditional, help: "sCT's tangent warmup in steps.")
    var tangentWarmup = 1000

    @Option(help: "Network preset: small or default (UNet for images, MLP for vectors).")
    var model = "default"

    @Option(parsing: .unconditional, help: "Dropout in the UNet's ResBlocks during training (0: none).")
    var dropout: Float = 0

    @Option(help: ArgumentHelp("The UNet's channels per level, overriding the preset's (e.g. 32,64,64).", valueName: "c1,c2,..."))
    var widths: String?

    @Option(parsing: .unconditional, help: "The UNet's ResBlocks per level on the way down (the preset's: 1).")
    var resBlocks: Int?

    @Option(help: ArgumentHelp("Resolutions at which the UNet attends, or 'none' (default: the lowest one).", valueName: "r1,r2,...|none"))
    var attention: String?

    @Option(parsing: .unconditional, help: "Time-feature channels (the preset's: 64 default, 32 small; the MLP's 32).")
    var embedding: Int?

    @Option(parsing: .unconditional, help: "GroupNorm groups of the UNet (the preset's: 8).")
    var groups: Int?

    @Option(parsing: .unconditional, help: "Hidden units of the MLP for vector data (the preset's: 128 default, 64 small).")
    var hidden: Int?

    @Option(parsing: .unconditional, help: "Hidden layers of the MLP (the preset's: 3).")
    var layers: Int?

    @Option(parsing: .unconditional, help: "Save a checkpoint (and a sample grid) every this many steps.")
    var checkpointEvery = 500

    @Flag(help: "Continue from the latest checkpoint in --out.")
    var resume = false

    @Option(parsing: .unconditional, help: "Worker threads (default: the machine's cores).")
    var threads: Int?

    @Option(parsing: .unconditional, help: "Seed of the initialization, the data order and the noise.")
    var seed: UInt64 = 0

    @Flag(help: "Print a summary object on stdout at the end.")
    var json = false

    func validate() throws {
        try CommandLineSupport.checkUTF8Arguments()
        guard ["flow", "sct", "scd", "cmt", "classify"].contains(objective) else { throw ValidationError("--objective must be flow, sct, scd, cmt or classify, is '\(objective)'") }
        if objective == "classify" { try validateClassify() }
        let distilled = objective == "scd" || objective == "cmt"
        if distilled && teacher == nil { throw ValidationError("--objective \(objective) needs --teacher CKPT|MODEL") }
        if !distilled && teacher != nil { throw ValidationError("--teacher applies to --objective scd and cmt") }
        try validateMidTraining()
        if steps == nil && minutes == nil { throw ValidationError("give --steps N or --minutes M") }
        if let s = steps { try CommandLineSupport.check("--steps", s, 1...100_000_000) }
        if let m = minutes, !(m > 0 && m.isFinite) { throw ValidationError("--minutes must be positive, is \(m)") }
        try CommandLineSupport.check("--batch", batch, Limits.batch)
        if let t = threads { try CommandLineSupport.check("--threads", t, Limits.threads) }
        guard lr > 0, lr.isFinite else { throw ValidationError("--lr must be positive, is \(lr)") }
        guard lrWarmup >= 0, lrDecayStart >= 0, tangentWarmup >= 0 else { throw ValidationError("--lr-warmup, --lr-decay-start and --tangent-warmup must be >= 0") }
        guard weightDecay >= 0, maxGradNorm >= 0, emaDecay >= 0, emaDecay < 1 else {
            throw ValidationError("--weight-decay and --max-grad-norm must be >= 0, --ema-decay in [0, 1)")
        }
        guard dropout >= 0, dropout < 1 else { throw ValidationError("--dropout must be in [0, 1), is \(dropout)") }
        if let s = emaStd, !(s > 0 && s <= 0.288) { throw ValidationError("--ema-std must lie in (0, 0.288], is \(s)") }
        if emaStd != nil && emaDecay == 0 { throw ValidationError("--ema-std needs the EMA on (--ema-decay > 0)") }
        if !emaRamp && (emaStd != nil || emaDecay == 0) { throw ValidationError("--no-ema-ramp applies to the fixed EMA (--ema-decay > 0, no --ema-std)") }
        if let m = pMean, !(m.isFinite && abs(m) <= 10) { throw ValidationError("--p-mean must lie in [-10, 10], is \(m)") }
        if let s = pStd, !(s > 0 && s <= 10) { throw ValidationError("--p-std must lie in (0, 10], is \(s)") }
        guard beta2 > 0, beta2 < 1 else { throw ValidationError("--beta2 must lie in (0, 1), is \(beta2)") }
        try CommandLineSupport.checkSigmaData(sigmaData)
        if segments != nil && !["sct", "scd"].contains(objective) { throw ValidationError("--segments applies to --objective sct and scd") }
        _ = try segmentTimes()
        guard checkpointEvery >= 1 else { throw ValidationError("--checkpoint-every must be at least 1, is \(checkpointEvery)") }
        if objective == "flow" && tangentWarmup != 1000 { throw ValidationError("--tangent-warmup applies to sct and scd (flow has no tangent)") }
        if emaStd != nil && emaDecay != 0.999 { throw ValidationError("--ema-std replaces the fixed EMA of --ema-decay \(emaDecay); give one of them") }
        try validateNetworkFlags()
    }

    var networkOverrides: NetworkOverrides {
        NetworkOverrides(dropout: dropout, widths: widths, resBlocks: resBlocks, attention: attention,
                         embedding: embedding, groups: groups, hidden: hidden, layers: layers)
    }

    /// The network flags checked against the network of a data set whose sample shape is known
    /// by name (a folder of PNGs is checked once it is read).
    func validateNetworkFlags() throws {
        guard objective != "classify" else { return }
        let shape: [Int]? = data == "fashion-mnist" ? [1, 28, 28] : DataSource.names.contains(data) ? [2] : nil
        // An unknown --model is reported by the run, which names the presets for the data.
        guard let shape, let preset = try? NetworkConfig.preset(model, sampleShape: shape) else { return }
        do { _ = try networkOverrides.apply(to: preset, data: data) } catch let e as SCMError {
            throw ValidationError(e.description)
        }
    }

    /// --segments as distinct times in (0, pi/2), each rounded to 7 decimals (as the exported
    /// model stores them, so that the sampler's times equal the graph's boundaries); nil without.
    func segmentTimes() throws -> [Float]? {
        guard let segments else { return nil }
        let parts = segments.split(separator: ",", omittingEmptySubsequences: false)
        let times = try parts.map { p -> Float in
            guard let v = Float(p.trimmingCharacters(in: .whitespaces)), v > 0, v < Float.pi / 2,
                  let r = Float(String(format: "%.7f", v)) else {
                throw ValidationError("--segments: '\(p)' is not a time in (0, pi/2)")
            }
            return r
        }
        guard Set(times).count == times.count else { throw ValidationError("--segments: the boundaries must be distinct, are \(segments)") }
        return times.sorted(by: >)
    }

    func run() throws {
        if objective == "classify" {
            try runClassify()
            return
        }
        do {
            let data = try DataSource.open(self.data)
            var config = TrainConfig(data: self.data, objective: TrainConfig.Objective(rawValue: objective) ?? .sct,
                                     network: try NetworkConfig.preset(model, sampleShape: data.sampleShape))
            config.network = try networkOverrides.apply(to: config.network, data: self.data)
            config.teacher = teacher
            if let i = initialize {
                config.initialize = i == "none" ? nil : i
            } else if let t = teacher, (try? TrainConfig.canInitialize(config, from: t)) == true {
                config.initialize = t
            }
            if config.objective == .cmt {
                config.trajectories = MidTraining.Trajectories(solver: trajectorySolver, steps: trajectorySteps,
                                                               count: trajectories, seed: trajectorySeed)
                config.distance = distance
            }
            config.dataRange = [data.dataRange.0, data.dataRange.1]
            config.classes = data.classNames
            config.batch = batch
            config.seed = seed
            config.lr = lr
            config.lrWarmup = lrWarmup
            config.lrDecayStart = lrDecayStart
            config.optimizer = optimizer
            config.weightDecay = weightDecay
            config.maxGradNorm = maxGradNorm
            config.emaDecay = emaDecay
            config.emaStd = emaStd
            config.emaRamp = emaRamp ? nil : false
            config.segments = try segmentTimes()
            config.tangentWarmup = tangentWarmup
            let proposal = TrainConfig.proposal(config.objective)
            config.pMean = pMean ?? proposal.mean
            config.pStd = pStd ?? proposal.std
            config.beta2 = beta2
            config.sigmaData = try sigmaData ?? TrainConfig.defaultSigmaData(data)
            var trainer = Trainer(config: config, out: out)
            trainer.data = data
            trainer.steps = steps
            trainer.minutes = minutes
            trainer.resume = resume
            trainer.threads = threads ?? CommandLineSupport.defaultThreads
            trainer.checkpointEvery = checkpointEvery
            trainer.trajectoryCache = trajectoryCache
            let line = ProgressLine()
            trainer.onStep = line.show
            trainer.onNote = { line.finish(); CommandLineSupport.note("scm-train", $0) }
            let report: Trainer.Report
            do {
                report = try trainer.run()
                line.finish()
            } catch {
                line.finish()
                throw error
            }
            if json {
                try CommandLineSupport.printJSON(report)
            } else {
                print(String(format: "scm-train: %ld steps (%ld this run) in %.1f s, %.4f s per step, final loss %.5g%@",
                             report.steps, report.steps - report.startStep, report.seconds, report.secondsPerStep, Double(report.finalLoss),
                             report.interrupted ? ", interrupted" : ""))
                print("  checkpoint \(report.checkpoint)")
                if let s = report.samples { print("  samples \(s)") }
            }
            if report.interrupted { throw ExitCode(130) }
        } catch let e as ExitCode {
            throw e
        } catch {
            CommandLineSupport.fail("scm-train", error, flags: Self.flags)
        }
    }

    /// The library's names of the settings this tool takes as flags (for its error messages).
    static let flags = ["steps": "--steps", "batch": "--batch", "resume": "--resume", "init": "--init", "teacher": "--teacher", "model": "--model",
                        "data": "--data", "out": "--out"]
}

/// `scm-train --objective cmt`: its trajectory and distance flags, which no other objective takes.
extension Train {
    func validateMidTraining() throws {
        let set = [("--trajectories", trajectories != 16384), ("--trajectory-steps", trajectorySteps != 16),
                   ("--trajectory-solver", trajectorySolver != .heun), ("--trajectory-seed", trajectorySeed != 1000),
                   ("--trajectory-cache", trajectoryCache != nil), ("--distance", distance != .l2)].filter(\.1).map(\.0)
        guard objective == "cmt" else {
            if !set.isEmpty { throw ValidationError("\(set.joined(separator: ", ")) \(set.count == 1 ? "applies" : "apply") to --objective cmt") }
            return
        }
        try CommandLineSupport.check("--trajectories", trajectories, 1...1_000_000)
        try CommandLineSupport.check("--trajectory-steps", trajectorySteps, 1...1000)
        var unused: [String] = []
        if pMean != nil || pStd != nil { unused.append("--p-mean/--p-std (its times are the trajectories' grid)") }
        if tangentWarmup != 1000 { unused.append("--tangent-warmup") }
        if !unused.isEmpty { throw ValidationError("--objective cmt does not take \(unused.joined(separator: ", "))") }
    }
}

/// `scm-train --objective classify`: the image classifier of `scm-eval` (`ClassifierTraining`).
extension Train {
    /// The flags that mean nothing to the classifier are usage errors (those with defaults when
    /// they differ from them).
    func validateClassify() throws {
        var ignored: [String] = []
        if teacher != nil { ignored.append("--teacher") }
        if initialize != nil { ignored.append("--init") }
        if minutes != nil { ignored.append("--minutes (give --steps: the learning rate decays to 0 at the last step)") }
        if resume { ignored.append("--resume") }
        if sigmaData != nil { ignored.append("--sigma-data") }
        if tangentWarmup != 1000 { ignored.append("--tangent-warmup") }
        if pMean != nil || pStd != nil { ignored.append("--p-mean/--p-std") }
        if beta2 != 0.999 { ignored.append("--beta2") }
        if emaStd != nil { ignored.append("--ema-std") }
        if !emaRamp { ignored.append("--no-ema-ramp") }
        if model != "default" { ignored.append("--model") }
        if dropout != 0 { ignored.append("--dropout") }
        for (flag, set) in [("--widths", widths != nil), ("--res-blocks", resBlocks != nil), ("--attention", attention != nil),
                            ("--embedding", embedding != nil), ("--groups", groups != nil), ("--hidden", hidden != nil),
                            ("--layers", layers != nil)] where set {
            ignored.append(flag)
        }
        if lrDecayStart != 0 { ignored.append("--lr-decay-start (classify decays by a cosine to 0)") }
        if optimizer != .adam { ignored.append("--optimizer") }
        if checkpointEvery != 500 { ignored.append("--checkpoint-every") }
        if !ignored.isEmpty { throw ValidationError("--objective classify does not take \(ignored.joined(separator: ", "))") }
        if steps == nil { throw ValidationError("--objective classify needs --steps N") }
    }

    func runClassify() throws {
        do {
            var job = ClassifierTraining(data: data, out: out, steps: steps ?? 0)
            job.batch = batch
            job.lr = lr
            job.lrWarmup = lrWarmup
            job.weightDecay = weightDecay
            job.maxGradNorm = maxGradNorm
            job.emaDecay = emaDecay
            job.seed = seed
            job.threads = threads ?? CommandLineSupport.defaultThreads
            let line = ProgressLine()
            job.onStep = line.show
            let report = try job.run()
            line.finish()
            if json {
                try CommandLineSupport.printJSON(report)
            } else {
                print(String(format: "scm-train: classifier, %ld steps in %.1f s, final loss %.4f, test accuracy %.2f%% (%ld images), %ld parameters",
                             report.steps, report.seconds, Double(report.finalLoss), 100 * report.testAccuracy, report.testCount, report.parameters))
                print("  model \(report.model)")
            }
        } catch {
            CommandLineSupport.fail("scm-train", error, flags: Self.flags)
        }
    }
}
