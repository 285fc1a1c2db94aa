import ArgumentParser
import Foundation
import SCM

/// `scm-inspect MODEL [--json] [--save OUT]`: load, verify and describe a model file.
@main
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scm-inspect",
        abstract: "Load, verify and describe a model file (ONNX ModelProto).")

    @Argument(help: "The model file (.pb / .onnx).")
    var model: String

    @Flag(help: "Print the summary as one JSON object.")
    var json = false

    @Option(help: "Write the loaded model back through scm's own serializer to this path.")
    var save: String?

    @Option(help: "Refuse model files larger than this many bytes.")
    var maxFileBytes: Int?

    func run() throws {
        var limits = LoadLimits()
        if let m = maxFileBytes { limits.maxFileBytes = m }
        do {
            let model = try ModelFile.load(path: model, limits: limits)
            let summary = ModelSummary(model)
            print(json ? summary.json() : summary.text())
            if let out = save {
                let report = try ModelFile.save(model, to: out)
                for note in report.notes { FileHandle.standardError.write(Data("scm-inspect: note: \(note)\n".utf8)) }
            }
        } catch let error as ModelError {
            FileHandle.standardError.write(Data("scm-inspect: error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
