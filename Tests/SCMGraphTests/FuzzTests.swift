import Foundation
import Testing
@testable import SCMGraph

/// Mutated models never crash or hang the loader: each load either succeeds or throws ModelError.
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
        var loaded = 0, rejected = 0
        for _ in 0..<4000 {
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
            do { _ = try ModelFile.load(bytes: b); loaded += 1 } catch is ModelError { rejected += 1 }
        }
        #expect(loaded + rejected == 4000)
        #expect(rejected > 1000)
    }
}
