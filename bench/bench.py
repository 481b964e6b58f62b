#!/usr/bin/env python3
"""chainfs vs qemu-storage-daemon's FUSE export, side by side in one run.

Builds a deterministic 3-layer qcow2 chain (base ~60% allocated, mid ~20%, top ~10%, 64 KiB
clusters), serves its top layer with chainfs and with qemu-storage-daemon (QSD), runs fio against
both (and against libfuse's no-op `null` example, the ceiling FUSE itself sets), times stream,
intermediate commit and active commit on both, and prints one table of medians and ratios.
Each system gets its own copy of the chain; systems alternate within every repetition.
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


def copy_chain(src, dst):
    os.makedirs(dst, exist_ok=True)
    for name in ("base", "mid", "top"):
        shutil.copyfile(os.path.join(src, f"{name}.qcow2"), os.path.join(dst, f"{name}.qcow2"))


# ---- the servers -------------------------------------------------------------------------------

class Chainfs:
    label = "chainfs"

    def __init__(self, binary, d):
        self.binary, self.d = binary, d
        self.mnt = os.path.join(d, "mnt")
        os.makedirs(self.mnt, exist_ok=True)
        sh(binary, "mount", self.mnt, "--image", os.path.join(d, "top.qcow2"), "--log-level", "warn")
        self.target = os.path.join(self.mnt, "nodes", "top")

    def stop(self):
        subprocess.run(["fusermount3", "-u", self.mnt], check=False)

    def run_job(self, kind):
        """Returns seconds from the control write to the job's conclusion, or None."""
        line = {"stream": "top", "commit": "mid base=base", "active-commit": "top base=base"}[kind]
        ctl = "stream" if kind == "stream" else "commit"
        t0 = time.monotonic()
        try:
            fd = os.open(os.path.join(self.mnt, "control", ctl), os.O_RDWR)
            try:
                os.write(fd, (line + " id=bench\n").encode())
            finally:
                os.close(fd)
        except OSError as e:
            log(f"chainfs {kind}: {e.strerror}")
            return None
        status = os.path.join(self.mnt, "jobs", "bench")
        while True:
            with open(status) as f:
                st = dict(l.split(": ", 1) for l in f.read().splitlines() if ": " in l)
            state = st.get("state", "").strip()
            if state == "ready":
                with open(os.path.join(self.mnt, "control", "job"), "w") as f:
                    f.write("complete bench\n")
            if state == "concluded":
                dt = time.monotonic() - t0
                if st.get("error", "~").strip() != "~":
                    log(f"chainfs {kind} failed: {st['error']}")
                    return None
                with open(os.path.join(self.mnt, "control", "job"), "w") as f:
                    f.write("dismiss bench\n")
                return dt
            time.sleep(0.01)


class Qsd:
    label = "qsd"

    def __init__(self, d, export=True, writable=True):
        self.d = d
        self.sock = os.path.join(d, "qmp.sock")
        self.target = os.path.join(d, "export")
        args = ["qemu-storage-daemon"]
        for name, backing in (("base", None), ("mid", "base"), ("top", "mid")):
            args += ["--blockdev", json.dumps({"driver": "file", "filename": f"{d}/{name}.qcow2",
                                               "node-name": f"{name}-file"})]
            args += ["--blockdev", json.dumps({"driver": "qcow2", "file": f"{name}-file",
                                               "node-name": name, "backing": backing})]
        if export:
            open(self.target, "a").close()
            args += ["--export", f"type=fuse,id=exp,node-name=top,mountpoint={self.target},"
                                 f"writable={'on' if writable else 'off'}"]
        args += ["--chardev", f"socket,id=qmp,path={self.sock},server=on,wait=off", "--monitor", "chardev=qmp"]
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE)
        self.qmp = QMP(self.sock)

    def stop(self):
        try:
            self.qmp.cmd("quit")
        except Exception:  # noqa: BLE001 - best effort
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)

    def run_job(self, kind):
        t0 = time.monotonic()
        if kind == "stream":
            self.qmp.cmd("block-stream", **{"job-id": "bench", "device": "top"})
        elif kind == "commit":
            self.qmp.cmd("block-commit", **{"job-id": "bench", "device": "top", "top-node": "mid",
                                            "base-node": "base"})
        else:
            self.qmp.cmd("block-commit", **{"job-id": "bench", "device": "top", "base-node": "base"})
            self.qmp.wait_event({"BLOCK_JOB_READY"}, "bench")
            self.qmp.cmd("block-job-complete", device="bench")
        ev = self.qmp.wait_event({"BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED"}, "bench")
        dt = time.monotonic() - t0
        if ev["event"] != "BLOCK_JOB_COMPLETED" or ev["data"].get("error"):
            log(f"qsd {kind} failed: {ev}")
            return None
        return dt


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
        subprocess.run(["fusermount3", "-u", self.target], check=False)


# ---- fio ---------------------------------------------------------------------------------------

WORKLOADS = [  # (key, label, rw, bs, iodepth, numjobs, metric)
    ("seqread-qd1", "seq read 1M QD1", "read", "1M", 1, 1, "bw"),
    ("seqread-qd8", "seq read 1M QD8", "read", "1M", 8, 1, "bw"),
    ("randread-qd1", "rand read 4k QD1", "randread", "4k", 1, 1, "iops"),
    ("randread-qd16x2", "rand read 4k QD16x2", "randread", "4k", 16, 2, "iops"),
    ("seqwrite", "seq write 1M", "write", "1M", 8, 1, "bw"),
    ("randwrite-qd1", "rand write 4k QD1", "randwrite", "4k", 1, 1, "iops"),
]


