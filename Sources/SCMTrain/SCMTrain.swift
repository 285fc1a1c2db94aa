/// The companion trainer: networks defined once as IR graph builders, data sources, objectives
/// (flow, sCT, sCD), the optimizer schedule, checkpoints and the training loop of `scm-train`.
public enum SCMTrainInfo {
    /// The checkpoint format version this library writes and reads.
    public static let checkpointFormat = "scm-checkpoint/1"
}
