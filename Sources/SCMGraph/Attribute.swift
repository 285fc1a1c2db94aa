/// The value of a node attribute.
public enum AttributeValue: Sendable {
    case float(Float)
    case int(Int)
    /// ONNX strings are bytes; `Attribute.stringValue` decodes them as UTF-8.
    case string([UInt8])
    case tensor(Tensor)
    case floats([Float])
    case ints([Int])
    case strings([[UInt8]])
    case tensors([Tensor])
    /// A kind outside our subset (GRAPH, GRAPHS, SPARSE_TENSOR(S), TYPE_PROTO(S)), identified by
    /// its `AttributeProto.AttributeType` code; the value's bytes are in `Attribute.unknownFields`.
    case opaque(typeCode: Int32)

    /// The `AttributeProto.AttributeType` code of this value.
    public var typeCode: Int32 {
        switch self {
        case .float: 1
        case .int: 2
        case .string: 3
        case .tensor: 4
        case .floats: 6
        case .ints: 7
        case .strings: 8
        case .tensors: 9
        case .opaque(let code): code
        }
    }

    /// ONNX's name for the attribute type (`INTS`, `GRAPH`, ...).
    public var typeName: String { Self.typeName(typeCode) }

    static func typeName(_ code: Int32) -> String {
        switch code {
        case 0: "UNDEFINED"
        case 1: "FLOAT"
        case 2: "INT"
        case 3: "STRING"
        case 4: "TENSOR"
        case 5: "GRAPH"
        case 6: "FLOATS"
        case 7: "INTS"
        case 8: "STRINGS"
        case 9: "TENSORS"
        case 10: "GRAPHS"
        case 11: "SPARSE_TENSOR"
        case 12: "SPARSE_TENSORS"
        case 13: "TYPE_PROTO"
        case 14: "TYPE_PROTOS"
        default: "type \(code)"
        }
    }
}

/// A named attribute of a node.
public struct Attribute: Sendable {
    public var name: String
    public var value: AttributeValue
    public var docString: String
    /// Set in function bodies: the attribute takes the value of the caller's attribute of this name.
    public var refAttrName: String
    public var unknownFields: UnknownFields

    public init(_ name: String, _ value: AttributeValue, docString: String = "", refAttrName: String = "",
                unknownFields: UnknownFields = UnknownFields()) {
        self.name = name
        self.value = value
        self.docString = docString
        self.refAttrName = refAttrName
        self.unknownFields = unknownFields
    }

    /// The value decoded as UTF-8 when it is a STRING attribute.
    public var stringValue: String? {
        if case .string(let b) = value { return String(decoding: b, as: UTF8.self) }
        return nil
    }
}
