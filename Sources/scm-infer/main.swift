import ArgumentParser
import Foundation
import SCM
import SCMCommandLine

/// `scm-infer MODEL --inputs A.pb B.pb ... --output-dir DIR`: run a model on TensorProto files.
@main
struct Infer: Tool {
    static let configuration = CommandConfiguration(
        commandName: "scm-infer",
        abstract: "Run a model on TensorProto inputs and write DIR/output_<i>.pb (ONNX's backend test layout).")

    @Argument(help: "The model file (.pb / .onnx).")
    var model: String?

    @Option(name: .long, parsing: .upToNextOption, help: "TensorProto files, one per graph input, in graph-input order.")
    var inputs: [String] = []

    @Option(help: "Folder for output_<i>.pb, created if missing.")
    var outputDir: String?

    @Option(parsing: .unconditional, help: "Worker threads (including the caller).")
    var threads: Int = 1

    @Option(parsing: .unconditional, help: "Loops of fewer elements run on the calling thread; 0 spreads every loop of two or more chunks over the threads (tests use it to run small inputs through the parallel paths).")
    var minParallelElements: Int = ThreadPool.defaultMinParallelElements

    @Option(parsing: .unconditional, help: "Run this many times (the outputs of the last run are written); prints timings.")
    var `repeat`: Int = 1

    @Flag(help: "Print the plan figures and timings as one JSON object on stdout.")
    var json = false

    @Flag(help: "Measure the time spent per op type (mean over --repeat runs): a table on standard error, or 'profile' in the JSON.")
    var profile = false
    @Flag(help: "As --profile, one row per node (op type and node label) in graph order of cost.")
    var profileNodes = false

    @Option(help: "Convolution arithmetic: fp32 (the default) or bf16 (AVX512-BF16 CPUs; else fp32, as the JSON's 'precision' says).")
    var precision: Precision = .fp32

    @Flag(help: "List the supported ops and exit.")
    var listOps = false

    @OptionGroup(title: "Resource limits")
    var resources: ResourceOptions

    func validate() throws {
        try CommandLineSupport.checkUTF8Arguments()
        try CommandLineSupport.check("--threads", threads, Limits.threads)
        guard minParallelElements >= 0 else { throw ValidationError("--min-parallel-elements must be at least 0, is \(minParallelElements)") }
        guard `repeat` >= 1 else { throw ValidationError("--repeat must be at least 1, is \(`repeat`)") }
        if !listOps && model == nil { throw ValidationError("give a model file") }
        if listOps {
            let others = [("a model", model != nil), ("--inputs", !inputs.isEmpty), ("--output-dir", outputDir != nil), ("--json", json),
                          ("--profile", profile), ("--profile-nodes", profileNodes), ("--repeat", `repeat` != 1), ("--threads", threads != 1)]
                .filter(\.1).map(\.0)
            if !others.isEmpty { throw ValidationError("--list-ops lists the ops and exits; \(others.joined(separator: ", ")) would be ignored") }
        }
    }

    func run() throws {
        Interruption.cleanUpOnSignals(tool: "scm-infer")
        // scm-infer runs any graph, the trainer's step graphs included.
        TrainingOps.register()
        if listOps {
            print(OpRegistry.supportedOps.joined(separator: "\n"))
            return
        }
        guard let model else { return }
        if outputDir == nil {
            CommandLineSupport.note("scm-infer", "no --output-dir: the model is run and timed, no output is written")
        }
        do {
            let report = try Inference.run(modelPath: model, inputPaths: inputs, outputDir: outputDir,
                                           threads: threads, repeats: `repeat`, profile: profile, profileByNode: profileNodes,
                                           minParallelElements: minParallelElements, limits: resources.limits,
                                           precision: precision)
            for note in report.nonFinite { CommandLineSupport.note("scm-infer", note) }
            if json { try CommandLineSupport.printJSON(report.figures) } else { FileHandle.standardError.write(Data((report.summary + "\n").utf8)) }
        } catch {
            CommandLineSupport.fail("scm-infer", error)
        }
    }
}
