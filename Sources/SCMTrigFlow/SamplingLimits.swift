import SCMGraph

/// The sampling contract's ranges, beside the runtime's (`Limits.batch`, `Limits.threads`).
extension Limits {
    /// Consistency steps, ODE steps and schedule lengths.
    public static let steps = 1...10_000
    /// Samples of one sampling call.
    public static let count = 1...(1 << 24)
}
