#include "cli/command_line.hpp"

namespace tether::cli {

std::string CommandLine::value(const std::string& name, const std::string& fallback) const {
  auto it = values.find(name);
  return it == values.end() || it->second.empty() ? fallback : it->second.back();
}

Result<CommandLine> parse_command_line(const std::vector<std::string>& words,
                                       const std::vector<OptionSpec>& options) {
  CommandLine line;
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& word = words[i];
    if (word == "--") {
      line.after_dashes.assign(words.begin() + static_cast<long>(i) + 1, words.end());
      break;
    }
    if (word.size() < 2 || word[0] != '-') {
      line.operands.push_back(word);
      continue;
    }
    std::string name = word;
    std::string inline_value;
    bool has_inline = false;
    if (const auto equals = word.find('=');
        word.rfind("--", 0) == 0 && equals != std::string::npos) {
      name = word.substr(0, equals);
      inline_value = word.substr(equals + 1);
      has_inline = true;
    }
    const OptionSpec* spec = nullptr;
    for (const auto& option : options) {
      if (option.name == name || (!option.short_name.empty() && option.short_name == name)) {
        spec = &option;
      }
    }
    if (!spec) return make_error(Errc::kInvalid, "usage", "unknown option " + name);
    if (!spec->takes_value) {
      if (has_inline) return make_error(Errc::kInvalid, "usage", spec->name + " takes no value");
      line.values[spec->name].push_back("");
      continue;
    }
    if (has_inline) {
      line.values[spec->name].push_back(inline_value);
    } else if (i + 1 < words.size()) {
      line.values[spec->name].push_back(words[++i]);
    } else {
      return make_error(Errc::kInvalid, "usage", spec->name + " needs a value");
    }
  }
  return line;
}

}  // namespace tether::cli
