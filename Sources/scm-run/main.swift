import ArgumentParser
import Foundation
import SCM

/// `scm-run MODEL --steps N --out grid.png`: draw samples from a TrigFlow model.
@main
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scm-run",
        abstract: "Draw samples from a TrigFlow consistency model and write them as PNG and .npy.",
        discussion: """
            Consistency sampling in N steps at the model's stored schedule (scm.schedule.N), --schedule, or the \
            default rule t_i = t_max sqrt((N-i)/N); or the probability-flow ODE baseline with --ode-steps. Noise is \
            Philox4x32-10 keyed by (seed, sample, step), so sample i is the same for any --batch and --threads; \
            --noise FILE.npy ([steps, N, ...]) replaces it. Prints images/s, ms per step and network evaluations \
            (--json: one object). Files are written to a temporary name and renamed.
            """)

    @Argument(help: "The model file (ONNX ModelProto with scm.* metadata).")
    var model: String

    @Option(help: "Consistency sampling steps (network evaluations per sample).")
    var steps = 2

    @Option(help: "Comma-separated decreasing times, the first t_max, instead of the stored schedule.")
    var schedule: String?

    @Option(help: "Integrate the probability-flow ODE in this many steps instead (a baseline).")
    var odeSteps: Int?

    @Option(help: "ODE solver: euler or heun.")
    var solver: String = "heun"

    @Option(help: "Samples to draw (default 64, or the noise file's N).")
    var count: Int?

    @Option(help: "Noise seed (an unsigned 64-bit integer).")
    var seed: UInt64 = 0

    @Option(help: "Samples per network evaluation.")
    var batch = 64

    @Option(help: "Worker threads (default: the machine's cores).")
    var threads: Int?

    @Flag(help: "Run the model as stored, t as an input, instead of a plan optimized per step.")
    var noOptimize = false

    @Option(help: "A .npy file of noise, shape [steps, N, ...], used instead of the seeded generator.")
    var noise: String?

    @Option(help: "The PNG to write: a grid of images, or a scatter plot of 2-D vector samples.")
    var out: String?

    @Option(help: "A folder for one PNG per sample (sample_00000.png, ...).")
    var outDir: String?

    @Option(help: "The .npy file for the raw float32 samples [N, ...] in the data range.")
    var npy: String?

    @Option(help: "Images per grid row (default: ceil(sqrt(count))).")
    var nrow: Int?

    @Option(help: "sigma_data, for a model without scm.sigma_data (or to override it).")
    var sigmaData: Float?

    @Option(help: "t_max, for a model without scm.t_max (or to override it).")
    var tMax: Float?

    @Option(help: "Data range 'low,high' mapped to pixels 0..255, for a model without scm.data_range (write --data-range=-1,1).")
    var dataRange: String?

    @Option(help: "consistency or velocity, for a model without scm.parameterization.")
    var parameterization: String?

    @Flag(help: "Print the report as one JSON object.")
    var json = false

    func validate() throws {
        if steps < 1 { throw ValidationError("--steps must be at least 1, is \(steps)") }
        if let k = odeSteps, k < 1 { throw ValidationError("--ode-steps must be at least 1, is \(k)") }
        if Sampler.Solver(rawValue: solver) == nil { throw ValidationError("--solver must be euler or heun, is '\(solver)'") }
        if let c = count, c < 1 { throw ValidationError("--count must be at least 1, is \(c)") }
        if batch < 1 { throw ValidationError("--batch must be at least 1, is \(batch)") }
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1, is \(t)") }
        if let n = nrow, n < 1 { throw ValidationError("--nrow must be at least 1, is \(n)") }
        if let p = parameterization, TrigFlowMetadata.Parameterization(rawValue: p) == nil {
            throw ValidationError("--parameterization must be consistency or velocity, is '\(p)'")
        }
        if dataRange != nil && parsedRange == nil { throw ValidationError("--data-range must be 'low,high' with low < high, is '\(dataRange!)'") }
    }

    var parsedRange: (Float, Float)? {
        guard let text = dataRange else { return nil }
        let p = text.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
        guard p.count == 2, let lo = p[0], let hi = p[1], lo.isFinite, hi.isFinite, lo < hi else { return nil }
        return (lo, hi)
    }

    func run() throws {
        var job = SampleJob(modelPath: model)
        job.steps = steps
        job.schedule = schedule
        job.odeSteps = odeSteps
        job.solver = Sampler.Solver(rawValue: solver) ?? .heun
        job.count = count
        job.seed = seed
        job.options = Sampler.Options(batch: batch, threads: threads ?? ProcessInfo.processInfo.activeProcessorCount,
                                      optimize: !noOptimize)
        job.noisePath = noise
        job.out = out
        job.outDir = outDir
        job.npy = npy
        job.nrow = nrow
        job.overrides = TrigFlowModel.Overrides(sigmaData: sigmaData, tMax: tMax, dataRange: parsedRange,
                                                parameterization: parameterization.flatMap(TrigFlowMetadata.Parameterization.init))
        do {
            let report = try job.run()
            print(json ? report.json : report.summary)
        } catch {
            FileHandle.standardError.write(Data("scm-run: error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
