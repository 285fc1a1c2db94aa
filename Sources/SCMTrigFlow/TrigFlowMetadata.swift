import Foundation
import SCMGraph

/// The `scm.*` metadata of a TrigFlow model file (the model-file contract in schemas/README.md):
/// its keys, defaults and rules, and the reading and checking of them. Nothing else in the library
/// spells a key.
public struct TrigFlowMetadata: Sendable {
    /// The contract's metadata keys.
    public enum Key {
        public static let format = "scm.format"
        public static let parameterization = "scm.parameterization"
        public static let sigmaData = "scm.sigma_data"
        public static let tMax = "scm.t_max"
        public static let dataRange = "scm.data_range"
        public static let sampleShape = "scm.sample_shape"
        public static let segments = "scm.segments"
        public static let dataset = "scm.dataset"
        public static let classes = "scm.classes"
        public static let training = "scm.training"
        /// Marks a training checkpoint (`scm-checkpoint/1`, schemas/README.md): not a model to sample.
        public static let checkpoint = "scm.checkpoint"
        /// `scm.schedule.N`: the stored schedule of N steps.
        public static let schedulePrefix = "scm.schedule."
        public static func schedule(_ steps: Int) -> String { schedulePrefix + String(steps) }
        /// `scm.specialized.*`: what a per-step specialization fixed (t, batch, step).
        public static let specializedPrefix = "scm.specialized."
        public static func specialized(_ what: String) -> String { specializedPrefix + what }
    }

    /// `scm.format` of a TrigFlow model.
    public static let format = "trigflow/1"

    /// sigma_d when nothing else says: the standard deviation of images scaled to [-1, 1] (sCM's 0.5).
    public static let defaultSigmaData: Float = 0.5

    /// t_max when a model file gives none: atan(sigma_max / sigma_d) with sCM's sigma_max = 80.
    public static func defaultTMax(sigmaData: Float) -> Float { Float(atan(80 / Double(sigmaData))) }

    /// nil when `s` can be sigma_d (finite and positive), else what is wrong with it: the one
    /// statement of that rule, for the library's checks and the tools' flags alike.
    public static func sigmaDataViolation(_ s: Float) -> String? { s.isFinite && s > 0 ? nil : "must be positive, is \(s)" }

    /// nil when `t` is a TrigFlow time (in (0, pi/2)), else what is wrong with it.
    public static func timeViolation(_ t: Float) -> String? { t.isFinite && t > 0 && t < Float.pi / 2 ? nil : "must lie in (0, pi/2), is \(t)" }

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
    /// `scm.t_max`: the first sampling time, in (0, pi/2) (the override when one was given).
    public var tMax: Float
    /// Whether `tMax` differs from the file's `scm.t_max` (an override, or a file without one).
    public var tMaxOverridden: Bool
    /// Stored schedules by step count (`scm.schedule.N`), each checked against the file's own
    /// `scm.t_max`. With an overridden t_max, `schedule(steps:)` refuses those that do not start
    /// at it rather than use times tuned for another t_max.
    public var schedules: [Int: [Float]]
    /// `scm.data_range`: the data interval that maps to pixel values 0...255.
    public var dataRange: (Float, Float)?
    /// `scm.sample_shape`: one sample's shape without the batch dimension.
    public var sampleShape: [Int]?
    /// `scm.segments`: the decreasing segment boundaries of a multistep consistency model, whose
    /// f(x, t) is the PF-ODE's point at the largest boundary below t (else the data). It samples
    /// deterministically in one step per segment, at t_max then each boundary, without fresh
    /// noise. nil: a (one-segment) consistency model or a velocity model.
    public var segments: [Float]?

    /// The step count used when none is asked for: a multistep model's segment count, else 2.
    public var defaultSteps: Int { segments.map { $0.count + 1 } ?? 2 }

    /// The boundaries as `scm.segments` and messages show them (`scheduleText`); empty for a
    /// one-segment model.
    public var segmentsText: String { Self.scheduleText(segments ?? []) }

    /// The message of a missing required entry (callers that know how to supply it, such as a
    /// command-line flag, may replace it).
    public static let missingMessage = "is missing"

