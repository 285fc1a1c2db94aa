import Foundation
import Testing
@testable import SCMGraph

/// Mutated models never crash or hang the loader: each load either succeeds with a model that
/// re-encodes to a stable file, or throws a ModelError that says where the problem is.
@Suite struct FuzzTests {
    /// SplitMix64: a deterministic generator so failures reproduce.
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    @Test func mutationsNeverCrash() throws {
        var model = try sampleModel()
        model.graph.nodes[0].attributes = [Attribute("alpha", .float(0.1)), Attribute("axes", .ints([0, 1])),
                                           Attribute("t", .tensor(try Tensor(shape: [2], scalars: [Int64(1), 2])))]
        let seed = try ModelFile.serialize(model).bytes
        var rng = SplitMix(state: 42)
        var loaded = 0
        var rejected: [ModelError.Kind: Int] = [:]
        var problems: [String] = []  // the first few are reported
        for trial in 0..<4000 {
            var b = seed
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                switch Int.random(in: 0..<5, using: &rng) {
                case 0: let i = Int.random(in: 0..<b.count, using: &rng); b[i] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng))
                case 1: b = Array(b.prefix(Int.random(in: 0..<b.count, using: &rng)))
                case 2: let i = Int.random(in: 0...b.count, using: &rng); b.insert(UInt8.random(in: 0...255, using: &rng), at: i)
                case 3: if !b.isEmpty { b.remove(at: Int.random(in: 0..<b.count, using: &rng)) }
                default: let i = Int.random(in: 0..<b.count, using: &rng); b[i] = [0x00, 0x7f, 0x80, 0xff][Int.random(in: 0..<4, using: &rng)]
                }
                if b.isEmpty { b = seed }
            }
            let model: Model
            do {
                model = try ModelFile.load(bytes: b, source: "mutant")
            } catch let e as ModelError {
                rejected[e.kind, default: 0] += 1
                if !e.location.hasPrefix("mutant") || e.message.isEmpty {
                    problems.append("trial \(trial): no location or message: \(e)")
                }
                if e.kind == .malformedProtobuf {
                    // The wire scan names the byte offset (inside the file) and the field path.
                    let m = e.location.firstMatch(of: /^mutant: byte (\d+) in ModelProto/)
                    if m.flatMap({ Int($0.1) }).map({ $0 > b.count }) ?? true {
                        problems.append("trial \(trial): no byte offset inside the \(b.count)-byte file: \(e)")
                    }
                }
                continue
            }
            // An accepted mutant is a verified model whose encoding is a fixed point of load + save.
            loaded += 1
            try model.verify()
            let once = try ModelFile.serialize(model).bytes
            let reloaded = try ModelFile.load(bytes: once, source: "re-encoded")
            if try ModelFile.serialize(reloaded).bytes != once { problems.append("trial \(trial): re-encoding is not stable") }
        }
        #expect(problems.isEmpty, "\(problems.count) problems, first: \(problems.prefix(5))")
        let total = rejected.values.reduce(0, +)
        // Both outcomes occur often, and rejections come from every stage: the wire scan, the
        // decoder's tensor/attribute checks, and graph verification.
        #expect(loaded >= 100, "only \(loaded) mutants loaded")
        #expect(total >= 3000, "only \(total) mutants rejected")
        #expect(rejected[.malformedProtobuf, default: 0] >= 1000, "\(rejected)")
        #expect(rejected[.invalidTensor, default: 0] + rejected[.unknownDataType, default: 0]
                + rejected[.invalidAttribute, default: 0] >= 5, "\(rejected)")
        #expect(rejected[.undefinedValue, default: 0] + rejected[.duplicateName, default: 0]
                + rejected[.cycle, default: 0] >= 5, "\(rejected)")
    }
}
