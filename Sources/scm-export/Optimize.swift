import ArgumentParser
import SCM
import SCMCommandLine

/// `scm-export optimize IN OUT`: the model specialized and optimized for each step of a
/// schedule (a folder of step files), for one time, or for the batch size only.
struct Optimize: ExportCommand {
    static let configuration = CommandConfiguration(
        abstract: "Specialize and optimize IN: for each step of a schedule (OUT a folder of step1.onnx ... stepN.onnx), for one time (--t), or for the batch size only (t stays an input).")

    @OptionGroup var files: ExportFiles

    @OptionGroup(title: "Resource limits")
    var resources: ResourceOptions

    @OptionGroup(title: "Steps and passes")
    var step: StepOptions

    @Option(name: .customLong("t"), parsing: .unconditional, help: "Specialize for this one time instead of steps.")
    var time: Float?

    func validate() throws {
        if step.perStep && time != nil { throw ValidationError("--steps/--schedule and --t exclude each other") }
        if step.tMax != nil && !step.perStep { throw ValidationError("--t-max applies with --steps or --schedule") }
        if let t = time, let m = TrigFlowMetadata.timeViolation(t) { throw ValidationError("--t \(m)") }
    }

    func export() throws {
        let (model, _) = try files.load(resources)
        let (passes, options) = step.optimizer
        let b = step.batch ?? 1
        if step.perStep {
            let times = try step.times(of: model)
            let paths = try StepExport.write(model, schedule: times, batch: b, passes: passes, options: options, directory: files.output)
            for (p, t) in zip(paths, times) { print("\(p): t = \(t), batch \(b)") }
        } else {
            try StepExport.write(model, t: time, batch: b, passes: passes, options: options, to: files.output)
            print("\(files.output): t = \(time.map { String($0) } ?? "input"), batch \(b)")
        }
    }
}
