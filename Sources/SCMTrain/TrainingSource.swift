import Foundation
import SCMGraph
import SCMRuntime
import SCMTrigFlow

/// A teacher or a starting point of a run (`--teacher`, `--init`): a training checkpoint, or a
/// model file that `scm-export` wrote from one (or any TrigFlow model with the network's
/// parameter names). A model file carries the EMA weights only: a run started from it begins with
/// fresh optimizer moments and a fresh log-variance (weighting) head.
enum TrainingSource {
    case checkpoint(Checkpoint)
    case model(TrigFlowModel)

    static func load(_ path: String) throws -> TrainingSource {
        let file = try ModelFile.load(path: path)
        if Checkpoint.isCheckpoint(file) { return .checkpoint(try Checkpoint(file, source: path)) }
        do {
            return .model(try TrigFlowModel(file))
        } catch {
            throw SCMError(SCMError(wrapping: error).kind, at: path, "is neither a training checkpoint nor a TrigFlow model: \(error)")
        }
    }

    /// The weights that start a run of `config.network`: a checkpoint's EMA weights, or a model
    /// file's initializers, each parameter of the network (but the log-variance head) present
    /// with its shape.
    static func initialWeights(_ path: String, config: TrainConfig) throws -> [String: Tensor] {
        switch try load(path) {
        case .checkpoint(let ckpt):
            guard ckpt.config.network.hasParameters(of: config.network) else {
                throw TrainError(at: path, "holds another network (\(try Trainer.differences(ckpt.config, config).filter { $0.hasPrefix("network") }.joined(separator: ", "))); the start needs a checkpoint of the same network and data shape")
            }
            return ckpt.exportWeights
        case .model(let model):
            let stored = Dictionary(model.model.graph.initializers.map { ($0.meta.name, $0) }, uniquingKeysWith: { a, _ in a })
            let network = try Networks.build(config.network, seed: config.seed, logvar: false)
            var out: [String: Tensor] = [:]
            for p in network.graph.initializers where p.dtype == .float {
                guard let t = stored[p.meta.name] else {
                    throw TrainError(at: path, "has no parameter '\(p.meta.name)' of the configured network: the start needs a model exported from the same network and data shape")
                }
                guard t.shape == p.shape, t.dtype == .float else {
                    throw TrainError(at: path, "parameter '\(p.meta.name)' has shape \(t.shape), the configured network's is \(p.shape)")
                }
                out[p.meta.name] = t
            }
            return out
        }
    }

    /// The teacher's velocity network as the losses take it: inputs x (already divided by
    /// sigma_d) and t, output F; checked against the student's data shape and sigma_d.
    static func teacherNetwork(_ path: String, config: TrainConfig) throws -> Model {
        switch try load(path) {
        case .checkpoint(let ckpt):
            try check(ckpt, path: path, config: config)
            return try Networks.build(ckpt.config.network, seed: ckpt.config.seed, parameters: ckpt.exportWeights, logvar: false)
        case .model(let model):
            try check(model, path: path, config: config)
            // The file's F reads x itself (F(x / sigma_d, t)); the losses feed x / sigma_d, so the
            // wrapped network multiplies it back first.
            var m = model.model
            let taken = Set(m.graph.nodes.flatMap { $0.inputs + $0.outputs } + m.graph.initializers.map(\.meta.name) + m.graph.inputs.map(\.name))
            var input = "x_over_sigma_data", scale = "teacher_sigma_data"
            while taken.contains(input) { input += "_" }
            while taken.contains(scale) { scale += "_" }
            m.graph.initializers.append(try Tensor(shape: [], scalars: [config.sigmaData], name: scale))
            m.graph.nodes.insert(Node("Mul", inputs: [input, scale], outputs: [model.xName], name: input + "_scale"), at: 0)
            m.graph.inputs[0].name = input
            return m
        }
    }

    /// The teacher as a sampler's model (for CMT's trajectories).
    static func teacherModel(_ path: String, config: TrainConfig) throws -> TrigFlowModel {
        switch try load(path) {
        case .checkpoint(let ckpt):
            try check(ckpt, path: path, config: config)
            return try TrigFlowModel(CheckpointExport.model(ckpt))
        case .model(let model):
            try check(model, path: path, config: config)
            return model
        }
    }

    private static func check(_ ckpt: Checkpoint, path: String, config: TrainConfig) throws {
        guard ckpt.config.objective == .flow else {
            throw TrainError(at: path, "is a \(ckpt.config.objective.rawValue) checkpoint; a teacher is a flow checkpoint or a flow model")
        }
        guard ckpt.config.network.sampleShape == config.network.sampleShape, ckpt.config.sigmaData == config.sigmaData else {
            throw TrainError(at: path, "was trained on samples of shape \(ckpt.config.network.sampleShape) with sigma_d \(ckpt.config.sigmaData); the student has \(config.network.sampleShape) and \(config.sigmaData)")
        }
    }

    private static func check(_ model: TrigFlowModel, path: String, config: TrainConfig) throws {
        guard model.metadata.parameterization == .velocity else {
            throw TrainError(at: path, "is a consistency model; a teacher is a flow (velocity) model")
        }
        guard model.sampleShape == config.network.sampleShape, model.metadata.sigmaData == config.sigmaData else {
            throw TrainError(at: path, "samples shape \(model.sampleShape) with sigma_d \(model.metadata.sigmaData); the student has \(config.network.sampleShape) and \(config.sigmaData)")
        }
        guard model.fixedBatch == nil else { throw TrainError(at: path, "fixes its batch size; a teacher needs a dynamic batch axis") }
    }
}
