// --help texts.
#include "src/cli.h"

namespace chainfs::cli {

namespace {

constexpr const char* kOverview = R"(Usage: chainfs COMMAND [ARGS...]

Mounts graphs of qcow2/raw block nodes (backing chains) as a FUSE filesystem: every node is a
file, every chain a folder, and block jobs run by writing to the files under control/.

Commands:
  mount MOUNTPOINT [options]          mount a graph (see 'chainfs mount --help')
  create FILE SIZE [options]          create a qcow2 v3 image
  status MOUNTPOINT                   show the graph and the jobs of a mount
  stream MOUNTPOINT NODE [options]    copy the layers below NODE into it
  commit MOUNTPOINT NODE [options]    merge NODE down into a lower layer
  snapshot MOUNTPOINT NODE OVERLAY_PATH [--name NODE] [NODE OVERLAY_PATH [--name NODE]]...
                                      put new qcow2 overlays above nodes (one transaction)
  job MOUNTPOINT VERB ID              pause|resume|cancel|complete|dismiss|finalize a job

Run 'chainfs COMMAND --help' for the options of a command.
Exit codes: 0 success, 1 operation refused or failed, 2 usage error.
)";

constexpr const char* kMount = R"(Usage: chainfs mount MOUNTPOINT [options]

Opens the graph described by --config and --image and mounts it on MOUNTPOINT (a folder).
Without -f, returns once the mount is ready (or fails with the reason) and serves it from the
background; unmount with 'fusermount3 -u MOUNTPOINT' (or SIGTERM/SIGINT to the daemon).

Options:
  --config FILE.yaml        nodes, chains and images to open (see docs/config.md)
  --image PATH[,chain=NAME][,name=NODE][,read-only]
                            open an image and its backing chain as a chain (repeatable)
  -f, --foreground          stay in the foreground, logging to stderr
  --threads N               FUSE worker threads (default: the config's, else the number of cores)
  --log-level LEVEL         trace|debug|info|warn|error (stderr or syslog; default: info)
  --allow-other             let other users access the mount (their access follows file modes)
  --read-only               open every node read-only
  -h, --help                show this help
)";

constexpr const char* kCreate =
    R"(Usage: chainfs create FILE SIZE [--backing FILE] [--cluster-size N]

Creates a new qcow2 v3 image FILE of SIZE bytes (suffixes K, M, G, T: powers of 1024). With
--backing, the image reads through to that file (its name is recorded as given, relative to
FILE's folder); SIZE 0 then means the backing file's size.

Options:
  --backing FILE            backing file of the new image
  --cluster-size N          cluster size, a power of two from 512 to 2M (default 64K)
  -h, --help                show this help
)";

constexpr const char* kStatus = R"(Usage: chainfs status MOUNTPOINT

Shows the chains, nodes and jobs of a chainfs mount (from its graph.json).
)";

constexpr const char* kStream = R"(Usage: chainfs stream MOUNTPOINT NODE [options]

Copies into NODE the data of every layer below it down to --base (exclusive; without --base the
whole chain), then drops the layers in between. Prints the job's id once it started.

Options:
  --base NODE               stop at this layer (it stays NODE's backing)
  --speed RATE              bytes per second (suffixes K, M, G, T); 0 = unlimited
  --id ID                   the job's id (default: streamN)
  --wait                    follow the job until it ends: a progress bar (percent, rate, ETA)
                            on a terminal, a plain line a second otherwise; exit 1 if it fails
  -h, --help                show this help

The job stays listed in MOUNTPOINT/jobs/ after it ends, until 'chainfs job MOUNTPOINT dismiss ID'.
)";

constexpr const char* kCommit = R"(Usage: chainfs commit MOUNTPOINT NODE [options]

Merges NODE and the layers between it and --base (default: the bottom layer) into the base;
whatever had NODE as backing then has the base, and the layers between are dropped.
Committing a chain's active layer is an active commit: the job becomes ready once the base is in
sync, keeps it in sync with new writes, and finishes on 'chainfs job MOUNTPOINT complete ID' (the
chain then points at the base) or goes back untouched on 'chainfs job MOUNTPOINT cancel ID'.

Options:
  --base NODE               the layer to merge into
  --speed RATE              bytes per second (suffixes K, M, G, T); 0 = unlimited
  --id ID                   the job's id (default: commitN, active-commitN)
  --wait                    follow the job until it ends (exit 1 if it fails) or, for an active
                            commit, until it is ready (then complete it as above)
  -h, --help                show this help
)";

constexpr const char* kSnapshot =
    R"(Usage: chainfs snapshot MOUNTPOINT NODE OVERLAY_PATH [--name NODE] [NODE OVERLAY_PATH [--name NODE]]...

Creates a qcow2 overlay at each OVERLAY_PATH backed by NODE's image and puts it above NODE: every
parent of NODE, chains included, then uses the overlay. All pairs are one transaction: all
applied or none, and files created for a failed transaction are removed. --name names the
overlay node before it (default: the overlay file's stem). A relative OVERLAY_PATH is relative to
the current folder.
)";

constexpr const char* kJob = R"(Usage: chainfs job MOUNTPOINT VERB ID
       chainfs job MOUNTPOINT speed ID RATE

VERB is one of
  pause      pause a running (or ready) job
  resume     resume a paused job (a job stopped by its on-error policy retries)
  cancel     stop the job; the graph stays as it was (an active commit stays on its top layer)
  complete   finish a ready active commit: the chain then points at the base
  finalize   make the graph change of a job started with auto-finalize=off
  dismiss    remove a concluded job from MOUNTPOINT/jobs/
  speed      change the job's rate limit (bytes per second, suffixes K, M, G, T; 0 = unlimited)
)";

}  // namespace

std::string help_text(std::string_view command) {
  if (command.empty()) return kOverview;
  if (command == "mount") return kMount;
  if (command == "create") return kCreate;
  if (command == "status") return kStatus;
  if (command == "stream") return kStream;
  if (command == "commit") return kCommit;
  if (command == "snapshot") return kSnapshot;
  if (command == "job") return kJob;
  return {};
}

}  // namespace chainfs::cli
