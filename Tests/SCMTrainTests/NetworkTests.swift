import Foundation
import SCMGraph
import SCMRuntime
import Testing
@testable import SCMTrain
import SCMCommandLine

@Suite("Networks")
struct NetworkTests {
    func run(_ model: Model, batch: Int, shape: [Int]) throws -> [Tensor] {
        let plan = try Compiler.compile(model, shapes: ["x": TensorSpec(.float, [batch] + shape), "t": TensorSpec(.float, [batch])])
        let x = try Tensor(shape: [batch] + shape, scalars: (0..<(batch * shape.reduce(1, *))).map { Float(($0 * 37) % 17) / 8 - 1 })
        let t = try Tensor(shape: [batch], scalars: (0..<batch).map { Float($0 + 1) * 0.3 })
        return try plan.makeSession().run([x, t])
    }

    /// Two levels of 8 channels, no attention.
    func tinyUNet(size: Int) -> UNetConfig {
        var c = UNetConfig()
        c.widths = [8, 8]
        c.groups = 4
        c.attentionResolutions = []
        c.size = size
        return c
    }

    @Test("The default UNet builds for 28x28 gray images, verifies, runs, and starts at F = 0")
    func unet() throws {
        let config = try NetworkConfig.preset("default", sampleShape: [1, 28, 28])
        guard case .unet(let c) = config else { Issue.record("not a UNet"); return }
        #expect(c.widths == [32, 64, 64] && c.attentionResolutions == [7])
        let train = try Networks.build(config, seed: 1, logvar: true)
        try train.verify()
        #expect(train.graph.outputs.map(\.name) == ["F", "logvar"])
        let params = train.graph.initializers.filter { $0.dtype == .float }
        #expect(params.reduce(0) { $0 + $1.elementCount } > 500_000)
        let out = try run(train, batch: 2, shape: [1, 28, 28])
        #expect(out[0].shape == [2, 1, 28, 28] && out[1].shape == [2, 1])
        // The output conv starts at zero: F = 0 whatever the input.
        #expect(out[0].scalars(as: Float.self)!.allSatisfy { $0 == 0 })
        // Export leaves the log-variance head out; the same names carry the same weights.
        let export = try Networks.build(config, seed: 1, logvar: false)
        #expect(export.graph.outputs.map(\.name) == ["F"])
        let trained = Dictionary(uniqueKeysWithValues: params.map { ($0.meta.name, $0) })
        for p in export.graph.initializers where p.dtype == .float {
            #expect(trained[p.meta.name]?.scalars(as: Float.self) == p.scalars(as: Float.self), "\(p.meta.name)")
        }
    }

    @Test("Odd sizes crop on the way up; RGB; the small preset")
    func otherShapes() throws {
        let config = try NetworkConfig.preset("small", sampleShape: [3, 25, 25])
        let m = try Networks.build(config, seed: 2, logvar: false)
        #expect(try run(m, batch: 1, shape: [3, 25, 25])[0].shape == [1, 3, 25, 25])
    }

    @Test("Odd sizes train: the crop's gradient reaches the layers before it")
    func oddSizeTrains() throws {
        let c = tinyUNet(size: 7)
        let net = try Networks.build(.unet(c), seed: 3, logvar: true)
        #expect(net.graph.nodes.contains { $0.opType == "Slice" })
        let loss = try Objectives.flow(network: net, sigmaData: 0.5)
        let trained = net.graph.initializers.filter { $0.dtype == .float }.map(\.meta.name)
        let (step, parameters) = try TrainingStep.make(loss, parameters: trained, options: AdamOptions(maxGradNorm: 0))
        var initial: [String: Tensor] = [:]
        for t in net.graph.initializers { initial[t.meta.name] = t }
        let n = 2, e = 49
        let session = try TrainingSession(step: step, parameters: parameters, initial: initial,
                                          dataShapes: ["sct_x0": TensorSpec(.float, [n, 1, 7, 7]), "sct_z": TensorSpec(.float, [n, 1, 7, 7]),
                                                       "sct_t": TensorSpec(.float, [n])])
        let x0 = try Tensor(shape: [n, 1, 7, 7], scalars: (0..<(n * e)).map { Float(($0 * 29) % 13) / 6 - 1 })
        let z = try Tensor(shape: [n, 1, 7, 7], scalars: (0..<(n * e)).map { Float(($0 * 31) % 11) / 10 - 0.5 })
        let t = try Tensor(shape: [n], scalars: [0.4, 1.2] as [Float])
        // The upsampling conv of the lowest level sits before the crop: it must move.
        let name = try #require(parameters.first { $0.contains("upsample") })
        let before = try session.value(of: name).scalars(as: Float.self)!
        var losses: [Float] = []
        for _ in 0..<3 { losses.append(try session.step([x0, z, t], lr: 1e-2).loss) }
        #expect(!losses.contains { !$0.isFinite }, "\(losses)")
        let after = try session.value(of: name).scalars(as: Float.self)!
        #expect(after != before)
    }

