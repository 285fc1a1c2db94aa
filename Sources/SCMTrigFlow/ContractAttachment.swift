import Foundation
import SCMGraph
import SCMRuntime

/// Makes a network exported elsewhere (PyTorch's `torch.onnx.export`, ...) samplable: writes the
/// TrigFlow contract's metadata (schemas/README.md) into it and, for a velocity network that
/// takes its input already divided by sigma_d (sCM's `F(x_t / sigma_d, t)`), puts that division
/// in front, so that `x` is in data units as the contract says. The result is checked against
/// the contract (`TrigFlowModel`) before it is returned.
public enum ContractAttachment {
    private typealias Key = TrigFlowMetadata.Key

    public struct Options: Sendable {
        /// What output 0 is: `velocity` (F) or `consistency` (f = cos t x - sigma_d sin t F).
        public var parameterization: TrigFlowMetadata.Parameterization
        /// sigma_d, the data's standard deviation.
        public var sigmaData: Float
        /// The first sampling time; nil: atan(80 / sigma_d) (sCM's sigma_max of 80).
        public var tMax: Float?
        /// Schedules to store as `scm.schedule.N` (N = the count of times), each starting at t_max.
        public var schedules: [[Float]] = []
        /// `scm.data_range` (low, high), needed for PNG output.
        public var dataRange: (Float, Float)?
        /// Whether the network reads x / sigma_d (true: a division by sigma_d is inserted before it).
        /// nil: true for velocity networks (sCM's convention), false for consistency ones.
        public var scaledInput: Bool?
        /// `scm.dataset`, free text.
        public var dataset: String?
        /// Whether a model that already carries a contract may have it replaced. The fields not
        /// given here are then kept (t_max, the data range, the dataset, the schedules while t_max
        /// stays), and x is taken as already in data units unless `scaledInput` says otherwise.
        /// Without it such a model is refused.
        public var replaceContract = false

        public init(parameterization: TrigFlowMetadata.Parameterization, sigmaData: Float, tMax: Float? = nil,
                    schedules: [[Float]] = [], dataRange: (Float, Float)? = nil, scaledInput: Bool? = nil, dataset: String? = nil,
                    replaceContract: Bool = false) {
            self.replaceContract = replaceContract
            self.parameterization = parameterization
            self.sigmaData = sigmaData
            self.tMax = tMax
            self.schedules = schedules
            self.dataRange = dataRange
            self.scaledInput = scaledInput
            self.dataset = dataset
        }
    }

    /// The keys this writes (an existing entry of the same key is replaced).
    static let keys = [Key.format, Key.parameterization, Key.sigmaData, Key.tMax, Key.dataRange, Key.sampleShape, Key.dataset]

    /// What `attach` changed, for the command line's report.
    public struct Report: Sendable {
        public var tMax: Float
        public var sampleShape: [Int]
        public var scaledInput: Bool
        public var schedules: [Int: [Float]]
    }

    /// The location of the error for a model that already carries a contract.
    public static let existingContract = "contract"

