import SCMGraph
import SCMRuntime

/// The optimizer's entry points: the named passes, the default pipeline, and a run of them after a
/// specialization (the TrigFlow contract's per-step specialization is `Optimizer.optimize(_:t:batch:)`
/// in SCMTrigFlow).
public enum Optimizer {
    /// Every pass by name, in the default pipeline's order.
    public static let passNames = ["fold", "cse", "dce", "fuse-adn", "fold-conv-bias", "fuse-conv", "fuse-gemm"]

    /// The default pipeline: fold the time path, merge duplicates, drop what is dead, then fuse.
    public static let defaultPipeline = ["fold", "cse", "dce", "fuse-adn", "fold-conv-bias", "fuse-conv", "fuse-gemm", "dce"]

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
        case "fold-conv-bias": return FoldConvBias()
        case "fuse-conv": return FuseConvEpilogue()
        case "fuse-gemm": return FuseMatMulAdd()
        default: throw OptimizeError("unknown pass '\(name)' (passes: \(passNames.joined(separator: ", ")))")
        }
    }

    /// A pass manager for `names` (the default pipeline when nil).
    public static func pipeline(_ names: [String]? = nil, options: Options = Options()) throws -> PassManager {
        PassManager(try (names ?? defaultPipeline).map { try pass(named: $0, options: options) })
    }

    /// Runs `specialization` (inputs bound to constants, symbolic dimensions to sizes) and then
    /// the pipeline `passes` (the default when nil) over `model`, analysing with `context` (the
    /// concrete types of the inputs left unbound).
    public static func optimize(_ model: Model, specialization: Specialize, context: PassContext, passes: [String]? = nil,
                                options: Options = Options()) throws -> (model: Model, reports: [PassReport]) {
        let manager = PassManager([specialization] + (try pipeline(passes, options: options)).passes)
        return try manager.run(model, context)
    }
}