    @Test("Dropout: one node per ResBlock in the training graph only, each with its own salt, keyed by t")
    func dropout() throws {
        var c = tinyUNet(size: 8)
        c.dropout = 0.25
        let train = try Networks.build(.unet(c), seed: 1, logvar: true, dropout: true)
        try train.verify()
        let drops = train.graph.nodes.filter { $0.opType == "Dropout" && $0.domain == "ai.scm" }
        // Two levels of 1 ResBlock down, 2 up, and the middle one.
        #expect(drops.count == 7)
        #expect(Set(drops.compactMap { $0.attribute("salt").flatMap { if case .int(let v) = $0.value { v } else { nil } } }).count == 7)
        #expect(drops.allSatisfy { $0.inputs[1] == "t" })
        let inference = try Networks.build(.unet(c), seed: 1, logvar: true)
        #expect(!inference.graph.nodes.contains { $0.opType == "Dropout" })
        #expect(inference.opsetVersion("ai.scm") == nil)
        // The same parameters: a checkpoint without dropout starts a run with it.
        var plain = c
        plain.dropout = 0
        #expect(NetworkConfig.unet(c).hasParameters(of: .unet(plain)))
        let params = { (m: Model) in m.graph.initializers.filter { $0.dtype == .float }.map { "\($0.meta.name) \($0.scalars(as: Float.self)!)" } }
        #expect(params(train) == params(inference))
        // Training mode differs from inference, and is a function of (x, t).
        let a = try run(train, batch: 2, shape: [1, 8, 8]), b = try run(train, batch: 2, shape: [1, 8, 8])
        #expect(a[1].scalars(as: Float.self) == b[1].scalars(as: Float.self))
    }

    @Test("Command-line overrides of a preset, and their errors")
    func overrides() throws {
        let image = try NetworkConfig.preset("small", sampleShape: [1, 28, 28])
        let o = NetworkOverrides(dropout: 0.1, widths: "16,32", resBlocks: 2, embedding: 16, groups: 4)
        guard case .unet(let c) = try o.apply(to: image, data: "fashion-mnist") else { Issue.record("not a UNet"); return }
        #expect(c.widths == [16, 32] && c.resBlocks == 2 && c.embedding == 16 && c.groups == 4 && c.dropout == 0.1)
        #expect(c.attentionResolutions == [14])
        guard case .unet(let d) = try NetworkOverrides(attention: "none").apply(to: image, data: "x") else { return }
        #expect(d.attentionResolutions.isEmpty && d.widths == [16, 32, 32])
        let m = try Networks.build(.unet(c), seed: 0, logvar: false)
        try m.verify()
        let vector = try NetworkConfig.preset("default", sampleShape: [2])
        guard case .mlp(let v) = try NetworkOverrides(hidden: 32, layers: 2).apply(to: vector, data: "moons") else { return }
        #expect(v.hidden == 32 && v.layers == 2)
        func message(_ o: NetworkOverrides, _ config: NetworkConfig) -> String {
            do { _ = try o.apply(to: config, data: "d"); return "" } catch { return "\(error)" }
        }
        #expect(message(NetworkOverrides(widths: "16,x"), image).hasPrefix("--widths: must be a comma-separated list"))
        #expect(message(NetworkOverrides(widths: "12,24"), image).contains("multiples of the GroupNorm groups"))
        #expect(message(NetworkOverrides(groups: 3), image).hasPrefix("--groups: 3 must divide"))
        #expect(message(NetworkOverrides(attention: "5"), image).contains("resolution 5 is not one of the UNet's levels [28, 14, 7]"))
        #expect(message(NetworkOverrides(embedding: 7), image).hasPrefix("--embedding"))
        #expect(message(NetworkOverrides(hidden: 8), image).hasPrefix("--hidden: applies to the MLP"))
        #expect(message(NetworkOverrides(dropout: 0.2), vector).hasPrefix("--dropout: applies to the UNet"))
        #expect(message(NetworkOverrides(widths: "8"), vector).hasPrefix("--widths: applies to the UNet"))
    }

    @Test("Initialization is a function of the seed; given parameters replace it and are checked")
    func seeds() throws {
        let config = try NetworkConfig.preset("default", sampleShape: [2])
        let a = try Networks.build(config, seed: 7, logvar: true), b = try Networks.build(config, seed: 7, logvar: true)
        let c = try Networks.build(config, seed: 8, logvar: true)
        let values = { (m: Model) in m.graph.initializers.filter { $0.dtype == .float }.map { $0.scalars(as: Float.self)! } }
        #expect(values(a) == values(b))
        #expect(values(a) != values(c))
        let first = a.graph.initializers.first { $0.dtype == .float }!
        var given = first
        given.meta.name = first.meta.name
        let zeros = try Tensor(shape: first.shape, scalars: [Float](repeating: 0, count: first.elementCount))
        let d = try Networks.build(config, seed: 7, parameters: [first.meta.name: zeros], logvar: true)
        #expect(d.graph.initializer(first.meta.name)?.scalars(as: Float.self)?.allSatisfy { $0 == 0 } == true)
        let wrong = try Tensor(shape: [1], scalars: [Float(0)])
        #expect(throws: TrainError.self) { _ = try Networks.build(config, seed: 7, parameters: [first.meta.name: wrong], logvar: true) }
        #expect(throws: TrainError.self) { _ = try NetworkConfig.preset("huge", sampleShape: [1, 28, 28]) }
        var bad = UNetConfig()
        bad.dropout = 1
        #expect(throws: TrainError.self) { _ = try Networks.build(.unet(bad), seed: 0, logvar: false) }
    }
}
