import Foundation
import SCM

/// The tools' progress display on standard error: on a terminal one line redrawn in place (at
/// most every 0.2 s), else a plain line every 10 s and at the last step. The library reports
/// progress as values (`TrainingProgress`, a sampler's callback); drawing it is the tools' job.
public final class ProgressLine {
    private let terminal = isatty(STDERR_FILENO) == 1
    private var lastDraw = -Double.infinity
    private var drawn = false

    public init() {}

    /// Shows `text` unless one was shown too recently (`final` always shows).
    public func show(_ text: String, at seconds: Double, final: Bool = false) {
        guard final || seconds - lastDraw >= (terminal ? 0.2 : 10) else { return }
        lastDraw = seconds
        drawn = true
        FileHandle.standardError.write(Data((terminal ? "\r\(text)\u{1B}[K" : text + "\n").utf8))
    }

    /// A training step: `step N/M, R steps/s, loss L, ETA S s`.
    public func show(_ p: TrainingProgress) {
        var line = String(format: "step %ld%@, %.2f steps/s, loss %.4f", p.step, p.totalSteps.map { "/\($0)" } ?? "",
                          p.stepsPerSecond, Double(p.loss))
        if let left = p.secondsLeft { line += String(format: ", ETA %.0f s", left) }
        show(line, at: p.seconds, final: p.step == p.totalSteps)
    }

    /// Ends the redrawn line (a newline on a terminal when something was drawn).
    public func finish() {
        if terminal && drawn { FileHandle.standardError.write(Data("\n".utf8)) }
        drawn = false
    }
}

extension CommandLineSupport {
    /// Prints `value` as one line of JSON on standard output (non-finite numbers as strings).
    public static func printJSON(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }
}
