#include "common/spec_document.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

#include "common/file_io.h"

namespace dwarp {
namespace {

using nlohmann::json;

std::string JoinWords(const std::vector<std::string>& words, const char* separator = ", ") {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) out += (i ? separator : "") + words[i];
  return out;
}

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// ---------------------------------------------------------------------------------------------------------
// YAML -> json. yaml-cpp keeps every scalar as text; plain (unquoted) scalars are typed here by the YAML 1.2
// core schema, so `1e-2` is a number (as OmegaConf reads it) and a quoted "1000" stays a string.

size_t SkipDigits(std::string_view s, size_t i) {
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  return i;
}
size_t SkipSign(std::string_view s) { return !s.empty() && (s[0] == '-' || s[0] == '+') ? 1 : 0; }

// [-+]?[0-9]+
bool IsYamlInt(std::string_view s) {
  const size_t start = SkipSign(s);
  const size_t end = SkipDigits(s, start);
  return end > start && end == s.size();
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool IsYamlFloat(std::string_view s) {
  size_t i = SkipSign(s);
  if (i < s.size() && s[i] == '.') {
    const size_t end = SkipDigits(s, i + 1);
    if (end == i + 1) return false;
    i = end;
  } else {
    const size_t end = SkipDigits(s, i);
    if (end == i) return false;
    i = end;
    if (i < s.size() && s[i] == '.') i = SkipDigits(s, i + 1);
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    const size_t end = SkipDigits(s, i);
    if (end == i) return false;
    i = end;
  }
  return i == s.size();
}

json PlainScalar(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (IsYamlInt(s)) {
    errno = 0;
    const long long v = std::strtoll(s.c_str(), nullptr, 10);
    if (errno != ERANGE) return static_cast<int64_t>(v);
    return s;  // past int64: kept as text, so the reader reports it with its type
  }
  if (IsYamlFloat(s)) {
    errno = 0;
    const double v = std::strtod(s.c_str(), nullptr);
    if (errno != ERANGE || std::abs(v) < 1) return v;  // underflow to 0 (1e-400) is harmless
    return s;  // past a double's range (1e400): kept as text, as integers past int64 are
  }
  const std::string_view unsigned_part = std::string_view(s).substr(SkipSign(s));
  if (unsigned_part == ".inf" || unsigned_part == ".Inf" || unsigned_part == ".INF") {
    return s[0] == '-' ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  }
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return std::numeric_limits<double>::quiet_NaN();
  return s;
}

// Up to 40 bytes of a long string, as messages quote it (invalid UTF-8 shown as U+FFFD, never echoed).
std::string QuoteStart(const std::string& s) {
  const std::string start = s.size() > 40 ? s.substr(0, 37) : s;
  std::string quoted = json(start).dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 40) quoted.insert(quoted.size() - 1, "...");
  return quoted;
}

// The first byte offset at which `s` is not valid UTF-8; npos when it is.
size_t InvalidUtf8At(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t length = 0;
    uint32_t min = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      length = 2, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      length = 3, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      length = 4, min = 0x10000;
    } else {
      return i;
    }
    if (i + length > s.size()) return i;
    uint32_t code = c & (0x7F >> length);
    for (size_t k = 1; k < length; ++k) {
      const unsigned char next = static_cast<unsigned char>(s[i + k]);
      if ((next & 0xC0) != 0x80) return i;
      code = (code << 6) | (next & 0x3F);
    }
    if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return i;
    i += length;
  }
  return std::string_view::npos;
}

