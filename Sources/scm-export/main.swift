import ArgumentParser
import Foundation
import SCM

/// `scm-export IN OUT --optimize (--steps N | --t T)`: save a model specialized and optimized for
/// each sampling step (a directory of step files) or for one time (one file).
@main
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scm-export",
        abstract: "Write a model file, optionally specialized and optimized for sampling steps.",
        discussion: """
            With --optimize --steps N, OUT is a directory that receives step1.onnx ... stepN.onnx, each \
            specialized for one time of the N-step schedule and batch size. With --optimize --t T, OUT is one \
            file. With --optimize alone, only the batch size is specialized (t stays an input). Without --optimize, the model is written back through scm's serializer. Fused ops use the \
            domain ai.scm, declared in opset_import.
            """)

    @Argument(help: "The input model file.")
    var input: String

    @Argument(help: "The output file, or directory with --steps.")
    var output: String

    @Flag(help: "Specialize and optimize (for each step with --steps, one time with --t, else the batch size only).")
    var optimize = false

    @Option(help: "Write one optimized model per step of the N-step schedule.")
    var steps: Int?

    @Option(help: "Comma-separated decreasing times to use instead of the stored schedule (with --steps).")
    var schedule: String?

    @Option(name: .customLong("t"), help: "Specialize for this one time.")
    var time: Float?

    @Option(help: "Batch size to specialize for.")
    var batch = 1

    @Option(help: "Comma-separated passes to run instead of the default pipeline (\(Optimizer.passNames.joined(separator: ", "))).")
    var passes: String?

    @Option(help: "Constant folding's size guard in bytes.")
    var foldLimit: Int?

    func validate() throws {
        if let s = steps, s < 1 { throw ValidationError("--steps must be at least 1, is \(s)") }
        if batch < 1 { throw ValidationError("--batch must be at least 1, is \(batch)") }
        if steps != nil && time != nil { throw ValidationError("--steps and --t exclude each other") }
        if !optimize && (steps != nil || time != nil || passes != nil || schedule != nil) {
            throw ValidationError("--steps, --t, --schedule and --passes need --optimize")
        }
        if let t = time, !(t.isFinite && t > 0 && t < Float.pi / 2) { throw ValidationError("--t must lie in (0, pi/2), is \(t)") }
    }

    func run() throws {
        do {
            let model = try ModelFile.load(path: input)
            guard optimize else {
                _ = try ModelFile.save(model, to: output)
                return
            }
            let options = Optimizer.Options(foldLimitBytes: foldLimit)
            let passList = Optimizer.passList(passes)
            if let n = steps {
                let times = try TrigFlowMetadata(model).schedule(steps: n, override: schedule, source: "--schedule")
                let paths = try StepExport.write(model, schedule: times, batch: batch, passes: passList, options: options, directory: output)
                for (p, t) in zip(paths, times) { print("\(p): t = \(t), batch \(batch)") }
            } else {
                try StepExport.write(model, t: time, batch: batch, passes: passList, options: options, to: output)
                print("\(output): t = \(time.map { String($0) } ?? "input"), batch \(batch)")
            }
        } catch let error where error is ModelError || error is RuntimeError || error is OptimizeError {
            fail("\(error)")
        }
    }

    func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("scm-export: error: \(message)\n".utf8))
        Export.exit(withError: ExitCode(1))
    }
}
