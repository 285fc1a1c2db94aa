import ArgumentParser
import Foundation
import SCM
import SCMCommandLine

/// `scm-run MODEL --steps N --out grid.png`: draw samples from a TrigFlow model.
@main
struct Run: Tool {
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

    @Option(parsing: .unconditional, help: "Consistency sampling steps (network evaluations per sample; default 2, or the length of --schedule).")
    var steps: Int?

    @Option(help: "Comma-separated decreasing times, the first t_max; they win over the model's stored schedule and set the step count.")
    var schedule: String?

    @Option(parsing: .unconditional, help: "Integrate the probability-flow ODE in this many steps instead (a baseline).")
    var odeSteps: Int?

    @Option(help: "ODE solver with --ode-steps: euler or heun (default heun).")
    var solver: Sampler.Solver?

    @Option(parsing: .unconditional, help: "Samples to draw (default 64, or the noise file's N).")
    var count: Int?

    @Option(parsing: .unconditional, help: "Noise seed (an unsigned 64-bit integer; default 0).")
    var seed: UInt64?

    @Option(parsing: .unconditional, help: "Samples per network evaluation.")
    var batch = 64

    @Option(parsing: .unconditional, help: "Worker threads (default: the machine's cores).")
    var threads: Int?

    @Option(parsing: .unconditional, help: "Samples per plan run: each batch runs as chunks of this many, giving the same samples (default: the largest power of two whose activations fit 8 MiB).")
    var chunk: Int?

    @Option(help: "Convolution arithmetic: fp32 (exact, the default) or bf16 (weights and inputs rounded to bfloat16, float32 sums; AVX512-BF16 CPUs, else fp32 with a warning).")
    var precision: Precision?

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

    @Option(parsing: .unconditional, help: "Images per --out grid row (default: ceil(sqrt(count))).")
    var nrow: Int?

    @Option(parsing: .unconditional, help: "sigma_data, for a model without scm.sigma_data (or to override it).")
    var sigmaData: Float?

    @Option(parsing: .unconditional, help: "t_max, for a model without scm.t_max (or to override it; stored schedules then need --schedule).")
    var tMax: Float?

    @Option(help: "Data range 'low,high' mapped to pixels 0..255, for a model without scm.data_range (write --data-range=-1,1).")
    var dataRange: String?

    @Option(help: "What output 0 is, consistency or velocity, for a model without scm.parameterization (or to override it).")
    var parameterization: TrigFlowMetadata.Parameterization?

    @Flag(help: "Print the report as one JSON object.")
    var json = false

    @OptionGroup(title: "Resource limits")
    var resources: ResourceOptions

    @Flag(inversion: .prefixedNo, help: "Show progress (samples, images/s, ETA) on standard error (default: when it is a terminal).")
    var progress: Bool?

    func validate() throws {
        try CommandLineSupport.checkUTF8Arguments()
        if let r = dataRange, parsedRange == nil { throw ValidationError("--data-range must be 'low,high' with low < high, is '\(r)'") }
        do { try job.validate() } catch { throw ValidationError(error.description) }
    }

    var parsedRange: (Float, Float)? {
        guard let text = dataRange else { return nil }
        return try? CommandLineSupport.parseRange(text, flag: "--data-range")
    }

    var job: SampleJob {
        var job = SampleJob(modelPath: model)
        job.steps = steps
        job.schedule = schedule
        job.odeSteps = odeSteps
        job.solver = solver
        job.count = count
        job.seed = seed
        job.options = Sampler.Options(batch: batch, threads: threads ?? CommandLineSupport.defaultThreads, optimize: !noOptimize,
                                      limits: resources.limits, chunk: chunk,
                                      precision: precision ?? .fp32)
        job.noisePath = noise
        job.out = out
        job.outDir = outDir
        job.npy = npy
        job.nrow = nrow
        job.overrides = TrigFlowModel.Overrides(sigmaData: sigmaData, tMax: tMax, dataRange: parsedRange,
                                                parameterization: parameterization)
        job.showProgress = progress
        return job
    }

    func run() throws {
        Interruption.cleanUpOnSignals(tool: "scm-run")
        let job = self.job
        if !job.writesFiles {
            CommandLineSupport.note("scm-run", "no --out, --out-dir or --npy: the samples are drawn and timed, nothing is written")
        }
        if job.options.precision == .bf16 && !Precision.bf16Supported {
            CommandLineSupport.note("scm-run", "--precision bf16: this CPU has no AVX512-BF16, the convolutions run in fp32")
        }
        do {
            let report = try job.run()
            if json { try CommandLineSupport.printJSON(report.figures) } else { print(report.summary) }
        } catch {
            CommandLineSupport.fail("scm-run", error)
        }
    }
}
