/// The library's error: what is wrong (`message`), where (`location`: a file and byte offset, a
/// node, a metadata key, an argument) and its family (`kind`), one shape across every module.
/// Errors of a lower layer pass up unchanged, so their kind survives (a model file that uses an op
/// the runtime lacks is `.unsupported` whether loading, optimizing, compiling or sampling found it).
///
/// `description` reads `<where>: <what>`, e.g.
/// `node 'conv1' (Conv, #3): input 'w' is not defined by a graph input, initializer or earlier node`.
/// The executables map kinds to exit codes and locations to their flags; the library never names a flag.
public struct SCMError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The family of problem, for code that reacts to errors (tests, tools choosing exit codes,
    /// the service choosing HTTP statuses).
    public enum Kind: String, Hashable, Sendable {
        /// A file could not be read or written.
        case io
        /// A configured limit (file size, node count, rank, tensor elements, planned memory, ...)
        /// was exceeded.
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
        /// The model breaks a rule: of ONNX (shapes that do not broadcast, bad attribute values),
        /// or of the TrigFlow model-file contract (inputs, outputs, `scm.*` metadata).
        case invalidModel
        /// The model is valid, but uses an op, attribute or data type this program does not implement.
        case unsupported
        /// A value the caller gave (not the file) is out of range or inconsistent: an override,
        /// a step count, a schedule, a noise shape, an output format for this kind of data.
        case invalidArgument
        /// A node needs the value of `inputName` at compile time (e.g. Reshape's `shape`) and it
        /// is a graph input whose value was not supplied.
        case needsValue
        /// Inputs given to a plan's `run` do not match it (count, dtype, shape, pinned value).
        case badInput
        /// The model runs, but a derivative was asked through an op (or an attribute of it) that
        /// has no forward- or reverse-mode rule here.
        case notDifferentiable
        /// The caller stopped the work (a cancelled task, a progress handler that said stop).
        case cancelled
    }

    public var kind: Kind
    /// Where: a file and byte offset, a protobuf field path, a node, a tensor, a metadata key.
    public var location: String
    /// What is wrong.
    public var message: String
    /// For `.needsValue`: the graph input whose value the compiler needs.
    public var inputName: String?

    public init(_ kind: Kind, at location: String, _ message: String, inputName: String? = nil) {
        self.kind = kind
        self.location = location
        self.message = message
        self.inputName = inputName
    }

    /// A caller's mistake (`.invalidArgument`) at `location`: a setting, a file given, a step.
    public init(at location: String, _ message: String) {
        self.init(.invalidArgument, at: location, message)
    }

    /// A model the optimizer cannot transform (`.invalidModel`), located in the message.
    public init(_ message: String) {
        self.init(.invalidModel, at: "", message)
    }

    public var description: String { location.isEmpty ? message : "\(location): \(message)" }

    /// `error` as an `SCMError`: itself when it is one, else an `.io` error (the system's errors
    /// the library lets through are file errors) with its description.
    public init(wrapping error: any Error) {
        if let e = error as? SCMError {
            self = e
        } else {
            self.init(.io, at: "", String(describing: error))
        }
    }

    /// Runs `body`, turning any error it throws into an `SCMError`.
    public static func wrap<T>(_ body: () throws -> T) throws(SCMError) -> T {
        do { return try body() } catch { throw SCMError(wrapping: error) }
    }
}

/// Errors of model and tensor files (the same type as every other error of the library).
public typealias ModelError = SCMError
