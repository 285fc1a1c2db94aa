import SCMGraph

/// `ai.scm:StopGradient(X)`: X itself (a view); derivative transforms treat it as a constant
/// (no tangent passes forward, no cotangent passes back), as JAX's stop_gradient. The training
/// step marks its bootstrap target with it.
enum StopGradientOp: Operator, ForwardDifferentiable, ReverseDifferentiable {
    static let opTypes = ["ai.scm:StopGradient"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 1, 1)
        return .view(try ctx.input(0))
    }

    static func jvp(_ r: JVPRule) throws -> [String?] { [nil] }
    static func vjp(_ r: VJPRule) throws -> [String?] { [nil] }
}
