import Foundation
import Testing
import TestSupport
@testable import SCMGraph

@Suite struct RoundTripTests {
    @Test func modelSurvivesSaveAndLoad() throws {
        let model = try sampleModel()
        let (bytes, report) = try ModelFile.serialize(model)
        #expect(report.notes.isEmpty)
        let back = try ModelFile.load(bytes: bytes)
        #expect(back.graph.nodes.map(\.opType) == ["Add", "Relu"])
        #expect(back.graph.inputs[0].type == TensorType(elementType: .float, shape: [.param("N"), .value(3)]))
        #expect(back.metadataValue("scm.format") == "trigflow/1")
        #expect(back.opsetVersion("ai.onnx") == 21)
        #expect(back.graph.initializers[0].scalars(as: Float.self) == [Float](repeating: 0.5, count: 6))
        // Serializing what was loaded gives the same bytes.
        #expect(try ModelFile.serialize(back).bytes == bytes)
    }

    @Test func rawDataIsBorrowedNotCopiedAgain() throws {
        let back = try ModelFile.load(bytes: try ModelFile.serialize(try sampleModel()).bytes)
        #expect(back.graph.initializers[0].storage?.isBorrowed == true)
    }

    /// Every fixed-width dtype, in raw_data and in its typed field, round-trips bit for bit.
    @Test(arguments: DType.allCases.filter { $0 != .string }, [PayloadEncoding.rawData, .typedField])
    func tensorEncodings(dtype: DType, encoding: PayloadEncoding) throws {
        let shape = [3, 5]
        let bytes = dtype.byteCount(elements: 15)!
        let storage = TensorStorage(byteCount: bytes) { buf in
            for i in 0..<bytes { buf[i] = UInt8(truncatingIfNeeded: i &* 37 &+ 11) }
            if dtype == .bool { for i in 0..<bytes { buf[i] &= 1 } }
        }
        let t = try Tensor(dtype: dtype, shape: shape, data: .bytes(storage), meta: TensorMeta(name: "t", encoding: encoding))
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ModelFile.saveTensor(t, to: dir + "/t.pb")
        let back = try ModelFile.loadTensor(path: dir + "/t.pb")
        #expect(back.dtype == dtype && back.shape == shape && back.meta.encoding == encoding && back.meta.name == "t")
        #expect(Array(back.storage!.bytes) == Array(storage.bytes))
    }

    @Test func stringTensorsAndScalars() throws {
        let strs: [[UInt8]] = [Array("a".utf8), [], [0xff, 0x00, 0x41]]
        let t = try Tensor(dtype: .string, shape: [3], data: .strings(strs), meta: TensorMeta(name: "strs"))
        let s = try Tensor(shape: [], scalars: [Float(2.5)], name: "scalar")
        var model = try sampleModel()
        model.graph.initializers += [t, s]
        let back = try ModelFile.load(bytes: try ModelFile.serialize(model).bytes)
        guard case .strings(let got) = back.graph.initializer("strs")?.data else { Issue.record("not strings"); return }
        #expect(got == strs)
        #expect(back.graph.initializer("scalar")?.shape == [])
        #expect(back.graph.initializer("scalar")?.scalars(as: Float.self) == [2.5])
    }

    @Test func attributesOfEveryKind() throws {
        var model = try sampleModel()
        let tensor = try Tensor(shape: [2], scalars: [Int64(7), -1])
        model.graph.nodes[0].attributes = [
            Attribute("f", .float(-0.25)), Attribute("i", .int(-3)), Attribute("s", .string(Array("nearest".utf8))),
            Attribute("t", .tensor(tensor)), Attribute("fs", .floats([1, 2])), Attribute("is", .ints([])),
            Attribute("ss", .strings([Array("a".utf8)])), Attribute("ts", .tensors([tensor, tensor])),
        ]
        let back = try ModelFile.load(bytes: try ModelFile.serialize(model).bytes)
        let a = back.graph.nodes[0].attributes
        #expect(a.map(\.name) == ["f", "i", "s", "t", "fs", "is", "ss", "ts"])
        #expect(a.map(\.value.typeName) == ["FLOAT", "INT", "STRING", "TENSOR", "FLOATS", "INTS", "STRINGS", "TENSORS"])
        #expect(back.graph.nodes[0].attribute("s")?.stringValue == "nearest")
        if case .tensor(let t) = a[3].value { #expect(t.scalars(as: Int64.self) == [7, -1]) } else { Issue.record("t") }
    }

    @Test func unknownFieldsAreKeptWhole() throws {
        var model = try sampleModel()
        // A GRAPH attribute (field 6) and a model-level field ONNX has but we don't (25, functions).
        let sub: [UInt8] = [0x12, 0x03, 0x73, 0x75, 0x62]  // GraphProto { name: "sub" }
        model.graph.nodes[1].attributes = [Attribute("then_branch", .opaque(typeCode: 5),
                                                     unknownFields: UnknownFields([.init(number: 6, wireType: 2, data: sub)]))]
        model.unknownFields = UnknownFields([.init(number: 25, wireType: 2, data: [0x0a, 0x01, 0x46]),
                                             .init(number: 99, wireType: 0, data: [0x96, 0x01])])
        let back = try ModelFile.load(bytes: try ModelFile.serialize(model).bytes)
        #expect(back.unknownFields == model.unknownFields)
        #expect(back.graph.nodes[1].attributes[0].value.typeCode == 5)
        #expect(back.graph.nodes[1].attributes[0].unknownFields.fields[0].data == sub)
    }

    @Test func topologicalOrderOfUnsortedGraph() throws {
        var g = try sampleModel().graph
        g.nodes.reverse()
        #expect(try g.topologicalOrder() == [1, 0])
        #expect(g.verificationErrors().isEmpty)
    }

    @Test func writesAreAtomic() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try sampleModel()
        #expect { try ModelFile.save(model, to: dir + "/missing/sub/m.onnx") } throws: { e in
            (e as? ModelError)?.kind == .io && "\(e)".contains("cannot create a file")
        }
        try ModelFile.save(model, to: dir + "/m.onnx")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["m.onnx"])
        // A target that is a folder: the rename fails and the temporary file is gone.
        try FileManager.default.createDirectory(atPath: dir + "/d.onnx/x", withIntermediateDirectories: true)
        #expect(throws: ModelError.self) { try ModelFile.save(model, to: dir + "/d.onnx") }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["d.onnx", "m.onnx"])
    }
}

@Suite struct GeneratedCodeTests {
    /// The committed protobuf-c code is what protoc-c generates from schemas/model.proto now.
    @Test func committedCodeIsFresh() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: repoRoot + "/tools/gen-proto.sh")
        p.arguments = ["--check"]
        let pipe = Pipe()
        p.standardError = pipe
        p.standardOutput = Pipe()
        try p.run()
        p.waitUntilExit()
        let err = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(p.terminationStatus == 0, "\(err)")
    }
}