// Throws SpecFieldError when a string of the document (`what`: "a string" or "a key") breaks a limit: too
// long, a NUL byte (no consumer of a spec can carry one), or not UTF-8 (a binary file read as YAML).
void CheckSpecString(const std::string& s, const std::string& path, const char* what) {
  const std::string where = path.empty() ? "the document" : path;
  if (s.size() > kMaxSpecStringBytes) {
    throw SpecFieldError{path, where + ": " + what + " of " + std::to_string(s.size()) + " bytes (" + QuoteStart(s) +
                                   "); at most " + std::to_string(kMaxSpecStringBytes) + " bytes are allowed"};
  }
  if (const size_t nul = s.find('\0'); nul != std::string::npos) {
    throw SpecFieldError{path, where + ": " + what + " with a NUL byte at byte " + std::to_string(nul) +
                                   "; expected text without NUL bytes"};
  }
  if (const size_t bad = InvalidUtf8At(s); bad != std::string_view::npos) {
    char byte[8];
    std::snprintf(byte, sizeof byte, "0x%02X", static_cast<unsigned char>(s[bad]));
    throw SpecFieldError{path, where + ": " + what + " that is not UTF-8 text (byte " + byte + " at byte " +
                                   std::to_string(bad) + "); is this a binary file?"};
  }
}

SpecFieldError TooDeep(const std::string& path, const std::string& found) {
  return {path, (path.empty() ? "the document" : path) + ": lists and mappings nested " + found +
                    " levels deep; at most " + std::to_string(kMaxSpecDepth) + " levels are allowed"};
}

// The deepest nesting of [ and { in JSON text (brackets inside strings do not count).
size_t JsonTextDepth(std::string_view text) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

// Throws SpecFieldError for a non-scalar or repeated key, or a limit broken; callers in this file turn it into a
// Status. `depth`: the nesting level of `node` (the document is 1). The recursion is bounded by kMaxSpecDepth
// (an alias that contains itself is refused as too deep, never followed for ever).
json YamlToJson(const YAML::Node& node, const std::string& path, size_t depth) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null: return nullptr;
    case YAML::NodeType::Scalar:
      CheckSpecString(node.Scalar(), path, "a string");
      // "?" marks a plain scalar; "!" a quoted one; "tag:yaml.org,2002:str" an explicit !!str.
      return node.Tag() == "?" ? PlainScalar(node.Scalar()) : json(node.Scalar());
    case YAML::NodeType::Sequence: {
      if (depth > kMaxSpecDepth) throw TooDeep(path, "more than " + std::to_string(kMaxSpecDepth));
      json out = json::array();
      size_t i = 0;
      for (const YAML::Node& item : node) out.push_back(YamlToJson(item, SpecIndexPath(path, i++), depth + 1));
      return out;
    }
    case YAML::NodeType::Map: {
      if (depth > kMaxSpecDepth) throw TooDeep(path, "more than " + std::to_string(kMaxSpecDepth));
      json out = json::object();
      for (const auto& entry : node) {
        if (!entry.first.IsScalar()) {
          throw SpecFieldError{path, (path.empty() ? "the document" : path) + ": a key is not a plain name"};
        }
        const std::string key = entry.first.Scalar();
        CheckSpecString(key, path, "a key");
        const std::string key_path = SpecFieldPath(path, key);
        if (out.contains(key)) throw SpecFieldError{key_path, key_path + ": duplicate key \"" + key + "\""};
        out[key] = YamlToJson(entry.second, key_path, depth + 1);
      }
      return out;
    }
  }
  return nullptr;
}

// JSON text -> json with the same rules as YAML: repeated keys and broken limits are errors (thrown as
// SpecFieldError). nlohmann's parser is iterative; the callback tracks where it is, refuses a container
// past kMaxSpecDepth before it is built, and checks every key and string value.
// *duplicate receives the first key repeated within one object (nlohmann would keep the last silently).
json ParseJsonDocument(std::string_view text, std::string* duplicate) {
  struct Open {
    bool is_array = false;
    size_t index = 0;            // arrays: the element being read
    std::string key;             // objects: the key being read
    std::set<std::string> keys;  // objects: the keys seen
  };
  std::vector<Open> open;
  // The path of the container open at level `levels` (0: the document); path_of(open.size()) is the path of
  // the value being read now.
  auto path_of = [&open](size_t levels) {
    std::string path;
    for (size_t i = 0; i < levels; ++i) {
      path = open[i].is_array ? SpecIndexPath(path, open[i].index) : SpecFieldPath(path, open[i].key);
    }
    return path;
  };
  auto element_done = [&open]() {
    if (!open.empty() && open.back().is_array) ++open.back().index;
  };
  const json::parser_callback_t check = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (open.size() >= kMaxSpecDepth) throw TooDeep(path_of(open.size()), std::to_string(JsonTextDepth(text)));
        open.push_back({event == json::parse_event_t::array_start, 0, "", {}});
        break;
      case json::parse_event_t::key: {
        const std::string key = parsed.get<std::string>();
        CheckSpecString(key, path_of(open.size() - 1), "a key");
        open.back().key = key;
        if (!open.back().keys.insert(key).second && duplicate->empty()) *duplicate = key;
        break;
      }
      case json::parse_event_t::value:
        if (parsed.is_string()) CheckSpecString(parsed.get_ref<const std::string&>(), path_of(open.size()), "a string");
        element_done();
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        open.pop_back();
        element_done();
        break;
    }
    return true;
  };
  return json::parse(text.begin(), text.end(), check);
}

