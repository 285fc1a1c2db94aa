/// The ranges every tool and API entry point accepts for the numbers a user chooses, in one place
/// so that `scm-run`, `scm-infer`, `scm-inspect`, `scm-export` and the library agree (the
/// sampling contract adds its step and sample counts in SCMTrigFlow).
public enum Limits {
    /// Worker threads of one session or sampling call (including the caller's).
    public static let threads = 1...256
    /// Samples per network evaluation (the batch size a plan is specialized or compiled for).
    public static let batch = 1...65_536

    /// `nil` when `value` lies in `range`, else "must be in a...b, is v".
    public static func violation(_ value: Int, _ range: ClosedRange<Int>) -> String? {
        range.contains(value) ? nil : "must be in \(range.lowerBound)...\(range.upperBound), is \(value)"
    }
}
