"""A small QMP client (stdlib only) for driving qemu-storage-daemon's jobs in the bench."""
import json
import socket
import sys
import time


class QMP:
    def __init__(self, path, timeout=600):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.time() + 10
        while True:
            try:
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.events = []
        self.stray = []
        self._read()  # greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)
                continue
            if "error" in reply:
                raise RuntimeError(f"QMP {name}: {reply['error'].get('desc')}")
            return reply.get("return")

    def wait_event(self, names, job_id=None):
        """Returns the first event named in `names` (for job_id, if given)."""
        while True:
            for i, ev in enumerate(self.events):
                data = ev.get("data", {})
                if ev["event"] in names and (job_id is None or data.get("device", data.get("id")) == job_id):
                    return self.events.pop(i)
            msg = self._read()
            if "event" in msg:
                self.events.append(msg)
            else:  # a late command reply: kept aside (and shown), never matched
                self.stray.append(msg)
                print(f"qmp: unexpected message while waiting for {sorted(names)}: {msg}",
                      file=sys.stderr)

    def close(self):
        self.sock.close()
