import SCMGraph
import SCMRuntime

/// One graph transformation: a pure function from a model to a model. Each pass lives in its own
/// file with its own tests and reports what it changed.
public protocol Pass: Sendable {
    /// The name `--passes` and the logs use (`fold`, `dce`, `fuse-adn`, ...).
    var name: String { get }
    /// Transforms `model`; `changes` receives one line per rewrite (debug-level log).
    func run(_ model: Model, _ context: PassContext, changes: inout [String]) throws -> Model
}

/// What every pass may need besides the model.
public struct PassContext: Sendable {
    /// Concrete types of graph inputs whose declared shapes are symbolic (before or without
    /// specialization); passes that analyse shapes use them.
    public var shapes: [String: TensorSpec]

    public init(shapes: [String: TensorSpec] = [:]) { self.shapes = shapes }

    /// The entries of `shapes` for inputs `model` still has (specialization removes some).
    public func inputShapes(of model: Model) -> [String: TensorSpec] {
        let known = Set(model.graph.inputs.map(\.name))
        return shapes.filter { known.contains($0.key) }
    }

    /// Types and compile-time values of every value of `model` (the runtime's own inference).
    func analyze(_ model: Model) throws -> GraphAnalysis {
        try Compiler.analyze(model, shapes: inputShapes(of: model))
    }
}

/// What one pass did.
public struct PassReport: Sendable {
    public var pass: String
    public var nodesBefore: Int
    public var nodesAfter: Int
    /// One line per rewrite, in order.
    public var changes: [String]
}

/// Runs an ordered list of passes.
public struct PassManager: Sendable {
    public var passes: [any Pass]

    public init(_ passes: [any Pass]) { self.passes = passes }

    /// Applies every pass in order, returning the result and one report per pass.
    public func run(_ model: Model, _ context: PassContext = PassContext()) throws -> (Model, [PassReport]) {
        var m = model
        var reports: [PassReport] = []
        for p in passes {
            var changes: [String] = []
            let before = m.graph.nodes.count
            do {
                m = try p.run(m, context, changes: &changes)
            } catch var e as SCMError {
                // The kind passes up unchanged (an unsupported op stays unsupported); the pass is named.
                e.location = "pass '\(p.name)'" + (e.location.isEmpty ? "" : ", \(e.location)")
                throw e
            }
            reports.append(PassReport(pass: p.name, nodesBefore: before, nodesAfter: m.graph.nodes.count, changes: changes))
        }
        return (m, reports)
    }
}

/// A failure of the optimizer (the library's one error type, `SCMError`).
public typealias OptimizeError = SCMError
