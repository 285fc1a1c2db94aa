import ArgumentParser
import Foundation
import SCM
import SCMCommandLine

/// `scm-inspect MODEL [--json] [--save OUT]`: load, verify and describe a model file;
/// `--steps N` shows what the optimizer makes of each step of the N-step schedule.
@main
struct Inspect: Tool {
    static let configuration = CommandConfiguration(
        commandName: "scm-inspect",
        abstract: "Load, verify and describe a model file (ONNX ModelProto).",
        discussion: "With --steps N, specializes and optimizes a TrigFlow model for each step of its N-step schedule and shows node counts, op histograms and planned activation bytes before and after.")

    @Argument(help: "The model file (.pb / .onnx).")
    var model: String

    @Flag(help: "Print the summary as one JSON object.")
    var json = false

    @Option(help: "Write the loaded model back through scm's own serializer to this path.")
    var save: String?

    @OptionGroup(title: "Resource limits")
    var resources: ResourceOptions

    @Option(parsing: .unconditional, help: "Show the optimized graph of each step of the N-step schedule (scm.schedule.N, else the default rule).")
    var steps: Int?

    @Option(help: "Comma-separated decreasing times (the first t_max) instead of the stored schedule; sets the step count.")
    var schedule: String?

    @Option(parsing: .unconditional, help: "t_max for a model without scm.t_max (or to override it), with --steps.")
    var tMax: Float?

    @Option(parsing: .unconditional, help: "Batch size to specialize for (with --steps; default 1).")
    var batch: Int?

    @Option(help: "Comma-separated passes to run instead of the default pipeline (\(Optimizer.passNames.joined(separator: ", "))).")
    var passes: String?

    @Option(parsing: .unconditional, help: "Constant folding's size guard in bytes (with --steps).")
    var foldLimit: Int?

    @Flag(help: "List every rewrite of every pass (with --steps, text output).")
    var verbose = false

    /// Whether a per-step inspection was asked for.
    var perStep: Bool { steps != nil || schedule != nil }

    func validate() throws {
        try CommandLineSupport.checkUTF8Arguments()
        try CommandLineSupport.checkPasses(passes, foldLimit: foldLimit)
        try CommandLineSupport.checkSchedules(schedule.map { [$0] } ?? [], flag: "--schedule", steps: steps)
        try CommandLineSupport.checkTMax(tMax)
        try CommandLineSupport.check("--steps", steps, Limits.steps)
        try CommandLineSupport.check("--batch", batch, Limits.batch)
        if let f = foldLimit, f < 0 { throw ValidationError("--fold-limit must be at least 0 bytes, is \(f)") }
        if !perStep {
            for (flag, given) in [("--batch", batch != nil), ("--passes", passes != nil), ("--fold-limit", foldLimit != nil),
                                  ("--t-max", tMax != nil), ("--verbose", verbose)] where given {
                throw ValidationError("\(flag) applies to the per-step view: give --steps or --schedule too")
            }
        }
        if verbose && json { throw ValidationError("--verbose lists rewrites in the text output; --json includes no list") }
    }

    func run() throws {
        Interruption.cleanUpOnSignals(tool: "scm-inspect")
        // A training step graph is a model too: its optimizer update is the trainer's op.
        TrainingOps.register()
        do {
            let loaded = try ModelFile.load(path: model, limits: resources.limits)
            if perStep {
                let times = try CommandLineSupport.stepTimes(loaded, steps: steps, schedule: schedule, tMax: tMax)
                let report = try StepInspection(model: loaded, name: model, schedule: times, batch: batch ?? 1,
                                                passes: Optimizer.passList(passes), options: Optimizer.Options(foldLimitBytes: foldLimit))
                print(json ? report.json() : report.text(verbose: verbose))
            } else {
                let summary = ModelSummary(loaded)
                print(json ? summary.json() : summary.text())
            }
            if let out = save {
                let report = try ModelFile.save(loaded, to: out)
                for note in report.notes { CommandLineSupport.note("scm-inspect", note) }
            }
        } catch {
            CommandLineSupport.fail("scm-inspect", error)
        }
    }
}
