"""A NumPy + onnxruntime implementation of the TrigFlow sampling contract (schemas/README.md),
written from the documentation, independent of the Swift code: the noise generator
(Philox4x32-10 + Box-Muller), consistency sampling and the PF-ODE baseline. The reference sampler
of the cross-checks (Tests/crosscheck: test_sampler.py, test_torch_models.py, check_demo.py) and of
the benchmarks (tools/bench.py, tools/bench_sampler.py)."""
import math

import numpy as np
import onnx

MASK = np.uint64(0xFFFFFFFF)


def philox4x32(counters, key):
    """Philox4x32-10 of counters (4 arrays of uint32 values held in uint64) under key (k0, k1)."""
    c0, c1, c2, c3 = (np.asarray(c, np.uint64) for c in counters)
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    for r in range(10):
        if r > 0:
            k0 = (k0 + np.uint64(0x9E3779B9)) & MASK
            k1 = (k1 + np.uint64(0xBB67AE85)) & MASK
        p0 = np.uint64(0xD2511F53) * c0
        p1 = np.uint64(0xCD9E8D57) * c2
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ k0) & MASK, p1 & MASK, ((p0 >> np.uint64(32)) ^ c3 ^ k1) & MASK, p0 & MASK
    return c0, c1, c2, c3


def gaussian(seed, sample, step, count):
    """The documented noise of (seed, sample, step): `count` float32 standard normals."""
    blocks = (count + 3) // 4
    b = np.arange(blocks, dtype=np.uint64)
    key = (seed & 0xFFFFFFFF, seed >> 32)
    w = philox4x32((b & MASK, b >> np.uint64(32), np.full(blocks, sample, np.uint64), np.full(blocks, step, np.uint64)), key)
    u = [(wi.astype(np.float64) + 0.5) / 4294967296.0 for wi in w]
    r01, th01 = np.sqrt(-2 * np.log(u[0])), 2 * math.pi * u[1]
    r23, th23 = np.sqrt(-2 * np.log(u[2])), 2 * math.pi * u[3]
    z = np.stack([r01 * np.cos(th01), r01 * np.sin(th01), r23 * np.cos(th23), r23 * np.sin(th23)], axis=1).reshape(-1)
    return z[:count].astype(np.float32)


def seeded_noise(seed, steps, count, sample_shape):
    """Noise [steps, count, *sample_shape] from the generator (what --seed uses)."""
    e = int(np.prod(sample_shape))
    return np.stack([np.stack([gaussian(seed, i, k, e).reshape(sample_shape) for i in range(count)]) for k in range(steps)])


def metadata(path):
    m = onnx.load(path)
    return {p.key: p.value for p in m.metadata_props}


def default_schedule(steps, t_max):
    return [np.float32(t_max * math.sqrt((steps - i) / steps)) for i in range(steps)]


class Network:
    """The model in onnxruntime: f(x, t) whatever the file's parameterization."""

    def __init__(self, path, threads=1, optimize=True):
        from .onnxrt import ort_session
        self.session = ort_session(path, threads, optimize, inter_threads=1)
        meta = metadata(path)
        self.sigma = np.float32(float(meta["scm.sigma_data"]))
        self.t_max = np.float32(float(meta["scm.t_max"]))
        self.velocity = meta.get("scm.parameterization", "consistency") == "velocity"
        # A multistep consistency model's segment boundaries (decreasing), or None.
        self.segments = [np.float32(float(v)) for v in meta["scm.segments"].split(",")] if "scm.segments" in meta else None
        self.meta = meta

    def raw(self, x, t):
        names = [i.name for i in self.session.get_inputs()]
        return self.session.run(None, {names[0]: x, names[1]: np.full(x.shape[0], t, np.float32)})[0]

    def coefficients(self, t):
        return np.float32(math.cos(float(t))), np.float32(float(self.sigma) * math.sin(float(t)))

    def f(self, x, t):
        y = self.raw(x, t)
        if not self.velocity:
            return y
        c, s = self.coefficients(t)
        return c * x - s * y

    def schedule(self, steps):
        if self.segments is not None:
            assert steps == len(self.segments) + 1, (steps, self.segments)
            return [self.t_max] + self.segments
        key = f"scm.schedule.{steps}"
        if key in self.meta:
            return [np.float32(float(v)) for v in self.meta[key].split(",")]
        return default_schedule(steps, float(self.t_max))


def consistency_sample(net, times, noise):
    """x = sigma_d z_0 at t_0; x0 = f(x, t_0); then x = cos(s) x0 + sin(s) sigma_d z_k, x0 = f(x, s).
    A multistep model (scm.segments) takes no fresh noise: x = f(x, t_k) at each time."""
    x = net.sigma * noise[0]
    x0 = None
    for k, t in enumerate(times):
        if k > 0 and net.segments is not None:
            x = x0
        elif k > 0:
            c, s = net.coefficients(t)
            x = c * x0 + s * noise[k]
        x0 = net.f(x.astype(np.float32), t)
    return x0


def ode_sample(net, steps, solver, noise):
    """dx/dt = sigma_d F = (cos t x - f) / sin t, from t_max to 0 on a grid uniform in t."""
    grid = [np.float32(float(net.t_max) * (steps - k) / steps) for k in range(steps + 1)]

    def derivative(x, t):
        y = net.raw(x.astype(np.float32), t)
        if net.velocity:
            return net.sigma * y
        return (np.float32(math.cos(float(t))) * x - y) / np.float32(math.sin(float(t)))

    x = net.sigma * noise[0]
    for k in range(steps):
        t, nxt = grid[k], grid[k + 1]
        h = np.float32(nxt - t)
        d1 = derivative(x, t)
        if solver == "heun" and nxt > 0:
            d2 = derivative(x + h * d1, nxt)
            x = x + np.float32(h * 0.5) * (d1 + d2)
        else:
            x = x + h * d1
    return x


def pixels(x, low, high):
    """The documented data-to-pixel map: floor((x - lo) * (255 / (hi - lo)) + 0.5), clamped, NaN -> 0."""
    scale = np.float32(255) / (np.float32(high) - np.float32(low))
    y = (x.astype(np.float32) - np.float32(low)) * scale + np.float32(0.5)
    y = np.where(np.isnan(y), 0, y)
    return np.clip(np.floor(y), 0, 255).astype(np.uint8)
