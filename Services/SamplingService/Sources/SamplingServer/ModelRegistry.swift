import Foundation
import SCM

/// The models a server holds, each with one sampler per (step count, precision), compiled at
/// start for every batch size a coalesced batch can have (the sampler rounds a batch up to a
/// power of two or to whole chunks, so the plans are those of log2(maxBatch) + 1 sizes).
public final class ModelRegistry: Sendable {
    public struct Entry: Sendable {
        public let name: String
        public let path: String
        public let model: TrigFlowModel
        /// The step counts served for this model: the configured ones, except that a multistep
        /// consistency model (`scm.segments`) samples only in its segment count.
        public let steps: [Int]
        /// Keyed by "steps/precision".
        let samplers: [String: Sampler]
        /// One batcher per sampler.
        let batchers: [String: Batcher]
    }

    public let entries: [String: Entry]
    public let configuration: ServerConfiguration
    /// Files of the `--models` folders left out because they are not TrigFlow models (their
    /// `scm.format` is another, or missing), with the reason; a file named itself must load.
    public let skipped: [String]
    /// Files of the `--models` folders that are TrigFlow models but could not be served (unreadable,
    /// outside the contract, failing to compile), with the reason: listed by `GET /v1/models`.
    public let unavailable: [(path: String, reason: String)]

    /// The model files named by `paths` (files, or folders of `*.onnx` files, in name order), each
    /// with whether it came from a folder.
    public static func files(_ paths: [String]) throws -> [(path: String, inFolder: Bool)] {
        var out: [(path: String, inFolder: Bool)] = []
        for p in paths {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else {
                throw ServiceError(0, field: "--models", "'\(p)' does not exist")
            }
            if isDir.boolValue {
                let names = try FileManager.default.contentsOfDirectory(atPath: p).filter { $0.hasSuffix(".onnx") }.sorted()
                out += names.map { ((p as NSString).appendingPathComponent($0), true) }
            } else {
                out.append((p, false))
            }
        }
        guard !out.isEmpty else { throw ServiceError(0, field: "--models", "no model files in \(paths.joined(separator: ", "))") }
        return out
    }

    static func key(steps: Int, precision: Precision) -> String { "\(steps)/\(precision.rawValue)" }

    /// The configured step counts that `model` samples: all of them, or for a multistep
    /// consistency model its one count (segments + 1), which must be among them.
    static func servedSteps(_ model: TrigFlowModel, configured: [Int], path: String) throws -> [Int] {
        guard model.metadata.segments != nil else { return configured }
        let own = model.metadata.defaultSteps
        guard configured.contains(own) else {
            throw ServiceError(0, field: "--steps", "\(path) is a multistep consistency model (scm.segments \(model.metadata.segmentsText)): it samples in exactly \(own) steps, which --steps \(configured.map(String.init).joined(separator: ",")) does not list")
        }
        return [own]
    }

    public init(_ c: ServerConfiguration, metrics: ServiceMetrics) throws {
        configuration = c
        var entries: [String: Entry] = [:]
        var skipped: [String] = [], unavailable: [(path: String, reason: String)] = []
        let admission = Admission(limit: c.maxPendingWork)
        for (path, inFolder) in try Self.files(c.models) {
            let name = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
            guard entries[name] == nil else { throw ServiceError(0, field: "--models", "two models are named '\(name)'") }
            do {
                guard let entry = try Self.load(path, name: name, inFolder: inFolder, c, metrics: metrics, admission: admission,
                                                skipped: &skipped) else { continue }
                entries[name] = entry
            } catch let e as ServiceError where inFolder && !c.strictModels {
                // One bad file of a folder does not keep the others from being served.
                unavailable.append((path, e.message))
            }
        }
        guard !entries.isEmpty else {
            let why = (skipped + unavailable.map { "\($0.path): \($0.reason)" }).joined(separator: "; ")
            throw ServiceError(0, field: "--models", "no TrigFlow models in \(c.models.joined(separator: ", ")) (\(why))")
        }
        self.entries = entries
        self.skipped = skipped
        self.unavailable = unavailable
    }

    /// The entry of the model file at `path` with its samplers compiled; nil for a file of a
    /// folder that is not a TrigFlow model (recorded in `skipped`).
    static func load(_ path: String, name: String, inFolder: Bool, _ c: ServerConfiguration, metrics: ServiceMetrics,
                     admission: Admission, skipped: inout [String]) throws -> Entry? {
        // Loaded once: the folder check reads its metadata, the contract check the same model.
        let file: Model
        do { file = try ModelFile.load(path: path) } catch {
            throw ServiceError(0, field: "--models", "\(path): \(error)")
        }
        // A folder may hold other models (a classifier, a foreign network): skipped, said at start.
        let format = file.metadataValue("scm.format")
        if inFolder, !(format ?? "").hasPrefix("trigflow/") {
            skipped.append("\(path) (scm.format \(format.map { "'\($0)'" } ?? "missing"): not a TrigFlow model)")
            return nil
        }
        let model: TrigFlowModel
        do { model = try TrigFlowModel(file) } catch {
            throw ServiceError(0, field: "--models", "\(path): \(error)")
        }
        let served = try Self.servedSteps(model, configured: c.steps, path: path)
        var samplers: [String: Sampler] = [:], batchers: [String: Batcher] = [:]
        for steps in served {
            for precision in c.precisions {
                let sampler: Sampler
                do {
                    sampler = try model.sampler(steps: steps, options: .init(batch: c.maxBatch, threads: c.threads, precision: precision))
                    // Every count a batch can hold (their plans are few: see `batchSizes`), unless
                    // compiled lazily by the first batch of each size.
                    if !c.lazyCompile { for n in 1...c.maxBatch { try sampler.prepare(count: n) } }
                } catch {
                    throw ServiceError(0, field: "--models", "\(path), \(steps) steps, \(precision.rawValue): \(error)")
                }
                let k = Self.key(steps: steps, precision: precision)
                samplers[k] = sampler
                batchers[k] = Batcher(sampler: sampler, configuration: c, metrics: metrics, admission: admission, label: "\(name) \(k)")
            }
        }
        return Entry(name: name, path: path, model: model, steps: served, samplers: samplers, batchers: batchers)
    }

    /// The `GET /v1/models` description of every model: its contract metadata and what is served.
    public func describe() -> [[String: Any]] {
        entries.keys.sorted().compactMap { name in
            guard let e = entries[name] else { return nil }
            let m = e.model.metadata
            var d: [String: Any] = [
                "name": name,
                "parameterization": m.parameterization.rawValue,
                "sigma_data": Double(m.sigmaData),
                "t_max": Double(m.tMax),
                "sample_shape": e.model.sampleShape,
                "steps": e.steps,
                "precisions": configuration.precisions.map(\.rawValue),
                "formats": (try? Samples.checkPNG(sampleShape: e.model.sampleShape, dataRange: m.dataRange, perSample: false)) != nil
                    ? ["png", "npy"] : ["npy"],
                "max_count": configuration.maxCount,
            ]
            if let r = m.dataRange { d["data_range"] = [Double(r.0), Double(r.1)] }
            var schedules: [String: [Double]] = [:]
            for s in e.steps {
                if let t = try? m.schedule(steps: s) { schedules[String(s)] = t.map(Double.init) }
            }
            d["schedules"] = schedules
            for key in ["scm.dataset", "scm.classes", "scm.training"] {
                if let v = e.model.model.metadataValue(key) { d[String(key.dropFirst(4))] = v }
            }
            return d
        }
    }
}
