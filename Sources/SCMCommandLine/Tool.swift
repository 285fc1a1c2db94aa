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
            if let repeated = repeatedFlag(in: CommandLine.arguments) { throw ValidationError(repeated) }
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

    /// A usage message when a flag that takes one value (or none) is given more than once, or
    /// with its inverted form (`--progress --no-progress`): the parser would keep the last one
    /// silently. Flags meant to repeat (`--inputs`, `--schedule` of scm-export) are not counted.
    static func repeatedFlag(in arguments: [String]) -> String? {
        guard let data = _dumpHelp().data(using: .utf8),
              let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let command = root["command"] as? [String: Any], let entries = command["arguments"] as? [[String: Any]] else { return nil }
        var argument: [String: Int] = [:]
        for (i, entry) in entries.enumerated() where (entry["isRepeating"] as? Bool) != true {
            for name in (entry["names"] as? [[String: Any]]) ?? [] where name["kind"] as? String == "long" {
                if let n = name["name"] as? String { argument["--" + n] = i }
            }
        }
        // An inverted flag (`--no-progress`) is one argument with its positive form.
        for (flag, i) in argument where flag.hasPrefix("--no-") {
            if let j = argument["--" + flag.dropFirst(5)], j != i { argument[flag] = j }
        }
        var seen: [Int: String] = [:]
        for token in arguments.dropFirst() {
            if token == "--" { break }
            let flag = String(token.prefix { $0 != "=" })
            guard let i = argument[flag] else { continue }
            if let first = seen[i] {
                return first == flag ? "\(flag) is given more than once: give it once" : "\(first) and \(flag) are both given: give one of them"
            }
            seen[i] = flag
        }
        return nil
    }
}
