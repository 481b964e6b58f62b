#!/usr/bin/env python3
"""Scaling of chainfs with chain depth and with virtual size (issue 6 item 3).

Part 1 — depth: qcow2 chains of 1, 10, 100 and 1000 layers (64 MiB virtual, 64 KiB clusters).
The base holds guest cluster 0 and layer i (i >= 1) holds guest cluster i only, so a 4 KiB read
at offset 0 of the top layer walks every layer down to the base. For chainfs and for
qemu-storage-daemon's FUSE export of the same chain: time until the mount is ready (the
`chainfs mount` / `qemu-storage-daemon --daemonize` command returns), the first 4 KiB O_DIRECT read
at offset 0 after the mount (server caches cold, host page cache warm), and the median of warm
reads of the same block.

Part 2 — memory: one chainfs mount serving 10 chains (one qcow2 each), 100 GiB virtual size with
data at scattered offsets; VmRSS of the daemon after the mount and after reading 64 MiB scattered
over each chain's first GiB and over its whole virtual size; the same with 1 GiB chains. RSS should follow the metadata touched, not the
virtual size.

Stdlib only; needs qemu-img, qemu-io, qemu-storage-daemon and a chainfs binary.
Usage: bench/scaling.py [--chainfs build/chainfs] [--depths 1,10,100,1000] [--repeat 3]
                        [--warm-reads 50] [--skip-depth] [--skip-rss] [--no-qsd]
"""
import argparse
import concurrent.futures
import json
import mmap
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

CLUSTER = 64 * 1024
BLOCK = 4096


def sh(*cmd, **kw):
    return subprocess.run([str(c) for c in cmd], check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, **kw)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({cpu}), kernel {platform.release()}"


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---- reading with O_DIRECT ---------------------------------------------------------------------

class DirectReader:
    """O_DIRECT preads of one file into an aligned buffer (bypasses the kernel page cache, so every
    read reaches the FUSE server)."""

    def __init__(self, path, size=BLOCK):
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        self.buf = mmap.mmap(-1, size)  # page aligned

    def read(self, offset):
        t0 = time.perf_counter()
        n = os.preadv(self.fd, [self.buf], offset)
        dt = time.perf_counter() - t0
        if n != len(self.buf):
            raise OSError(f"short read: {n}")
        return dt

    def first_byte(self):
        return self.buf[0]

    def close(self):
        os.close(self.fd)
        self.buf.close()


# ---- part 1: depth -----------------------------------------------------------------------------

def layer_pattern(i):
    return (i * 7 + 1) & 0xff or 1


def make_layer(d, i, size):
    """Layer i as a standalone image holding guest cluster i (pattern layer_pattern(i)); linked
    into the chain afterwards with an unsafe rebase, so that no qemu tool opens a deep chain."""
    path = os.path.join(d, f"l{i:04d}.qcow2")
    sh("qemu-img", "create", "-q", "-f", "qcow2", path, str(size))
    sh("qemu-io", "-f", "qcow2", "-c", f"write -q -P {layer_pattern(i)} {i * CLUSTER} {CLUSTER}", path)
    if i > 0:
        sh("qemu-img", "rebase", "-u", "-f", "qcow2", "-F", "qcow2", "-b", f"l{i - 1:04d}.qcow2", path)
    return path


def make_chain(d, depth, size=64 << 20):
    os.makedirs(d, exist_ok=True)
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        paths = list(pool.map(lambda i: make_layer(d, i, size), range(depth)))
    return paths[-1]


