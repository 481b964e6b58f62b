#!/usr/bin/env python3
"""chainfs vs qemu-storage-daemon's FUSE export, side by side in one run.

Builds a deterministic 3-layer qcow2 chain (base ~60% allocated, mid ~20%, top ~10%, 64 KiB
clusters), serves its top layer with chainfs and with qemu-storage-daemon (QSD), runs fio against
both (and against libfuse's no-op `null` example, the ceiling FUSE itself sets), times stream,
intermediate commit and active commit on both, measures guest random reads while a stream or an
active commit runs, and prints one table of medians, ratios and the issue-6 targets.

What each figure measures (the same work on both systems):
- reads (O_DIRECT): time-based fio runs over one copy of the chain per system;
- buffered seq read: one pass over the whole node, page cache of the mount empty at the start;
- seq write 1M QD8: one pass over the whole node, each system on a fresh copy of the chain, so
  ~90% of the clusters are allocated by the write (top is ~10% allocated);
- rand write 4k QD1: a fixed number of writes at the same seeded offsets on a fresh copy; the
  first write into a cluster of top copies the rest of the 64 KiB cluster up from the backing
  chain (copy-on-write), later writes into it are in place;
- jobs: from the start command to the job's conclusion (active commit: completed as soon as it
  is ready), each on a fresh copy; chainfs's data is on disk at that point, QSD's stream and
  intermediate commit leave it in the host page cache, so a second row each adds, for QSD, an
  fdatasync of the image the job wrote (chainfs: the same time as the first row);
- guest rand read 4k QD16 during a job: IOPS while the job runs at unlimited speed over IOPS of
  the same fio run before the job started (fio's per-100 ms IOPS log, Unix timestamps).
Before every run the chain's files are read once (warm host cache) and the bench waits until the
host disk has been quiet for a moment (/proc/pressure/io), so that one run's writeback does not
land in the next run. fio's buffers are page-aligned (--mem_align=4096, as dd, cp and cat align
theirs): with fio's default malloc'd buffer the kernel's copy into it runs at ~2 GB/s on this
machine's CPU and caps every buffered read near 1.1 GB/s, whatever the server. Each repetition
runs every system once, back to back, the order rotated between repetitions; the table gives
the medians, the ratio of the medians and the median of the per-repetition ratios ("pairwise":
each ratio taken between runs minutes apart at most, so the machine's slow drift cancels; the
verdict uses it); every repetition is in the second table.
"""
import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qmp import QMP  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MiB = 1 << 20


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---- the chain ---------------------------------------------------------------------------------

def make_chain(d, size_mib):
    """base <- mid <- top, 64 KiB clusters; 1 MiB extents chosen by a seeded RNG."""
    rng = random.Random(20261121)
    layers = [("base", 0.60, None), ("mid", 0.20, "base"), ("top", 0.10, "mid")]
    for name, share, backing in layers:
        path = os.path.join(d, f"{name}.qcow2")
        cmd = ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=65536"]
        if backing:
            cmd += ["-b", f"{backing}.qcow2", "-F", "qcow2"]
        sh(*cmd, path, f"{size_mib}M")
        extents = sorted(rng.sample(range(size_mib), int(size_mib * share)))
        cmds = []
        for e in extents:
            cmds += ["-c", f"write -q -P {(e * 7 + len(name)) % 251 + 1} {e * MiB} {MiB}"]
        for i in range(0, len(cmds), 2000):
            sh("qemu-io", "-f", "qcow2", *cmds[i:i + 2000], path)
    return os.path.join(d, "top.qcow2")


def copy_chain(src, dst, only_top=False):
    """A private copy of the chain; with only_top, base and mid are hard links to the golden
    files (opened read-only by both systems), so a write workload copies ~10% of the data."""
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    for name in ("base", "mid", "top"):
        a, b = os.path.join(src, f"{name}.qcow2"), os.path.join(dst, f"{name}.qcow2")
        if only_top and name != "top":
            os.link(a, b)
        else:
            shutil.copyfile(a, b)
    os.sync()  # the copy's writeback must not run during the measurement


def warm(d):
    """Reads the chain's files once, so every system starts with the host cache warm (the first
    system of a repetition would otherwise pay the misses the next one profits from)."""
    for name in ("base", "mid", "top"):
        with open(os.path.join(d, f"{name}.qcow2"), "rb", buffering=0) as f:
            while f.read(8 << 20):
                pass


