// The fixed table of drivers. Immutable: no global mutable state.
#include "blockcore/driver.h"
#include "blockcore/drivers/drivers.h"

namespace chainfs {

std::unique_ptr<Driver> make_driver(std::string_view name) {
  if (name == "file") return make_file_driver();
  if (name == "raw") return make_raw_driver();
  if (name == "qcow2") return make_qcow2_driver();
  if (name == "fault") return make_fault_driver();
  return nullptr;
}

bool is_format_driver(std::string_view name) { return name == "raw" || name == "qcow2"; }

}  // namespace chainfs
