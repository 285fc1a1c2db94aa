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
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: Data(body)) } catch {
            throw ServiceError(400, field: "body", "is not JSON: \((error as NSError).userInfo[NSDebugDescriptionErrorKey] ?? error.localizedDescription)")
        }
        guard let o = object as? [String: Any] else { throw ServiceError(400, field: "body", "must be a JSON object") }
        if let unknown = o.keys.filter({ !fields.contains($0) }).sorted().first {
            throw ServiceError(400, field: unknown, "is not a field (model, steps, count, seed, precision, format, nrow)")
        }
        func integer(_ key: String, _ def: Int?, _ range: ClosedRange<Int>) throws -> Int? {
            guard let v = o[key] else { return def }
            // JSON true/false arrive as NSNumber too (of a boolean class, objCType "c"): not integers here.
            let boolean = String(describing: type(of: v)).contains("Boolean")
            guard let n = v as? NSNumber, !boolean else {
                throw ServiceError(400, field: key, "must be an integer, is \(boolean ? "a boolean" : "\(v)")")
            }
            let d = n.doubleValue
            guard d.isFinite, d == d.rounded(), abs(d) < 9.0e15, let i = Int(exactly: d) else {
                throw ServiceError(400, field: key, "must be an integer, is \(v)")
            }
            guard range.contains(i) else { throw ServiceError(400, field: key, "must lie in \(range.lowerBound)...\(range.upperBound), is \(i)") }
            return i
        }
        func string(_ key: String, _ def: String?) throws -> String? {
            guard let v = o[key] else { return def }
            guard let s = v as? String else { throw ServiceError(400, field: key, "must be a string, is \(v)") }
            return s
        }
        let names = registry.entries.keys.sorted()
        let model: String
        if let m = try string("model", nil) {
            guard registry.entries[m] != nil else { throw ServiceError(400, field: "model", "'\(m)' is not loaded (loaded: \(names.joined(separator: ", ")))") }
            model = m
        } else if names.count == 1, let only = names.first {
            model = only
        } else {
            throw ServiceError(400, field: "model", "is required: several models are loaded (\(names.joined(separator: ", ")))")
        }
        let steps = try integer("steps", 2, 1...1000) ?? 2
        guard c.steps.contains(steps) else {
            throw ServiceError(400, field: "steps", "\(steps) steps are not served (served: \(c.steps.map(String.init).joined(separator: ", ")))")
        }
        let count = try integer("count", 1, 1...c.maxCount) ?? 1
        let seed = try integer("seed", 0, 0...Int.max) ?? 0
        let p = try string("precision", "fp32") ?? "fp32"
        guard let precision = Precision(rawValue: p), c.precisions.contains(precision) else {
            throw ServiceError(400, field: "precision", "'\(p)' is not served (served: \(c.precisions.map(\.rawValue).joined(separator: ", ")))")
        }
        let f = try string("format", "png") ?? "png"
        guard let format = Format(rawValue: f) else { throw ServiceError(400, field: "format", "'\(f)' is not png or npy") }
        let nrow = try integer("nrow", nil, 1...c.maxCount)
        if nrow != nil && format != .png { throw ServiceError(400, field: "nrow", "applies to format png") }
        if format == .png, let e = registry.entries[model] {
            do { try Samples.checkPNG(sampleShape: e.model.sampleShape, dataRange: e.model.metadata.dataRange, perSample: false) } catch {
                throw ServiceError(400, field: "format", "png: \(error.message) (model '\(model)')")
            }
        }
        return SampleRequest(model: model, steps: steps, count: count, seed: UInt64(seed), precision: precision, format: format, nrow: nrow)
    }
}
