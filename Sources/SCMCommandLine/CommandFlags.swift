import ArgumentParser
import Foundation

/// The long flags a command and each of its subcommands take, read from ArgumentParser's own
/// description of the command tree: what the repeated-flag check and scm-export's older flag
/// spelling need to know without a second list of the flags.
public struct CommandFlags: Sendable {
    /// The command's name as typed (`scm-export`, `optimize`).
    public let name: String
    /// Every long flag the command takes, `--` included (`--steps`, `--no-progress`).
    public let longNames: Set<String>
    /// Each flag that takes one value (or none) -> its argument's index; an inverted flag
    /// (`--no-progress`) shares the index of its positive form. Repeating flags are absent.
    public let singleUse: [String: Int]
    public let subcommands: [CommandFlags]
    public let defaultSubcommand: String?

    /// The tree of `command`, or nil where ArgumentParser's description cannot be read.
    public static func tree(of command: any ParsableCommand.Type) -> CommandFlags? {
        guard let data = command._dumpHelp().data(using: .utf8),
              let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let info = root["command"] as? [String: Any] else { return nil }
        // The description leaves the default subcommand out; the configuration has it.
        return CommandFlags(info, defaultSubcommand: command.configuration.defaultSubcommand?._commandName)
    }

    init(_ info: [String: Any], defaultSubcommand: String? = nil) {
        name = info["commandName"] as? String ?? ""
        self.defaultSubcommand = defaultSubcommand ?? info["defaultSubcommand"] as? String
        subcommands = ((info["subcommands"] as? [[String: Any]]) ?? []).map { CommandFlags($0) }
        var names = Set<String>(), single: [String: Int] = [:]
        for (i, entry) in ((info["arguments"] as? [[String: Any]]) ?? []).enumerated() {
            let repeating = (entry["isRepeating"] as? Bool) == true
            for n in (entry["names"] as? [[String: Any]]) ?? [] where n["kind"] as? String == "long" {
                guard let flag = (n["name"] as? String).map({ "--" + $0 }) else { continue }
                names.insert(flag)
                if !repeating { single[flag] = i }
            }
        }
        for (flag, i) in single where flag.hasPrefix("--no-") {
            if let j = single["--" + flag.dropFirst(5)], j != i { single[flag] = j }
        }
        longNames = names
        singleUse = single
    }

    /// The subcommand called `name`, if any.
    public func subcommand(_ name: String) -> CommandFlags? { subcommands.first { $0.name == name } }

    /// The command `arguments` (the program's name dropped) run: the subcommand the first of them
    /// names, else the default subcommand, else this command.
    public func invoked(by arguments: [String]) -> CommandFlags {
        if let first = arguments.first, let named = subcommand(first) { return named.invoked(by: Array(arguments.dropFirst())) }
        if let d = defaultSubcommand, let sub = subcommand(d) { return sub.invoked(by: arguments) }
        return self
    }
}
