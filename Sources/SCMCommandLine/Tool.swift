import ArgumentParser
import Foundation

/// A command-line tool of this package: ArgumentParser parses its flags, and every error, the
/// parser's own included, is reported one way, `<tool>: error: <message>` on standard error.
///
/// A usage error (an unknown, missing, malformed or contradictory flag: the parser's errors and
/// `ValidationError`) adds the usage line and exits 64; `--help` and `--version` print to
/// standard output and exit 0; any other error thrown out of `run()` exits with
/// `CommandLineSupport.status(of:)` (3 for what is unsupported, 1 otherwise).
public protocol Tool: ParsableCommand {}

extension Tool {
    /// The tool's name as users type it.
    public static var toolName: String { configuration.commandName ?? "scm" }

    public static func main() {
        do {
            var command = try parseAsRoot(nil)
            try command.run()
        } catch {
            report(error)
        }
    }

    /// Exits for `error` in the tools' one style.
    static func report(_ error: any Error) -> Never {
        let code = exitCode(for: error)
        if code == .success || error is ExitCode { exit(withError: error) }
        let isUsage = code == .validationFailure
        var text = "\(toolName): error: \(message(for: error))\n"
        if isUsage { text += "Usage: \(usageString())\n  See '\(toolName) --help' for more information.\n" }
        FileHandle.standardError.write(Data(text.utf8))
        Foundation.exit(isUsage ? code.rawValue : CommandLineSupport.status(of: error))
    }
}
