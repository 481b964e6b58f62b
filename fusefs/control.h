// Control files (INTERFACE.md "Control files"): what the FUSE layer adds to the job engine's
// ControlPlane (blockcore/jobs/control_plane.h), which parses and runs the commands and logs each
// outcome itself.
//
// A write to control/<file> hands its bytes, whole, to ControlPlane::execute() together with the
// writer's working directory (for relative paths); the write fails with the errno of the refusal
// (chainfs::to_errno of its Errc), and the outcome line is kept per open file descriptor for the
// next read: "ok", "ok JOB-ID" or "error ENAME: message".
#pragma once

#include <sys/types.h>

#include <string>

#include "blockcore/result.h"

namespace chainfs::fusefs {

// The text read back from a control file after a write: "ok\n" or "ok ID\n" for a success (the
// plane's own "ok [id]"), "error ENAME: message\n" for a refusal (the message on one line).
std::string format_outcome(const Result<std::string>& outcome);

// The working directory of process `pid` (/proc/PID/cwd), or "" when it cannot be read (the
// writer is gone, or lives in another pid namespace: fuse_req_ctx gives pid 0 then).
std::string process_cwd(pid_t pid);

}  // namespace chainfs::fusefs
