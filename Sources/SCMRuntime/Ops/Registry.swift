/// The table of ops the runtime implements, keyed by op type (`domain:op` outside the default
/// domain). Adding an op means adding its `Operator` type here.
public enum OpRegistry {
    static let definitions: [any Operator.Type] = [
        UnaryOp.self, BinaryOp.self, CompareOp.self, VariadicMinMax.self, WhereOp.self, ClipOp.self, CastOp.self,
        ConvOp.self, ConvTransposeOp.self, GemmOp.self, MatMulOp.self, EinsumOp.self,
        SoftmaxOp.self, ReduceOp.self,
        NormalizationOp.self, GroupNormOp.self, LayerNormOp.self, BatchNormOp.self,
        PoolOp.self, GlobalAveragePoolOp.self, ResizeOp.self,
        ReshapeOp.self, FlattenOp.self, SqueezeOp.self, UnsqueezeOp.self, IdentityOp.self,
        TransposeOp.self, ConcatOp.self, SplitOp.self, SliceOp.self, ExpandOp.self, GatherOp.self,
        ShapeOp.self, ConstantOp.self, ConstantOfShapeOp.self,
        AdaptiveGroupNormOp.self, AdamUpdateOp.self, StopGradientOp.self, DropoutOp.self,
        ConvWeightGradOp.self, GroupNormGradOp.self, GroupNormTangentOp.self, ResizeGradOp.self, AveragePoolGradOp.self, SliceGradOp.self,
    ]

    static let ops: [String: any Operator.Type] = {
        var d: [String: any Operator.Type] = [:]
        for def in definitions { for t in def.opTypes { d[t] = def } }
        return d
    }()

    /// Every op type the runtime accepts, sorted.
    public static var supportedOps: [String] { ops.keys.sorted() }
}
