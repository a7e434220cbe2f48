"""What the benchmarks share: interleaved repeats after a warm-up, their min / median / spread, the peak memory of a call,
and a record of what else ran on the machine meanwhile (its 2 cores are often shared with other jobs)."""
import os, statistics, threading, time

import psutil

NOISY_SPREAD = 0.10   # repeats whose (max - min) / median exceeds this are flagged "noisy" in the results


def interleaved(variants: dict, repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds of each variant over `repeats` rounds run interleaved (A B C, then C B A, ...) after `warmup` untimed rounds.
    A variant is a function that returns the seconds of the part to time (so that its set-up stays out)."""
    for _ in range(warmup):
        for f in variants.values(): f()
    order, times = list(variants), {k: [] for k in variants}
    for r in range(repeats):
        for k in (order if r % 2 == 0 else order[::-1]): times[k].append(variants[k]())
    return times


def summary(seconds: list[float]) -> dict:
    "min, median and spread = (max - min) / median of repeated timings; `noisy` when the spread exceeds NOISY_SPREAD."
    med = statistics.median(seconds)
    spread = (max(seconds) - min(seconds)) / med
    out = dict(min=min(seconds), median=med, spread=spread, noisy=spread > NOISY_SPREAD, seconds=seconds)
    if out["noisy"]: out["noisy_reason"] = f"(max - min) / median = {spread:.0%} > {NOISY_SPREAD:.0%} over {len(seconds)} repeats"
    return out


class Machine:
    "Load averages before and after a benchmark, and how much CPU other processes used meanwhile."
    def __init__(self):
        self.load, self.t0, self.busy0, self.own0 = os.getloadavg(), time.perf_counter(), self._busy(), self._own()

    @staticmethod
    def _busy() -> float:   # CPU seconds the whole machine spent busy, all cores
        t = psutil.cpu_times()
        return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0) + getattr(t, "steal", 0)

    @staticmethod
    def _own() -> float:    # CPU seconds of this process and its children
        t = psutil.Process().cpu_times()
        return t.user + t.system + t.children_user + t.children_system

    def record(self) -> dict:
        wall = time.perf_counter() - self.t0
        others = max(0.0, (self._busy() - self.busy0) - (self._own() - self.own0)) / wall
        return dict(cpu_cores=psutil.cpu_count(), load_average_before=[round(x, 2) for x in self.load],
                    load_average_after=[round(x, 2) for x in os.getloadavg()], wall_seconds=wall,
                    other_processes_cores=others, machine_shared=others > 0.1,
                    machine_shared_rule="other processes used more than 0.1 core on average during the run "
                                        "(machine-wide busy CPU time minus this process's, over the wall time)")


class PeakRSS:
    "Peak resident memory of this process while the `with` block runs, sampled every 2 ms: `.peak` and `.above_start` (bytes)."
    def __enter__(self):
        self._proc, self._stop = psutil.Process(), threading.Event()
        self.start = self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._stop.set(); self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)
        self.above_start = self.peak - self.start