// An override as messages quote it: cut at 80 bytes, so that a long one cannot swell the message (a gRPC
// status travels in 8 KiB of metadata).
std::string ShownOverride(const std::string& text) {
  return "`" + (text.size() > 80 ? text.substr(0, 77) + "..." : text) + "`";
}

Status OverrideError(const std::string& text, const std::string& why) {
  return InvalidArgumentError("override " + ShownOverride(text) + ": " + why);
}

// Applies one `key=value`, `+key=value` or `~key` to `document`; `parsed` receives its path.
Status ApplyOverride(json& document, const std::string& text, SpecOverride* parsed) {
  const char* kForm = "expected key=value (a dotted path such as train.lr=0.01), +key=value or ~key";
  std::string body = text;
  const bool remove = !body.empty() && body[0] == '~';
  if (remove) body.erase(0, 1);
  while (!body.empty() && body[0] == '+') body.erase(0, 1);
  const size_t eq = body.find('=');
  std::string key = remove ? body.substr(0, eq) : (eq == std::string::npos ? "" : body.substr(0, eq));
  if (!remove && eq == std::string::npos) return OverrideError(text, std::string("no `=`; ") + kForm);
  if (key.size() > kMaxSpecStringBytes) {
    return OverrideError(text, "a key of " + std::to_string(key.size()) + " bytes; at most " +
                                                         std::to_string(kMaxSpecStringBytes) + " bytes are allowed");
  }
  std::vector<std::string> keys;
  for (size_t start = 0;;) {
    const size_t dot = key.find('.', start);
    keys.push_back(key.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  // `datasets.0.name`: a list element named by its index, which the path syntax does not address.
  std::string before;  // the keys before keys[i]
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string& part = keys[i];
    const bool index =
        !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (index && i > 0) {
      return OverrideError(text, "\"" + part + "\" in " + key + " is a list index, and overrides name mapping keys "
                                 "only; replace the whole list (" + before + "=[...]) or edit the file");
    }
    before = SpecFieldPath(before, part);
  }
  if (!std::all_of(keys.begin(), keys.end(), [](const std::string& part) { return IsSpecIdentifier(part); })) {
    return OverrideError(text, "bad key \"" + key + "\"; " + kForm);
  }
  // The value set is a child of the mapping at level keys.size() (the document is level 1).
  if (keys.size() > kMaxSpecDepth) {
    return OverrideError(text, "a key of " + std::to_string(keys.size()) + " parts nests mappings " +
                                   std::to_string(keys.size()) + " levels deep; at most " +
                                   std::to_string(kMaxSpecDepth) + " levels are allowed");
  }
  if (!remove && eq + 1 == body.size()) {
    return OverrideError(text, "no value after `=`; expected key=value (~" + key +
                                   " removes the key, " + key + "=null sets it to null)");
  }

  parsed->text = text;
  parsed->path = key;

  if (document.is_null()) document = json::object();
  json* node = &document;
  std::string walked;
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    const std::string& part = keys[i];
    if (!node->is_object()) {
      return OverrideError(text, (walked.empty() ? "the document" : walked) + " is " + DescribeSpecValue(*node) +
                                     " (" + SpecTypeName(*node) + "), not a mapping, so it has no key \"" + part +
                                     "\"");
    }
    walked = SpecFieldPath(walked, part);
    json& child = (*node)[part];
    if (child.is_null()) {
      if (remove) return OverrideError(text, walked + " is not set, so there is nothing to remove");
      child = json::object();
    }
    node = &child;
  }
  const std::string& last = keys.back();
  if (!node->is_object()) {
    return OverrideError(text, (walked.empty() ? "the document" : walked) + " is " + DescribeSpecValue(*node) +
                                   " (" + SpecTypeName(*node) + "), not a mapping, so it has no key \"" + last + "\"");
  }
  if (remove) {
    if (!node->contains(last)) return OverrideError(text, key + " is not set, so there is nothing to remove");
    node->erase(last);
    return OkStatus();
  }
  const std::string value_text = body.substr(eq + 1);
  try {
    (*node)[last] = YamlToJson(YAML::Load(value_text), key, keys.size() + 1);
  } catch (const YAML::Exception& e) {
    return OverrideError(text, "the value is not valid YAML: " + std::string(e.what()));
  } catch (const SpecFieldError& e) {
    return OverrideError(text, e.message);
  }
  return OkStatus();
}

}  // namespace

