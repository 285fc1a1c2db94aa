/// An error from compiling or running a plan: what went wrong and where (a node, an input).
public struct RuntimeError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Hashable, Sendable {
        /// An op, attribute value or dtype the runtime does not implement.
        case unsupported
        /// The model is inconsistent: shapes that do not broadcast, bad attribute values, etc.
        case invalidModel
        /// A node needs the value of `inputName` at compile time (e.g. Reshape's `shape`) and it
        /// is a graph input whose value was not supplied.
        case needsValue
        /// Inputs given to `run` do not match the plan (count, dtype, shape, pinned value).
        case badInput
        /// A configured `ResourceLimits` value (tensor elements, constant bytes, planned
        /// activation memory, ...) would be exceeded.
        case limitExceeded
    }

    public var kind: Kind
    public var location: String
    public var message: String
    /// For `.needsValue`: the graph input whose value the compiler needs.
    public var inputName: String?

    public init(_ kind: Kind, at location: String, _ message: String, inputName: String? = nil) {
        self.kind = kind
        self.location = location
        self.message = message
        self.inputName = inputName
    }

    public var description: String { location.isEmpty ? message : "\(location): \(message)" }
}