def wait_gone(pid, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            return
        time.sleep(0.01)


def unmount(path):
    """fusermount3 -u, retried while the mount is busy: the kernel sends FUSE's RELEASE for a file
    just closed asynchronously, so right after a close the mount can still look busy."""
    for _ in range(100):
        r = subprocess.run(["fusermount3", "-u", path], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        if r.returncode == 0 or not os.path.ismount(path):
            return
        time.sleep(0.05)
    log(f"could not unmount {path}: {r.stderr.strip()}")


def find_daemon(mountpoint, name):
    """The pid of the process whose command line names `mountpoint` (chainfs daemonizes)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if args and name.encode() in os.path.basename(args[0]) and mountpoint.encode() in args[1:]:
            return int(pid)
    return None


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


class ChainfsMount:
    def __init__(self, binary, images, root):
        self.mnt = tempfile.mkdtemp(prefix="chainfs-scaling-mnt-", dir="/tmp")
        args = [binary, "mount", self.mnt, "--log-level", "warn"]
        for img in images:
            args += ["--image", img]
        t0 = time.perf_counter()
        sh(*args)
        self.mount_seconds = time.perf_counter() - t0
        self.pid = find_daemon(self.mnt, "chainfs")
        self.root = root

    def node_path(self, node):
        return os.path.join(self.mnt, "nodes", node)

    def stop(self):
        unmount(self.mnt)
        if self.pid:
            wait_gone(self.pid)
        os.rmdir(self.mnt)


class QsdExport:
    def __init__(self, top, root):
        self.target = os.path.join(root, "qsd-export")
        open(self.target, "a").close()
        self.pidfile = os.path.join(root, "qsd.pid")
        node = {"driver": "qcow2", "node-name": "top", "read-only": True,
                "file": {"driver": "file", "filename": top}}
        args = ["qemu-storage-daemon", "--blockdev", json.dumps(node),
                "--export", f"type=fuse,id=exp,node-name=top,mountpoint={self.target},writable=off",
                "--pidfile", self.pidfile, "--daemonize"]
        t0 = time.perf_counter()
        sh(*args)
        self.mount_seconds = time.perf_counter() - t0
        with open(self.pidfile) as f:
            self.pid = int(f.read().strip())

    def stop(self):
        unmount(self.target)
        try:
            os.kill(self.pid, 15)
        except ProcessLookupError:
            pass
        wait_gone(self.pid)
        os.unlink(self.target)


def measure_reads(path, warm_reads):
    r = DirectReader(path)
    try:
        cold = r.read(0)
        if r.first_byte() != layer_pattern(0):
            raise RuntimeError(f"{path}: read {r.first_byte()} at 0, expected the base's "
                               f"pattern {layer_pattern(0)}")
        warm = [r.read(0) for _ in range(warm_reads)]
    finally:
        r.close()
    return cold, statistics.median(warm)


def depth_part(args, root):
    rows = []
    for depth in args.depths:
        d = os.path.join(root, f"chain-{depth}")
        t0 = time.monotonic()
        top = make_chain(d, depth)
        log(f"depth {depth}: chain built in {time.monotonic() - t0:.1f} s")
        results = {"chainfs": {"mount": [], "cold": [], "warm": [], "error": None},
                   "qsd": {"mount": [], "cold": [], "warm": [], "error": None}}
        for rep in range(args.repeat):
            servers = [("chainfs", lambda: ChainfsMount(args.chainfs, [top], root))]
            if not args.no_qsd:
                servers.append(("qsd", lambda: QsdExport(top, root)))
            for label, start in servers:
                res = results[label]
                if res["error"]:
                    continue
                try:
                    srv = start()
                except subprocess.CalledProcessError as e:
                    res["error"] = (e.stderr or "").strip().splitlines()[-1:] or [f"exit {e.returncode}"]
                    res["error"] = res["error"][0]
                    log(f"depth {depth} {label}: start failed: {res['error']}")
                    continue
                try:
                    path = srv.node_path(os.path.basename(top)[:-6]) if label == "chainfs" else srv.target
                    cold, warm = measure_reads(path, args.warm_reads)
                    res["mount"].append(srv.mount_seconds)
                    res["cold"].append(cold)
                    res["warm"].append(warm)
                except (OSError, RuntimeError) as e:
                    res["error"] = str(e)
                    log(f"depth {depth} {label}: {e}")
                finally:
                    srv.stop()
        rows.append((depth, results))
        shutil.rmtree(d, ignore_errors=True)
    return rows


def ms(x):
    return "—" if x is None else f"{x * 1e3:.2f}"


def us(x):
    return "—" if x is None else f"{x * 1e6:.0f}"


def print_depth_table(rows, args):
    print(f"\n### Chain depth (64 MiB layers, 64 KiB clusters; medians of {args.repeat} runs, "
          f"warm = median of {args.warm_reads} O_DIRECT reads)\n")
    print("| layers | chainfs mount ms | qsd mount ms | chainfs cold read µs | qsd cold read µs "
          "| chainfs warm read µs | qsd warm read µs |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for depth, res in rows:
        c, q = res["chainfs"], res["qsd"]
        cells = [str(depth), ms(median(c["mount"])), ms(median(q["mount"])), us(median(c["cold"])),
                 us(median(q["cold"])), us(median(c["warm"])), us(median(q["warm"]))]
        print("| " + " | ".join(cells) + " |")
    for depth, res in rows:
        for label in ("chainfs", "qsd"):
            if res[label]["error"]:
                print(f"\n{label} at {depth} layers: {res[label]['error']}")


# ---- part 2: RSS -------------------------------------------------------------------------------

RSS_CHAINS = 10
RSS_WRITES = 64        # 1 MiB writes at scattered offsets per image
RSS_READ_BYTES = 64 << 20
RSS_READ_SIZE = 64 * 1024


def scattered(i, count, span, align):
    """Deterministic scattered offsets: count points spread over span, each aligned."""
    step = span // count
    return [((k * step + (k * 2654435761 + i * 40503) % max(step - align, 1)) // align) * align
            for k in range(count)]


def make_rss_images(d, size, count):
    os.makedirs(d, exist_ok=True)

    def one(i):
        path = os.path.join(d, f"disk{i:02d}.qcow2")
        sh("qemu-img", "create", "-q", "-f", "qcow2", path, str(size))
        cmds = []
        for off in scattered(i, RSS_WRITES, size, 1 << 20):
            cmds += ["-c", f"write -q -P {i + 1} {off} 1M"]
        sh("qemu-io", "-f", "qcow2", *cmds, path)
        return path

    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return list(pool.map(one, range(count)))


def l2_tables_touched(offsets, length, cluster=CLUSTER):
    span = cluster * (cluster // 8)  # guest bytes one L2 table maps (64 KiB clusters: 512 MiB)
    return len({o // span for o in offsets} | {(o + length - 1) // span for o in offsets})


def rss_run(args, images, read_span):
    m = ChainfsMount(args.chainfs, images, None)
    try:
        if not m.pid:
            raise RuntimeError("could not find the chainfs daemon's pid")
        after_mount = rss_kib(m.pid)
        n = RSS_READ_BYTES // RSS_READ_SIZE
        for i, img in enumerate(images):
            r = DirectReader(m.node_path(os.path.basename(img)[:-6]), RSS_READ_SIZE)
            try:
                for off in scattered(i + 100, n, read_span, RSS_READ_SIZE):
                    r.read(off)
            finally:
                r.close()
        after_read = rss_kib(m.pid)
        return after_mount, after_read
    finally:
        m.stop()


def rss_part(args, root):
    rows = []
    n = RSS_READ_BYTES // RSS_READ_SIZE
    for size, spans in ((1 << 30, (1 << 30,)), (100 << 30, (1 << 30, 100 << 30))):
        d = os.path.join(root, f"rss-{size >> 30}g")
        images = make_rss_images(d, size, RSS_CHAINS)
        host = sum(os.stat(p).st_blocks * 512 for p in images)
        for span in spans:
            mounts, reads = [], []
            for _ in range(args.repeat):
                a, b = rss_run(args, images, span)
                mounts.append(a)
                reads.append(b)
            touched = l2_tables_touched(scattered(100, n, span, RSS_READ_SIZE), RSS_READ_SIZE)
            rows.append((f"{size >> 30} GiB", f"{span >> 30} GiB", touched, host, median(mounts),
                         median(reads)))
        shutil.rmtree(d, ignore_errors=True)
    return rows


def print_rss_table(rows, args):
    print(f"\n### Memory of one mount serving {RSS_CHAINS} chains (VmRSS of the chainfs daemon; "
          f"medians of {args.repeat} runs)\n")
    print(f"Each chain: one qcow2 image with {RSS_WRITES} × 1 MiB of data at scattered offsets; "
          f"then {RSS_READ_BYTES >> 20} MiB read per chain in {RSS_READ_SIZE >> 10} KiB O_DIRECT "
          "reads scattered over the span given.\n")
    print("| virtual size per chain | reads spread over | L2 spans (512 MiB) read per chain "
          "| host bytes (all images) | RSS after mount MiB | RSS after reads MiB |")
    print("|---|---|---:|---:|---:|---:|")
    for size, span, touched, host, a, b in rows:
        print(f"| {size} | {span} | {touched} | {host / (1 << 20):.1f} MiB | {a / 1024:.1f} "
              f"| {b / 1024:.1f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    p.add_argument("--chainfs", default=os.path.join(here, "..", "build", "chainfs"))
    p.add_argument("--depths", default="1,10,100,1000")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--warm-reads", type=int, default=50)
    p.add_argument("--skip-depth", action="store_true")
    p.add_argument("--skip-rss", action="store_true")
    p.add_argument("--no-qsd", action="store_true", help="chainfs only")
    p.add_argument("--workdir", default=None, help="where to build the images (default: a temp dir)")
    args = p.parse_args()
    args.depths = [int(x) for x in args.depths.split(",") if x]
    args.chainfs = os.path.abspath(args.chainfs)
    if not os.access(args.chainfs, os.X_OK):
        sys.exit(f"scaling: no chainfs binary at {args.chainfs} (build it: scripts/setup.sh release chainfs)")
    tools = ["qemu-img", "qemu-io", "fusermount3"] + ([] if args.no_qsd else ["qemu-storage-daemon"])
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        sys.exit(f"scaling: missing tools: {', '.join(missing)} (scripts/setup.sh installs them)")

    fds = raise_fd_limit()
    root = tempfile.mkdtemp(prefix="chainfs-scaling-", dir=args.workdir)
    try:
        print(f"Machine: {machine()}; open-file limit {fds}")
        if not args.skip_depth:
            print_depth_table(depth_part(args, root), args)
        if not args.skip_rss:
            print_rss_table(rss_part(args, root), args)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