def settle(max_wait=15.0, window=0.5, quiet_share=0.05):
    """Waits until the host's I/O stall time over `window` seconds is under `quiet_share` of it
    (/proc/pressure/io), at most `max_wait` seconds: the previous run's writeback or file deletion
    must not be measured as part of the next one. Without PSI it does not wait."""
    def stalled_us():
        try:
            with open("/proc/pressure/io") as f:
                return int(f.readline().split("total=")[1])
        except (OSError, IndexError, ValueError):
            return None
    deadline = time.monotonic() + max_wait
    before = stalled_us()
    while before is not None and time.monotonic() < deadline:
        time.sleep(window)
        after = stalled_us()
        if after is None or after - before < window * 1e6 * quiet_share:
            return
        before = after
    if before is not None:
        log(f"    the disk stayed busy for {max_wait:.0f} s; measuring anyway")


# ---- the servers -------------------------------------------------------------------------------

CHAINFS_CONFIG = """\
# Every layer declared by name, so that commits may write into their base.
log-level: warn
nodes:
  - name: base
    driver: qcow2
    file: base.qcow2
    backing: ~
    read-only: {ro}
  - name: mid
    driver: qcow2
    file: mid.qcow2
    backing: base
    read-only: {ro}
  - name: top
    driver: qcow2
    file: top.qcow2
    backing: mid
chains:
  - name: vm
    node: top
"""

JOB_LINES = {"stream": ("stream", "top"), "commit": ("commit", "mid base=base"),
             "active-commit": ("commit", "top base=base")}


class Chainfs:
    label = "chainfs"

    def __init__(self, binary, d, backing_ro=False):
        self.binary, self.d = binary, d
        self.mnt = os.path.join(d, "mnt")
        os.makedirs(self.mnt, exist_ok=True)
        config = os.path.join(d, "chain.yaml")
        with open(config, "w") as f:
            f.write(CHAINFS_CONFIG.format(ro="true" if backing_ro else "false"))
        sh(binary, "mount", self.mnt, "--config", config)
        self.target = os.path.join(self.mnt, "nodes", "top")

    def stop(self):
        subprocess.run(["fusermount3", "-u", self.mnt], check=False)

    def start_job(self, kind):
        ctl, line = JOB_LINES[kind]
        fd = os.open(os.path.join(self.mnt, "control", ctl), os.O_RDWR)
        try:
            os.write(fd, (line + " id=bench\n").encode())
        finally:
            os.close(fd)

    def wait_job(self, kind):
        """Waits for the conclusion (completing an active commit once ready); raises on failure."""
        status = os.path.join(self.mnt, "jobs", "bench")
        completed = False
        while True:
            with open(status) as f:
                st = dict(line.split(": ", 1) for line in f.read().splitlines() if ": " in line)
            state = st.get("state", "").strip()
            if state == "ready" and not completed:
                with open(os.path.join(self.mnt, "control", "job"), "w") as f:
                    f.write("complete bench\n")
                completed = True
            if state == "concluded":
                if st.get("error", "~").strip() != "~":
                    raise RuntimeError(f"chainfs {kind} failed: {st['error'].strip()}")
                with open(os.path.join(self.mnt, "control", "job"), "w") as f:
                    f.write("dismiss bench\n")
                return
            time.sleep(0.005)


class Qsd:
    label = "qsd"

    def __init__(self, d, export=True, writable=True, backing_ro=False):
        self.d = d
        self.sock = os.path.join(d, "qmp.sock")
        self.target = os.path.join(d, "export")
        args = ["qemu-storage-daemon"]
        for name, backing in (("base", None), ("mid", "base"), ("top", "mid")):
            ro = backing_ro and name != "top"
            args += ["--blockdev", json.dumps({"driver": "file", "filename": f"{d}/{name}.qcow2",
                                               "node-name": f"{name}-file", "read-only": ro})]
            args += ["--blockdev", json.dumps({"driver": "qcow2", "file": f"{name}-file",
                                               "node-name": name, "backing": backing,
                                               "read-only": ro})]
        if export:
            open(self.target, "a").close()
            args += ["--export", f"type=fuse,id=exp,node-name=top,mountpoint={self.target},"
                                 f"writable={'on' if writable else 'off'}"]
        args += ["--chardev", f"socket,id=qmp,path={self.sock},server=on,wait=off",
                 "--monitor", "chardev=qmp"]
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE)
        self.qmp = QMP(self.sock)

    def stop(self):
        try:
            self.qmp.cmd("quit")
        except Exception:  # noqa: BLE001 - best effort
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)

    def start_job(self, kind):
        if kind == "stream":
            self.qmp.cmd("block-stream", **{"job-id": "bench", "device": "top"})
        elif kind == "commit":
            self.qmp.cmd("block-commit", **{"job-id": "bench", "device": "top", "top-node": "mid",
                                            "base-node": "base"})
        else:
            self.qmp.cmd("block-commit", **{"job-id": "bench", "device": "top", "base-node": "base"})

    def wait_job(self, kind):
        if kind == "active-commit":
            self.qmp.wait_event({"BLOCK_JOB_READY"}, "bench")
            self.qmp.cmd("block-job-complete", device="bench")
        ev = self.qmp.wait_event({"BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED"}, "bench")
        if ev["event"] != "BLOCK_JOB_COMPLETED" or ev["data"].get("error"):
            raise RuntimeError(f"qsd {kind} failed: {ev}")


