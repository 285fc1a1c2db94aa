/// Fields of a protobuf message that our schema does not name, kept verbatim.
///
/// ONNX defines more than scm reads (subgraph attributes, sparse tensors, training info,
/// model-local functions, ...). The loader keeps each such field's bytes on the IR object it
/// belongs to, and the writer emits them unchanged, so a load/save round trip loses nothing.
public struct UnknownFields: Hashable, Sendable {
    /// One field as it appeared on the wire.
    public struct Field: Hashable, Sendable {
        /// The field number.
        public var number: UInt32
        /// The protobuf wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
        public var wireType: UInt8
        /// The payload: the varint's bytes, the fixed value's bytes, or the delimited bytes
        /// without their length prefix.
        public var data: [UInt8]

        public init(number: UInt32, wireType: UInt8, data: [UInt8]) {
            self.number = number
            self.wireType = wireType
            self.data = data
        }
    }

    public var fields: [Field]

    public init(_ fields: [Field] = []) { self.fields = fields }

    public var isEmpty: Bool { fields.isEmpty }

    /// The distinct field numbers present, in order of first appearance.
    public var numbers: [UInt32] {
        var seen = Set<UInt32>()
        return fields.compactMap { seen.insert($0.number).inserted ? $0.number : nil }
    }
}
