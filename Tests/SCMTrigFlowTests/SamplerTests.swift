import Foundation
import SCMGraph
import Testing
import TestSupport
@testable import SCMTrigFlow

let tinyPath = repoRoot + "/models/tiny-trigflow.onnx"

/// max |a - b|. Infinity (so any bound fails, with an issue recorded saying why) when the
/// arrays differ in length or are empty, or when a difference is NaN.
func maxAbsDiff(_ a: [Float], _ b: [Float], sourceLocation: SourceLocation = #_sourceLocation) -> Float {
    guard a.count == b.count, !a.isEmpty else {
        Issue.record("\(a.count) values vs \(b.count)", sourceLocation: sourceLocation)
        return .infinity
    }
    var m: Float = 0
    for (x, y) in zip(a, b) {
        let d = abs(x - y)
        guard !d.isNaN else {
            Issue.record("NaN difference (\(x) vs \(y))", sourceLocation: sourceLocation)
            return .infinity
        }
        m = max(m, d)
    }
    return m
}

@Suite("Sampler")
struct SamplerTests {
    @Test("Sample i is bitwise the same for any batch size, thread count and count")
    func invariance() throws {
        let model = try TrigFlowModel(path: tinyPath)
        let reference = try model.sampler(steps: 2, options: .init(batch: 6, threads: 1)).sample(count: 6, seed: 42)
        for (batch, threads) in [(4, 2), (1, 1), (5, 3)] {
            let s = try model.sampler(steps: 2, options: .init(batch: batch, threads: threads)).sample(count: 6, seed: 42)
            #expect(s.values == reference.values, "batch \(batch), threads \(threads)")
        }
        let first = try model.sampler(steps: 2).sample(count: 2, seed: 42)
        #expect(first.values == Array(reference.values[0..<(2 * 64)]))
        let other = try model.sampler(steps: 2).sample(count: 2, seed: 43)
        #expect(other.values != first.values)
        #expect(reference.shape == [6, 1, 8, 8])
        #expect(reference.timing.evaluationsPerSample == 2)
        // The last batch is padded to a power of two: few batch sizes, whatever the counts.
        let sampler = try model.sampler(steps: 1, options: .init(batch: 48))
        #expect(sampler.batchSizes(count: 100) == [48, 48, 4])
        #expect(sampler.batchSizes(count: 40) == [48])
        let sizes = Set((1...300).flatMap { sampler.batchSizes(count: $0) })
        #expect(sizes == [1, 2, 4, 8, 16, 32, 48])
        let padded = try sampler.sample(count: 3, seed: 42)  // one batch of 4, the last dropped
        let unpadded = try model.sampler(steps: 1, options: .init(batch: 1)).sample(count: 3, seed: 42)
        #expect(padded.count == 3 && padded.values == unpadded.values)
    }

