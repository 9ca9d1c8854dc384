#pragma once
// Items gathered during one write transaction and handled together, once,
// just before its COMMIT: one statement for a turn's peer notices, one
// decision per run however many of its tasks ended in the turn.

#include <functional>
#include <utility>
#include <vector>

#include "core/sql_store.hpp"

namespace tether::core {

// Invariants:
// - add() is a before-commit action of the entry point that calls it, so an
//   item of a guarded() block that fails is dropped with its writes.
// - The handler runs at most once per transaction, after every before-commit
//   action queued before its first item was gathered (the ones a flusher
//   queues later run after it), with the items in the order added.
// - Items left by a commit that failed before the handler ran are never
//   handed over: they belong to a transaction that is gone.
// The store and the batch live on one loop thread; the batch must outlive
// the store's transaction (it is referenced by queued actions).
template <class Item>
class CommitBatch {
 public:
  // `handle` gets the transaction's items; it runs inside the transaction,
  // before COMMIT, and may write. Throwing fails the commit (SqlStore::commit).
  CommitBatch(SqlStore& store, std::function<void(std::vector<Item>)> handle)
      : store_(store), handle_(std::move(handle)) {}
  CommitBatch(const CommitBatch&) = delete;
  CommitBatch& operator=(const CommitBatch&) = delete;

  // Gathers `item` for the current transaction (opened if none is: throws
  // as SqlStore::begin_write).
  void add(Item item) {
    store_.begin_write();
    store_.before_commit([this, item = std::move(item)]() mutable { gather(std::move(item)); });
  }

 private:
  void gather(Item item) {
    if (of_ != store_.transactions_begun()) {  // the first of this commit
      items_.clear();                          // what a failed commit left
      of_ = store_.transactions_begun();
      store_.before_commit([this] { hand_over(); });  // after the others
    }
    items_.push_back(std::move(item));
  }

  void hand_over() {
    std::vector<Item> items;
    items.swap(items_);
    of_ = 0;  // an item a later before-commit action adds starts a new batch
    handle_(std::move(items));
  }

  SqlStore& store_;
  std::function<void(std::vector<Item>)> handle_;
  std::vector<Item> items_;  // the committing transaction's, in the order added
  uint64_t of_ = 0;          // the transaction (transactions_begun) items_ belongs to
};

}  // namespace tether::core
