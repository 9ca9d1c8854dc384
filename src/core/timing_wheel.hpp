// TimingWheel: deadlines for many entries at O(1) per add and per entry due,
// a hashed timing wheel (G. Varghese and T. Lauck, "Hashed and Hierarchical
// Timing Wheels", SOSP 1987, scheme 6).
//
// Why not one timer per entry: libwebsockets 4.1 keeps every connection's
// timers in one sorted list, so each re-arm walks it (O(n); at 9,900
// connections 67 % of the hub went there, issue [6/8]); a libuv timer per
// connection is a heap of the same size re-sorted on every event. Here an
// add appends to the slot its deadline hashes to, and a tick looks only at
// the slots that time passed over.
//
// Invariants: an entry lives in slot (due_ms / slot_ms) % slot_count, or, if
// its tick was already swept, in the slot of the next tick to sweep. A tick
// is swept once time has passed its end, so advance() hands an entry out
// once, at the first call with now_ms at or past the end of its due_ms's
// slot (never early, at most one slot late); an entry due more than a
// revolution ahead stays until its revolution. Single-threaded; not tied to
// a loop: the owner calls advance().
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace tether::core {

template <typename Entry>
class TimingWheel {
 public:
  // `slot_ms` > 0: the resolution. `slot_count` > 0: entries due within
  // slot_ms * slot_count of now are looked at once; later ones once per
  // revolution until due. `start_ms` is "now" for the first advance().
  TimingWheel(uint64_t slot_ms, size_t slot_count, uint64_t start_ms)
      : slot_ms_(slot_ms), slots_(slot_count), next_tick_(start_ms / slot_ms) {}

  // O(1). `due_ms` on the same clock as advance()'s `now_ms`.
  void add(uint64_t due_ms, Entry entry) {
    const uint64_t tick = std::max(due_ms / slot_ms_, next_tick_);
    slots_[tick % slots_.size()].push_back(Due{due_ms, std::move(entry)});
    ++size_;
  }

  // Calls on_due(entry) for every entry of the ticks that ended by `now_ms`,
  // after taking them all out (on_due may add). Cost: the entries of the
  // slots passed over, at most one revolution.
  template <typename OnDue>
  void advance(uint64_t now_ms, OnDue&& on_due) {
    const uint64_t end_tick = now_ms / slot_ms_;  // ticks before it have ended
    if (end_tick <= next_tick_) return;
    const uint64_t first =
        std::max(next_tick_, end_tick - std::min<uint64_t>(end_tick, slots_.size()));
    std::vector<Entry> due;
    for (uint64_t tick = first; tick < end_tick; ++tick) {
      std::vector<Due>& slot = slots_[tick % slots_.size()];
      // What stays belongs to a later revolution.
      auto waiting = std::partition(slot.begin(), slot.end(),
                                    [now_ms](const Due& item) { return item.due_ms > now_ms; });
      for (auto it = waiting; it != slot.end(); ++it)
        due.push_back(std::move(it->entry));
      slot.erase(waiting, slot.end());
    }
    next_tick_ = end_tick;
    size_ -= due.size();
    for (Entry& entry : due)
      on_due(std::move(entry));
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  struct Due {
    uint64_t due_ms;
    Entry entry;
  };

  uint64_t slot_ms_;
  std::vector<std::vector<Due>> slots_;
  uint64_t next_tick_;  // the first tick advance() has not swept
  size_t size_ = 0;
};

}  // namespace tether::core