    @Test("A batch run in chunks (with a smaller last chunk) gives the samples of one whole-batch run")
    func chunks() throws {
        let model = try TrigFlowModel(path: tinyPath)
        let whole = try model.sampler(steps: 2, options: .init(batch: 7, threads: 2, chunk: 7))
        #expect(try whole.chunkSize(batch: 7) == 7)
        let reference = try whole.sample(count: 7, seed: 9)
        for (chunk, threads) in [(1, 1), (2, 2), (3, 2), (4, 3), (6, 1), (64, 2)] {
            let sampler = try model.sampler(steps: 2, options: .init(batch: 7, threads: threads, chunk: chunk))
            #expect(try sampler.chunkSize(batch: 7) == min(chunk, 7))
            let s = try sampler.sample(count: 7, seed: 9)
            #expect(s.values == reference.values, "chunk \(chunk), threads \(threads)")
            // The ODE sampler runs the same chunked evaluations.
            let ode = try model.odeSampler(steps: 3, solver: .heun, options: .init(batch: 7, chunk: chunk))
            let odeWhole = try model.odeSampler(steps: 3, solver: .heun, options: .init(batch: 7, chunk: 7))
            #expect(try ode.sample(count: 7, seed: 3).values == odeWhole.sample(count: 7, seed: 3).values, "ode chunk \(chunk)")
        }
        // A rest above the chunk is padded to whole chunks, not to the next power of two: 17 of
        // a batch of 48 in chunks of 8 run as 24 (three chunks, the chunk's plans only).
        let chunked = try model.sampler(steps: 2, options: .init(batch: 48, threads: 2, chunk: 8))
        #expect(chunked.batchSizes(count: 17) == [24])
        #expect(chunked.batchSizes(count: 100) == [48, 48, 4])
        #expect(chunked.batchSizes(count: 57) == [48, 16])
        let seventeen = try chunked.sample(count: 17, seed: 9)
        #expect(chunked.statistics.plansCompiled == 2)
        #expect(seventeen.values == (try model.sampler(steps: 2, options: .init(batch: 17, chunk: 17)).sample(count: 17, seed: 9)).values)
        // Chunks of 3 for a batch of 7: plans at 3 and at the remaining 1, two per size.
        let split = try model.sampler(steps: 2, options: .init(batch: 7, chunk: 3))
        _ = try split.sample(count: 7, seed: 9)
        #expect(split.statistics.plansCompiled == 4)
        // Automatic: the largest power of two whose activations fit the budget, measured on the
        // full-batch plan; a budget below one sample's activations gives chunks of 1, a large one
        // the whole batch.
        let one = try model.sampler(steps: 1, options: .init(batch: 16, chunkBytes: 1))
        #expect(try one.chunkSize(batch: 16) == 1)
        let all = try model.sampler(steps: 1, options: .init(batch: 16, chunkBytes: 1 << 30))
        #expect(try all.chunkSize(batch: 16) == 16)
        #expect(try all.chunkSize(batch: 12) == 12)
        #expect(try one.sample(count: 16, seed: 5).values == all.sample(count: 16, seed: 5).values)
        #expect(throws: SamplerError.self) { try model.sampler(steps: 1, options: .init(chunk: 0)) }
    }

    @Test("Concurrent calls on one sampler give the same samples as one call alone")
    func concurrent() async throws {
        let sampler = try TrigFlowModel(path: tinyPath).sampler(steps: 4, options: .init(batch: 3, threads: 2))
        let alone = try sampler.sample(count: 5, seed: 7).values
        let results = try await withThrowingTaskGroup(of: [Float].self) { group in
            for _ in 0..<6 { group.addTask { try sampler.sample(count: 5, seed: 7).values } }
            return try await group.reduce(into: [[Float]]()) { $0.append($1) }
        }
        #expect(results.count == 6)
        #expect(results.allSatisfy { $0 == alone })
    }

    @Test("Plans are compiled once per (time, batch size) and idle workspaces are reused")
    func planCacheAndWorkspaceReuse() async throws {
        let model = try TrigFlowModel(path: tinyPath)
        typealias Stats = Sampler.Statistics
        let sampler = try model.sampler(steps: 2, options: .init(batch: 4, threads: 2))
        #expect(sampler.statistics == Stats(plansCompiled: 0, workspacesCreated: 0, workspacesIdle: 0))
        let first = try sampler.sample(count: 4, seed: 1)
        #expect(sampler.statistics == Stats(plansCompiled: 2, workspacesCreated: 1, workspacesIdle: 1))
        // Later calls of the same batch sizes compile nothing and take the idle workspace.
        #expect(try sampler.sample(count: 4, seed: 1).values == first.values)
        _ = try sampler.sample(count: 3, seed: 2)  // one batch of 4, padded
        #expect(sampler.statistics == Stats(plansCompiled: 2, workspacesCreated: 1, workspacesIdle: 1))
        _ = try sampler.sample(count: 5, seed: 3)  // batches of 4 and 1
        #expect(sampler.statistics == Stats(plansCompiled: 4, workspacesCreated: 2, workspacesIdle: 2))
        _ = try sampler.sample(count: 9, seed: 4)  // 4, 4, 1: one workspace per batch size
        #expect(sampler.statistics == Stats(plansCompiled: 4, workspacesCreated: 2, workspacesIdle: 2))
        // prepare compiles what a call needs; the call then only creates its workspace.
        try sampler.prepare(count: 2)
        #expect(sampler.statistics == Stats(plansCompiled: 6, workspacesCreated: 2, workspacesIdle: 2))
        try sampler.prepare(count: 2)
        #expect(sampler.statistics.plansCompiled == 6)
        _ = try sampler.sample(count: 2, seed: 5)
        #expect(sampler.statistics == Stats(plansCompiled: 6, workspacesCreated: 3, workspacesIdle: 3))
        // Concurrent calls each take a workspace (new ones only while all are busy), compile
        // nothing new, and leave every workspace idle for later calls.
        let results = try await withThrowingTaskGroup(of: [Float].self) { group in
            for _ in 0..<4 { group.addTask { try sampler.sample(count: 4, seed: 1).values } }
            return try await group.reduce(into: [[Float]]()) { $0.append($1) }
        }
        #expect(results.count == 4 && results.allSatisfy { $0 == first.values })
        let after = sampler.statistics
        #expect(after.plansCompiled == 6)
        #expect(after.workspacesCreated >= 3 && after.workspacesCreated <= 3 + 3)
        #expect(after.workspacesIdle == after.workspacesCreated)
        for seed in 0..<3 { _ = try sampler.sample(count: 9, seed: UInt64(seed)) }
        #expect(sampler.statistics == after)

        // Heun at 3 steps evaluates 5 times at 3 distinct times: 3 plans per batch size.
        let heun = try model.odeSampler(steps: 3, solver: .heun)
        _ = try heun.sample(count: 2, seed: 1)
        _ = try heun.sample(count: 2, seed: 2)
        #expect(heun.evaluations == 5)
        #expect(heun.statistics == Stats(plansCompiled: 3, workspacesCreated: 1, workspacesIdle: 1))
        // Unoptimized, t is an input: one plan per batch size whatever the step count.
        let stored = try model.sampler(steps: 4, options: .init(batch: 4, optimize: false))
        _ = try stored.sample(count: 4, seed: 1)
        _ = try stored.sample(count: 4, seed: 2)
        #expect(stored.statistics == Stats(plansCompiled: 1, workspacesCreated: 1, workspacesIdle: 1))
    }

