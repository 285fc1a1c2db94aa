import Foundation
import SCM

/// A parsed `POST /v1/samples` body: `{model, steps, count, seed, precision, format, nrow}`.
/// Every field is checked by name and type; unknown fields are refused (a typo would otherwise
/// be silently ignored).
struct SampleRequest: Sendable {
    enum Format: String, Sendable { case png, npy }

    var model: String
    var steps: Int
    var count: Int
    var seed: UInt64
    var precision: Precision
    var format: Format
    var nrow: Int?

    static let fields: Set<String> = ["model", "steps", "count", "seed", "precision", "format", "nrow"]

    static func parse(_ body: [UInt8], registry: ModelRegistry) throws -> SampleRequest {
        let c = registry.configuration
        let object: JSONValue
        do { object = try JSONValue.parse(body) } catch let e as JSONValue.DuplicateKey {
            throw ServiceError(400, field: e.key, "is given twice")
        } catch {
            throw ServiceError(400, field: "body", "is not JSON: \(error)")
        }
        guard case .object(let o) = object else { throw ServiceError(400, field: "body", "must be a JSON object") }
        if let unknown = o.keys.filter({ !fields.contains($0) }).sorted().first {
            throw ServiceError(400, field: unknown, "is not a field (model, steps, count, seed, precision, format, nrow)")
        }
        func integer(_ key: String, _ def: Int?, _ range: ClosedRange<Int>) throws -> Int? {
            guard let v = o[key] else { return def }
            guard let n = v.integer else { throw ServiceError(400, field: key, "must be an integer, is \(v)") }
            guard !n.negative, let i = Int(exactly: n.magnitude), range.contains(i) else {
                throw ServiceError(400, field: key, "must lie in \(range.lowerBound)...\(range.upperBound), is \(v)")
            }
            return i
        }
        func seedValue() throws -> UInt64 {
            guard let v = o["seed"] else { return 0 }
            guard let n = v.integer else { throw ServiceError(400, field: "seed", "must be an integer, is \(v)") }
            guard !n.negative else { throw ServiceError(400, field: "seed", "must lie in 0...\(UInt64.max), is \(v)") }
            return n.magnitude
        }
        func string(_ key: String, _ def: String?) throws -> String? {
            guard let v = o[key] else { return def }
            guard case .string(let s) = v else { throw ServiceError(400, field: key, "must be a string, is \(v)") }
            return s
        }
        let names = registry.entries.keys.sorted()
        let model: String, entry: ModelRegistry.Entry
        if let m = try string("model", nil) {
            guard let e = registry.entries[m] else { throw ServiceError(400, field: "model", "'\(m)' is not loaded (loaded: \(names.joined(separator: ", ")))") }
            (model, entry) = (m, e)
        } else if names.count == 1, let only = names.first, let e = registry.entries[only] {
            (model, entry) = (only, e)
        } else {
            throw ServiceError(400, field: "model", "is required: several models are loaded (\(names.joined(separator: ", ")))")
        }
        // scm-run's default: 2 steps, a multistep model's own count.
        let served = entry.steps, byDefault = entry.model.metadata.defaultSteps
        let steps = try integer("steps", byDefault, 1...1000) ?? byDefault
        guard served.contains(steps) else {
            throw ServiceError(400, field: "steps", "\(steps) steps are not served for '\(model)' (served: \(served.map(String.init).joined(separator: ", ")))")
        }
        let count = try integer("count", 1, 1...c.maxCount) ?? 1
        let seed = try seedValue()
        let p = try string("precision", "fp32") ?? "fp32"
        guard let precision = Precision(rawValue: p), c.precisions.contains(precision) else {
            throw ServiceError(400, field: "precision", "'\(p)' is not served (served: \(c.precisions.map(\.rawValue).joined(separator: ", ")))")
        }
        let f = try string("format", "png") ?? "png"
        guard let format = Format(rawValue: f) else { throw ServiceError(400, field: "format", "'\(f)' is not png or npy") }
        let nrow = try integer("nrow", nil, 1...c.maxCount)
        if nrow != nil && format != .png { throw ServiceError(400, field: "nrow", "applies to format png") }
        if format == .png {
            do { try Samples.checkPNG(sampleShape: entry.model.sampleShape, dataRange: entry.model.metadata.dataRange, perSample: false) } catch {
                throw ServiceError(400, field: "format", "png: \(error.message) (model '\(model)')")
            }
        }
        return SampleRequest(model: model, steps: steps, count: count, seed: seed, precision: precision, format: format, nrow: nrow)
    }
}