    public static func attach(_ model: Model, _ options: Options) throws(SamplerError) -> (Model, Report) {
        func bad(_ at: String, _ m: String) -> SamplerError { SamplerError(.invalidArgument, at: at, m) }
        let o = try keepingExisting(model, options)
        let tMax = o.tMax ?? TrigFlowMetadata.defaultTMax(sigmaData: o.sigmaData)
        if let m = TrigFlowMetadata.sigmaDataViolation(o.sigmaData) { throw bad("sigma_data", m) }
        if let m = TrigFlowMetadata.timeViolation(tMax) { throw bad("t_max", m) }
        let stored = try SamplerError.wrap {
            try TrigFlowMetadata.schedulesByCount(o.schedules, tMax: tMax) { "schedule \(TrigFlowMetadata.scheduleText($0))" }
        }
        if let r = o.dataRange, !(r.0.isFinite && r.1.isFinite && r.0 < r.1) {
            throw bad("data range", "\(r.0),\(r.1) is not 'low,high' with low < high")
        }
        try model.checkWindowAttributes()
        var m = model
        let inits = Set(m.graph.initializers.map(\.meta.name))
        let inputs = m.graph.inputs.filter { !inits.contains($0.name) }
        guard inputs.count == 2 else {
            throw SamplerError(.invalidModel, at: "graph inputs",
                               "a TrigFlow network has exactly two inputs, x [N, ...] and t [N]; this one has \(inputs.count) (\(inputs.map(\.name).joined(separator: ", ")))")
        }
        let x = inputs[0].name
        var shape: [Int] = []
        if let s = inputs[0].type?.shape, let rest = Array(s.dropFirst()).concrete { shape = rest }
        let scaled = o.scaledInput ?? (o.parameterization == .velocity)
        if scaled {
            // x / sigma_d under a fresh name, read by every node that read x.
            var names = NameAllocator(avoiding: m.graph)
            func fresh(_ base: String) -> String { names.fresh(base) }
            let scaledName = fresh("\(x)_over_sigma_data"), sigma = fresh("scm_sigma_data")
            for i in m.graph.nodes.indices {
                m.graph.nodes[i].inputs = m.graph.nodes[i].inputs.map { $0 == x ? scaledName : $0 }
            }
            if m.graph.outputs.contains(where: { $0.name == x }) {
                throw SamplerError(.invalidModel, at: "graph outputs", "input '\(x)' is also an output")
            }
            let c: Tensor
            do { c = try Tensor(shape: [], scalars: [o.sigmaData], name: sigma) } catch {
                throw SamplerError(.invalidArgument, at: "sigma_data", "\(error)")
            }
            m.graph.initializers.append(c)
            m.graph.nodes.insert(Node("Div", inputs: [x, sigma], outputs: [scaledName], name: fresh("scm_scale_input")), at: 0)
        }
        if shape.isEmpty, let kept = m.metadata.first(where: { $0.key == Key.sampleShape }) {
            shape = kept.value.split(separator: ",").compactMap { Int($0) }
        }
        m.metadata.removeAll { e in keys.contains(e.key) || e.key.hasPrefix(Key.schedulePrefix) }
        m.metadata.append(MetadataEntry(Key.format, TrigFlowMetadata.format))
        m.metadata.append(MetadataEntry(Key.parameterization, o.parameterization.rawValue))
        m.metadata.append(MetadataEntry(Key.sigmaData, String(o.sigmaData)))
        m.metadata.append(MetadataEntry(Key.tMax, String(tMax)))
        TrigFlowMetadata.store(stored, in: &m.metadata)
        if let r = o.dataRange { m.metadata.append(MetadataEntry(Key.dataRange, "\(r.0),\(r.1)")) }
        if !shape.isEmpty { m.metadata.append(MetadataEntry(Key.sampleShape, shape.map(String.init).joined(separator: ","))) }
        if let d = o.dataset { m.metadata.append(MetadataEntry(Key.dataset, d)) }
        // The contract's own check (input ranks and types, output, metadata).
        _ = try TrigFlowModel(m)
        return (m, Report(tMax: tMax, sampleShape: shape, scaledInput: scaled, schedules: stored))
    }

    /// `o`, refused for a model that carries a contract unless it may be replaced, and then with
    /// the contract's fields that `o` does not set.
    static func keepingExisting(_ model: Model, _ o: Options) throws(SamplerError) -> Options {
        var meta: [String: String] = [:]
        for e in model.metadata where meta[e.key] == nil { meta[e.key] = e.value }
        guard meta[Key.format]?.trimmingCharacters(in: .whitespaces) == TrigFlowMetadata.format else { return o }
        let oldTMax = meta[Key.tMax].flatMap { Float($0) }
        guard o.replaceContract else {
            let was = [meta[Key.parameterization].map { "\($0) network" }, meta[Key.sigmaData].map { "sigma_data \($0)" },
                       meta[Key.tMax].map { "t_max \($0)" }].compactMap { $0 }.joined(separator: ", ")
            throw SamplerError(.invalidModel, at: existingContract,
                               "the model already carries a TrigFlow contract (\(was)); attaching one would replace it and drop its data range and schedules: replace it explicitly, or attach to the network as exported")
        }
        var r = o
        r.tMax = o.tMax ?? oldTMax
        if r.dataRange == nil, let text = meta[Key.dataRange] {
            let p = text.split(separator: ",").compactMap { Float($0) }
            if p.count == 2 { r.dataRange = (p[0], p[1]) }
        }
        r.dataset = o.dataset ?? meta[Key.dataset]
        r.scaledInput = o.scaledInput ?? false
        if r.tMax == oldTMax, let old = try? TrigFlowMetadata.storedSchedules(model, fileTMax: oldTMax) {
            let given = Set(o.schedules.map(\.count))
            r.schedules += old.filter { !given.contains($0.key) }.sorted { $0.key < $1.key }.map(\.value)
        }
        return r
    }
}