    @Test("PF-ODE trajectories: the start is sigma_d z, the end is the sample, each point is batch invariant")
    func trajectories() throws {
        let model = try TrigFlowModel(path: tinyPath)
        let e = model.sampleElements, sigma = model.metadata.sigmaData
        for solver in Sampler.Solver.allCases {
            let sampler = try model.odeSampler(steps: 4, solver: solver, options: .init(batch: 3, threads: 2))
            let paths = try sampler.trajectories(count: 7, seed: 5)
            #expect(paths.times == sampler.odeGrid && paths.sampleShape == [7] + model.sampleShape)
            #expect(paths.points.count == 5 * 7 * e)
            let samples = try sampler.sample(count: 7, seed: 5)
            #expect(Array(paths.points[(4 * 7 * e)...]) == samples.values, "\(solver): the last point is the sample")
            var z = [Float](repeating: 0, count: e)
            for i in 0..<7 {
                GaussianNoise.fill(&z, count: e, seed: 5, sample: UInt32(i), step: 0)
                #expect(Array(paths.points[(i * e)..<((i + 1) * e)]) == z.map { sigma * $0 }, "\(solver): sample \(i) starts at sigma_d z")
            }
            let one = try model.odeSampler(steps: 4, solver: solver, options: .init(batch: 1)).trajectories(count: 7, seed: 5)
            #expect(one.points == paths.points, "\(solver): every point bitwise the same at batch 1")
            // The points move: no two consecutive ones are equal.
            for k in 0..<4 {
                #expect(paths.points[(k * 7 * e)..<((k + 1) * 7 * e)] != paths.points[((k + 1) * 7 * e)..<((k + 2) * 7 * e)])
            }
        }
        let consistency = try model.sampler(steps: 2)
        #expect(throws: SamplerError.self) { try consistency.trajectories(count: 1, seed: 0) }
    }

