import Testing
@testable import SCMTrigFlow

@Suite("Philox4x32-10")
struct PhiloxTests {
    /// Known-answer vectors of Random123's kat_vectors for philox4x32 with 10 rounds.
    @Test("Random123 known-answer vectors")
    func knownAnswers() {
        func check(_ key: (UInt32, UInt32), _ ctr: (UInt32, UInt32, UInt32, UInt32), _ want: [UInt32]) {
            let r = Philox4x32(key: key).block(ctr)
            #expect([r.0, r.1, r.2, r.3] == want)
        }
        check((0, 0), (0, 0, 0, 0), [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8])
        check((0xffff_ffff, 0xffff_ffff), (0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff),
              [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd])
        check((0xa409_3822, 0x299f_31d0), (0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344),
              [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1])
    }

    @Test("Noise is keyed by (seed, sample, step), independent of length, and roughly standard normal")
    func noise() {
        let n = 40_000
        let a = UnsafeMutablePointer<Float>.allocate(capacity: n), b = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { a.deallocate(); b.deallocate() }
        GaussianNoise.fill(a, count: n, seed: 7, sample: 3, step: 1)
        GaussianNoise.fill(b, count: 13, seed: 7, sample: 3, step: 1)
        #expect((0..<13).allSatisfy { a[$0] == b[$0] })
        GaussianNoise.fill(b, count: n, seed: 7, sample: 4, step: 1)
        #expect((0..<n).filter { a[$0] == b[$0] }.count < 5)
        var mean = 0.0, sq = 0.0
        for i in 0..<n { mean += Double(a[i]); sq += Double(a[i]) * Double(a[i]) }
        mean /= Double(n)
        let variance = sq / Double(n) - mean * mean
        #expect(abs(mean) < 0.03 && abs(variance - 1) < 0.05)
    }
}
