import Foundation
import SCMTrigFlow
#if canImport(Glibc)
import Glibc
#endif

// `make idle-check`: an embedded sampler must not spin between calls. Loads a model, makes a
// sampler with worker threads, draws once (so its workspace and threads exist), then measures the
// process's CPU time (getrusage) while it sleeps: once idle after loading, and in the pauses
// between requests of a serving loop. Fails when either share of one core exceeds the bound.
// (A separate process: the test runner's own parallel tests would count in its CPU time.)
// Threads that used CPU during a measured sleep are listed on standard error.

func cpuSeconds() -> Double {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// Clock ticks (user + system) of each thread of this process, by thread id and name.
func threadTicks() -> [String: Int] {
    var out: [String: Int] = [:]
    guard let tids = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return out }
    for tid in tids {
        guard let stat = try? String(contentsOfFile: "/proc/self/task/\(tid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")"), let open = stat.firstIndex(of: "(") else { continue }
        let name = String(stat[stat.index(after: open)..<close])
        let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
        guard fields.count > 13, let u = Int(fields[11]), let s = Int(fields[12]) else { continue }
        out["\(tid) \(name)"] = u + s
    }
    return out
}

/// CPU seconds per wall second over `seconds` of sleep; threads that used CPU meanwhile are
/// listed on standard error.
func idleShare(sleeping seconds: Double, _ label: String) -> Double {
    let before = threadTicks()
    let c0 = cpuSeconds(), t0 = now()
    usleep(UInt32(seconds * 1e6))
    let share = (cpuSeconds() - c0) / (now() - t0)
    for (thread, ticks) in threadTicks().sorted(by: { $0.key < $1.key }) where ticks > before[thread] ?? 0 {
        FileHandle.standardError.write(Data("idle-check: \(label): thread \(thread) used \(ticks - (before[thread] ?? 0)) clock ticks\n".utf8))
    }
    return share
}

let args = CommandLine.arguments
let path = args.count > 1 ? args[1] : "models/tiny-trigflow.onnx"
let bound = args.count > 2 ? Double(args[2]) ?? 0.02 : 0.02
let threads = 4
do {
    let model = try TrigFlowModel(path: path)
    let sampler = try model.sampler(steps: 2, options: .init(batch: 16, threads: threads))
    _ = try sampler.sample(count: 64, seed: 1)
    // The first second after the first call: not asserted. OpenBLAS creates its own server
    // threads when it is loaded; the runtime sets it to one thread on first use, and its server
    // thread busy-waits once, some tens of milliseconds (none with OPENBLAS_NUM_THREADS=1).
    let settling = idleShare(sleeping: 1, "first second after the first call")
    let afterLoad = idleShare(sleeping: 2, "idle after loading")
    var between: [Double] = []
    var busyCPU = 0.0, busyWall = 0.0
    for request in 0..<6 {
        let c0 = cpuSeconds(), t0 = now()
        _ = try sampler.sample(count: 64, seed: UInt64(request))
        busyCPU += cpuSeconds() - c0
        busyWall += now() - t0
        between.append(idleShare(sleeping: 0.4, "pause after request \(request)"))
    }
    let betweenShare = between.reduce(0, +) / Double(between.count)
    let line = String(format: "idle-check: %d worker threads; CPU share of one core: first second after the first call %.4f (not checked), idle after loading %.4f, between requests %.4f (worst pause %.4f), while sampling %.2f; bound %.3f",
                      threads, settling, afterLoad, betweenShare, between.max() ?? 0, busyCPU / max(busyWall, 1e-9), bound)
    print(line)
    if afterLoad > bound || (between.max() ?? 0) > bound {
        FileHandle.standardError.write(Data("idle-check: error: an idle sampler uses CPU (over \(bound) of a core)\n".utf8))
        exit(1)
    }
} catch {
    FileHandle.standardError.write(Data("idle-check: error: \(error)\n".utf8))
    exit(1)
}