    @Test("Async sampling: bitwise the synchronous samples; a progress handler or a cancelled task stops it between batches")
    func asyncSampling() async throws {
        let model = try TrigFlowModel(path: tinyPath)
        let sampler = try model.sampler(steps: 2, options: .init(batch: 4, threads: 2))
        try sampler.prepare(count: 20)
        let sync = try sampler.sample(count: 20, seed: 9)
        var seen: [Int] = []
        let all = try await sampler.generateSamples(count: 20, seed: 9) { done, total in
            seen.append(done)
            return total == 20
        }
        #expect(all.values == sync.values && seen == [4, 8, 12, 16, 20])
        // Stop after the second batch: the call throws .cancelled, having run no third batch.
        var calls = 0
        do {
            _ = try await sampler.generateSamples(count: 20, seed: 9) { _, _ in
                calls += 1
                return calls < 2
            }
            Issue.record("a stopped call returned samples")
        } catch let error as SamplerError {
            #expect(error.kind == .cancelled && error.message.contains("8 of 20"), "\(error)")
        }
        #expect(calls == 2)
        // A cancelled task draws nothing.
        let task = Task { () async -> SamplerError? in
            withUnsafeCurrentTask { $0?.cancel() }
            do {
                _ = try await sampler.generateSamples(count: 20, seed: 9)
                return nil
            } catch let error as SamplerError {
                return error
            } catch {
                return nil
            }
        }
        let e = await task.value
        #expect(e?.kind == .cancelled && e?.message.contains("0 of 20") == true, "\(String(describing: e))")
        // The sampler still works after stopped calls.
        #expect(try await sampler.generateSamples(count: 20, seed: 9).values == sync.values)
    }

    @Test("Keyed sampling with a progress handler: the keyed samples, or a .cancelled stop between batches")
    func keyedSamplingStops() throws {
        let model = try TrigFlowModel(path: tinyPath)
        let sampler = try model.sampler(steps: 2, options: .init(batch: 4, threads: 2))
        let keys = (0..<10).map { Sampler.NoiseKey(seed: 9, sample: UInt32($0)) }
        let all = try sampler.sample(count: 10, seed: 9)
        #expect(try sampler.sample(keys: keys) { _, _ in true }.values == all.values)
        var calls = 0
        let stop: Sampler.ProgressHandler = { _, _ in
            calls += 1
            return false
        }
        do {
            _ = try sampler.sample(keys: keys, progressHandler: stop)
            Issue.record("a stopped call returned samples")
        } catch {
            #expect(error.kind == .cancelled && error.message.contains("4 of 10"), "\(error)")
        }
        #expect(calls == 1)
    }

    @Test("Optimized plans agree with the stored model run with t as an input")
    func optimizedMatchesUnoptimized() throws {
        let model = try TrigFlowModel(path: tinyPath)
        for steps in [1, 2, 4] {
            let a = try model.sampler(steps: steps).sample(count: 3, seed: 5)
            let b = try model.sampler(steps: steps, options: .init(optimize: false)).sample(count: 3, seed: 5)
            #expect(a.shape == b.shape && a.shape == [3, 1, 8, 8])
            #expect(maxAbsDiff(a.values, b.values) < 1e-5, "steps \(steps)")
        }
    }

    @Test("Given noise equal to the generator's reproduces the seeded samples")
    func givenNoise() throws {
        let sampler = try TrigFlowModel(path: tinyPath).sampler(steps: 2)
        let count = 3, e = 64
        var noise = [Float](repeating: 0, count: 2 * count * e)
        noise.withUnsafeMutableBufferPointer { buf in
            for k in 0..<2 {
                for i in 0..<count {
                    GaussianNoise.fill(buf.baseAddress! + (k * count + i) * e, count: e, seed: 11, sample: UInt32(i), step: UInt32(k))
                }
            }
        }
        let given = try sampler.sample(noise: noise, shape: [2, count, 1, 8, 8])
        #expect(given.values == (try sampler.sample(count: count, seed: 11)).values)
        #expect(throws: SamplerError.self) { try sampler.sample(noise: noise, shape: [1, 2 * count, 1, 8, 8]) }
        #expect(throws: SamplerError.self) { try sampler.sample(noise: [1, 2], shape: [2, count, 1, 8, 8]) }
    }

    @Test("Keyed noise: requests of different seeds drawn as one batch give each request's own samples")
    func keyedNoise() throws {
        let e = 64
        for (batch, threads) in [(8, 1), (4, 2)] {
            let sampler = try TrigFlowModel(path: tinyPath).sampler(steps: 2, options: .init(batch: batch, threads: threads))
            let requests: [(seed: UInt64, count: Int)] = [(7, 3), (1 << 40, 1), (7, 2), (99, 5)]
            let keys = requests.flatMap { r in (0..<r.count).map { Sampler.NoiseKey(seed: r.seed, sample: UInt32($0)) } }
            let together = try sampler.sample(keys: keys)
            #expect(together.shape == [keys.count, 1, 8, 8])
            var first = 0
            for r in requests {
                let alone = try sampler.sample(count: r.count, seed: r.seed)
                #expect(Array(together.values[(first * e)..<((first + r.count) * e)]) == alone.values, "seed \(r.seed), batch \(batch)")
                first += r.count
            }
        }
        #expect(throws: SamplerError.self) { try TrigFlowModel(path: tinyPath).sampler(steps: 1).sample(keys: []) }
    }

