import Foundation
import Testing
import TestSupport
@testable import SCMGraph

/// Every file of Tests/corpus/broken gives the error expected.tsv names for it, and never crashes.
@Suite struct BrokenCorpusTests {
    struct Case: CustomStringConvertible, Sendable {
        let file: String, kind: String, text: String
        var description: String { file }
    }

    static let dir = repoRoot + "/Tests/corpus/broken"

    static func cases() -> [Case] {
        guard let tsv = try? String(contentsOfFile: dir + "/expected.tsv", encoding: .utf8) else { return [] }
        return tsv.split(separator: "\n").filter { !$0.hasPrefix("#") }.map {
            let f = $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            return Case(file: f[0], kind: f[1], text: f[2])
        }
    }

    @Test func manifestListsEveryFile() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.dir).filter { $0.hasSuffix(".onnx") }
        #expect(Set(files) == Set(Self.cases().map(\.file)))
        #expect(files.count >= 40)
    }

    @Test(arguments: cases()) func givesExpectedError(_ c: Case) throws {
        do {
            _ = try ModelFile.load(path: Self.dir + "/" + c.file)
            Issue.record("\(c.file) loaded without error")
        } catch let e as ModelError {
            #expect(e.kind.rawValue == c.kind, "\(c.file): \(e)")
            #expect(e.description.contains(c.text), "\(c.file): \(e)")
            #expect(e.description.contains(c.file), "the error names the file: \(e)")
        }
    }

    @Test func symlinkOutOfTheFolderIsRefused() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let outside = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: outside) }
        FileManager.default.createFile(atPath: outside + "/w.bin", contents: Data(count: 16))
        // The corpus' external-data model reads "weights.bin": make that name a link out of the folder.
        try FileManager.default.createSymbolicLink(atPath: dir + "/weights.bin", withDestinationPath: outside + "/w.bin")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: Self.dir + "/external_wrong_length.onnx"))
        var model = [UInt8](bytes)
        // Same model, with the length entry that makes it fail replaced by a valid one ("12" -> "16").
        if let i = model.indices.dropLast().first(where: { model[$0] == 0x31 && model[$0 + 1] == 0x32 }) { model[i + 1] = 0x36 }
        FileManager.default.createFile(atPath: dir + "/m.onnx", contents: Data(model))
        #expect { try ModelFile.load(path: dir + "/m.onnx") } throws: { e in
            (e as? ModelError)?.kind == .externalData && "\(e)".contains("resolves outside the model's folder")
        }
        // The same bytes as a regular file inside the folder load fine.
        try FileManager.default.removeItem(atPath: dir + "/weights.bin")
        FileManager.default.createFile(atPath: dir + "/weights.bin", contents: Data(count: 16))
        let ok = try ModelFile.load(path: dir + "/m.onnx")
        #expect(ok.graph.initializers[0].meta.encoding == .external(location: "weights.bin", offset: 0, length: 16))
    }

    @Test func fileSizeLimit() throws {
        var limits = LoadLimits()
        limits.maxFileBytes = 64
        let path = Self.dir + "/duplicate_metadata.onnx"
        #expect { try ModelFile.load(path: path, limits: limits) } throws: { e in
            (e as? ModelError)?.kind == .limitExceeded && "\(e)".contains("over the limit of 64 bytes")
        }
    }

    @Test func nodeCountLimit() throws {
        var model = try sampleModel()
        for i in 0..<10 { model.graph.nodes.append(Node("Relu", inputs: ["y"], outputs: ["r\(i)"])) }
        let bytes = try ModelFile.serialize(model).bytes
        var limits = LoadLimits()
        limits.maxNodes = 5
        #expect { try ModelFile.load(bytes: bytes, limits: limits) } throws: { e in
            (e as? ModelError)?.kind == .limitExceeded && "\(e)".contains("more than 5 nodes")
        }
    }

    @Test func notAFile() throws {
        #expect { try ModelFile.load(path: repoRoot + "/Tests") } throws: { e in
            (e as? ModelError)?.kind == .io && "\(e)".contains("not a regular file")
        }
        #expect { try ModelFile.load(path: repoRoot + "/no/such/model.onnx") } throws: { e in
            (e as? ModelError)?.kind == .io && "\(e)".contains("No such file")
        }
    }
}
