#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fixed set of worker threads that run `parallelFor` loops. Chunk `i` of a loop always runs
/// on worker `i % threads`, and kernels split their work into chunks whose size does not depend
/// on the thread count, so results are bitwise identical for any number of threads.
///
/// One pool serves one caller at a time (a `Session` owns its pool); `parallelFor` is not
/// reentrant.
public final class ThreadPool: @unchecked Sendable {
    /// Workers including the calling thread.
    public let threads: Int
    private var workers: [pthread_t] = []
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let done = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var generation = 0
    private var pending = 0
    private var shutdown = false
    private var job: ((Int, Int) -> Void)?
    private var jobCount = 0

    /// Loops estimated below this many elements run on the calling thread (see
    /// `defaultMinParallelElements`; 0 spreads every loop of two or more chunks over the workers,
    /// which tests use to run small inputs through the parallel paths).
    public let minParallelElements: Int

    public init(threads: Int, minParallelElements: Int = ThreadPool.defaultMinParallelElements) {
        self.threads = max(1, threads)
        self.minParallelElements = max(0, minParallelElements)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        pthread_cond_init(done, nil)
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
        pthread_mutex_lock(mutex)
        shutdown = true
        pthread_cond_broadcast(wake)
        pthread_mutex_unlock(mutex)
        for t in workers { pthread_join(t, nil) }
        pthread_mutex_destroy(mutex)
        pthread_cond_destroy(wake)
        pthread_cond_destroy(done)
        mutex.deallocate()
        wake.deallocate()
        done.deallocate()
    }

    /// Worker threads actually running (thread creation can fail; chunks still all run).
    private var liveWorkers: Int { workers.count + 1 }

    /// Below this many elements of work a loop runs on the calling thread: waking workers costs
    /// more. (Which thread runs a chunk never changes its result.)
    public static let defaultMinParallelElements = 1 << 16

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
            pthread_mutex_lock(mutex)
            job = body
            jobCount = count
            pending = t - 1
            generation &+= 1
            pthread_cond_broadcast(wake)
            pthread_mutex_unlock(mutex)
            var i = 0
            while i < count {
                body(i, 0)
                i += t
            }
            pthread_mutex_lock(mutex)
            while pending > 0 { pthread_cond_wait(done, mutex) }
            job = nil
            pthread_mutex_unlock(mutex)
        }
    }

    private func workerLoop(_ w: Int) {
        var seen = 0
        pthread_mutex_lock(mutex)
        while true {
            while generation == seen && !shutdown { pthread_cond_wait(wake, mutex) }
            if shutdown { break }
            seen = generation
            let body = job
            let count = jobCount
            let t = liveWorkers
            pthread_mutex_unlock(mutex)
            if let body {
                var i = w
                while i < count {
                    body(i, w)
                    i += t
                }
            }
            pthread_mutex_lock(mutex)
            pending -= 1
            if pending == 0 { pthread_cond_signal(done) }
        }
        pthread_mutex_unlock(mutex)
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
