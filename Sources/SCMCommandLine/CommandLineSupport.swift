import ArgumentParser
import Foundation
import SCM

/// What the four executables share: argument checks against `Limits`, the UTF-8 check of the
/// raw arguments, and one way to report an error and exit.
///
/// Exit status: 0 success; 64 a usage error (ArgumentParser's `ValidationError` and parse
/// errors: unknown, missing, malformed, out-of-range or contradictory flags, found before any
/// file is read); 1 any other error; 3 (`scm-infer`) a model that uses something unsupported.
public enum CommandLineSupport {
    /// Exit status of errors in models, data files and output paths.
    public static let failure: Int32 = 1
    /// Exit status of `scm-infer` for a model that needs an unsupported op, attribute or dtype.
    public static let unsupported: Int32 = 3

    /// Throws a usage error unless every command-line argument is valid UTF-8: Swift decodes
    /// arguments as UTF-8 and would repair such a file name into one that does not exist.
    public static func checkUTF8Arguments() throws {
        for i in 1..<Int(CommandLine.argc) {
            guard let raw = CommandLine.unsafeArgv[i] else { continue }
            if String(validatingCString: raw) == nil {
                let shown = String(decoding: UnsafeRawBufferPointer(start: raw, count: strlen(raw)), as: UTF8.self)
                throw ValidationError("argument \(i) ('\(shown)') is not valid UTF-8: these tools take UTF-8 file names; rename the file or link it under a UTF-8 name")
            }
        }
    }

    /// Throws a usage error naming `flag` unless `value` (when given) lies in `range`.
    public static func check(_ flag: String, _ value: Int?, _ range: ClosedRange<Int>) throws {
        if let v = value, let m = Limits.violation(v, range) { throw ValidationError("\(flag) \(m)") }
    }

    /// Throws a usage error unless `text` (when given) is a comma-separated list of the
    /// optimizer's pass names (none empty), and `--fold-limit` (given: `foldLimit`) applies.
    public static func checkPasses(_ text: String?, foldLimit: Int? = nil) throws {
        guard let text else { return }
        let known = Optimizer.passNames.joined(separator: ", ")
        let names = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        for n in names where !Optimizer.passNames.contains(n) {
            throw ValidationError(n.isEmpty ? "--passes '\(text)' has an empty item (passes: \(known))" : "--passes: unknown pass '\(n)' (passes: \(known))")
        }
        if foldLimit != nil && !names.contains("fold") {
            throw ValidationError("--fold-limit applies to the fold pass, which --passes '\(text)' does not run")
        }
    }

    /// Throws a usage error unless each of `texts` is a schedule on its own: numbers, decreasing
    /// within (0, pi/2), `steps` of them when given, no two of one length. (Whether it starts at
    /// the model's t_max is checked once the model is read.)
    public static func checkSchedules(_ texts: [String], flag: String, steps: Int? = nil) throws {
        var counts = Set<Int>()
        for text in texts {
            let times: [Float]
            do {
                times = try TrigFlowMetadata.parseTimes(text, source: flag)
                try TrigFlowMetadata.checkSchedule(times, steps: steps, tMax: nil, source: flag)
            } catch { throw ValidationError("\(error)") }
            guard counts.insert(times.count).inserted else { throw ValidationError("\(flag) gives two schedules of \(times.count) steps") }
        }
    }

    /// Throws a usage error unless `tMax` (when given) lies in (0, pi/2).
    public static func checkTMax(_ tMax: Float?) throws {
        if let t = tMax, let m = TrigFlowMetadata.timeViolation(t) { throw ValidationError("--t-max \(m)") }
    }

    /// Throws a usage error naming `flag` unless `sigmaData` (when given) can be sigma_d.
    public static func checkSigmaData(_ sigmaData: Float?, flag: String = "--sigma-data") throws {
        if let s = sigmaData, let m = TrigFlowMetadata.sigmaDataViolation(s) { throw ValidationError("\(flag) \(m)") }
    }

    /// Parses 'low,high' (finite, low < high), or throws a usage error naming `flag`.
    public static func parseRange(_ text: String, flag: String) throws -> (Float, Float) {
        let p = text.split(separator: ",", omittingEmptySubsequences: false).map { Float($0.trimmingCharacters(in: .whitespaces)) }
        guard p.count == 2, let lo = p[0], let hi = p[1], lo.isFinite, hi.isFinite, lo < hi else {
            throw ValidationError("\(flag) must be 'low,high' with low < high, is '\(text)'")
        }
        return (lo, hi)
    }

    /// The worker threads to use by default: the machine's cores, within `Limits.threads`.
    public static var defaultThreads: Int {
        min(max(ProcessInfo.processInfo.activeProcessorCount, Limits.threads.lowerBound), Limits.threads.upperBound)
    }

    /// Writes `<tool>: error: <message>` to standard error and exits with `code`.
    public static func fail(_ tool: String, _ message: String, code: Int32 = failure) -> Never {
        FileHandle.standardError.write(Data("\(tool): error: \(message)\n".utf8))
        exit(code)
    }

