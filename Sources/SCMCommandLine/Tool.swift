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

    public static func main() { main(arguments: CommandLine.arguments) }

    /// Parses `arguments` (the program's name first) and runs the command, or the subcommand they
    /// name; exits as `report` says on any error.
    public static func main(arguments: [String]) {
        do {
            if let repeated = repeatedFlag(in: arguments) { throw ValidationError(repeated) }
            var command = try parseAsRoot(Array(arguments.dropFirst()))
            try command.run()
        } catch {
            report(error)
        }
    }

    /// Exits for `error` in the tools' one style.
    public static func report(_ error: any Error, usageOf subcommand: (any ParsableCommand.Type)? = nil) -> Never {
        let code = exitCode(for: error)
        if code == .success || error is ExitCode { exit(withError: error) }
        let isUsage = code == .validationFailure
        var text = "\(toolName): error: \(message(for: error))\n"
        if isUsage {
            text += subcommand.map { "Usage: \(usageString(for: $0))\n  See '\(toolName) \($0._commandName) --help' for more information." } ?? usage(for: error)
            text += "\n"
        }
        FileHandle.standardError.write(Data(text.utf8))
        Foundation.exit(isUsage ? code.rawValue : CommandLineSupport.status(of: error))
    }

    /// A usage message when a flag that takes one value (or none) is given more than once, or
    /// with its inverted form (`--progress --no-progress`): the parser would keep the last one
    /// silently. Flags meant to repeat (`--inputs`, `--schedule` of scm-export) are not counted.
    static func repeatedFlag(in arguments: [String]) -> String? {
        guard let command = CommandFlags.tree(of: self)?.invoked(by: Array(arguments.dropFirst())) else { return nil }
        var seen: [Int: String] = [:]
        for token in arguments.dropFirst() {
            if token == "--" { break }
            let flag = String(token.prefix { $0 != "=" })
            guard let i = command.singleUse[flag] else { continue }
            if let first = seen[i] {
                return first == flag ? "\(flag) is given more than once: give it once" : "\(first) and \(flag) are both given: give one of them"
            }
            seen[i] = flag
        }
        return nil
    }

    /// The usage line and the pointer to --help, of the subcommand the error came from.
    static func usage(for error: any Error) -> String {
        let full = fullMessage(for: error)
        if !configuration.subcommands.isEmpty, let start = full.range(of: "Usage:") { return String(full[start.lowerBound...]) }
        return "Usage: \(usageString())\n  See '\(toolName) --help' for more information."
    }
}