def fio(target, rw, bs, iodepth, numjobs, direct, runtime, size):
    engine = "psync" if iodepth == 1 else ("libaio" if direct else "io_uring")
    cmd = ["fio", "--name=bench", f"--filename={target}", f"--rw={rw}", f"--bs={bs}",
           f"--iodepth={iodepth}", f"--numjobs={numjobs}", f"--ioengine={engine}",
           f"--direct={1 if direct else 0}", f"--runtime={runtime}", "--time_based",
           "--ramp_time=1", f"--size={size}", "--group_reporting", "--output-format=json",
           "--randrepeat=1", "--norandommap"]
    if rw in ("write", "randwrite") and not direct:
        cmd.append("--end_fsync=1")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    job = json.loads(out[out.index("{"):])["jobs"][0]
    side = job["read"] if "read" in rw else job["write"]
    return {"bw": side["bw_bytes"], "iops": side["iops"]}


def fmt(value, metric):
    if value is None:
        return "n/a"
    if metric == "bw":
        return f"{value / 1e9:.2f} GB/s" if value >= 1e9 else f"{value / 1e6:.0f} MB/s"
    if metric == "iops":
        return f"{value / 1000:.1f}k"
    return f"{value:.2f} s"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=2048)
    ap.add_argument("--runtime", type=int, default=4, help="seconds per fio run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "chainfs"))
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--only", default="", help="comma list of workload keys / 'jobs'")
    ap.add_argument("--no-buffered", action="store_true")
    args = ap.parse_args()

    work = args.workdir or tempfile.mkdtemp(prefix="chainfs-bench-", dir="/var/tmp")
    golden = os.path.join(work, "golden")
    os.makedirs(golden, exist_ok=True)
    log(f"building the chain in {golden} ({args.size_mib} MiB)")
    if not os.path.exists(os.path.join(golden, "top.qcow2")):
        make_chain(golden, args.size_mib)
    only = set(filter(None, args.only.split(",")))
    size = f"{args.size_mib}M"
    rows = []  # (label, a, b, metric)

    modes = [True] if args.no_buffered else [True, False]
    for direct in modes:
        for key, label, rw, bs, qd, nj, metric in WORKLOADS:
            if only and key not in only:
                continue
            if not direct and rw not in ("read", "randread"):
                continue  # buffered writes measure the page cache, not the server
            results = {"chainfs": [], "qsd": [], "fuse-null": []}
            for rep in range(args.repeat):
                for kind in ("chainfs", "qsd", "fuse-null"):
                    if kind == "fuse-null" and rw not in ("read", "randread"):
                        continue
                    d = os.path.join(work, f"{kind}-{rep}")
                    shutil.rmtree(d, ignore_errors=True)
                    os.makedirs(d)
                    if kind != "fuse-null":
                        copy_chain(golden, d)
                    server = None
                    try:
                        server = (Chainfs(args.binary, d) if kind == "chainfs" else
                                  Qsd(d) if kind == "qsd" else NullFuse(d))
                        r = fio(server.target, rw, bs, qd, nj, direct, args.runtime,
                                "4G" if kind == "fuse-null" else size)
                        results[kind].append(r[metric])
                    except (subprocess.CalledProcessError, OSError, RuntimeError) as e:
                        log(f"{kind} {key}: {e}")
                    finally:
                        if server:
                            server.stop()
                        shutil.rmtree(d, ignore_errors=True)
            med = {k: (statistics.median(v) if v else None) for k, v in results.items()}
            mode = "O_DIRECT" if direct else "buffered"
            rows.append((f"{label} ({mode})", med["chainfs"], med["qsd"], metric, med["fuse-null"]))
            log(f"  {rows[-1]}")

    if not only or "jobs" in only:
        for job in ("stream", "commit", "active-commit"):
            times = {"chainfs": [], "qsd": []}
            for rep in range(args.repeat):
                for kind in ("chainfs", "qsd"):
                    d = os.path.join(work, f"job-{kind}-{rep}")
                    shutil.rmtree(d, ignore_errors=True)
                    copy_chain(golden, d)
                    server = None
                    try:
                        server = Chainfs(args.binary, d) if kind == "chainfs" else Qsd(d, export=False)
                        t = server.run_job(job)
                        if t is not None:
                            times[kind].append(t)
                    except (subprocess.CalledProcessError, OSError, RuntimeError) as e:
                        log(f"{kind} {job}: {e}")
                    finally:
                        if server:
                            server.stop()
                        shutil.rmtree(d, ignore_errors=True)
            med = {k: (statistics.median(v) if v else None) for k, v in times.items()}
            # Time ratio inverted, so that > 1 means chainfs is faster.
            rows.append((f"{job} (time)", med["chainfs"], med["qsd"], "time", None))

    print(f"\nchainfs vs qemu-storage-daemon FUSE export — {args.size_mib} MiB 3-layer qcow2 chain, "
          f"{args.repeat} runs of {args.runtime}s, medians; {os.cpu_count()} cores")
    print(f"{'workload':<36} {'chainfs':>12} {'qsd':>12} {'ratio':>7} {'fuse-null':>12}")
    for label, a, b, metric, ceiling in rows:
        if a and b:
            ratio = (b / a) if metric == "time" else (a / b)
            ratio_s = f"{ratio:.2f}x"
        else:
            ratio_s = "n/a"
        print(f"{label:<36} {fmt(a, metric):>12} {fmt(b, metric):>12} {ratio_s:>7} "
              f"{fmt(ceiling, metric) if ceiling else '':>12}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
