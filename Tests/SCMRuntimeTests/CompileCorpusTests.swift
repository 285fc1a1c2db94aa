import Foundation
import Testing
import SCMGraph
@testable import SCMRuntime
import TestSupport

/// Every file of Tests/corpus/compile (resource limits, fuzzing regressions) gives the error
/// expected.tsv names for it when loaded and compiled at its declared input shapes, and never
/// crashes or allocates what it asks for.
@Suite struct CompileCorpusTests {
    struct Case: CustomStringConvertible, Sendable {
        let file: String, kind: String, text: String, flags: String
        var description: String { file }
    }

    static let dir = repoRoot + "/Tests/corpus/compile"

    static func cases() -> [Case] {
        guard let tsv = try? String(contentsOfFile: dir + "/expected.tsv", encoding: .utf8) else { return [] }
        return tsv.split(separator: "\n").filter { !$0.hasPrefix("#") }.map {
            let f = $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            return Case(file: f[0], kind: f[1], text: f[2], flags: f.count > 3 ? f[3] : "")
        }
    }

    /// The limits a case's `--max-*` flags give.
    static func limits(_ flags: String) throws -> ResourceLimits {
        var l = ResourceLimits()
        let words = flags.split(separator: " ").map(String.init)
        for i in stride(from: 0, to: words.count, by: 2) {
            let v = try #require(Int(words[i + 1]))
            switch words[i] {
            case "--max-tensor-elements": l.maxTensorElements = v
            case "--max-initializer-bytes": l.maxInitializerBytes = v
            case "--max-graph-depth": l.maxGraphDepth = v
            case "--max-activation-bytes": l.maxActivationBytes = v
            case "--max-nodes": l.maxNodes = v
            default: Issue.record("unknown flag \(words[i])")
            }
        }
        return l
    }

    @Test func manifestListsEveryFile() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.dir).filter { $0.hasSuffix(".onnx") }
        #expect(Set(files) == Set(Self.cases().map(\.file)))
        #expect(files.count >= 9)
    }

    @Test(arguments: cases()) func givesExpectedError(_ c: Case) throws {
        let limits = try Self.limits(c.flags)
        do {
            let model = try ModelFile.load(path: Self.dir + "/" + c.file, limits: limits)
            _ = try Compiler.compile(model, limits: limits)
            Issue.record("\(c.file) compiled without error")
        } catch let e as RuntimeError {
            #expect(e.kind.rawValue == c.kind, "\(c.file): \(e)")
            #expect(e.description.contains(c.text), "\(c.file): \(e)")
        } catch let e as ModelError {
            #expect(e.kind.rawValue == c.kind, "\(c.file): \(e)")
            #expect(e.description.contains(c.text), "\(c.file): \(e)")
        }
    }

    /// Each limit case compiles under the default limits (or, for the terabyte ones, only fails
    /// on the limit it names): the flags are what makes it fail, not something else.
    /// (Not the terabyte files, and not the fuzzing findings: those may need their large values.)
    @Test(arguments: cases().filter { !$0.flags.isEmpty && !$0.file.hasPrefix("terabyte") && !$0.file.hasPrefix("fuzz_") })
    func passesUnderDefaultLimits(_ c: Case) throws {
        let model = try ModelFile.load(path: Self.dir + "/" + c.file)
        let plan = try Compiler.compile(model)
        let inputs = try plan.inputs.map { i in try Tensor(shape: i.spec.shape, scalars: [Float](repeating: 1, count: i.spec.shape.reduce(1, *))) }
        let out = try plan.makeSession(threads: 1).run(inputs)
        #expect(out.count == 1)
    }

    /// The activation limit applies to the batch asked for: the same file compiles at batch 1
    /// under a limit that refuses batch 64.
    @Test func activationLimitFollowsTheBatch() throws {
        let m = Model(graph: Graph(nodes: [Node("Relu", inputs: ["x"], outputs: ["a"]), Node("Neg", inputs: ["x"], outputs: ["b"]),
                                           Node("Add", inputs: ["a", "b"], outputs: ["y"])],
                                   inputs: [ValueInfo("x", .float, [.param("N"), .value(1024)])],
                                   outputs: [ValueInfo("y", .float, [.param("N"), .value(1024)])]))
        var limits = ResourceLimits()
        limits.maxActivationBytes = 400 << 10
        let one = try Compiler.compile(m, shapes: ["x": TensorSpec(.float, [1, 1024])], limits: limits)
        #expect(one.arenaBytes <= 400 << 10)
        #expect { try Compiler.compile(m, shapes: ["x": TensorSpec(.float, [64, 1024])], limits: limits) } throws: { e in
            (e as? RuntimeError)?.kind == .limitExceeded && "\(e)".contains("batch 64") && "\(e)".contains("max-activation-bytes")
        }
    }
}
