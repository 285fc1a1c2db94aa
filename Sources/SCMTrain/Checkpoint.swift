import Foundation
import SCMGraph
import SCMRuntime
import SCMTrigFlow

/// A training checkpoint (format `scm-checkpoint/1`, specified in `schemas/README.md`): an ONNX
/// ModelProto file holding the training network (inputs x, t; outputs F, logvar) with the current
/// parameters as its initializers, each parameter's Adam moments and EMA as further initializers
/// named `adam_m/<name>`, `adam_v/<name>`, `ema/<name>`, and metadata:
/// `scm.checkpoint` = `scm-checkpoint/1`, `scm.train.config` (the `TrainConfig` as JSON),
/// `scm.train.step` (steps taken). Every random draw of training is keyed by (seed, step), so the
/// step count is the data-order and noise-generator state. Netron and onnxruntime open the file
/// as the training network with its current (not EMA) weights.
public struct Checkpoint: Sendable {
    public var config: TrainConfig
    public var step: Int
    /// Parameters, moments and EMA by the training session's state names (`p`, `p_adam_m`,
    /// `p_adam_v`, `p_ema`).
    public var state: [String: Tensor]
    /// The trained parameters' names.
    public var parameters: [String]

    public static let metadataKey = TrigFlowMetadata.Key.checkpoint, configKey = "scm.train.config", stepKey = "scm.train.step"

    /// Whether `model` is a checkpoint.
    public static func isCheckpoint(_ model: Model) -> Bool { model.metadataValue(metadataKey) != nil }

    /// Writes the checkpoint atomically (temporary file, fsync, rename).
    public func save(to path: String) throws {
        var network = try Networks.build(config.network, seed: config.seed, parameters: state, logvar: config.weightingHead)
        let suffix = TrainingSession.momentSuffixes
        for p in parameters {
            for (prefix, s) in [("adam_m/", suffix.m), ("adam_v/", suffix.v), ("ema/", suffix.ema)] {
                guard var t = state[p + s] else { continue }
                t.meta.name = prefix + p
                network.graph.initializers.append(t)
            }
        }
        network.metadata = [MetadataEntry(Self.metadataKey, SCMTrainInfo.checkpointFormat), MetadataEntry(Self.configKey, try config.json()),
                            MetadataEntry(Self.stepKey, String(step))]
        network.producerName = "scm-train"
        try ModelFile.save(network, to: path)
    }

    /// Reads a checkpoint, checking its format, configuration and tensors.
    public static func load(path: String) throws -> Checkpoint {
        let model = try ModelFile.load(path: path)
        return try Checkpoint(model, source: path)
    }

    public init(config: TrainConfig, step: Int, state: [String: Tensor], parameters: [String]) {
        self.config = config
        self.step = step
        self.state = state
        self.parameters = parameters
    }

    init(_ model: Model, source: String) throws {
        guard let format = model.metadataValue(Self.metadataKey) else {
            throw TrainError(at: source, "is not a training checkpoint (no '\(Self.metadataKey)' metadata)")
        }
        guard format == SCMTrainInfo.checkpointFormat else {
            throw TrainError(at: source, "is a checkpoint of format '\(format)'; this program reads '\(SCMTrainInfo.checkpointFormat)'")
        }
        guard let json = model.metadataValue(Self.configKey) else { throw TrainError(at: source, "has no '\(Self.configKey)'") }
        config = try TrainConfig.from(json: json, source: source)
        guard let s = model.metadataValue(Self.stepKey), let n = Int(s), n >= 0 else {
            throw TrainError(at: source, "'\(Self.stepKey)' is missing or not a step count")
        }
        step = n
        // The network's own parameters, as the configuration builds them.
        let reference = try Networks.build(config.network, seed: config.seed, logvar: config.weightingHead)
        let byName = Dictionary(model.graph.initializers.map { ($0.meta.name, $0) }, uniquingKeysWith: { a, _ in a })
        var state: [String: Tensor] = [:]
        var names: [String] = []
        let suffix = TrainingSession.momentSuffixes
        for p in reference.graph.initializers where p.dtype == .float {
            let name = p.meta.name
            guard let v = byName[name], v.shape == p.shape, v.dtype == .float else {
                throw TrainError(at: source, "parameter '\(name)' is missing or is not float \(p.shape): the file does not match its configuration")
            }
            names.append(name)
            state[name] = v
            for (prefix, s) in [("adam_m/", suffix.m), ("adam_v/", suffix.v), ("ema/", suffix.ema)] {
                guard let t = byName[prefix + name] else {
                    if prefix == "ema/" && config.emaDecay == 0 { continue }
                    throw TrainError(at: source, "'\(prefix + name)' is missing")
                }
                guard t.shape == p.shape, t.dtype == .float else { throw TrainError(at: source, "'\(prefix + name)' is not float \(p.shape)") }
                state[name + s] = t
            }
        }
        for (name, t) in state where t.scalars(as: Float.self)?.contains(where: { !$0.isFinite }) ?? true {
            throw TrainError(at: source, "'\(name)' holds a value that is not finite")
        }
        self.state = state
        parameters = names
    }

    /// The EMA weights (the current ones without EMA) by parameter name.
    public var exportWeights: [String: Tensor] {
        var out: [String: Tensor] = [:]
        for p in parameters { out[p] = state[p + TrainingSession.momentSuffixes.ema] ?? state[p] }
        return out
    }
}