    /// Reads and checks the metadata; `sigmaData`/`tMax` override or supply missing entries.
    /// An override out of range is an `.invalidArgument` error located at `sigma_data` / `t_max`
    /// (not at the metadata, which is not to blame).
    public init(_ model: Model, sigmaData: Float? = nil, tMax: Float? = nil) throws {
        func err(_ key: String, _ msg: String) -> ModelError { ModelError(.invalidModel, at: "metadata '\(key)'", msg) }
        let p = model.metadataValue(Key.parameterization) ?? "consistency"
        guard let param = Parameterization(rawValue: p) else { throw err(Key.parameterization, "'\(p)' is not 'consistency' or 'velocity'") }
        parameterization = param
        if let sd = sigmaData {
            if let m = Self.sigmaDataViolation(sd) { throw ModelError(.invalidArgument, at: "sigma_data", m) }
            self.sigmaData = sd
        } else {
            guard let sd = try Self.number(model, Key.sigmaData) else { throw err(Key.sigmaData, Self.missingMessage) }
            if let m = Self.sigmaDataViolation(sd) { throw err(Key.sigmaData, m) }
            self.sigmaData = sd
        }
        let file = try Self.fileTMax(model)
        if let tm = tMax {
            if let m = Self.timeViolation(tm) { throw ModelError(.invalidArgument, at: "t_max", m) }
            self.tMax = tm
        } else {
            guard let tm = file else { throw err(Key.tMax, Self.missingMessage) }
            self.tMax = tm
        }
        tMaxOverridden = file != self.tMax
        schedules = try Self.storedSchedules(model, fileTMax: file)
        if model.metadataValue(Key.segments) != nil, param != .consistency {
            throw err(Key.segments, "applies to the consistency parameterization")
        }
        segments = try Self.storedSegments(model, tMax: self.tMax)
        if let r = model.metadataValue(Key.dataRange) {
            let parts = r.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 2, let lo = parts[0], let hi = parts[1], lo.isFinite, hi.isFinite, lo < hi else {
                throw err(Key.dataRange, "'\(r)' is not 'low,high' with low < high")
            }
            dataRange = (lo, hi)
        }
        if let s = model.metadataValue(Key.sampleShape) {
            let dims = s.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !dims.isEmpty, dims.allSatisfy({ ($0 ?? 0) >= 1 && ($0 ?? 0) <= 1 << 20 }) else {
                throw err(Key.sampleShape, "'\(s)' is not a list of positive sizes")
            }
            sampleShape = dims.map { $0! }
        }
    }

    static func number(_ model: Model, _ key: String) throws -> Float? {
        guard let s = model.metadataValue(key) else { return nil }
        guard let v = Float(s.trimmingCharacters(in: .whitespaces)), v.isFinite else {
            throw ModelError(.invalidModel, at: "metadata '\(key)'", "'\(s)' is not a finite number")
        }
        return v
    }

    /// The file's own `scm.t_max`, checked; nil when absent.
    static func fileTMax(_ model: Model) throws -> Float? {
        guard let tm = try number(model, Key.tMax) else { return nil }
        guard tm > 0 && tm < Float.pi / 2 else { throw ModelError(.invalidModel, at: "metadata '\(Key.tMax)'", "must lie in (0, pi/2), is \(tm)") }
        return tm
    }

    /// The `scm.schedule.N` entries, each checked (against `fileTMax` when the file has one).
    static func storedSchedules(_ model: Model, fileTMax: Float?) throws -> [Int: [Float]] {
        var out: [Int: [Float]] = [:]
        for e in model.metadata where e.key.hasPrefix(Key.schedulePrefix) {
            guard let n = Int(e.key.dropFirst(Key.schedulePrefix.count)), n >= 1 else { continue }
            let source = "metadata '\(e.key)'"
            let times = try parseTimes(e.value, source: source, kind: .invalidModel)
            try checkSchedule(times, steps: n, tMax: fileTMax, source: source, kind: .invalidModel)
            out[n] = times
        }
        return out
    }

    /// The `scm.segments` entry (decreasing times in (0, tMax)), or nil when the file has none.
    static func storedSegments(_ model: Model, tMax: Float) throws -> [Float]? {
        guard let text = model.metadataValue(Key.segments) else { return nil }
        let times = try parseTimes(text, source: "metadata '\(Key.segments)'", kind: .invalidModel)
        guard let first = times.first, first < tMax, zip(times, times.dropFirst()).allSatisfy({ $0 > $1 }), times.allSatisfy({ $0 > 0 }) else {
            throw ModelError(.invalidModel, at: "metadata '\(Key.segments)'", "'\(text)' is not a list of decreasing times in (0, t_max)")
        }
        return times
    }

