#include "agent/secret_redactor.hpp"

#include <deque>
#include <set>

namespace tether::agent {

SecretRedactor::SecretRedactor(const std::map<std::string, std::string>& secrets) {
  std::vector<std::string> values;
  std::set<std::string_view> seen;
  for (const auto& [name, value] : secrets) {
    if (value.size() < kMinSecretBytes || !seen.insert(value).second) continue;
    patterns_.push_back({"[secret:" + name + "]", value.size()});
    values.push_back(value);
  }
  build(values);
}

void SecretRedactor::build(const std::vector<std::string>& values) {
  // The trie, with children in maps while it grows; then flattened into
  // edges_ (a node's edges in byte order), which is what matching reads.
  nodes_.assign(1, Node{});
  std::vector<std::map<unsigned char, uint32_t>> children(1);
  for (size_t index = 0; index < values.size(); ++index) {
    uint32_t node = 0;
    for (const char c : values[index]) {
      const auto byte = static_cast<unsigned char>(c);
      auto [it, added] = children[node].try_emplace(byte, static_cast<uint32_t>(nodes_.size()));
      if (added) {
        Node grown;
        grown.depth = nodes_[node].depth + 1;
        nodes_.push_back(grown);
        children.emplace_back();
      }
      node = it->second;
    }
    nodes_[node].longest = static_cast<uint32_t>(index);  // distinct values: one per node
  }
  edges_.clear();
  for (size_t node = 0; node < nodes_.size(); ++node) {
    nodes_[node].first_edge = static_cast<uint32_t>(edges_.size());
    for (const auto& [byte, target] : children[node])
      edges_.push_back({byte, target});
    nodes_[node].end_edge = static_cast<uint32_t>(edges_.size());
  }
  root_next_.fill(0);
  for (const auto& [byte, target] : children[0])
    root_next_[byte] = target;
  link_failures();
}

void SecretRedactor::link_failures() {
  // Breadth first: a node's failure link is shallower than the node, so it
  // is complete when the node is reached.
  std::deque<uint32_t> queue;
  for (uint32_t e = nodes_[0].first_edge; e < nodes_[0].end_edge; ++e)
    queue.push_back(edges_[e].target);  // their failure links are the root
  while (!queue.empty()) {
    const uint32_t node = queue.front();
    queue.pop_front();
    Node& here = nodes_[node];
    const Node& fallback = nodes_[here.fail];
    if (here.longest == kNone) here.longest = fallback.longest;
    here.open_depth = here.first_edge != here.end_edge ? here.depth : fallback.open_depth;
    for (uint32_t e = here.first_edge; e < here.end_edge; ++e) {
      const uint32_t target = edges_[e].target;
      nodes_[target].fail = next(here.fail, edges_[e].byte);
      queue.push_back(target);
    }
  }
}

uint32_t SecretRedactor::child(uint32_t node, unsigned char byte) const {
  for (uint32_t e = nodes_[node].first_edge; e < nodes_[node].end_edge; ++e) {
    if (edges_[e].byte == byte) return edges_[e].target;
  }
  return kNone;
}

uint32_t SecretRedactor::next(uint32_t node, unsigned char byte) const {
  while (node != 0) {
    if (const uint32_t found = child(node, byte); found != kNone) return found;
    node = nodes_[node].fail;
  }
  return root_next_[byte];
}

void SecretRedactor::append(std::string_view bytes, std::string& out) {
  if (!active()) {
    out.append(bytes);
    return;
  }
  size_t i = 0;
  while (i < bytes.size()) {
    if (node_ == 0) {
      // Nothing held (at the root nothing is): the bytes that start no
      // value go out in one piece, one table lookup each.
      size_t run = i;
      while (run < bytes.size() && root_next_[static_cast<unsigned char>(bytes[run])] == 0)
        ++run;
      out.append(bytes.substr(i, run - i));
      i = run;
      if (i == bytes.size()) break;
    }
    step(bytes[i++], out);
    drain_backlog(out);
  }
}

void SecretRedactor::finish(std::string& out) {
  // No value can complete any more: the best match found is final, and so
  // is every one found when what follows it is scanned again.
  while (best_) {
    replace_best(out);
    drain_backlog(out);
  }
  out.append(held_, held_from_);
  held_.clear();
  held_from_ = 0;
  node_ = 0;
}

void SecretRedactor::step(char byte, std::string& out) {
  held_.push_back(byte);
  node_ = next(node_, static_cast<unsigned char>(byte));
  const size_t held = held_.size() - held_from_;
  if (const uint32_t found = nodes_[node_].longest; found != kNone) {
    // The longest value ending here starts earliest of those ending here;
    // it is the best so far if it starts before it, or there and is longer.
    const size_t length = patterns_[found].length;
    const Match match{held - length, length, found};
    if (!best_ || match.start < best_->start ||
        (match.start == best_->start && match.length > best_->length)) {
      best_ = match;
    }
  }
  // A value not yet whole starts at the longest held tail that is a proper
  // prefix of one, or later: nothing before that can begin one any more.
  const size_t open_from = held - nodes_[node_].open_depth;
  if (best_ && best_->start < open_from) {
    replace_best(out);
  } else {
    release(open_from, out);
  }
}

void SecretRedactor::release(size_t count, std::string& out) {
  if (count == 0) return;
  out.append(held_, held_from_, count);
  held_from_ += count;
  if (best_) best_->start -= count;
  // Compact now and then, not per byte.
  if (held_from_ == held_.size()) {
    held_.clear();
    held_from_ = 0;
  } else if (held_from_ >= 4096 && held_from_ * 2 >= held_.size()) {
    held_.erase(0, held_from_);
    held_from_ = 0;
  }
}

void SecretRedactor::replace_best(std::string& out) {
  const Match match = *best_;
  out.append(held_, held_from_, match.start);
  out.append(patterns_[match.pattern].marker);
  ++redactions_;
  // What followed the value was scanned as part of longer candidates; it is
  // scanned again from a fresh start, ahead of anything already queued.
  std::string rest = held_.substr(held_from_ + match.start + match.length);
  rest.append(backlog_);
  backlog_ = std::move(rest);
  held_.clear();
  held_from_ = 0;
  best_.reset();
  node_ = 0;
}

void SecretRedactor::drain_backlog(std::string& out) {
  while (!backlog_.empty()) {
    const std::string bytes = std::move(backlog_);
    backlog_.clear();
    for (size_t i = 0; i < bytes.size(); ++i) {
      step(bytes[i], out);
      if (!backlog_.empty()) {
        // A replacement queued its tail: that comes before the rest of these.
        backlog_.append(bytes, i + 1);
        break;
      }
    }
  }
}

}  // namespace tether::agent
