import ArgumentParser
import SCMCommandLine

/// scm-export's spelling from before its subcommands, a mode flag among the others:
/// `scm-export IN OUT --optimize --steps 2` is `scm-export optimize IN OUT --steps 2`, and
/// `--jvp x,t` is `jvp --wrt x,t`. Scripts and notes written that way keep working; a flag that
/// the mode does not take is refused naming the mode that takes it.
enum FlagSpelling {
    /// A mode flag and the subcommand it stands for.
    struct Mode {
        let flag: String
        let subcommand: String
        /// Whether the flag carries the subcommand's `--wrt` value.
        var takesNames = false
    }

    static let modes = [
        Mode(flag: "--attach", subcommand: "attach"), Mode(flag: "--optimize", subcommand: "optimize"),
        Mode(flag: "--jvp", subcommand: "jvp", takesNames: true), Mode(flag: "--grad", subcommand: "grad", takesNames: true),
        Mode(flag: "--sct-loss", subcommand: "sct-loss"), Mode(flag: "--train-step", subcommand: "train-step"),
    ]

    /// A usage error of this spelling, and the subcommand whose usage line goes with it.
    struct Refusal: Error {
        let error: ValidationError
        let subcommand: String

        init(_ message: String, _ subcommand: String) {
            error = ValidationError(message)
            self.subcommand = subcommand
        }
    }

    /// How the arguments named what to write: a subcommand, or a mode flag (none for the default).
    enum Spelling {
        case subcommand
        case flag(Mode?)
    }

    /// How a message names the default subcommand, which has no mode flag.
    static let writtenBack = "a checkpoint or a model written back"

    /// `arguments` (the program's name dropped) as the subcommand form: unchanged when they
    /// start with a subcommand's name; else the mode flag (at most one) becomes the subcommand,
    /// and without one the parser's default subcommand takes them.
    /// Throws a `Refusal` for two mode flags, or a flag the mode does not take.
    static func subcommandForm(of arguments: [String], tree: CommandFlags) throws -> [String] {
        if let first = arguments.first, let named = tree.subcommand(first) {
            try checkFlags(Array(arguments.dropFirst()), of: named, spelling: .subcommand, tree: tree)
            return arguments
        }
        var rest: [String] = [], found: (mode: Mode, names: String?)? = nil
        var i = 0
        while i < arguments.count {
            let token = arguments[i]
            if token == "--" { rest += arguments[i...]; break }
            let flag = String(token.prefix { $0 != "=" })
            guard let mode = modes.first(where: { $0.flag == flag }) else { rest.append(token); i += 1; continue }
            if let earlier = found?.mode {
                if earlier.flag == flag { throw Refusal("\(flag) is given more than once: give it once", mode.subcommand) }
                throw Refusal("\(flag) does not apply to \(earlier.flag): they are two kinds of file "
                              + "(scm-export \(earlier.subcommand), scm-export \(mode.subcommand)); give one", earlier.subcommand)
            }
            var names: String? = nil
            if mode.takesNames {
                if token.count > flag.count { names = String(token.dropFirst(flag.count + 1)) } else if i + 1 < arguments.count {
                    i += 1
                    names = arguments[i]
                }
                if names.map({ $0.split(separator: ",").isEmpty }) ?? true {
                    throw Refusal("\(flag) needs a comma-separated list of names", mode.subcommand)
                }
            }
            found = (mode, names)
            i += 1
        }
        let subcommand = found?.mode.subcommand ?? tree.defaultSubcommand ?? ""
        guard let target = tree.subcommand(subcommand) else { return arguments }
        try checkFlags(rest, of: target, spelling: .flag(found?.mode), tree: tree)
        // Without a mode flag the parser picks the default subcommand itself (and `--help` stays the tool's).
        guard let found else { return arguments }
        return [subcommand] + rest + (found.names.map { ["--wrt", $0] } ?? [])
    }

    /// Throws a `Refusal` for the first flag in `arguments` that `target` does not take but
    /// another subcommand does (flags none takes are left to the parser's own message), naming
    /// the others as the arguments did: subcommands or mode flags.
    static func checkFlags(_ arguments: [String], of target: CommandFlags, spelling: Spelling, tree: CommandFlags) throws {
        for token in arguments {
            if token == "--" { return }
            let flag = String(token.prefix { $0 != "=" })
            guard flag.hasPrefix("--"), !target.longNames.contains(flag) else { continue }
            let takers = tree.subcommands.filter { $0.longNames.contains(flag) }.map(\.name)
            switch spelling {
            case _ where takers.isEmpty: continue
            case .subcommand:
                throw Refusal("\(flag) applies to \(list(takers.map { "scm-export \($0)" })), not to scm-export \(target.name)", target.name)
            case .flag(let mode):
                if flag == "--wrt" { continue }  // the mode flags carry it
                let flags = takers.map { name in modes.first { $0.subcommand == name }?.flag ?? writtenBack }
                throw Refusal("\(flag) applies to \(list(flags))" + (mode.map { ", not with \($0.flag)" } ?? ""), target.name)
            }
        }
    }

    /// "a", "a and b", "a, b and c".
    static func list(_ items: [String]) -> String {
        items.count < 2 ? items.joined() : items.dropLast().joined(separator: ", ") + " and " + items[items.count - 1]
    }
}