    @Test("The ODE baseline counts its evaluations and converges with more steps")
    func ode() throws {
        let model = try TrigFlowModel(path: tinyPath)
        #expect(try model.odeSampler(steps: 3, solver: .euler).evaluations == 3)
        let heun = try model.odeSampler(steps: 3, solver: .heun)
        #expect(heun.evaluations == 5)
        #expect(heun.odeGrid.first == model.metadata.tMax && heun.odeGrid.last == 0)
        // Heun at 8 and 16 steps are closer to each other than Euler at 8 is to Heun at 16.
        let h16 = try model.odeSampler(steps: 16).sample(count: 2, seed: 3).values
        let h8 = try model.odeSampler(steps: 8).sample(count: 2, seed: 3).values
        let e8 = try model.odeSampler(steps: 8, solver: .euler).sample(count: 2, seed: 3).values
        #expect(maxAbsDiff(h8, h16) < maxAbsDiff(e8, h16))
    }

    @Test("Bad arguments and contract violations are typed errors")
    func errors() throws {
        let model = try TrigFlowModel(path: tinyPath)
        func kind(_ body: () throws -> Void) -> SamplerError.Kind? {
            do { try body() } catch let e as SamplerError { return e.kind } catch { return nil }
            return nil
        }
        #expect(kind { _ = try model.sampler(steps: 0) } == .invalidArgument)
        #expect(kind { _ = try model.sampler(steps: 2, schedule: [1.0, 0.5]) } == .invalidArgument)
        #expect(kind { _ = try model.sampler(steps: 2, options: .init(batch: 0)) } == .invalidArgument)
        #expect(kind { _ = try model.sampler(steps: 2, options: .init(passes: ["nope"])) } == .invalidModel)
        #expect(kind { _ = try model.sampler(steps: 1).sample(count: 0, seed: 0) } == .invalidArgument)
        #expect(kind { _ = try TrigFlowModel(path: "/nonexistent/model.onnx") } == .io)
        var m = try ModelFile.load(path: tinyPath)
        m.metadata.removeAll { $0.key == "scm.sigma_data" }
        #expect(kind { _ = try TrigFlowModel(m) } == .invalidModel)
        #expect(try TrigFlowModel(m, overrides: .init(sigmaData: 0.5)).metadata.sigmaData == 0.5)
        var one = try ModelFile.load(path: tinyPath)
        one.graph.inputs.removeLast()
        #expect(kind { _ = try TrigFlowModel(one) } == .invalidModel)
    }

    @Test("Default schedule: t_max sqrt((N - i) / N), the paper's 1.1 for two steps")
    func defaultSchedule() {
        let s2 = TrigFlowMetadata.defaultSchedule(steps: 2, tMax: 1.5645463)
        #expect(s2.count == 2 && s2[0] == 1.5645463 && abs(s2[1] - 1.1063) < 1e-4)
        let s4 = TrigFlowMetadata.defaultSchedule(steps: 4, tMax: 1.5645463)
        #expect(zip(s4, s4.dropFirst()).allSatisfy { $0 > $1 } && s4.last! > 0)
    }

