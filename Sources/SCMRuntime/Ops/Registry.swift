import Foundation
/// The table of ops the runtime implements, keyed by op type (`domain:op` outside the default
/// domain). Adding an op means adding its `Operator` type here.
public enum OpRegistry {
    static let definitions: [any Operator.Type] = [
        UnaryOp.self, MathUnaryOp.self, ActivationOp.self, PReluOp.self, BinaryOp.self, CompareOp.self, VariadicMinMax.self, WhereOp.self, ClipOp.self, CastOp.self,
        ConvOp.self, ConvTransposeOp.self, GemmOp.self, MatMulOp.self, EinsumOp.self,
        SoftmaxOp.self, LogSoftmaxOp.self, ReduceOp.self, ArgOp.self, CumSumOp.self, TriluOp.self,
        NormalizationOp.self, GroupNormOp.self, LayerNormOp.self, BatchNormOp.self,
        PoolOp.self, GlobalAveragePoolOp.self, ResizeOp.self,
        ReshapeOp.self, FlattenOp.self, SqueezeOp.self, UnsqueezeOp.self, IdentityOp.self,
        TransposeOp.self, ConcatOp.self, SplitOp.self, SliceOp.self, ExpandOp.self, GatherOp.self,
        ShapeOp.self, ConstantOp.self, ConstantOfShapeOp.self,
        AdaptiveGroupNormOp.self, StopGradientOp.self, DropoutOp.self,
        ConvWeightGradOp.self, GroupNormGradOp.self, GroupNormTangentOp.self, ResizeGradOp.self, AveragePoolGradOp.self, SliceGradOp.self,
    ]

    nonisolated(unsafe) private static var table: [String: any Operator.Type] = {
        var d: [String: any Operator.Type] = [:]
        for def in definitions { for t in def.opTypes { d[t] = def } }
        return d
    }()
    private static let lock = NSLock()

    /// The definition of op type `key` (`domain:op` outside the default domain), if any.
    static func op(_ key: String) -> (any Operator.Type)? {
        lock.lock()
        defer { lock.unlock() }
        return table[key]
    }

    /// Adds the ops a module defines outside the runtime (the trainer's optimizer update, say):
    /// from then on every compile accepts them. Registering a definition again changes nothing;
    /// an op type already served by another definition is refused (its key is returned).
    @discardableResult
    public static func register(_ definitions: [any Operator.Type]) -> [String] {
        lock.lock()
        defer { lock.unlock() }
        var clashes: [String] = []
        for def in definitions {
            for t in def.opTypes {
                if let old = table[t], ObjectIdentifier(old) != ObjectIdentifier(def) { clashes.append(t) } else { table[t] = def }
            }
        }
        return clashes
    }

    /// Every op type the runtime accepts now, sorted.
    public static var supportedOps: [String] {
        lock.lock()
        defer { lock.unlock() }
        return table.keys.sorted()
    }
}
