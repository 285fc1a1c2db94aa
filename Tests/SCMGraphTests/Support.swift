import Foundation
@testable import SCMGraph
import TestSupport

/// A fresh temporary folder.
func makeTempDir() throws -> String {
    let dir = NSTemporaryDirectory() + "scm-test-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

/// A small valid model: y = Relu(x + w) with a raw_data initializer, declared shapes and metadata.
func sampleModel() throws -> Model {
    let w = try Tensor(shape: [2, 3], scalars: [Float](repeating: 0.5, count: 6), name: "w")
    let graph = Graph(
        name: "sample",
        nodes: [Node("Add", inputs: ["x", "w"], outputs: ["s"], name: "add"),
                Node("Relu", inputs: ["s"], outputs: ["y"], name: "relu")],
        initializers: [w],
        inputs: [ValueInfo("x", .float, [.param("N"), .value(3)])],
        outputs: [ValueInfo("y", .float, [.param("N"), .value(3)])])
    return Model(graph: graph, metadata: [MetadataEntry("scm.format", "trigflow/1")])
}
