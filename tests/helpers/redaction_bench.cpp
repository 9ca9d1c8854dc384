// tether-redaction-bench: what agent::SecretRedactor costs per byte of task
// output, against the path a task without secrets takes, in one process.
//
//   tether-redaction-bench [--bytes N] [--secrets K] [--read-bytes R] [--rounds M]
//
// The input is N bytes of printable ASCII in 100-byte lines (a build log,
// the common case), fed in reads of R bytes (64 KiB: one pipe read of the
// agent). K values of 24 random printable characters are looked for, as a
// task with K secrets would have; one of them appears in the text every
// 1 MiB, so replacement and hold-back run too. Baseline: the same reads
// through a redactor without secrets (what StreamCapture does then: one
// append). Each variant runs M times; the fastest counts. The last line is
// `RESULT {json}` for bench/redaction.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "agent/secret_redactor.hpp"

namespace {

struct Options {
  size_t bytes = 256u << 20;
  size_t secrets = 8;
  size_t read_bytes = 64u << 10;
  int rounds = 3;
};

uint64_t next_random(uint64_t& state) {
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return state * 0x2545F4914F6CDD1DULL;
}

char printable(uint64_t& state) {
  return static_cast<char>(' ' + 1 + next_random(state) % 94);
}

// Seconds for one pass over `input`; the bytes out and replacements via the pointers.
double one_pass(const std::map<std::string, std::string>& secrets, const std::string& input,
                size_t read_bytes, size_t* out_bytes, uint64_t* redactions) {
  tether::agent::SecretRedactor redactor(secrets);
  std::string out;
  out.reserve(read_bytes * 2);
  size_t total = 0;
  const auto began = std::chrono::steady_clock::now();
  for (size_t at = 0; at < input.size(); at += read_bytes) {
    out.clear();
    redactor.append(std::string_view(input).substr(at, read_bytes), out);
    total += out.size();
  }
  out.clear();
  redactor.finish(out);
  total += out.size();
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - began;
  *out_bytes = total;
  *redactions = redactor.redactions();
  return took.count();
}

double fastest(const std::map<std::string, std::string>& secrets, const std::string& input,
               const Options& options, size_t* out_bytes, uint64_t* redactions) {
  double best = 1e30;
  for (int round = 0; round < options.rounds; ++round)
    best = std::min(best, one_pass(secrets, input, options.read_bytes, out_bytes, redactions));
  return best;
}

bool parse(int argc, char** argv, Options& options) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const unsigned long long value = std::strtoull(argv[i + 1], nullptr, 10);
    if (flag == "--bytes") {
      options.bytes = value;
    } else if (flag == "--secrets") {
      options.secrets = value;
    } else if (flag == "--read-bytes" && value > 0) {
      options.read_bytes = value;
    } else if (flag == "--rounds" && value > 0) {
      options.rounds = static_cast<int>(value);
    } else {
      return false;
    }
  }
  return argc % 2 == 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!parse(argc, argv, options)) {
    std::fprintf(stderr,
                 "usage: tether-redaction-bench [--bytes N] [--secrets K] [--read-bytes R] "
                 "[--rounds M]\n");
    return 2;
  }
  uint64_t state = 0x9E3779B97F4A7C15ULL;
  std::map<std::string, std::string> secrets;
  for (size_t i = 0; i < options.secrets; ++i) {
    std::string value;
    for (int c = 0; c < 24; ++c)
      value += printable(state);
    secrets["SECRET_" + std::to_string(i)] = value;
  }
  std::string input;
  input.reserve(options.bytes);
  uint64_t planted = 0;
  while (input.size() < options.bytes) {
    if (!secrets.empty() && input.size() % (1u << 20) < 100 && input.size() >= (1u << 20)) {
      input += secrets.begin()->second;  // one value a MiB
      ++planted;
    }
    for (int c = 0; c < 99; ++c)
      input += printable(state);
    input += '\n';
  }
  input.resize(options.bytes);

  size_t base_out = 0, secret_out = 0;
  uint64_t base_redactions = 0, secret_redactions = 0;
  const double base_s = fastest({}, input, options, &base_out, &base_redactions);
  const double secret_s = fastest(secrets, input, options, &secret_out, &secret_redactions);
  if (base_out != input.size() || secret_redactions != planted) {
    std::fprintf(stderr, "tether-redaction-bench: wrong output (%zu of %zu bytes, %llu of %llu)\n",
                 base_out, input.size(), static_cast<unsigned long long>(secret_redactions),
                 static_cast<unsigned long long>(planted));
    return 1;
  }
  const double mb = static_cast<double>(input.size()) / 1e6;
  const double base_ns = base_s * 1e9 / static_cast<double>(input.size());
  const double secret_ns = secret_s * 1e9 / static_cast<double>(input.size());
  std::printf(
      "redaction: %.0f MB, %zu secrets: %.2f ns/byte (%.0f MB/s); without secrets "
      "%.2f ns/byte (%.0f MB/s); %llu replaced\n",
      mb, options.secrets, secret_ns, mb / secret_s, base_ns, mb / base_s,
      static_cast<unsigned long long>(secret_redactions));
  std::printf(
      "RESULT {\"bytes\": %zu, \"secrets\": %zu, \"secret_ns_per_byte\": %.3f, "
      "\"secret_mb_s\": %.0f, \"baseline_ns_per_byte\": %.3f, \"baseline_mb_s\": %.0f, "
      "\"redactions\": %llu}\n",
      input.size(), options.secrets, secret_ns, mb / secret_s, base_ns, mb / base_s,
      static_cast<unsigned long long>(secret_redactions));
  return 0;
}
