#include "blockcore/result.h"

#include <cerrno>

namespace chainfs {

int to_errno(Errc code) {
  switch (code) {
    case Errc::Invalid: return EINVAL;
    case Errc::NotFound: return ENOENT;
    case Errc::Exists: return EEXIST;
    case Errc::Busy: return EBUSY;
    case Errc::Access: return EACCES;
    case Errc::ReadOnly: return EROFS;
    case Errc::Io: return EIO;
    case Errc::NoSpace: return ENOSPC;
    case Errc::Unsupported: return EOPNOTSUPP;
    case Errc::TooLarge: return EFBIG;
    case Errc::NoData: return ENXIO;
    case Errc::Cancelled: return ECANCELED;
    case Errc::Again: return EAGAIN;
  }
  return EIO;
}

const char* errno_name(Errc code) {
  switch (code) {
    case Errc::Invalid: return "EINVAL";
    case Errc::NotFound: return "ENOENT";
    case Errc::Exists: return "EEXIST";
    case Errc::Busy: return "EBUSY";
    case Errc::Access: return "EACCES";
    case Errc::ReadOnly: return "EROFS";
    case Errc::Io: return "EIO";
    case Errc::NoSpace: return "ENOSPC";
    case Errc::Unsupported: return "EOPNOTSUPP";
    case Errc::TooLarge: return "EFBIG";
    case Errc::NoData: return "ENXIO";
    case Errc::Cancelled: return "ECANCELED";
    case Errc::Again: return "EAGAIN";
  }
  return "EIO";
}

Errc errc_from_errno(int err) {
  switch (err) {
    case EINVAL: return Errc::Invalid;
    case ENOENT: return Errc::NotFound;
    case EEXIST: return Errc::Exists;
    case EBUSY: return Errc::Busy;
    case EACCES: case EPERM: return Errc::Access;
    case EROFS: return Errc::ReadOnly;
    case ENOSPC: case EDQUOT: return Errc::NoSpace;
    case EOPNOTSUPP: return Errc::Unsupported;
    case EFBIG: return Errc::TooLarge;
    case ENXIO: return Errc::NoData;
    case ECANCELED: return Errc::Cancelled;
    case EAGAIN: return Errc::Again;
    default: return Errc::Io;
  }
}

}  // namespace chainfs