class NullFuse:
    """libfuse's example/null.c from libfuse3-dev, built here: the ceiling FUSE sets."""
    label = "fuse-null"

    def __init__(self, d):
        src = "/usr/share/doc/libfuse3-dev/examples/null.c"
        exe = os.path.join(d, "null")
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "fuse3"], check=True,
                               capture_output=True, text=True).stdout.split()
        sh("cc", "-O2", "-o", exe, src, *flags)
        self.target = os.path.join(d, "nullfile")
        open(self.target, "a").close()
        sh(exe, self.target, "-o", "max_read=1048576")

    def stop(self):
        # null.c may already have gone with its mount; nothing to report then.
        subprocess.run(["fusermount3", "-u", self.target], check=False, stderr=subprocess.DEVNULL)


# ---- fio ---------------------------------------------------------------------------------------

# key, label, rw, bs, iodepth, numjobs, metric, how: "time" (time-based), "pass" (one pass over
# the node), "ios" (a fixed number of I/Os), fresh (a fresh copy of the chain per run), target.
WORKLOADS = [
    ("seqread-qd1", "seq read 1M QD1", "read", "1M", 1, 1, "bw", "time", False, None),
    ("seqread-qd8", "seq read 1M QD8", "read", "1M", 8, 1, "bw", "time", False, 2.0),
    ("randread-qd1", "rand read 4k QD1", "randread", "4k", 1, 1, "iops", "time", False, 1.1),
    ("randread-qd16x2", "rand read 4k QD16x2", "randread", "4k", 16, 2, "iops", "time", False, 2.0),
    ("seqwrite", "seq write 1M QD8 (alloc)", "write", "1M", 8, 1, "bw", "pass", True, 4.0),
    ("randwrite-qd1", "rand write 4k QD1 (COW)", "randwrite", "4k", 1, 1, "iops", "ios", True, 1.1),
]
BUFFERED = [
    ("buf-seqread-qd1", "seq read 1M QD1", "read", "1M", 1, 1, "bw", "pass", False, 2.0),
    ("buf-seqread-qd8", "seq read 1M QD8", "read", "1M", 8, 1, "bw", "pass", False, None),
]
JOB_TARGETS = {"stream": 2.0, "commit": 1.0, "active-commit": 1.0}
DURABLE_AFTER = {"stream": "top.qcow2", "commit": "base.qcow2"}  # the image each job writes


def fio_cmd(target, rw, bs, iodepth, numjobs, direct, size):
    engine = "psync" if iodepth == 1 else ("libaio" if direct else "io_uring")
    return ["fio", "--name=bench", f"--filename={target}", f"--rw={rw}", f"--bs={bs}",
            f"--iodepth={iodepth}", f"--numjobs={numjobs}", f"--ioengine={engine}",
            f"--direct={1 if direct else 0}", f"--size={size}", "--group_reporting",
            "--output-format=json", "--randrepeat=1", "--norandommap", "--mem_align=4096"]


def fio(target, rw, bs, iodepth, numjobs, direct, how, args, size):
    cmd = fio_cmd(target, rw, bs, iodepth, numjobs, direct, size)
    if how == "time":
        cmd += [f"--runtime={args.runtime}", "--time_based", "--ramp_time=1"]
    elif how == "ios":
        cmd += [f"--number_ios={args.write_ios}"]
    # "pass": one pass over `size`.
    if rw in ("write", "randwrite") and not direct:
        cmd.append("--end_fsync=1")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    job = json.loads(out[out.index("{"):])["jobs"][0]
    side = job["read"] if "read" in rw else job["write"]
    return {"bw": side["bw_bytes"], "iops": side["iops"]}


