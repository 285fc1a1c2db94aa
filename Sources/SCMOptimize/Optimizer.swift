import SCMGraph
import SCMRuntime

/// The optimizer's entry points: the named passes, the default pipeline, and specialization of a
/// TrigFlow model (inputs `x` [N, ...] and `t` [N], in that order) for one sampling step.
public enum Optimizer {
    /// Every pass by name, in the default pipeline's order.
    public static let passNames = ["fold", "cse", "dce", "fuse-adn", "fuse-conv", "fuse-gemm"]

    /// The default pipeline: fold the time path, merge duplicates, drop what is dead, then fuse.
    public static let defaultPipeline = ["fold", "cse", "dce", "fuse-adn", "fuse-conv", "fuse-gemm", "dce"]

    /// Options shared by the passes.
    public struct Options: Sendable {
        /// Constant folding's size guard (bytes), see `ConstantFolding`.
        public var foldLimitBytes: Int = 1 << 20
        /// Options with the defaults, except what is given.
        public init(foldLimitBytes: Int? = nil) {
            if let f = foldLimitBytes { self.foldLimitBytes = f }
        }
    }

    /// Pass names from a comma-separated list (`--passes`); nil stays nil (the default pipeline).
    public static func passList(_ text: String?) -> [String]? {
        text.map { $0.split(separator: ",").map(String.init) }
    }

    /// The pass called `name`.
    public static func pass(named name: String, options: Options = Options()) throws -> any Pass {
        switch name {
        case "fold": return ConstantFolding(maxBytes: options.foldLimitBytes)
        case "cse": return CommonSubexpressions()
        case "dce": return DeadCodeElimination()
        case "fuse-adn": return FuseAdaptiveGroupNorm()
        case "fuse-conv": return FuseConvEpilogue()
        case "fuse-gemm": return FuseMatMulAdd()
        default: throw OptimizeError("unknown pass '\(name)' (passes: \(passNames.joined(separator: ", ")))")
        }
    }

    /// A pass manager for `names` (the default pipeline when nil).
    public static func pipeline(_ names: [String]? = nil, options: Options = Options()) throws -> PassManager {
        PassManager(try (names ?? defaultPipeline).map { try pass(named: $0, options: options) })
    }

    /// The specialization of a TrigFlow model for batch size `batch` and, when `t` is given, for
    /// that time: `t` becomes a constant [batch] tensor and the batch dimension becomes concrete.
    /// Returns the pass and the context (concrete input types) later passes analyse with.
    public static func stepSpecialization(_ model: Model, t: Float?, batch: Int) throws -> (Specialize, PassContext) {
        let g = model.graph
        guard g.inputs.count >= 2 else {
            throw OptimizeError("a TrigFlow model has inputs x and t; this one has \(g.inputs.count) input(s)")
        }
        if let m = Limits.violation(batch, Limits.batch) { throw OptimizeError("the batch size \(m)") }
        let x = g.inputs[0], tIn = g.inputs[1]
        guard let xs = x.type?.shape, xs.count >= 1, x.type?.elementType == .float else {
            throw OptimizeError("input '\(x.name)' must be float [N, ...] with a declared shape")
        }
        var dims: [String: Int] = [:]
        switch xs[0] {
        case .param(let p): dims[p] = batch
        case .value(let v): guard v == batch else { throw OptimizeError("input '\(x.name)' has a fixed batch of \(v), asked for \(batch)") }
        case .unknown: break
        }
        guard let rest = Array(xs.dropFirst()).concrete else {
            throw OptimizeError("input '\(x.name)' has shape \(xs.shapeDescription): only the batch dimension may be symbolic")
        }
        let ts = tIn.type?.shape
        guard tIn.type?.elementType == .float, ts == nil || ts!.count == 1 else {
            throw OptimizeError("input '\(tIn.name)' must be float [N]")
        }
        // t is [N] by the contract; a file that fixes its length (e.g. [1], broadcast) keeps it.
        let tShape = ts?.concrete ?? [batch]
        var context = PassContext(shapes: [x.name: TensorSpec(.float, [batch] + rest)])
        var bindings: [String: Tensor] = [:]
        if let t {
            bindings[tIn.name] = try Tensor(shape: tShape, scalars: [Float](repeating: t, count: tShape.reduce(1, *)), name: tIn.name)
        } else {
            context.shapes[tIn.name] = TensorSpec(.float, tShape)
        }
        return (Specialize(bindings: bindings, dims: dims), context)
    }

    /// Specializes `model` for one step (time `t`, or only the batch size when nil) and runs the
    /// pipeline `passes` (the default when nil). The result records `scm.specialized.t` and
    /// `scm.specialized.batch` in its metadata.
    public static func optimize(_ model: Model, t: Float?, batch: Int, passes: [String]? = nil,
                                options: Options = Options()) throws -> (model: Model, reports: [PassReport]) {
        let (spec, context) = try stepSpecialization(model, t: t, batch: batch)
        let manager = PassManager([spec] + (try pipeline(passes, options: options)).passes)
        var (m, reports) = try manager.run(model, context)
        m.metadata.removeAll { $0.key.hasPrefix("scm.specialized.") }
        if let t { m.metadata.append(MetadataEntry("scm.specialized.t", String(t))) }
        m.metadata.append(MetadataEntry("scm.specialized.batch", String(batch)))
        return (m, reports)
    }
}
