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

    @OptionGroup(title: "Per-step view (with --steps or --schedule)")
    var step: StepOptions

    @Flag(help: "List every rewrite of every pass (with --steps, text output).")
    var verbose = false

    func validate() throws {
        try CommandLineSupport.checkUTF8Arguments()
        if !step.perStep {
            for (flag, given) in [("--batch", step.batch != nil), ("--passes", step.passes != nil), ("--fold-limit", step.foldLimit != nil),
                                  ("--t-max", step.tMax != nil), ("--verbose", verbose)] where given {
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
            try loaded.checkWindowAttributes()
            if step.perStep {
                let report = try StepInspection(model: loaded, name: model, schedule: try step.times(of: loaded), batch: step.batch ?? 1,
                                                passes: step.optimizer.passes, options: step.optimizer.options)
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