    /// Writes `<tool>: error: <error>` to standard error and exits with the error's status
    /// (`status(of:)`: 3 for what this program does not support, 1 otherwise).
    public static func fail(_ tool: String, _ error: any Error) -> Never {
        fail(tool, "\(error)", code: status(of: error))
    }

    /// `fail(tool, error)` with the error's location written as the tool's flag when the library
    /// named a setting the tool takes as one (`flags`: the library's name -> the flag, e.g.
    /// "data" -> "--data"): the library speaks Swift names, the tool its flags.
    public static func fail(_ tool: String, _ error: any Error, flags: [String: String]) -> Never {
        guard var e = error as? SCMError, let flag = flags[e.location] else { fail(tool, error) }
        e.location = flag
        fail(tool, e)
    }

    /// Writes `<tool>: note: <message>` to standard error.
    public static func note(_ tool: String, _ message: String) {
        FileHandle.standardError.write(Data("\(tool): note: \(message)\n".utf8))
    }

    /// The exit status for an error of the library: `unsupported` for what the runtime does not
    /// implement (`scm-infer` distinguishes it), `failure` otherwise.
    public static func status(of error: any Error) -> Int32 {
        (error as? SCMError)?.kind == .unsupported ? unsupported : failure
    }

    /// The times of each step for `--steps N` / `--schedule T,...` / `--t-max T` (scm-inspect and
    /// scm-export): `TrigFlowMetadata.stepTimes`, with errors naming the flags.
    public static func stepTimes(_ model: Model, steps: Int?, schedule: String?, tMax: Float?) throws -> [Float] {
        do {
            return try TrigFlowMetadata.stepTimes(model, steps: steps, schedule: schedule, tMax: tMax, source: "--schedule")
        } catch var e as ModelError {
            if e.location == "t_max" { e.location = "--t-max" }
            if e.message == TrigFlowMetadata.missingMessage { e.message += ": give --t-max, or the times with --schedule" }
            throw e
        }
    }
}

/// The `--max-*` flags of `ResourceLimits`, shared by scm-inspect, scm-infer, scm-run and
/// scm-export; each unset flag keeps the library's default.
public struct ResourceOptions: ParsableArguments {
    public init() {}

    @Option(parsing: .unconditional, help: "Refuse model files larger than this many bytes (default 2 GiB - 1).")
    public var maxFileBytes: Int?

    @Option(parsing: .unconditional, help: "Refuse graphs of more nodes (default 1000000).")
    public var maxNodes: Int?

    @Option(parsing: .unconditional, help: "Refuse graphs whose longest chain of nodes is longer (default 100000).")
    public var maxGraphDepth: Int?

    @Option(parsing: .unconditional, help: "Refuse any tensor of more elements: initializers, inputs, every computed value (default and most 2^30).")
    public var maxTensorElements: Int?

    @Option(parsing: .unconditional, help: "Refuse models whose constants (initializers, and values computed at compile time) exceed this many bytes (default 16 GiB).")
    public var maxInitializerBytes: Int?

    @Option(parsing: .unconditional, help: "Refuse plans whose activation memory (arena + scratch, at the batch asked for) exceeds this many bytes (default 16 GiB).")
    public var maxActivationBytes: Int?

    /// The limits these flags give.
    public var limits: ResourceLimits {
        var l = ResourceLimits()
        if let v = maxFileBytes { l.maxFileBytes = v }
        if let v = maxNodes { l.maxNodes = v }
        if let v = maxGraphDepth { l.maxGraphDepth = v }
        if let v = maxTensorElements { l.maxTensorElements = v }
        if let v = maxInitializerBytes { l.maxInitializerBytes = v }
        if let v = maxActivationBytes { l.maxActivationBytes = v }
        return l
    }

    public func validate() throws {
        for (flag, value) in [("--max-file-bytes", maxFileBytes), ("--max-nodes", maxNodes), ("--max-graph-depth", maxGraphDepth),
                              ("--max-tensor-elements", maxTensorElements), ("--max-initializer-bytes", maxInitializerBytes),
                              ("--max-activation-bytes", maxActivationBytes)] {
            if let v = value, v < 1 { throw ValidationError("\(flag) must be at least 1, is \(v)") }
        }
        if let v = maxTensorElements, v > Compiler.maxTensorElements {
            throw ValidationError("--max-tensor-elements must be at most \(Compiler.maxTensorElements) (the runtime's own cap), is \(v)")
        }
    }
}

/// SIGINT and SIGTERM for the tools that write files (scm-train saves a checkpoint instead): the
/// temporary files of writes in flight are removed, `<tool>: interrupted` is printed and the
/// process exits 130, so an interrupted run leaves no partial files behind.
public enum Interruption {
    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []

    /// Installs the handlers (once per process).
    public static func cleanUpOnSignals(tool: String) {
        guard sources.isEmpty else { return }
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                TemporaryFiles.removeAll()
                FileHandle.standardError.write(Data("\n\(tool): interrupted\n".utf8))
                exit(130)
            }
            source.resume()
            sources.append(source)
        }
    }
}
