/// An error about a model or tensor file: what is wrong and where.
///
/// `description` reads `<where>: <what>`, e.g.
/// `node 'conv1' (Conv, #3): input 'w' is not defined by a graph input, initializer or earlier node`.
public struct ModelError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The family of problem, for code that reacts to errors (tests, CLIs choosing exit codes).
    public enum Kind: String, Hashable, Sendable {
        /// The file could not be read or written.
        case io
        /// A configured limit (file size, node count, rank, ...) was exceeded.
        case limitExceeded
        /// The bytes are not a well-formed protobuf message of the expected type.
        case malformedProtobuf
        /// A tensor's dims, data type or payload are inconsistent.
        case invalidTensor
        /// A data type code that ONNX does not define.
        case unknownDataType
        /// A value name defined twice, or empty where a name is required.
        case duplicateName
        /// A node or graph output reads a value nothing defines.
        case undefinedValue
        /// The nodes do not form a directed acyclic graph.
        case cycle
        /// An attribute is malformed.
        case invalidAttribute
        /// External data is missing, out of bounds, or points outside the model's folder.
        case externalData
        /// Any other structural violation of the ONNX model rules.
        case invalidModel
        /// The model is valid, but uses something this program does not support.
        case unsupported
        /// A value the caller gave (not the file) is out of range or inconsistent: an override,
        /// an explicit schedule.
        case invalidArgument
    }

    public var kind: Kind
    /// Where: a file and byte offset, a protobuf field path, a node, a tensor.
    public var location: String
    /// What is wrong.
    public var message: String

    public init(_ kind: Kind, at location: String, _ message: String) {
        self.kind = kind
        self.location = location
        self.message = message
    }

    public var description: String { location.isEmpty ? message : "\(location): \(message)" }
}
