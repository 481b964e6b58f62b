// Factories of the built-in drivers (see registry.cpp). Each lives in its own file.
#pragma once

#include <memory>

#include "blockcore/driver.h"

namespace chainfs {

std::unique_ptr<Driver> make_file_driver();   // drivers/file_driver.cpp: host file via io_uring
std::unique_ptr<Driver> make_raw_driver();    // drivers/raw_driver.cpp: format node, 1:1 on file
std::unique_ptr<Driver> make_fault_driver();  // drivers/fault_driver.cpp: error/delay injection
std::unique_ptr<Driver> make_qcow2_driver();  // drivers/qcow2/: the qcow2 format

}  // namespace chainfs
