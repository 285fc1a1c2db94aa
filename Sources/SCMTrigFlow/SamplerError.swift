import SCMGraph
import SCMOptimize
import SCMRuntime

/// An error from sampling: what went wrong and where (a metadata key, a flag, a file, a node).
///
/// Errors of the layers below (model loading, compilation, optimization) arrive wrapped, with
/// their location and message kept.
public struct SamplerError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The family of problem.
    public enum Kind: String, Hashable, Sendable {
        /// The model breaks the TrigFlow model-file contract (inputs, outputs, `scm.*` metadata),
        /// or is not a valid model at all.
        case invalidModel
        /// The model uses an op, attribute or data type the runtime does not implement.
        case unsupported
        /// An argument is out of range or inconsistent: step count, batch size, schedule, noise
        /// shape, output format for this kind of data.
        case invalidArgument
        /// A file could not be read or written.
        case io
        /// The model exceeds a configured `ResourceLimits` value (file size, tensor elements,
        /// constant bytes, graph depth, planned activation memory for the batch, ...).
        case limitExceeded
    }

    /// The family of problem.
    public var kind: Kind
    /// Where: a metadata key, an option, a file path, a node.
    public var location: String
    /// What is wrong.
    public var message: String

    /// An error of `kind` at `location`.
    public init(_ kind: Kind, at location: String, _ message: String) {
        self.kind = kind
        self.location = location
        self.message = message
    }

    /// `<where>: <what>`.
    public var description: String { location.isEmpty ? message : "\(location): \(message)" }

    /// `error` as a sampler error: errors of the model, runtime and optimizer layers keep their
    /// location and message under the closest kind.
    public init(wrapping error: any Error) {
        switch error {
        case let e as SamplerError:
            self = e
        case let e as ModelError:
            let kind: Kind = switch e.kind {
            case .io: .io
            case .unsupported: .unsupported
            case .invalidArgument: .invalidArgument
            case .limitExceeded: .limitExceeded
            default: .invalidModel
            }
            self.init(kind, at: e.location, e.message)
        case let e as RuntimeError:
            let kind: Kind = switch e.kind {
            case .unsupported: .unsupported
            case .badInput: .invalidArgument
            case .limitExceeded: .limitExceeded
            case .invalidModel, .needsValue: .invalidModel
            }
            self.init(kind, at: e.location, e.message)
        case let e as OptimizeError:
            self.init(.invalidModel, at: "optimizer", e.description)
        default:
            self.init(.invalidModel, at: "", String(describing: error))
        }
    }

    /// Runs `body`, turning any error it throws into a `SamplerError`.
    static func wrap<T>(_ body: () throws -> T) throws(SamplerError) -> T {
        do { return try body() } catch { throw SamplerError(wrapping: error) }
    }
}