def guest_during_job(server, kind, args, d):
    """rand read 4k QD16 on `server.target`: IOPS while `kind` runs over IOPS before it started."""
    prefix = os.path.join(d, "iops")
    cmd = fio_cmd(server.target, "randread", "4k", 16, 1, True, f"{args.size_mib}M")
    cmd += ["--runtime=120", "--time_based", "--readonly", f"--write_iops_log={prefix}",
            "--log_avg_msec=100", "--log_unix_epoch=1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5 + args.idle_seconds)  # fio start-up, then the idle window
        job_start = time.time()
        server.start_job(kind)
        server.wait_job(kind)
        job_end = time.time()
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    samples = []
    with open(f"{prefix}_iops.1.log") as f:
        for line in f:
            parts = [p.strip() for p in line.split(",")]
            samples.append((int(parts[0]) / 1000.0, float(parts[1])))
    # A sample averages the 100 ms before its timestamp; keep those wholly inside each window.
    idle = [v for t, v in samples if t - 0.1 >= job_start - args.idle_seconds + 0.2 and t <= job_start]
    busy = [v for t, v in samples if t - 0.1 >= job_start and t <= job_end]
    if not idle or not busy:
        raise RuntimeError(f"{kind} lasted {job_end - job_start:.2f}s: too short to sample")
    idle_iops, busy_iops = statistics.mean(idle), statistics.mean(busy)
    log(f"    {server.label} {kind}: idle {idle_iops:.0f} IOPS, during the job {busy_iops:.0f} "
        f"IOPS over {job_end - job_start:.2f}s")
    return busy_iops / idle_iops


# ---- the table ---------------------------------------------------------------------------------

def fmt(value, metric):
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if metric == "bw":
        return f"{value / 1e9:.2f} GB/s" if value >= 1e9 else f"{value / 1e6:.0f} MB/s"
    if metric == "iops":
        return f"{value / 1000:.1f}k"
    if metric == "share":
        return f"{value * 100:.0f}%"
    return f"{value:.2f} s"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio_of(a, b, metric):
    """How many times better chainfs's `a` is than QSD's `b` (times: shorter is better)."""
    if not a or not b:
        return None
    return (b / a) if metric == "time" else (a / b)


def pairwise(results, metric):
    """Median of the per-repetition ratios (lists are indexed by repetition, None = failed)."""
    return median([ratio_of(a, b, metric)
                   for a, b in zip(results.get("chainfs", []), results.get("qsd", []))])


class Table:
    def __init__(self):
        self.rows = []  # label, results{kind: [values]}, metric, target, notes{kind: str}

    def add(self, label, results, metric, target, notes=None):
        self.rows.append((label, results, metric, target, notes or {}))
        med = {k: fmt(median(v), metric) for k, v in results.items()}
        log(f"  {label}: {med} {notes or ''}")

    def print(self, args):
        print(f"\nchainfs vs qemu-storage-daemon FUSE export — {args.size_mib} MiB 3-layer qcow2 "
              f"chain, {args.repeat} runs (jobs {args.job_repeat}; reads {args.runtime}s each), "
              f"medians; ratio = of the medians, pairwise = median of the per-repetition ratios "
              f"(the verdict's); {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the end")
        before = any(r[1].get("before") for r in self.rows)
        print(f"{'workload':<38} {'chainfs':>10} {'qsd':>10} {'ratio':>7} {'pairwise':>8} "
              f"{'target':>7} {'':>6} {'fuse-null':>10}" + (f" {'before':>10}" if before else ""))
        for label, results, metric, target, notes in self.rows:
            a, b = median(results.get("chainfs", [])), median(results.get("qsd", []))
            ceiling = median(results.get("fuse-null", []))
            verdict = ""
            if metric == "share":
                ratio_s = pair_s = ""
                target_s = f">={target * 100:.0f}%"
                if a is not None:
                    verdict = "met" if a >= target else "MISSED"
            else:
                ratio, pair = ratio_of(a, b, metric), pairwise(results, metric)
                ratio_s = f"{ratio:.2f}x" if ratio else "n/a"
                pair_s = f"{pair:.2f}x" if pair else "n/a"
                target_s = f">={target:.1f}x" if target else ""
                if target and pair:
                    verdict = "met" if pair >= target else "MISSED"
            sa = notes.get("chainfs") or fmt(a, metric)
            sb = notes.get("qsd") or fmt(b, metric)
            prev = median(results.get("before", []))
            print(f"{label:<38} {sa:>10} {sb:>10} {ratio_s:>7} {pair_s:>8} {target_s:>7} {verdict:>6} "
                  f"{fmt(ceiling, metric) if ceiling else '':>10}" +
                  (f" {fmt(prev, metric) if prev else '':>10}" if before else ""))
        print("\nper-run values (chainfs | qsd" + (" | before):" if before else "):"))
        for label, results, metric, _, notes in self.rows:
            runs = " | ".join(", ".join(fmt(v, metric) for v in results.get(k, [])) or "-"
                              for k in ("chainfs", "qsd") + (("before",) if before else ()))
            print(f"  {label:<38} {runs}")
        for label, _, _, _, notes in self.rows:
            for kind, note in notes.items():
                if kind.endswith("reason"):
                    print(f"  note: {label}, {kind}: {note}")


# ---- main --------------------------------------------------------------------------------------

def with_server(kind, what, make_server, d, measure_fn):
    """Waits for a quiet disk, starts a server, runs measure_fn(server, d), stops it. A failure is
    logged and returned (None when all went well), so that one failed run does not end the
    bench."""
    server = None
    try:
        settle()
        server = make_server()
        measure_fn(server, d)
    except (subprocess.CalledProcessError, OSError, RuntimeError) as e:
        log(f"{what}: {e}")
        return e
    finally:
        if server:
            server.stop()
    return None


def rotated(kinds, repeat, *results):
    """Each system once per repetition, the order rotated so that no system is always first after
    another's run. Yields the system; after each run, a result list of `results` that the run did
    not append to (it failed) gets None, so that every list stays indexed by repetition."""
    for rep in range(repeat):
        for kind in kinds[rep % len(kinds):] + kinds[:rep % len(kinds)]:
            yield kind
            for r in results:
                if r is not None and len(r[kind]) <= rep:
                    r[kind].append(None)


def run_server(kind, args, d):
    """A server for the fio workloads: backing layers read-only, as a VM's would be."""
    if kind == "chainfs":
        return Chainfs(args.binary, d, backing_ro=True)
    if kind == "before":
        return Chainfs(args.baseline_binary, d, backing_ro=True)
    if kind == "qsd":
        return Qsd(d, backing_ro=True)
    return NullFuse(d)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=2048)
    ap.add_argument("--runtime", type=int, default=4, help="seconds per time-based fio run")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions of each fio workload")
    ap.add_argument("--job-repeat", type=int, default=5,
                    help="repetitions of each job (seconds each: more of them are cheap)")
    ap.add_argument("--write-ios", type=int, default=20000,
                    help="writes per rand write run (the same offsets on both systems)")
    ap.add_argument("--idle-seconds", type=float, default=1.5,
                    help="guest reads measured before a job starts (the idle baseline)")
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "chainfs"))
    ap.add_argument("--baseline-binary", default=None,
                    help="another chainfs build, run as system 'before' in the fio workloads")
    ap.add_argument("--workdir", default=None, help="keep the golden chain here between runs")
    ap.add_argument("--only", default="",
                    help="comma list of workload keys, 'buffered', 'jobs', 'guest-jobs'")
    ap.add_argument("--no-buffered", action="store_true")
    ap.add_argument("--systems", default="chainfs,qsd,fuse-null",
                    help="comma list of the systems to run (a subset for quick comparisons)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 256 MiB chain, 1 run, 2 s reads, 2000 writes")
    args = ap.parse_args()
    if args.quick:
        args.size_mib, args.repeat, args.runtime, args.write_ios = 256, 1, 2, 2000
        args.job_repeat = 1
        args.idle_seconds = 1.0

    work = args.workdir or tempfile.mkdtemp(prefix="chainfs-bench-", dir="/var/tmp")
    golden = os.path.join(work, f"golden-{args.size_mib}")
    os.makedirs(golden, exist_ok=True)
    if not os.path.exists(os.path.join(golden, "top.qcow2")):
        log(f"building the chain in {golden} ({args.size_mib} MiB)")
        make_chain(golden, args.size_mib)
    only = set(filter(None, args.only.split(",")))
    systems = [k for k in ("chainfs", "qsd", "fuse-null") if k in args.systems.split(",")]
    if args.baseline_binary:
        systems.insert(1, "before")
    size = f"{args.size_mib}M"
    table = Table()
    t_start = time.monotonic()

    # Reads share one copy per system (reads do not change it); writes get a fresh copy per run.
    readers = {}
    for kind in [k for k in systems if k != "fuse-null"]:
        readers[kind] = os.path.join(work, f"read-{kind}")
        copy_chain(golden, readers[kind], only_top=True)

    def measure(workloads, direct):
        for key, label, rw, bs, qd, nj, metric, how, fresh, target in workloads:
            if only and key not in only and not (not direct and "buffered" in only):
                continue
            results = {k: [] for k in systems}
            for kind in rotated(systems, args.repeat, results):
                d = os.path.join(work, f"run-{kind}")
                if kind == "fuse-null":
                    shutil.rmtree(d, ignore_errors=True)
                    os.makedirs(d)
                elif fresh:
                    copy_chain(golden, d, only_top=True)
                else:
                    d = readers[kind]
                if kind != "fuse-null":
                    warm(d)

                def run_fio(server, _d):
                    r = fio(server.target, rw, bs, qd, nj, direct, how, args,
                            "4G" if kind == "fuse-null" and how == "time" else size)
                    results[kind].append(r[metric])
                with_server(kind, f"{kind} {key}", lambda: run_server(kind, args, d), d, run_fio)
            mode = "O_DIRECT" if direct else "buffered, 1 pass"
            table.add(f"{label} ({mode})", results, metric, target)

    measure(WORKLOADS, True)
    if not args.no_buffered:
        measure(BUFFERED, False)

    pair = [k for k in systems if k in ("chainfs", "qsd")]

    def on_fresh_chain(kind, what, prefix, make_server, measure_fn):
        """A fresh, warm copy of the chain for one job run; see with_server."""
        d = os.path.join(work, f"{prefix}-{kind}")
        copy_chain(golden, d)
        warm(d)
        return with_server(kind, what, lambda: make_server(d), d, measure_fn)

    if not only or "jobs" in only:
        for job in ("stream", "commit", "active-commit"):
            times = {"chainfs": [], "qsd": []}
            # chainfs makes a job's data durable before its graph change; QSD's stream and
            # intermediate commit do not (its active commit flushes before `ready`). The second
            # row adds, for QSD, an fdatasync of the image the job wrote, timed right after.
            durable = {"chainfs": [], "qsd": []} if job in DURABLE_AFTER else None

            def time_job(server, d, kind):
                t0 = time.monotonic()
                server.start_job(job)
                server.wait_job(job)
                times[kind].append(time.monotonic() - t0)
                if durable is not None:
                    if kind == "qsd":
                        fd = os.open(os.path.join(d, DURABLE_AFTER[job]), os.O_RDONLY)
                        try:
                            os.fdatasync(fd)
                        finally:
                            os.close(fd)
                    durable[kind].append(time.monotonic() - t0)
            for kind in rotated(pair, args.job_repeat, times, durable):
                on_fresh_chain(kind, f"{kind} {job}", "job",
                               lambda d: (Chainfs(args.binary, d) if kind == "chainfs"
                                          else Qsd(d, export=False)),
                               lambda server, d: time_job(server, d, kind))
            table.add(f"{job} (time, unlimited speed)", times, "time", JOB_TARGETS[job])
            if durable is not None:
                table.add(f"{job}, data on disk (qsd + fdatasync)", durable, "time", None)

    if not only or "guest-jobs" in only:
        for job in ("stream", "active-commit"):
            shares = {"chainfs": [], "qsd": []}
            notes = {}
            for kind in rotated(pair, args.repeat, shares):
                # QSD refuses these jobs while its export is writable: export read-only.
                e = on_fresh_chain(kind, f"{kind} guest reads during {job}", "guest",
                                   lambda d: (Chainfs(args.binary, d) if kind == "chainfs"
                                              else Qsd(d, writable=False)),
                                   lambda server, d: shares[kind].append(
                                       guest_during_job(server, job, args, d)))
                if e and "QMP" in str(e):
                    notes[kind] = "refused"
                    notes[f"{kind} reason"] = str(e)
            table.add(f"rand read 4k QD16 during {job} (% idle)", shares, "share", 0.5, notes)

    table.print(args)
    print(f"\n(bench took {time.monotonic() - t_start:.0f} s)")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    else:
        for name in ("read-chainfs", "read-qsd", "read-before", "run-chainfs", "run-qsd",
                     "run-before", "run-fuse-null",
                     "job-chainfs", "job-qsd", "guest-chainfs", "guest-qsd"):
            shutil.rmtree(os.path.join(work, name), ignore_errors=True)


if __name__ == "__main__":
    main()
