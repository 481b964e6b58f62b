// Transaction: several graph changes applied all or none (ARCHITECTURE rule 5, seed 001). The
// snapshot verb is a Transaction of one action per line.
//
//   run():  prepare(a1) ... prepare(an)          each may change the graph (in its own drain)
//           all succeeded:  commit(a1) ... commit(an)           in order, cannot fail
//           ak failed:      abort(ak) ... abort(a1)             newest first, ak included
//           then always:    clean(aj) ... clean(a1), and the drained sections the action began
//                           with drain_until_clean() end        newest first, exactly once each
//
// "Prepared" means prepare() was called, whether it succeeded or not; actions after a failed one
// are never touched. abort() must undo whatever its prepare() did, also when prepare() failed half
// way. A drained section begun in prepare ends in clean, and the framework ends it even if the
// action's clean() forgets. No lock is held across the transaction: the drained sections keep the
// nodes still, and each graph change inside takes the graph's locks only for itself.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "blockcore/graph/drain.h"
#include "blockcore/result.h"

namespace chainfs {

class Node;

class TransactionAction {
 public:
  TransactionAction() = default;
  virtual ~TransactionAction() = default;
  TransactionAction(const TransactionAction&) = delete;
  TransactionAction& operator=(const TransactionAction&) = delete;

  virtual std::string describe() const = 0;  // "snapshot of 'top' onto /images/s1.qcow2"
  virtual Result<void> prepare() = 0;
  virtual void commit() {}
  virtual void abort() {}
  virtual void clean() {}

 protected:
  // Begins a drained section that lasts until this action's clean() has returned.
  void drain_until_clean(Node& node, DrainScope scope = DrainScope::Node);

 private:
  friend class Transaction;
  std::vector<DrainedSection> drains_;
};

class Transaction {
 public:
  Transaction() = default;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  void add(std::unique_ptr<TransactionAction> action);
  size_t size() const { return actions_.size(); }

  // Runs the protocol above once. On failure returns the failed prepare's error, prefixed with
  // the action's description; the graph is as before.
  Result<void> run();

 private:
  std::vector<std::unique_ptr<TransactionAction>> actions_;
  bool ran_ = false;
};

}  // namespace chainfs