    /// Throws unless a multistep model's explicit times (`segments` non-nil) are a first time and
    /// then exactly its boundaries.
    static func checkSegmentTimes(_ times: [Float], segments: [Float]?, source: String) throws {
        guard let segments, Array(times.dropFirst()) != segments else { return }
        throw ModelError(.invalidArgument, at: source, "the model is a multistep consistency model: its times after the first are its segment boundaries \(scheduleText(segments)), not \(scheduleText(Array(times.dropFirst())))")
    }

    /// Parses comma-separated finite numbers; errors name `source`.
    public static func parseTimes(_ text: String, source: String = "schedule", kind: ModelError.Kind = .invalidArgument) throws -> [Float] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Float($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil && $0!.isFinite }) else {
            throw ModelError(kind, at: source, "'\(text)' is not a comma-separated list of numbers")
        }
        return parts.map { $0! }
    }

    /// Parses a comma-separated schedule: `steps` decreasing times in (0, pi/2), the first `tMax`
    /// (within 1e-5).
    public static func parseSchedule(_ text: String, steps: Int? = nil, tMax: Float?, source: String = "schedule") throws -> [Float] {
        let ts = try parseTimes(text, source: source)
        try checkSchedule(ts, steps: steps, tMax: tMax, source: source)
        return ts
    }

    /// Throws unless `times` is a schedule: `steps` (when given) decreasing times in (0, pi/2),
    /// the first `tMax` (within 1e-5) when given. Errors name `source`.
    public static func checkSchedule(_ times: [Float], steps: Int? = nil, tMax: Float?, source: String = "schedule",
                                     kind: ModelError.Kind = .invalidArgument) throws {
        if let steps, times.count != steps { throw ModelError(kind, at: source, "lists \(times.count) times for \(steps) steps") }
        guard let first = times.first, let last = times.last else { throw ModelError(kind, at: source, "lists no times") }
        if let tMax {
            guard abs(first - tMax) <= 1e-5 else { throw ModelError(kind, at: source, "must start at t_max = \(tMax), starts at \(first)") }
        }
        guard first < Float.pi / 2, zip(times, times.dropFirst()).allSatisfy({ $0 > $1 }), last > 0 else {
            throw ModelError(kind, at: source, "times must decrease within (0, pi/2): \(times)")
        }
    }

    /// The schedule for `steps` steps: the stored one, or `defaultSchedule(steps:tMax:)`. A stored
    /// schedule that does not start at an overridden t_max is an error (its times were chosen for
    /// the file's t_max): pass the times explicitly instead.
    public func schedule(steps: Int) throws -> [Float] {
        if let segments {
            guard steps == defaultSteps else {
                throw ModelError(.invalidArgument, at: "steps", "the model is a multistep consistency model with \(defaultSteps) segments (scm.segments \(segmentsText)): it samples in exactly \(defaultSteps) steps, not \(steps)")
            }
            return [tMax] + segments
        }
        guard let s = schedules[steps] else { return Self.defaultSchedule(steps: steps, tMax: tMax) }
        if let first = s.first, abs(first - tMax) > 1e-5 {
            throw ModelError(.invalidArgument, at: "metadata '\(Key.schedule(steps))'",
                             "starts at the file's t_max \(first), but t_max is overridden to \(tMax): give the \(steps) times explicitly")
        }
        return s
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
    /// t_max; errors name `source`) when given, else `schedule(steps:)`. The explicit times win
    /// over the file's `scm.schedule.N`; with `steps` nil their count is the step count (2 without).
    public func schedule(steps: Int?, override text: String?, source: String = "schedule") throws -> [Float] {
        guard let text else { return try schedule(steps: steps ?? defaultSteps) }
        let times = try Self.parseSchedule(text, steps: steps, tMax: tMax, source: source)
        try Self.checkSegmentTimes(times, segments: segments, source: source)
        return times
    }

    /// The times of each step for tools that specialize a model per step (`scm-inspect --steps`,
    /// `scm-export optimize --steps`): these need t_max and the schedules only, not sigma_data. `tMax`
    /// overrides or supplies `scm.t_max`; without either, an explicit schedule's first time is
    /// t_max. `steps` nil: the schedule's length (2 without a schedule).
    /// Throws for a training checkpoint of scm-train, given where a model belongs: its output is
    /// the raw training network (the velocity F and a weighting head), not the model the contract
    /// describes, so sampling or specializing it would give wrong pixels, not an error.
    public static func refuseCheckpoint(_ model: Model) throws(SamplerError) {
        guard model.metadataValue(Key.checkpoint) != nil else { return }
        throw SamplerError(.invalidModel, at: "metadata '\(Key.checkpoint)'", "this is a training checkpoint, not a model: export it first (scm-export CKPT MODEL.onnx writes the model of its EMA weights)")
    }

    public static func stepTimes(_ model: Model, steps: Int?, schedule text: String?, tMax: Float? = nil,
                                 source: String = "schedule") throws -> [Float] {
        try refuseCheckpoint(model)
        let file = try fileTMax(model)
        if let tm = tMax, let m = timeViolation(tm) {
            throw ModelError(.invalidArgument, at: "t_max", m)
        }
        let schedules = try storedSchedules(model, fileTMax: file)
        if let text {
            let times = try parseTimes(text, source: source)
            try checkSchedule(times, steps: steps, tMax: tMax ?? file, source: source)
            try checkSegmentTimes(times, segments: storedSegments(model, tMax: times[0]), source: source)
            return times
        }
        guard let tm = tMax ?? file else { throw ModelError(.invalidModel, at: "metadata '\(Key.tMax)'", missingMessage) }
        var meta = TrigFlowMetadata(parameterization: .consistency, sigmaData: 1, tMax: tm, schedules: schedules)
        meta.tMaxOverridden = file != tm
        meta.segments = try storedSegments(model, tMax: tm)
        return try meta.schedule(steps: steps ?? meta.defaultSteps)
    }

    /// `model` with each of `texts` (comma-separated times) stored as `scm.schedule.<count>`,
    /// replacing the entry of that count and keeping the others: how a schedule tuned on samples
    /// becomes the one `scm-run --steps N` uses. Each must start at the file's `scm.t_max` (which
    /// must be present) and decrease within (0, pi/2); two of one count are an error. Returns the
    /// model and the schedules stored, by count.
    public static func storing(schedules texts: [String], in model: Model, source: String = "schedule") throws -> (model: Model, stored: [Int: [Float]]) {
        guard let tm = try fileTMax(model) else {
            throw ModelError(.invalidArgument, at: source, "the model has no scm.t_max to check the schedule against")
        }
        let byCount = try schedulesByCount(texts.map { try parseTimes($0, source: source) }, tMax: tm) { _ in source }
        var m = model
        store(byCount, in: &m.metadata)
        return (m, byCount)
    }

    /// `schedules` keyed by their step count, each checked against `tMax` (`checkSchedule`); two
    /// of one count are an error. `source` names a schedule in errors.
    public static func schedulesByCount(_ schedules: [[Float]], tMax: Float, source: ([Float]) -> String) throws -> [Int: [Float]] {
        var byCount: [Int: [Float]] = [:]
        for times in schedules {
            try checkSchedule(times, tMax: tMax, source: source(times))
            guard byCount[times.count] == nil else {
                throw ModelError(.invalidArgument, at: source(times), "two schedules of \(times.count) steps")
            }
            byCount[times.count] = times
        }
        return byCount
    }

    /// A schedule as `scm.schedule.N` holds it: the times as Swift prints each float (so they read
    /// back bit for bit), comma-separated.
    public static func scheduleText(_ times: [Float]) -> String {
        times.map { String($0) }.joined(separator: ",")
    }

    /// Writes each schedule as `scm.schedule.<count>` (`scheduleText`) into `metadata`: an entry
    /// of that count is replaced where it stands, the others are appended in count order.
    public static func store(_ schedules: [Int: [Float]], in metadata: inout [MetadataEntry]) {
        for (n, times) in schedules.sorted(by: { $0.key < $1.key }) {
            let key = Key.schedule(n)
            let value = scheduleText(times)
            if let i = metadata.firstIndex(where: { $0.key == key }) {
                metadata[i].value = value
            } else {
                metadata.append(MetadataEntry(key, value))
            }
        }
    }

    private init(parameterization: Parameterization, sigmaData: Float, tMax: Float, schedules: [Int: [Float]]) {
        self.parameterization = parameterization
        self.sigmaData = sigmaData
        self.tMax = tMax
        self.tMaxOverridden = false
        self.schedules = schedules
    }
}
