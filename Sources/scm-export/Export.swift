import ArgumentParser
import Foundation
import SCM
import SCMCommandLine

/// `scm-export`: writes a model file, one subcommand per kind of file (`write`, the default,
/// `optimize`, `attach`, `jvp`, `grad`, `sct-loss`, `train-step`). The spelling with mode flags
/// (`scm-export IN OUT --optimize --steps 2`) keeps working: `FlagSpelling` rewrites it into the
/// subcommand form before parsing.
@main
struct Export: Tool {
    static let configuration = CommandConfiguration(
        commandName: "scm-export",
        abstract: "Write a model file: written back, exported from a checkpoint, optimized per sampling step, given the TrigFlow contract, or turned into derivative and training graphs.",
        discussion: """
            'scm-export IN OUT' writes IN back through scm's serializer, or exports a training checkpoint as the model \
            scm-run samples (the write subcommand). The older spelling with a mode flag still works: \
            'scm-export IN OUT --optimize ...' is 'scm-export optimize IN OUT ...', and likewise --attach, \
            --jvp NAMES and --grad NAMES (their names become --wrt), --sct-loss and --train-step. Fused ops use \
            the domain ai.scm, declared in opset_import.
            """,
        subcommands: [Write.self, Optimize.self, Attach.self, JVP.self, Grad.self, SCTLoss.self, TrainStep.self],
        defaultSubcommand: Write.self)

    static func main() {
        let arguments = CommandLine.arguments
        do {
            try CommandLineSupport.checkUTF8Arguments()
            guard let tree = CommandFlags.tree(of: self) else { return main(arguments: arguments) }
            main(arguments: [arguments[0]] + (try FlagSpelling.subcommandForm(of: Array(arguments.dropFirst()), tree: tree)))
        } catch let refusal as FlagSpelling.Refusal {
            report(refusal.error, usageOf: configuration.subcommands.first { $0._commandName == refusal.subcommand })
        } catch {
            report(error)
        }
    }
}

/// IN and OUT of every subcommand.
struct ExportFiles: ParsableArguments {
    @Argument(help: "The input model file, or a training checkpoint of scm-train (exported as the model scm-run samples).")
    var input: String

    @Argument(help: "The output file (a folder for one file per step).")
    var output: String

    /// The model IN holds, and the checkpoint when IN is one: a checkpoint's model is its EMA
    /// network with the contract, as scm-run samples it.
    func load(_ resources: ResourceOptions) throws -> (Model, Checkpoint?) {
        let model = try ModelFile.load(path: input, limits: resources.limits)
        guard Checkpoint.isCheckpoint(model) else { return (model, nil) }
        let checkpoint = try Checkpoint.load(path: input)
        return (try CheckpointExport.model(checkpoint), checkpoint)
    }

    /// Saves `model` to OUT, printing the serializer's notes.
    func save(_ model: Model) throws {
        let report = try ModelFile.save(model, to: output)
        for note in report.notes { CommandLineSupport.note(Export.toolName, note) }
    }
}

/// A subcommand of scm-export: `export()` does its work; signals remove what is half written,
/// and errors are reported in the tools' one way, a library location written as the flag that
/// set it (`flags`).
protocol ExportCommand: ParsableCommand {
    var flags: [String: String] { get }
    func export() throws
}

extension ExportCommand {
    var flags: [String: String] { [:] }

    func run() throws {
        Interruption.cleanUpOnSignals(tool: Export.toolName)
        do { try export() } catch { CommandLineSupport.fail(Export.toolName, error, flags: flags) }
    }
}
