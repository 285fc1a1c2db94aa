import ArgumentParser
import Foundation
import SCMCommandLine
import SCMGraph
import SCMEval

/// `scm-eval SAMPLES.npy|GRID.png --data fashion-mnist|checkerboard|...`: the quality of samples,
/// with no network access.
@main
struct Eval: Tool {
    static let configuration = CommandConfiguration(
        commandName: "scm-eval",
        abstract: "Measure samples against their dataset: FD, KID, class histogram and nearest neighbours for fashion-mnist; support share, energy distance and sliced W1 for the 2-D toys.",
        discussion: """
            Images are measured in the features of a classifier trained by scm-train --objective classify \
            (default models/fashion-classifier.onnx) against the training set, beside the real test set as the floor. \
            The training and test sets' classifier outputs are cached per classifier (--cache, default \
            $SCM_EVAL_CACHE or ~/.cache/scm-eval; --no-cache). 2-D samples are measured against exact samples.
            """)

    @Argument(help: "The samples: a .npy (scm-run --npy) or, for images, a PNG grid (scm-run --out).")
    var samples: String

    @Option(help: "fashion-mnist, checkerboard, gaussians8, moons or swissroll.")
    var data: String

    @Option(help: "The classifier model file (images).")
    var classifier: String?

    @Option(parsing: .unconditional, help: "Random subsets of the KID estimate (images; default 100).")
    var kidSubsets: Int?

    @Option(parsing: .unconditional, help: "Size of each KID subset (images; default 1000, at most the set sizes).")
    var kidSubsetSize: Int?

    @Option(parsing: .unconditional, help: "How many samples (and test images) get a nearest-neighbour search over the training set (images; default 1000, 0: none).")
    var nnCount: Int?

    @Option(help: "Folder caching the training and test sets' classifier outputs.")
    var cache: String?

    @Flag(help: "Compute the reference features without reading or writing a cache.")
    var noCache = false

    @Option(parsing: .unconditional, help: "Worker threads (default: the machine's cores).")
    var threads: Int?

    @Flag(help: "Print one JSON object instead of the table.")
    var json = false

    func validate() throws {
        try CommandLineSupport.checkUTF8Arguments()
        if let t = threads { try CommandLineSupport.check("--threads", t, Limits.threads) }
        try CommandLineSupport.check("--kid-subsets", kidSubsets, 1...100_000)
        try CommandLineSupport.check("--kid-subset-size", kidSubsetSize, 2...1_000_000)
        try CommandLineSupport.check("--nn-count", nnCount, 0...16_777_216)
        if let c = cache {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: c, isDirectory: &isDir), !isDir.boolValue {
                throw ValidationError("--cache '\(c)' is a file; it names the folder of the cached features")
            }
        }
        if noCache && cache != nil { throw ValidationError("--cache and --no-cache contradict each other") }
        let images = data == "fashion-mnist"
        if !images {
            if classifier != nil { throw ValidationError("--classifier applies to image data (fashion-mnist), not \(data)") }
            if cache != nil || noCache { throw ValidationError("--cache and --no-cache apply to image data (fashion-mnist), not \(data)") }
            for (flag, given) in [("--kid-subsets", kidSubsets != nil), ("--kid-subset-size", kidSubsetSize != nil), ("--nn-count", nnCount != nil)] where given {
                throw ValidationError("\(flag) applies to image data (fashion-mnist), not \(data)")
            }
        }
    }

    /// The shipped classifier, `models/fashion-classifier.onnx`: in the working folder, else in
    /// the package this executable was built in (found from the executable's own path, up from
    /// `.build/<configuration>/`), so that scm-eval runs from any folder.
    static func defaultClassifier() -> String {
        let relative = "models/fashion-classifier.onnx"
        if FileManager.default.fileExists(atPath: relative) { return relative }
        var folder = ModelFile.parentFolder(of: (CommandLine.arguments[0] as NSString).resolvingSymlinksInPath)
        if !folder.hasPrefix("/") { folder = FileManager.default.currentDirectoryPath + "/" + folder }
        for _ in 0..<5 where !folder.isEmpty && folder != "/" {
            let candidate = (folder as NSString).appendingPathComponent(relative)
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
            folder = ModelFile.parentFolder(of: folder)
        }
        return relative
    }

    func run() throws {
        Interruption.cleanUpOnSignals(tool: "scm-eval")
        var job = Evaluation(samples: samples, data: data)
        job.classifier = classifier ?? Self.defaultClassifier()
        job.threads = threads ?? CommandLineSupport.defaultThreads
        if let k = kidSubsets { job.kidSubsets = k }
        if let k = kidSubsetSize { job.kidSubsetSize = k }
        if let n = nnCount { job.nnCount = n }
        if !noCache {
            let env = ProcessInfo.processInfo.environment
            job.cache = cache ?? env["SCM_EVAL_CACHE"].flatMap { $0.isEmpty ? nil : $0 }
                ?? env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : ($0 as NSString).appendingPathComponent("scm-eval") }
                ?? env["HOME"].map { ($0 as NSString).appendingPathComponent(".cache/scm-eval") }
        }
        job.note = { CommandLineSupport.note("scm-eval", $0) }
        do {
            let report = try job.run()
            print(json ? report.json : report.table)
        } catch {
            CommandLineSupport.fail("scm-eval", error, flags: ["data": "--data", "classifier": "--classifier"])
        }
    }
}
