import ArgumentParser
import Foundation
import SCM

/// `scm-inspect MODEL [--json] [--save OUT]`: load, verify and describe a model file;
/// `--steps N` shows what the optimizer makes of each step of the N-step schedule.
@main
struct Inspect: ParsableCommand {
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

    @Option(help: "Refuse model files larger than this many bytes.")
    var maxFileBytes: Int?

    @Option(help: "Show the optimized graph of each step of the N-step schedule (scm.schedule.N, else the default rule).")
    var steps: Int?

    @Option(help: "Comma-separated decreasing times to use instead of the stored schedule (with --steps).")
    var schedule: String?

    @Option(help: "Batch size to specialize for (with --steps).")
    var batch = 1

    @Option(help: "Comma-separated passes to run instead of the default pipeline (\(Optimizer.passNames.joined(separator: ", "))).")
    var passes: String?

    @Option(help: "Constant folding's size guard in bytes.")
    var foldLimit: Int?

    @Flag(help: "List every rewrite of every pass (with --steps, text output).")
    var verbose = false

    func validate() throws {
        if let s = steps, s < 1 { throw ValidationError("--steps must be at least 1, is \(s)") }
        if batch < 1 { throw ValidationError("--batch must be at least 1, is \(batch)") }
        if steps == nil && (schedule != nil || passes != nil || foldLimit != nil) {
            throw ValidationError("--schedule, --passes and --fold-limit need --steps")
        }
    }

    func run() throws {
        var limits = LoadLimits()
        if let m = maxFileBytes { limits.maxFileBytes = m }
        do {
            let loaded = try ModelFile.load(path: model, limits: limits)
            if let n = steps {
                let times = try TrigFlowMetadata(loaded).schedule(steps: n, override: schedule, source: "--schedule")
                let report = try StepInspection(model: loaded, name: model, schedule: times, batch: batch,
                                                passes: Optimizer.passList(passes), options: Optimizer.Options(foldLimitBytes: foldLimit))
                print(json ? report.json() : report.text(verbose: verbose))
            } else {
                let summary = ModelSummary(loaded)
                print(json ? summary.json() : summary.text())
            }
            if let out = save {
                let report = try ModelFile.save(loaded, to: out)
                for note in report.notes { FileHandle.standardError.write(Data("scm-inspect: note: \(note)\n".utf8)) }
            }
        } catch let error where error is ModelError || error is RuntimeError || error is OptimizeError {
            fail("\(error)")
        }
    }

    func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("scm-inspect: error: \(message)\n".utf8))
        Inspect.exit(withError: ExitCode(1))
    }
}
