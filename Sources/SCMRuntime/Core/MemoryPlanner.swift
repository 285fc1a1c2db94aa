/// Liveness-based placement of buffers in one arena. A buffer lives from the step that defines
/// it (-1 for graph inputs) to its last use; buffers whose lives overlap get disjoint bytes.
struct MemoryPlanner {
    private var sizes: [Int] = []
    private var defs: [Int] = []
    private var lasts: [Int] = []

    /// Adds a buffer of `bytes` defined at step `def`; returns its id.
    mutating func add(bytes: Int, def: Int) -> Int {
        sizes.append(bytes)
        defs.append(def)
        lasts.append(def)
        return sizes.count - 1
    }

    /// Records that buffer `b` is read (or must stay alive) at step `step`.
    mutating func use(_ b: Int, at step: Int) { lasts[b] = max(lasts[b], step) }
    func bytes(_ b: Int) -> Int { sizes[b] }
    func lastUse(_ b: Int) -> Int { lasts[b] }
    var sumBytes: Int { sizes.reduce(0) { $0 + align($1) } }

    private func align(_ n: Int) -> Int { (n + 63) / 64 * 64 }

    /// Offsets (64-byte aligned) by greedy best fit, largest buffers first; and the arena size.
    func layout() -> (offsets: [Int], total: Int) {
        let order = sizes.indices.sorted { sizes[$0] != sizes[$1] ? sizes[$0] > sizes[$1] : $0 < $1 }
        var offsets = [Int](repeating: 0, count: sizes.count)
        var placed: [Int] = []
        var total = 0
        for b in order {
            let size = align(sizes[b])
            // Occupied ranges of placed buffers whose lives overlap b's, by offset.
            let busy = placed.filter { defs[$0] <= lasts[b] && defs[b] <= lasts[$0] }
                .map { (offsets[$0], offsets[$0] + align(sizes[$0])) }
                .sorted { $0.0 < $1.0 }
            var best: Int? = nil
            var bestGap = Int.max
            var cursor = 0
            for (lo, hi) in busy {
                if lo - cursor >= size && lo - cursor < bestGap {
                    best = cursor
                    bestGap = lo - cursor
                }
                cursor = max(cursor, hi)
            }
            let off = best ?? cursor
            offsets[b] = off
            total = max(total, off + size)
            placed.append(b)
        }
        return (offsets, total)
    }
}