    @Test("Stored schedules: replaced by count, read back bit for bit, the sampler uses them; bad ones refused")
    func storedSchedule() throws {
        let m = try ModelFile.load(path: tinyPath)
        let tm = try TrigFlowMetadata(m).tMax
        let (stored, byCount) = try TrigFlowMetadata.storing(schedules: ["\(tm),1.3", "\(tm),1.2,0.9,0.5"], in: m)
        #expect(byCount == [2: [tm, 1.3], 4: [tm, 1.2, 0.9, 0.5]])
        let meta = try TrigFlowMetadata(stored)
        #expect(meta.schedules[2] == [tm, 1.3] && meta.schedules[4] == [tm, 1.2, 0.9, 0.5])
        #expect(stored.metadata.filter { $0.key == "scm.schedule.2" }.count == 1)
        #expect(stored.metadata.count == m.metadata.count + (m.metadataValue("scm.schedule.2") == nil ? 1 : 0)
                + (m.metadataValue("scm.schedule.4") == nil ? 1 : 0))
        #expect(try TrigFlowModel(stored).sampler(steps: 2).evaluationTimes == [tm, 1.3])
        func kind(_ body: () throws -> Void) -> ModelError.Kind? {
            do { try body() } catch let e as ModelError { return e.kind } catch { return nil }
            return nil
        }
        #expect(kind { _ = try TrigFlowMetadata.storing(schedules: ["1.0,0.5"], in: m) } == .invalidArgument)
        #expect(kind { _ = try TrigFlowMetadata.storing(schedules: ["\(tm),1.3", "\(tm),1.2"], in: m) } == .invalidArgument)
        #expect(kind { _ = try TrigFlowMetadata.storing(schedules: ["\(tm),2.0"], in: m) } == .invalidArgument)
        var bare = m
        bare.metadata.removeAll { $0.key == "scm.t_max" }
        #expect(kind { _ = try TrigFlowMetadata.storing(schedules: ["1.5,1.3"], in: bare) } == .invalidArgument)
    }

    @Test("scm.segments: K + 1 steps at t_max and the boundaries, other counts and times refused, bad entries invalid")
    func segments() throws {
        var m = try ModelFile.load(path: tinyPath)
        let tm = try TrigFlowMetadata(m).tMax
        m.metadata.append(MetadataEntry("scm.segments", "1.2,0.6"))
        let meta = try TrigFlowMetadata(m)
        #expect(meta.segments == [1.2, 0.6])
        #expect(try meta.schedule(steps: 3) == [tm, 1.2, 0.6])
        #expect(try meta.schedule(steps: nil, override: nil) == [tm, 1.2, 0.6])
        #expect(try meta.schedule(steps: nil, override: "\(tm),1.2,0.6") == [tm, 1.2, 0.6])
        #expect(try TrigFlowModel(m).sampler(steps: 3).evaluationTimes == [tm, 1.2, 0.6])
        func kind(_ body: () throws -> Void) -> ModelError.Kind? {
            do { try body() } catch let e as ModelError { return e.kind } catch { return nil }
            return nil
        }
        #expect(kind { _ = try meta.schedule(steps: 2) } == .invalidArgument)
        #expect(kind { _ = try meta.schedule(steps: nil, override: "\(tm),1.1,0.6") } == .invalidArgument)
        for bad in ["0.6,1.2", "1.2,1.2", "\(tm + 0.01)", "1.2,0", "x"] {
            var b = try ModelFile.load(path: tinyPath)
            b.metadata.append(MetadataEntry("scm.segments", bad))
            #expect(kind { _ = try TrigFlowMetadata(b) } == .invalidModel, "\(bad)")
        }
        var velocity = m
        velocity.metadata.removeAll { $0.key == "scm.parameterization" }
        velocity.metadata.append(MetadataEntry("scm.parameterization", "velocity"))
        #expect(kind { _ = try TrigFlowMetadata(velocity) } == .invalidModel)
    }
}

@Suite("Images and .npy")
struct OutputTests {
    @Test("Pixel map: rounding, clamping, NaN")
    func pixels() {
        let s = Images.scale(for: (-1, 1))
        #expect(Images.pixel(-1, low: -1, scale: s) == 0)
        #expect(Images.pixel(1, low: -1, scale: s) == 255)
        #expect(Images.pixel(0, low: -1, scale: s) == 128)  // 127.5 + 0.5
        #expect(Images.pixel(-7, low: -1, scale: s) == 0)
        #expect(Images.pixel(9, low: -1, scale: s) == 255)
        #expect(Images.pixel(.nan, low: -1, scale: s) == 0)
        #expect(Images.pixel(.infinity, low: -1, scale: s) == 255)
    }

