/// An op's identity: its domain (canonical: "" for ONNX's default domain, however the file
/// spells it) and its type. The registry's key, the passes' pattern matching and the summaries'
/// counts all use it, so no code compares op-type strings or builds `domain:op` keys itself.
public struct OpID: Hashable, Sendable, CustomStringConvertible {
    public let domain: String
    public let type: String

    public init(_ type: String, domain: String = "") {
        self.type = type
        self.domain = Model.isDefaultDomain(domain) ? "" : domain
    }

    /// `Type` in the default domain, `domain:Type` elsewhere: the key of the runtime's op table.
    public var key: String { domain.isEmpty ? type : "\(domain):\(type)" }
    public var description: String { key }

    // The ops the optimizer's patterns name.
    public static let add = OpID("Add"), mul = OpID("Mul"), sub = OpID("Sub"), div = OpID("Div")
    public static let conv = OpID("Conv"), matMul = OpID("MatMul"), gemm = OpID("Gemm")
    public static let sigmoid = OpID("Sigmoid"), reshape = OpID("Reshape")
    public static let instanceNormalization = OpID("InstanceNormalization"), groupNormalization = OpID("GroupNormalization")
    public static let fusedConv = OpID("FusedConv", domain: Model.scmDomain)
    public static let adaptiveGroupNorm = OpID("AdaptiveGroupNorm", domain: Model.scmDomain)
}

extension Node {
    /// The node's op identity (domain and type).
    public var op: OpID { OpID(opType, domain: domain) }
}
