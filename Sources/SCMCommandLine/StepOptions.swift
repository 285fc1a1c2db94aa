import ArgumentParser
import SCM

/// The flags that pick the sampling steps a model is specialized for, and how the optimizer runs
/// on them: scm-inspect's per-step view and `scm-export optimize` take the same ones.
public struct StepOptions: ParsableArguments {
    public init() {}

    @Option(parsing: .unconditional, help: "The steps of the N-step schedule (scm.schedule.N, else the default rule).")
    public var steps: Int?

    @Option(help: ArgumentHelp("Comma-separated decreasing times (the first t_max) instead of the stored schedule; sets the step count.", valueName: "t_max,t1,..."))
    public var schedule: String?

    @Option(parsing: .unconditional, help: "t_max for a model without scm.t_max (or to override it), with --steps.")
    public var tMax: Float?

    @Option(parsing: .unconditional, help: "Batch size to specialize for (default 1).")
    public var batch: Int?

    @Option(help: "Comma-separated passes to run instead of the default pipeline (\(Optimizer.passNames.joined(separator: ", "))).")
    public var passes: String?

    @Option(parsing: .unconditional, help: "Constant folding's size guard in bytes.")
    public var foldLimit: Int?

    /// Whether steps were asked for (`--steps` or `--schedule`).
    public var perStep: Bool { steps != nil || schedule != nil }

    public func validate() throws {
        try CommandLineSupport.checkPasses(passes, foldLimit: foldLimit)
        try CommandLineSupport.checkSchedules(schedule.map { [$0] } ?? [], flag: "--schedule", steps: steps)
        try CommandLineSupport.checkTMax(tMax)
        try CommandLineSupport.check("--steps", steps, Limits.steps)
        try CommandLineSupport.check("--batch", batch, Limits.batch)
        if let f = foldLimit, f < 0 { throw ValidationError("--fold-limit must be at least 0 bytes, is \(f)") }
    }

    /// The time of each step for `model`, errors naming the flags.
    public func times(of model: Model) throws -> [Float] {
        try CommandLineSupport.stepTimes(model, steps: steps, schedule: schedule, tMax: tMax)
    }

    /// The passes to run (nil: the default pipeline) and their options.
    public var optimizer: (passes: [String]?, options: Optimizer.Options) {
        (Optimizer.passList(passes), Optimizer.Options(foldLimitBytes: foldLimit))
    }
}
