#include "common/spec_document.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <regex>
#include <set>
#include <sstream>
#include <utility>

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

json PlainScalar(const std::string& s) {
  static const std::regex kInt("[-+]?[0-9]+");
  static const std::regex kFloat("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  static const std::regex kInf("[-+]?\\.(inf|Inf|INF)");
  static const std::regex kNan("\\.(nan|NaN|NAN)");
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (std::regex_match(s, kInt)) {
    errno = 0;
    const long long v = std::strtoll(s.c_str(), nullptr, 10);
    if (errno != ERANGE) return static_cast<int64_t>(v);
    return s;  // past int64: kept as text, so the reader reports it with its type
  }
  if (std::regex_match(s, kFloat)) return std::strtod(s.c_str(), nullptr);
  if (std::regex_match(s, kInf)) {
    return s[0] == '-' ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  }
  if (std::regex_match(s, kNan)) return std::numeric_limits<double>::quiet_NaN();
  return s;
}

// Throws SpecFieldError for a non-scalar or repeated key; callers in this file turn it into a Status.
json YamlToJson(const YAML::Node& node, const std::string& path) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null: return nullptr;
    case YAML::NodeType::Scalar:
      // "?" marks a plain scalar; "!" a quoted one; "tag:yaml.org,2002:str" an explicit !!str.
      return node.Tag() == "?" ? PlainScalar(node.Scalar()) : json(node.Scalar());
    case YAML::NodeType::Sequence: {
      json out = json::array();
      size_t i = 0;
      for (const YAML::Node& item : node) out.push_back(YamlToJson(item, SpecIndexPath(path, i++)));
      return out;
    }
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& entry : node) {
        if (!entry.first.IsScalar()) {
          throw SpecFieldError{path, (path.empty() ? "the document" : path) + ": a key is not a plain name"};
        }
        const std::string key = entry.first.Scalar();
        const std::string key_path = SpecFieldPath(path, key);
        if (out.contains(key)) throw SpecFieldError{key_path, key_path + ": duplicate key \"" + key + "\""};
        out[key] = YamlToJson(entry.second, key_path);
      }
      return out;
    }
  }
  return nullptr;
}

Status OverrideError(const std::string& text, const std::string& why) {
  return InvalidArgumentError("override `" + text + "`: " + why);
}

// Applies one `key=value`, `+key=value` or `~key` to `document`; `parsed` receives its path.
Status ApplyOverride(json& document, const std::string& text, SpecOverride* parsed) {
  static const std::regex kKey("[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*");
  const char* kForm = "expected key=value (a dotted path such as train.lr=0.01), +key=value or ~key";
  std::string body = text;
  const bool remove = !body.empty() && body[0] == '~';
  if (remove) body.erase(0, 1);
  while (!body.empty() && body[0] == '+') body.erase(0, 1);
  const size_t eq = body.find('=');
  std::string key = remove ? body.substr(0, eq) : (eq == std::string::npos ? "" : body.substr(0, eq));
  if (!remove && eq == std::string::npos) return OverrideError(text, std::string("no `=`; ") + kForm);
  if (!std::regex_match(key, kKey)) return OverrideError(text, "bad key \"" + key + "\"; " + kForm);

  parsed->text = text;
  parsed->path = key;
  std::vector<std::string> keys;
  std::stringstream ss(key);
  for (std::string part; std::getline(ss, part, '.');) keys.push_back(part);

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
    (*node)[last] = value_text.empty() ? json(nullptr) : YamlToJson(YAML::Load(value_text), key);
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

std::string DescribeSpecValue(const json& value) {
  std::string text = value.dump();
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
    // nlohmann keeps the last of two equal keys; a spec with two `lr`s is a mistake, so the parse callback
    // tracks the keys of each open object and reports the first repeat.
    std::vector<std::set<std::string>> open_objects;
    std::string duplicate;
    const json::parser_callback_t check_keys = [&](int, json::parse_event_t event, json& parsed) {
      if (event == json::parse_event_t::object_start) open_objects.emplace_back();
      if (event == json::parse_event_t::object_end) open_objects.pop_back();
      if (event == json::parse_event_t::key && !open_objects.back().insert(parsed.get<std::string>()).second &&
          duplicate.empty()) {
        duplicate = parsed.get<std::string>();
      }
      return true;
    };
    try {
      json document = json::parse(text.begin(), text.end(), check_keys);
      if (!duplicate.empty()) return InvalidArgumentError(name + " has a duplicate key \"" + duplicate + "\"");
      return document;
    } catch (const json::parse_error& e) {
      return InvalidArgumentError(name + " is not valid JSON: " + e.what());
    }
  }
  try {
    return YamlToJson(YAML::Load(std::string(text)), "");
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
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot read " + std::string(what) + " \"" + path + "\"");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
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
  for (const SpecOverride& o : overrides) texts.push_back("`" + o.text + "`");
  return InvalidArgumentError(error.message + " (after overrides " + JoinWords(texts, " ") + ")");
}

}  // namespace dwarp
