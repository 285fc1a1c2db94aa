import CKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fixed set of worker threads that run `parallelFor` loops. Threads claim chunks one at a time
/// from a shared counter (a slow or descheduled thread simply takes fewer), and kernels split
/// their work into chunks whose size and content do not depend on the thread count and which
/// thread runs them, so results are bitwise identical for any number of threads.
///
/// Between loops a worker spins for a short while (`spinNanoseconds`) watching for the next loop,
/// then sleeps on a condition variable: back-to-back kernels of a run skip the wake-up latency,
/// and an idle pool (a host service between requests) burns no CPU.
///
/// One pool serves one caller at a time (a `Session` owns its pool); `parallelFor` is not
/// reentrant.
public final class ThreadPool: @unchecked Sendable {
    /// Workers including the calling thread.
    public let threads: Int
    private var workers: [pthread_t] = []
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// Shared counters: [0] generation (one per loop), [1] workers still in the current loop,
    /// [2] sleeping workers, [3] next chunk to claim, [4] shutdown.
    private let counters = UnsafeMutablePointer<Int64>.allocate(capacity: 8)
    private var job: ((Int, Int) -> Void)?
    private var jobCount = 0

    /// How long a worker watches for the next loop before it sleeps (SCM_POOL_SPIN_NS overrides).
    public static let spinNanoseconds: Int64 = RuntimeOverrides.poolSpinNanoseconds ?? 50_000

    /// Loops estimated below this many elements run on the calling thread (see
    /// `defaultMinParallelElements`; 0 spreads every loop of two or more chunks over the workers,
    /// which tests use to run small inputs through the parallel paths).
    public let minParallelElements: Int

    public init(threads: Int, minParallelElements: Int = ThreadPool.defaultMinParallelElements) {
        self.threads = max(1, threads)
        self.minParallelElements = max(0, minParallelElements)
        counters.initialize(repeating: 0, count: 8)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        for w in 1..<self.threads {
            let ctx = Unmanaged.passRetained(WorkerContext(pool: self, index: w)).toOpaque()
            var tid = pthread_t()
            let rc = pthread_create(&tid, nil, { raw in
                let ctx = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
                ctx.pool.workerLoop(ctx.index)
                return nil
            }, ctx)
            if rc == 0 {
                workers.append(tid)
            } else {
                Unmanaged<WorkerContext>.fromOpaque(ctx).release()
                break  // worker indices stay contiguous: run with the threads we have
            }
        }
    }

    deinit {
        scm_atomic_store(counters + 4, 1)
        scm_atomic_add(counters, 1)
        pthread_mutex_lock(mutex)
        pthread_cond_broadcast(wake)
        pthread_mutex_unlock(mutex)
        for t in workers { pthread_join(t, nil) }
        pthread_mutex_destroy(mutex)
        pthread_cond_destroy(wake)
        mutex.deallocate()
        wake.deallocate()
        counters.deallocate()
    }

    /// Worker threads actually running (thread creation can fail; chunks still all run).
    private var liveWorkers: Int { workers.count + 1 }

    /// Below this many elements of work a loop runs on the calling thread: waking workers costs
    /// more. (Which thread runs a chunk never changes its result.) 2^14: within a run the workers
    /// are still spinning from the previous loop, so handing them a loop costs about a
    /// microsecond; measured against 2^16 on the 32/64/64 UNet, 2 threads: batch 8 (the
    /// sampler's chunk) 2.23-2.40 vs 2.46-2.56 ms, batch 1 0.38-0.39 vs 0.39-0.43 ms (the 7 x 7
    /// attention block and the small normalizations no longer leave the second core idle).
    public static let defaultMinParallelElements = 1 << 14

    /// Runs `body(chunk, worker)` for chunk in 0..<count, spread over the workers; returns when
    /// all chunks are done. `worker` is in 0..<threads and indexes per-worker scratch memory.
    /// `elements` estimates the loop's total work; small loops run inline. A loop handed to the
    /// workers allocates one small object (the escaping wrapper around `body`); inline ones nothing.
    public func parallelFor(_ count: Int, elements: Int = .max, _ body: (Int, Int) -> Void) {
        let t = liveWorkers
        if t == 1 || count <= 1 || elements < minParallelElements {
            for i in 0..<count { body(i, 0) }
            return
        }
        withoutActuallyEscaping(body) { body in
            job = body
            jobCount = count
            scm_atomic_store(counters + 3, 0)
            scm_atomic_store(counters + 1, Int64(t - 1))
            scm_atomic_add(counters, 1)  // publishes the loop
            if scm_atomic_load(counters + 2) > 0 {
                pthread_mutex_lock(mutex)
                pthread_cond_broadcast(wake)
                pthread_mutex_unlock(mutex)
            }
            runChunks(body, count, worker: 0)
            // Wait for every worker to leave this loop (they hold `body`): spin, yield when a
            // worker makes no progress for a while (descheduled on a busy machine).
            var left = scm_atomic_load(counters + 1)
            while left != 0 {
                if scm_spin_while_equal(counters + 1, left, 20_000) == left { sched_yield() }
                left = scm_atomic_load(counters + 1)
            }
            job = nil
        }
    }

    @inline(__always) private func runChunks(_ body: (Int, Int) -> Void, _ count: Int, worker: Int) {
        while true {
            let i = Int(scm_atomic_add(counters + 3, 1))
            if i >= count { break }
            body(i, worker)
        }
    }

    /// The worker's part of the current loop; its reference to the loop's body ends on return,
    /// before the worker checks out.
    @inline(never) private func runJob(_ w: Int) {
        if let body = job { runChunks(body, jobCount, worker: w) }
    }

    private func workerLoop(_ w: Int) {
        var seen: Int64 = 0
        while true {
            var g = scm_spin_while_equal(counters, seen, ThreadPool.spinNanoseconds)
            if g == seen {
                pthread_mutex_lock(mutex)
                scm_atomic_add(counters + 2, 1)
                while true {
                    g = scm_atomic_load(counters)
                    if g != seen { break }
                    pthread_cond_wait(wake, mutex)
                }
                scm_atomic_add(counters + 2, -1)
                pthread_mutex_unlock(mutex)
            }
            seen = g
            if scm_atomic_load(counters + 4) != 0 { break }
            runJob(w)
            scm_atomic_add(counters + 1, -1)
        }
    }
}

private final class WorkerContext {
    // unsafe: the pool's deinit joins the workers, so it outlives every use here.
    unowned(unsafe) let pool: ThreadPool
    let index: Int
    init(pool: ThreadPool, index: Int) {
        self.pool = pool
        self.index = index
    }
}
