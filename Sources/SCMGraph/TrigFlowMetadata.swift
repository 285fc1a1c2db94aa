import Foundation

/// The `scm.*` metadata of a TrigFlow model file (the model-file contract in schemas/README.md).
public struct TrigFlowMetadata: Sendable {
    /// What output 0 is.
    public enum Parameterization: String, Sendable {
        /// f(x, t) = cos(t) x - sigma_d sin(t) F(x / sigma_d, t).
        case consistency
        /// F(x / sigma_d, t); the sampler applies the consistency wrapper.
        case velocity
    }

    /// `scm.parameterization` (default `consistency`).
    public var parameterization: Parameterization
    /// `scm.sigma_data`: the data's standard deviation, the noise scale.
    public var sigmaData: Float
    /// `scm.t_max`: the first sampling time, in (0, pi/2).
    public var tMax: Float
    /// Stored schedules by step count (`scm.schedule.N`).
    public var schedules: [Int: [Float]]
    /// `scm.data_range`: the data interval that maps to pixel values 0...255.
    public var dataRange: (Float, Float)?
    /// `scm.sample_shape`: one sample's shape without the batch dimension.
    public var sampleShape: [Int]?

    /// Reads and checks the metadata; `sigmaData`/`tMax` override or supply missing entries.
    public init(_ model: Model, sigmaData: Float? = nil, tMax: Float? = nil) throws {
        func err(_ key: String, _ msg: String) -> ModelError { ModelError(.invalidModel, at: "metadata '\(key)'", msg) }
        func number(_ key: String) throws -> Float? {
            guard let s = model.metadataValue(key) else { return nil }
            guard let v = Float(s.trimmingCharacters(in: .whitespaces)), v.isFinite else { throw err(key, "'\(s)' is not a finite number") }
            return v
        }
        let p = model.metadataValue("scm.parameterization") ?? "consistency"
        guard let param = Parameterization(rawValue: p) else { throw err("scm.parameterization", "'\(p)' is not 'consistency' or 'velocity'") }
        parameterization = param
        guard let sd = try sigmaData ?? number("scm.sigma_data") else {
            throw err("scm.sigma_data", "is missing (give the model's sigma_data)")
        }
        guard sd > 0 else { throw err("scm.sigma_data", "must be positive, is \(sd)") }
        self.sigmaData = sd
        guard let tm = try tMax ?? number("scm.t_max") else { throw err("scm.t_max", "is missing (give the model's t_max)") }
        guard tm > 0 && tm < Float.pi / 2 else { throw err("scm.t_max", "must lie in (0, pi/2), is \(tm)") }
        self.tMax = tm
        schedules = [:]
        for e in model.metadata where e.key.hasPrefix("scm.schedule.") {
            guard let n = Int(e.key.dropFirst("scm.schedule.".count)), n >= 1 else { continue }
            schedules[n] = try Self.parseSchedule(e.value, steps: n, tMax: tm, source: "metadata '\(e.key)'")
        }
        if let r = model.metadataValue("scm.data_range") {
            let parts = r.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 2, let lo = parts[0], let hi = parts[1], lo.isFinite, hi.isFinite, lo < hi else {
                throw err("scm.data_range", "'\(r)' is not 'low,high' with low < high")
            }
            dataRange = (lo, hi)
        }
        if let s = model.metadataValue("scm.sample_shape") {
            let dims = s.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !dims.isEmpty, dims.allSatisfy({ ($0 ?? 0) >= 1 && ($0 ?? 0) <= 1 << 20 }) else {
                throw err("scm.sample_shape", "'\(s)' is not a list of positive sizes")
            }
            sampleShape = dims.map { $0! }
        }
    }

    /// Parses a comma-separated schedule: `steps` decreasing times in (0, pi/2), the first `tMax`
    /// (within 1e-5).
    public static func parseSchedule(_ text: String, steps: Int? = nil, tMax: Float, source: String = "schedule") throws -> [Float] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Float($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil && $0!.isFinite }) else {
            throw ModelError(.invalidModel, at: source, "'\(text)' is not a comma-separated list of numbers")
        }
        let ts = parts.map { $0! }
        try checkSchedule(ts, steps: steps, tMax: tMax, source: source)
        return ts
    }

    /// Throws unless `times` is a schedule: `steps` (when given) decreasing times above 0, the
    /// first `tMax` (within 1e-5). Errors name `source`.
    public static func checkSchedule(_ times: [Float], steps: Int? = nil, tMax: Float, source: String = "schedule") throws {
        if let steps, times.count != steps { throw ModelError(.invalidModel, at: source, "lists \(times.count) times for \(steps) steps") }
        guard let first = times.first, let last = times.last else { throw ModelError(.invalidModel, at: source, "lists no times") }
        guard abs(first - tMax) <= 1e-5 else { throw ModelError(.invalidModel, at: source, "must start at t_max = \(tMax), starts at \(first)") }
        guard zip(times, times.dropFirst()).allSatisfy({ $0 > $1 }), last > 0 else {
            throw ModelError(.invalidModel, at: source, "times must decrease and stay above 0: \(times)")
        }
    }

    /// The schedule for `steps` steps: the stored one, or `defaultSchedule(steps:tMax:)`.
    public func schedule(steps: Int) -> [Float] {
        if let s = schedules[steps] { return s }
        return Self.defaultSchedule(steps: steps, tMax: tMax)
    }

    /// The default rule for a step count the model stores no schedule for:
    /// t_i = t_max sqrt((N - i) / N) for i = 0..<N, computed in double and rounded to float.
    ///
    /// For N = 2 it gives t_max, 1.106 (with t_max = atan(80 / 0.5)), the sCM paper's two-step
    /// choice t = 1.1; larger N spend more steps at high noise than uniform spacing in t would.
    /// It is a rule of thumb, not tuned per model: store tuned schedules as `scm.schedule.N`.
    public static func defaultSchedule(steps: Int, tMax: Float) -> [Float] {
        (0..<max(steps, 0)).map { Float(Double(tMax) * (Double(steps - $0) / Double(steps)).squareRoot()) }
    }

    /// The schedule a user asked for: `text` (comma-separated times, checked against `steps` and
    /// t_max; errors name `source`) when given, else `schedule(steps:)`.
    public func schedule(steps: Int, override text: String?, source: String = "schedule") throws -> [Float] {
        guard let text else { return schedule(steps: steps) }
        return try Self.parseSchedule(text, steps: steps, tMax: tMax, source: source)
    }
}