    @Test("Grid PNG: a valid PNG with the grid's size and the samples' pixels")
    func gridPNG() throws {
        let samples = try TrigFlowModel(path: tinyPath).sampler(steps: 1).sample(count: 5, seed: 1)
        let png = try samples.png(nrow: 2)
        #expect(Array(png.prefix(8)) == [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
        let picture = try samples.picture(nrow: 2)
        #expect(picture.width == 2 * 10 + 2 && picture.height == 3 * 10 + 2 && picture.channels == 1)
        let decoded = try decodePNG(png)
        #expect(decoded.width == picture.width && decoded.height == picture.height && decoded.pixels == picture.pixels)
        // Sample 3 sits at row 1, column 1.
        let s = Images.scale(for: (-1, 1))
        #expect(picture.pixels[(12 + 0) * 22 + 12] == Images.pixel(samples.values[3 * 64], low: -1, scale: s))
        let one = try decodePNG(try samples.png(sample: 4))
        #expect(one.width == 8 && one.pixels == samples.values[(4 * 64)..<(5 * 64)].map { Images.pixel($0, low: -1, scale: s) })
    }

    @Test("npy: round trip, float64 input, malformed files are errors")
    func npy() throws {
        let values: [Float] = [1, -2.5, 3e-8, .infinity]
        let bytes = values.withUnsafeBufferPointer { NPY.encode($0, shape: [2, 2]) }
        #expect((bytes.count - values.count * 4) % 64 == 0)
        let back = try NPY.decode(bytes)
        #expect(back.shape == [2, 2] && back.values == values)
        // float64 payload.
        var f8 = Array("\u{93}NUMPY".unicodeScalars.map { UInt8($0.value) }) + [1, 0]
        let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }\n"
        f8 += [UInt8(header.utf8.count), 0] + Array(header.utf8)
        for d in [1.5, -0.25] { withUnsafeBytes(of: d.bitPattern.littleEndian) { f8 += $0 } }
        #expect(try NPY.decode(f8).values == [1.5, -0.25])
        for bad in [Array(bytes.prefix(9)), [UInt8](repeating: 0, count: 80), Array(bytes.dropLast()),
                    bytes.replacing(Array("False".utf8), with: Array("True ".utf8)),
                    bytes.replacing(Array("<f4".utf8), with: Array("<i4".utf8)),
                    bytes.replacing(Array("(2, 2)".utf8), with: Array("(2, x)".utf8))] {
            #expect(throws: SamplerError.self) { try NPY.decode(bad) }
        }
        // Seeded random corruption never crashes: each corrupted file either decodes to values
        // that are its own trailing bytes read as the shape says, or is a typed error naming it.
        var state: UInt64 = 12345
        func next() -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(state >> 33)
        }
        let dataStart = bytes.count - values.count * 4
        var decoded = 0, decodedWithHeaderChanged = 0, rejected = 0
        var problems: [String] = []
        for trial in 0..<2000 {
            var c = bytes
            for _ in 0..<(1 + next() % 4) { c[next() % c.count] = UInt8(truncatingIfNeeded: next()) }
            do {
                let r = try NPY.decode(c, source: "corrupt.npy")
                decoded += 1
                let n = r.values.count
                let f4 = c.count >= 4 * n ? Array(c.suffix(4 * n)).withUnsafeBytes { raw in
                    (0..<n).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
                } : []
                let f8 = c.count >= 8 * n ? Array(c.suffix(8 * n)).withUnsafeBytes { raw in
                    (0..<n).map { Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self)))) }
                } : []
                let bits = r.values.map(\.bitPattern)
                if r.shape.reduce(1, *) != n || (bits != f4.map(\.bitPattern) && bits != f8.map(\.bitPattern)) {
                    problems.append("trial \(trial): shape \(r.shape) with \(n) values that are not the file's data")
                }
                if c[..<dataStart] == bytes[..<dataStart] {
                    // Only the data changed: the same shape, the corrupted floats.
                    if r.shape != [2, 2] || bits != f4.map(\.bitPattern) { problems.append("trial \(trial): data-only corruption misread") }
                } else {
                    decodedWithHeaderChanged += 1
                }
            } catch {
                rejected += 1
                if error.kind != .invalidArgument || error.location != "corrupt.npy" || !error.message.hasPrefix("not a usable .npy file") {
                    problems.append("trial \(trial): \(error)")
                }
            }
        }
        #expect(problems.isEmpty, "\(problems.count) problems, first: \(problems.prefix(5))")
        #expect(rejected >= 200 && decoded >= 200 && decodedWithHeaderChanged >= 50,
                "rejected \(rejected), decoded \(decoded) (\(decodedWithHeaderChanged) with a changed header)")
    }
}