bool SpecPathConcerns(const std::string& set_path, const std::string& error_path) {
  auto under = [](const std::string& inner, const std::string& outer) {
    return inner.size() > outer.size() && inner.compare(0, outer.size(), outer) == 0 &&
           (inner[outer.size()] == '.' || inner[outer.size()] == '[');
  };
  return set_path == error_path || under(error_path, set_path) || (!error_path.empty() && under(set_path, error_path));
}

std::string SpecFieldPath(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}
std::string SpecIndexPath(const std::string& path, size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

bool IsSpecName(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
  });
}

bool IsSpecIdentifier(std::string_view s) {
  return !s.empty() && !(s[0] >= '0' && s[0] <= '9') && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

std::string DescribeSpecValue(const json& value) {
  // A number past a double's range shows as YAML spells it, not as JSON's null.
  if (value.is_number_float() && !std::isfinite(value.get<double>())) {
    const double v = value.get<double>();
    return std::isnan(v) ? ".nan" : v > 0 ? ".inf" : "-.inf";
  }
  // Invalid UTF-8 (a binary file) is shown as U+FFFD, never echoed to a terminal.
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return text;
}

const char* SpecTypeName(const json& value) {
  switch (value.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number";
    case json::value_t::array: return "a list";
    case json::value_t::object: return "a mapping";
    default: return "an unsupported value";
  }
}

SpecFieldError SpecValueError(const std::string& path, const json& value, const std::string& expected) {
  return {path, path + " = " + DescribeSpecValue(value) + "; expected " + expected};
}

SpecFieldError SpecTypeError(const std::string& path, const json& value, const std::string& expected) {
  return {path, path + " = " + DescribeSpecValue(value) + " (" + SpecTypeName(value) + "); expected " + expected};
}

std::string NearestSpecWord(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;
  for (const std::string& candidate : candidates) {
    const size_t distance = EditDistance(word, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

std::optional<SpecFieldError> CheckSpecKeys(const json& object, const std::string& path,
                                            const std::vector<std::string>& valid) {
  if (object.is_null()) return std::nullopt;
  if (!object.is_object()) {
    return SpecTypeError(path.empty() ? "the document" : path, object, "a mapping with keys " + JoinWords(valid));
  }
  for (const auto& [key, value] : object.items()) {
    if (std::find(valid.begin(), valid.end(), key) != valid.end()) continue;
    const std::string near = NearestSpecWord(key, valid);
    const std::string key_path = SpecFieldPath(path, key);
    return SpecFieldError{key_path, key_path + ": unknown key \"" + key + "\"" +
                                        (near.empty() ? "" : " (did you mean \"" + near + "\"?)") + "; valid keys " +
                                        (path.empty() ? "at the top level" : "in " + path) + ": " + JoinWords(valid)};
  }
  return std::nullopt;
}

std::optional<SpecFieldError> CheckSpecChoice(const json& value, const std::string& path,
                                              const std::vector<std::string>& names, size_t* index) {
  const std::string expected = "one of " + JoinWords(names, " | ");
  if (!value.is_string()) return SpecTypeError(path, value, expected);
  const std::string s = value.get<std::string>();
  const auto it = std::find(names.begin(), names.end(), s);
  if (it != names.end()) {
    *index = static_cast<size_t>(it - names.begin());
    return std::nullopt;
  }
  const std::string near = NearestSpecWord(s, names);
  return SpecValueError(path, value, expected + (near.empty() ? "" : " (did you mean \"" + near + "\"?)"));
}

const std::vector<std::string>& ModelArchNames() {
  static const std::vector<std::string> names = {"mlp", "lenet", "small_cnn", "resnet18", "torchscript"};
  return names;
}
const std::vector<std::string>& DataKindNames() {
  static const std::vector<std::string> names = {"nsd", "majaj_hong", "generic", "image_folder", "idx", "synthetic"};
  return names;
}

StatusOr<json> ParseSpecDocument(std::string_view text, SpecFormat format, std::string_view what) {
  const std::string name(what);
  if (format == SpecFormat::kJson) {
    try {
      std::string duplicate;
      json document = ParseJsonDocument(text, &duplicate);
      if (!duplicate.empty()) return InvalidArgumentError(name + " has a duplicate key \"" + duplicate + "\"");
      return document;
    } catch (const json::exception& e) {  // parse_error, and out_of_range for a number past a double (1e400)
      return InvalidArgumentError(name + " is not valid JSON: " + e.what());
    } catch (const SpecFieldError& e) {
      return InvalidArgumentError(e.message);
    }
  }
  try {
    return YamlToJson(YAML::Load(std::string(text)), "", 1);
  } catch (const YAML::DeepRecursion& e) {
    return InvalidArgumentError(name + ": lists and mappings nested more than " + std::to_string(e.depth()) +
                                " levels deep; at most " + std::to_string(kMaxSpecDepth) + " levels are allowed");
  } catch (const YAML::Exception& e) {
    return InvalidArgumentError(name + " is not valid YAML: " + e.what());
  } catch (const SpecFieldError& e) {
    return InvalidArgumentError(e.message);
  }
}

StatusOr<SpecFormat> SpecFormatOfPath(const std::string& path, std::string_view what) {
  const size_t dot = path.find_last_of('.');
  const std::string extension = dot == std::string::npos ? "" : path.substr(dot);
  if (extension == ".yaml" || extension == ".yml") return SpecFormat::kYaml;
  if (extension == ".json") return SpecFormat::kJson;
  return InvalidArgumentError(std::string(what) + " \"" + path + "\" has extension \"" + extension +
                              "\"; expected .yaml, .yml or .json");
}

StatusOr<std::string> ReadSpecFileText(const std::string& path, std::string_view what) {
  return ReadWholeFile(path, std::string(what));
}

StatusOr<std::vector<SpecOverride>> ApplySpecOverrides(json& document, const std::vector<std::string>& overrides) {
  std::vector<SpecOverride> applied(overrides.size());
  for (size_t i = 0; i < overrides.size(); ++i) {
    DWARP_RETURN_IF_ERROR(ApplyOverride(document, overrides[i], &applied[i]));
  }
  return applied;
}

Status SpecErrorStatus(const SpecFieldError& error, const std::vector<SpecOverride>& overrides) {
  for (auto it = overrides.rbegin(); it != overrides.rend(); ++it) {
    if (SpecPathConcerns(it->path, error.path)) return OverrideError(it->text, error.message);
  }
  if (overrides.empty()) return InvalidArgumentError(error.message);
  // A field the overrides did not touch that is wrong because of them (data.kind=nsd makes data.root
  // required): name them all.
  std::vector<std::string> texts;
  for (const SpecOverride& o : overrides) texts.push_back(ShownOverride(o.text));
  return InvalidArgumentError(error.message + " (after overrides " + JoinWords(texts, " ") + ")");
}

}  // namespace dwarp
