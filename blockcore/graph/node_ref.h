// NodeRef: the one strong-reference type for nodes (ARCHITECTURE rule 1). Every holder — a parent
// edge, a chain, a job, an open FUSE handle, an iterator, the user — owns a NodeRef; nobody calls
// ref/unref by hand. The node closes exactly once, when the last NodeRef goes away.
#pragma once

#include <cstddef>
#include <utility>

namespace chainfs {

class Node;

namespace detail {
void node_acquire(Node* node);      // +1; the caller already holds a reference
void node_release(Node* node);      // -1; closes and deletes the node at zero
bool node_try_acquire(Node* node);  // +1 unless the count already reached zero
}  // namespace detail

class NodeRef {
 public:
  NodeRef() = default;
  NodeRef(std::nullptr_t) {}  // NOLINT
  // Adopts a reference the caller already counted (used by Node::create and try_ref only).
  static NodeRef adopt(Node* node) {
    NodeRef r;
    r.node_ = node;
    return r;
  }

  NodeRef(const NodeRef& other) : node_(other.node_) {
    if (node_) detail::node_acquire(node_);
  }
  NodeRef(NodeRef&& other) noexcept : node_(std::exchange(other.node_, nullptr)) {}
  NodeRef& operator=(NodeRef other) noexcept {
    std::swap(node_, other.node_);
    return *this;
  }
  ~NodeRef() { reset(); }

  void reset() {
    if (Node* n = std::exchange(node_, nullptr)) detail::node_release(n);
  }

  Node* get() const { return node_; }
  Node* operator->() const { return node_; }
  Node& operator*() const { return *node_; }
  explicit operator bool() const { return node_ != nullptr; }
  friend bool operator==(const NodeRef& a, const NodeRef& b) { return a.node_ == b.node_; }
  friend bool operator==(const NodeRef& a, const Node* b) { return a.node_ == b; }

 private:
  Node* node_ = nullptr;
};

}  // namespace chainfs
