import Foundation
import SCMGraph
import SCMOptimize
import SCMRuntime

/// Saves the optimized graph of each sampling step as a model file our runtime loads again
/// (`scm-export optimize IN OUT`). Fused ops are declared through `opset_import` (`ai.scm`).
public enum StepExport {
    /// Writes `step1.onnx` ... `stepN.onnx` (one per time of `schedule`) into `directory`,
    /// creating it when needed; each file is written to a temporary name and renamed.
    /// Returns the paths written.
    public static func write(_ model: Model, schedule: [Float], batch: Int, passes: [String]? = nil,
                             options: Optimizer.Options = Optimizer.Options(), directory: String) throws -> [String] {
        // Optimize everything first, so a failure leaves no files behind.
        var models: [Model] = []
        for (i, t) in schedule.enumerated() {
            var (m, _) = try Optimizer.optimize(model, t: t, batch: batch, passes: passes, options: options)
            m.metadata.append(MetadataEntry(TrigFlowMetadata.Key.specialized("step"), "\(i + 1)/\(schedule.count)"))
            models.append(m)
        }
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDir) {
            guard isDir.boolValue else { throw ModelError(.io, at: directory, "exists and is not a directory") }
            // Step files of an earlier, longer schedule would sit beside these as if they belonged.
            let stale = ModelFile.numberedFiles(in: directory, prefix: "step", suffix: ".onnx").filter { $0.number > schedule.count }
            if let first = stale.map(\.name).sorted().first {
                throw ModelError(.io, at: directory, "holds \(first) of an earlier export of more steps, which would be left beside these \(schedule.count): remove it or give an empty folder")
            }
        }
        // All files or none: written to temporary names, renamed when every one is written.
        var files: [(path: String, bytes: [UInt8])] = []
        for (i, m) in models.enumerated() {
            files.append(((directory as NSString).appendingPathComponent("step\(i + 1).onnx"), try ModelFile.serialize(m).bytes))
        }
        try ModelFile.writeAllAtomically(files, creatingFolder: directory)
        let paths = files.map(\.path)
        return paths
    }

    /// Writes the model optimized for the single time `t` (or for the batch size only when nil).
    public static func write(_ model: Model, t: Float?, batch: Int, passes: [String]? = nil,
                             options: Optimizer.Options = Optimizer.Options(), to path: String) throws {
        let (m, _) = try Optimizer.optimize(model, t: t, batch: batch, passes: passes, options: options)
        _ = try ModelFile.save(m, to: path)
    }
}
