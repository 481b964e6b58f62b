#include "blockcore/graph/transaction.h"

#include "blockcore/graph/node.h"

namespace chainfs {

void TransactionAction::drain_until_clean(Node& node, DrainScope scope) {
  drains_.emplace_back(node, scope);
}

void Transaction::add(std::unique_ptr<TransactionAction> action) {
  actions_.push_back(std::move(action));
}

Result<void> Transaction::run() {
  if (ran_) return make_error(Errc::Invalid, "a transaction runs once");
  ran_ = true;
  size_t prepared = 0;  // actions whose prepare() was called
  Result<void> outcome;
  for (auto& action : actions_) {
    ++prepared;
    if (auto r = action->prepare(); !r.ok()) {
      Error error = r.take_error();
      error.message = action->describe() + ": " + error.message;
      outcome = std::move(error);
      break;
    }
  }
  if (outcome.ok()) {
    for (auto& action : actions_) action->commit();
  } else {
    for (size_t i = prepared; i-- > 0;) actions_[i]->abort();
  }
  for (size_t i = prepared; i-- > 0;) {
    actions_[i]->clean();
    // Newest section first, as they nest.
    auto& drains = actions_[i]->drains_;
    while (!drains.empty()) drains.pop_back();
  }
  return outcome;
}

}  // namespace chainfs
