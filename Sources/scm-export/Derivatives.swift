import ArgumentParser
import Foundation
import SCM
import SCMCommandLine

/// The names `--wrt` lists.
struct Differentiated: ParsableArguments {
    @Option(help: ArgumentHelp("Comma-separated names to differentiate with respect to.", valueName: "name,..."))
    var wrt: String

    var names: [String] { wrt.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }

    func validate() throws {
        if names.allSatisfy(\.isEmpty) { throw ValidationError("--wrt needs a comma-separated list of names") }
    }
}

/// `scm-export jvp IN OUT --wrt x,t`: IN with its forward-mode derivative.
struct JVP: ExportCommand {
    static let configuration = CommandConfiguration(
        commandName: "jvp",
        abstract: "Differentiate IN in forward mode: OUT also takes <input>_tangent for each --wrt input and returns <output>_tangent for each float output.")

    @OptionGroup var files: ExportFiles

    @OptionGroup(title: "Resource limits")
    var resources: ResourceOptions

    @OptionGroup var wrt: Differentiated

    var flags: [String: String] { ["jvp": "--wrt"] }

    func export() throws {
        let (model, _) = try files.load(resources)
        let derived = try ForwardMode.jvp(model, wrt: wrt.names)
        try derived.verify()
        try files.save(derived)
        print("\(files.output): \(derived.graph.inputs.count) inputs, \(derived.graph.outputs.count) outputs, \(derived.graph.nodes.count) nodes (\(derived.graph.nodes.count - model.graph.nodes.count) for the tangents)")
    }
}

/// `scm-export grad IN OUT --wrt params`: IN with its reverse-mode derivative.
struct Grad: ExportCommand {
    static let configuration = CommandConfiguration(
        abstract: "Differentiate IN in reverse mode: OUT also takes <output>_cotangent for each float output and returns <name>_grad for each --wrt input or initializer ('params': every float initializer an op differentiates).")

    @OptionGroup var files: ExportFiles

    @OptionGroup(title: "Resource limits")
    var resources: ResourceOptions

    @OptionGroup var wrt: Differentiated

    var flags: [String: String] { ["grad": "--wrt"] }

    func export() throws {
        let (model, _) = try files.load(resources)
        let (derived, differentiated) = try ReverseMode.vjp(model, wrt: wrt.names)
        try derived.verify()
        try files.save(derived)
        print("\(files.output): gradients of \(differentiated.count) value\(differentiated.count == 1 ? "" : "s"), \(derived.graph.nodes.count) nodes (\(derived.graph.nodes.count - model.graph.nodes.count) for the backward pass)")
    }
}
