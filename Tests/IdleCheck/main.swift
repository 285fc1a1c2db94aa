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

func cpuSeconds() -> Double {
    var u = rusage()
    getrusage(RUSAGE_SELF, &u)
    return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// CPU seconds per wall second over `seconds` of sleep.
func idleShare(sleeping seconds: Double) -> Double {
    let c0 = cpuSeconds(), t0 = now()
    usleep(UInt32(seconds * 1e6))
    return (cpuSeconds() - c0) / (now() - t0)
}

let args = CommandLine.arguments
let path = args.count > 1 ? args[1] : "models/tiny-trigflow.onnx"
let bound = args.count > 2 ? Double(args[2]) ?? 0.02 : 0.02
let threads = 4
do {
    let model = try TrigFlowModel(path: path)
    let sampler = try model.sampler(steps: 2, options: .init(batch: 16, threads: threads))
    _ = try sampler.sample(count: 64, seed: 1)
    let afterLoad = idleShare(sleeping: 2)
    var between: [Double] = []
    var busyCPU = 0.0, busyWall = 0.0
    for request in 0..<6 {
        let c0 = cpuSeconds(), t0 = now()
        _ = try sampler.sample(count: 64, seed: UInt64(request))
        busyCPU += cpuSeconds() - c0
        busyWall += now() - t0
        between.append(idleShare(sleeping: 0.4))
    }
    let betweenShare = between.reduce(0, +) / Double(between.count)
    let line = String(format: "idle-check: %d worker threads; CPU share of one core while idle after loading %.4f, between requests %.4f (worst pause %.4f), while sampling %.2f; bound %.3f",
                      threads, afterLoad, betweenShare, between.max() ?? 0, busyCPU / max(busyWall, 1e-9), bound)
    print(line)
    if afterLoad > bound || (between.max() ?? 0) > bound {
        FileHandle.standardError.write(Data("idle-check: error: an idle sampler uses CPU (over \(bound) of a core)\n".utf8))
        exit(1)
    }
} catch {
    FileHandle.standardError.write(Data("idle-check: error: \(error)\n".utf8))
    exit(1)
}
