import ArgumentParser
import SCM
import SCMCommandLine

/// `scm-export [write] IN OUT`: IN written back, or a checkpoint exported, with schedules stored.
struct Write: ExportCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write IN back through scm's serializer, or export a training checkpoint as the model scm-run samples (the default).")

    @OptionGroup var files: ExportFiles

    @OptionGroup(title: "Resource limits")
    var resources: ResourceOptions

    @Option(help: ArgumentHelp("Store these comma-separated decreasing times (the first the file's t_max) as scm.schedule.<count> in OUT, replacing the stored schedule of that count (repeatable): a schedule tuned on samples.", valueName: "t_max,t1,..."))
    var storeSchedule: [String] = []

    func validate() throws {
        try CommandLineSupport.checkSchedules(storeSchedule, flag: "--store-schedule")
    }

    func export() throws {
        let (loaded, checkpoint) = try files.load(resources)
        let (model, stored) = try TrigFlowMetadata.storing(schedules: storeSchedule, in: loaded, source: "--store-schedule")
        let schedules = stored.sorted { $0.key < $1.key }.map { ", scm.schedule.\($0.key) = \(TrigFlowMetadata.scheduleText($0.value))" }.joined()
        if let checkpoint {
            // The summary is formed before saving: reading the checkpoint after the save printed a
            // garbage step (and crashed the debug build) with Swift 6.3, with no memory error under valgrind.
            let summary = "\(files.output): \(checkpoint.config.objective.rawValue) network of \(files.input) (step \(checkpoint.step), EMA weights), "
                + "\(model.metadataValue(TrigFlowMetadata.Key.parameterization) ?? "") parameterization" + schedules
            _ = try ModelFile.save(model, to: files.output)
            print(summary)
            return
        }
        try files.save(model)
        if !storeSchedule.isEmpty { print("\(files.output): written back" + schedules) }
    }
}
