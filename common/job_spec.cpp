#include "common/job_spec.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <sstream>
#include <tuple>
#include <utility>

#include "common/spec_document.h"

namespace dwarp {
namespace {

using nlohmann::json;

// An error found while reading a document is a SpecFieldError (common/spec_document.h), thrown only inside
// this file and turned into a Status in one place (Validate): almost every line of the readers below can
// fail, and threading a Status through each would bury the schema in plumbing.
[[noreturn]] void Fail(const std::string& path, std::string message) {
  throw SpecFieldError{path, std::move(message)};
}
[[noreturn]] void Throw(std::optional<SpecFieldError> error) { throw std::move(*error); }

std::string Join(const std::string& path, const std::string& key) { return SpecFieldPath(path, key); }
std::string Index(const std::string& path, size_t i) { return SpecIndexPath(path, i); }

[[noreturn]] void FailValue(const std::string& path, const json& value, const std::string& expected) {
  Throw(SpecValueError(path, value, expected));
}
[[noreturn]] void FailType(const std::string& path, const json& value, const std::string& expected) {
  Throw(SpecTypeError(path, value, expected));
}

std::string JoinWords(const std::vector<std::string>& words, const char* separator = ", ") {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) out += (i ? separator : "") + words[i];
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Scalar readers. Each takes the value and its path, and fails naming both.

double ReadDouble(const json& v, const std::string& path, const std::string& expected,
                  const std::function<bool(double)>& ok) {
  if (!v.is_number()) FailType(path, v, expected);
  const double x = v.get<double>();
  if (!std::isfinite(x) || !ok(x)) FailValue(path, v, expected);
  return x;
}

int64_t ReadInt(const json& v, const std::string& path, int64_t min, const std::string& expected) {
  if (!v.is_number_integer()) FailType(path, v, expected);
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    FailValue(path, v, expected);
  }
  const int64_t x = v.get<int64_t>();
  if (x < min) FailValue(path, v, expected);
  return x;
}

bool ReadBool(const json& v, const std::string& path) {
  if (!v.is_boolean()) FailType(path, v, "true or false");
  return v.get<bool>();
}

std::string ReadString(const json& v, const std::string& path, const std::string& expected) {
  if (!v.is_string()) FailType(path, v, expected);
  std::string s = v.get<std::string>();
  if (s.empty()) FailValue(path, v, expected);
  return s;
}

// One of `names` (the enum's spellings, in enum order); the index.
size_t ReadChoice(const json& v, const std::string& path, const std::vector<std::string>& names) {
  size_t index = 0;
  if (auto error = CheckSpecChoice(v, path, names, &index)) Throw(std::move(error));
  return index;
}

// A mapping's keys checked against the valid ones; typed access with defaults. Null values and absent
// keys are both "not given". `object` may be null (the whole mapping absent).
class Fields {
 public:
  Fields(const json* object, std::string path, std::vector<std::string> valid)
      : object_(object), path_(std::move(path)), valid_(std::move(valid)) {
    if (object_ == nullptr || object_->is_null()) {
      object_ = nullptr;
      return;
    }
    if (auto error = CheckSpecKeys(*object_, path_, valid_)) Throw(std::move(error));
  }

  const std::string& path() const { return path_; }
  std::string PathOf(const std::string& key) const { return Join(path_, key); }
  bool Has(const std::string& key) const {
    return object_ != nullptr && object_->contains(key) && !object_->at(key).is_null();
  }
  // The value of a key that Has(key); a null json for one that does not.
  const json& Get(const std::string& key) const {
    static const json kNull;
    return Has(key) ? object_->at(key) : kNull;
  }
  // The sub-mapping (or nullptr) for a nested Fields.
  const json* Child(const std::string& key) const { return Has(key) ? &object_->at(key) : nullptr; }

  double Double(const std::string& key, double fallback, const std::string& expected,
                const std::function<bool(double)>& ok) const {
    return Has(key) ? ReadDouble(Get(key), PathOf(key), expected, ok) : fallback;
  }
  int64_t Int(const std::string& key, int64_t fallback, int64_t min) const {
    return Has(key) ? ReadInt(Get(key), PathOf(key), min, "an integer >= " + std::to_string(min)) : fallback;
  }
  bool Bool(const std::string& key, bool fallback) const {
    return Has(key) ? ReadBool(Get(key), PathOf(key)) : fallback;
  }
  std::string String(const std::string& key, const std::string& expected) const {
    return Has(key) ? ReadString(Get(key), PathOf(key), expected) : std::string();
  }
  std::string RequiredString(const std::string& key, const std::string& expected) const {
    Require(key, expected);
    return ReadString(Get(key), PathOf(key), expected);
  }
  void Require(const std::string& key, const std::string& expected) const {
    if (!Has(key)) Fail(PathOf(key), PathOf(key) + ": missing; expected " + expected);
  }
  // A key that this configuration does not use; `why` completes "expected no <key> ...".
  void Forbid(const std::string& key, const std::string& why) const {
    if (Has(key)) FailValue(PathOf(key), Get(key), "no " + key + " " + why);
  }

 private:
  const json* object_;
  std::string path_;
  std::vector<std::string> valid_;
};

// A string or a list of strings (each non-empty).
std::vector<std::string> ReadStringList(const json& v, const std::string& path, const std::string& expected) {
  if (v.is_string()) return {ReadString(v, path, expected)};
  if (!v.is_array()) FailType(path, v, expected);
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) out.push_back(ReadString(v[i], Index(path, i), "a non-empty string"));
  return out;
}

std::vector<double> ReadDoubleList(const json& v, const std::string& path, const std::string& expected,
                                   const std::string& item_expected, const std::function<bool(double)>& ok) {
  if (!v.is_array() || v.empty()) FailType(path, v, expected);
  std::vector<double> out;
  for (size_t i = 0; i < v.size(); ++i) out.push_back(ReadDouble(v[i], Index(path, i), item_expected, ok));
  return out;
}

const auto kPositive = [](double x) { return x > 0; };
const auto kNonNegative = [](double x) { return x >= 0; };
const auto kFraction = [](double x) { return x > 0 && x < 1; };

// ---------------------------------------------------------------------------------------------------------
// Names of the enums, in enum order.

const std::vector<std::string>& ObjectiveNames() {
  static const std::vector<std::string> names = {"regression", "classification", "rsa"};
  return names;
}
const std::vector<std::string>& ReadoutNames() {
  static const std::vector<std::string> names = {"sgd", "ridge", "prefit_warped"};
  return names;
}

const std::vector<std::string>& ProjectionNames() {
  static const std::vector<std::string> names = {"per_tensor", "global", "reference", "size_weighted"};
  return names;
}
const std::vector<std::string>& LowDimLrScalingNames() {
  static const std::vector<std::string> names = {"none", "inverse_d"};
  return names;
}
const std::vector<std::string>& LrScheduleNames() {
  static const std::vector<std::string> names = {"constant", "cosine", "warmup_cosine"};
  return names;
}

const std::vector<std::string>& DataTransformNames() {
  static const std::vector<std::string> names = {"squash", "weights"};
  return names;
}

const std::vector<std::string>& HeadInitNames() {
  static const std::vector<std::string> names = {"default", "ridge"};
  return names;
}

bool IsClassificationKind(DataKind kind) { return kind == DataKind::kImageFolder || kind == DataKind::kIdx; }

// ---------------------------------------------------------------------------------------------------------
// The schema.

ModelSpec ReadModel(const json* object, const std::string& path) {
  const Fields f(object, path,
                 {"arch", "weights", "layer", "layer_groups", "input_channels", "input_size", "hidden", "seed",
                  "projection"});
  if (object == nullptr || object->is_null()) {
    Fail(path, path + ": missing; expected a mapping with at least arch (keys: arch, weights, layer, "
                      "layer_groups, input_channels, input_size, hidden, seed, projection)");
  }
  ModelSpec m;
  f.Require("arch", "one of " + JoinWords(ModelArchNames(), " | "));
  m.arch = static_cast<ModelArch>(ReadChoice(f.Get("arch"), f.PathOf("arch"), ModelArchNames()));
  const std::string arch = ModelArchName(m.arch);

  m.weights = f.String("weights", "a path to the weights file");
  if (m.arch == ModelArch::kTorchscript && m.weights.empty()) {
    Fail(f.PathOf("weights"), f.PathOf("weights") + ": missing; expected a path to the TorchScript file "
                                                     "(arch torchscript has no built-in network)");
  }
  m.layer = f.String("layer", "the name of the read-out layer, e.g. avgpool");
  if (f.Has("seed")) m.seed = static_cast<uint64_t>(f.Int("seed", 0, 0));
  if (f.Has("projection")) {
    m.projection = static_cast<Projection>(ReadChoice(f.Get("projection"), f.PathOf("projection"), ProjectionNames()));
  }

  if (f.Has("layer_groups")) {
    const json& groups = f.Get("layer_groups");
    const std::string groups_path = f.PathOf("layer_groups");
    const std::string expected = "a list of groups, each a list of parameter-name prefixes (or one prefix)";
    if (!groups.is_array()) FailType(groups_path, groups, expected);
    m.layer_groups.emplace();
    for (size_t i = 0; i < groups.size(); ++i) {
      std::vector<std::string> group =
          ReadStringList(groups[i], Index(groups_path, i), "a prefix or a list of prefixes");
      if (group.empty()) FailValue(Index(groups_path, i), groups[i], "a non-empty list of prefixes");
      m.layer_groups->push_back(std::move(group));
    }
  }

  int64_t default_channels = 3, default_size = 224;
  if (m.arch == ModelArch::kMlp || m.arch == ModelArch::kLenet || m.arch == ModelArch::kSmallCnn) {
    default_channels = 1;
    default_size = 28;
  }
  m.input_channels = f.Int("input_channels", default_channels, 1);
  m.input_size = f.Int("input_size", default_size, 1);

  if (m.arch == ModelArch::kMlp) {
    m.hidden = {200, 200};
    if (f.Has("hidden")) {
      const json& v = f.Get("hidden");
      const std::string hidden_path = f.PathOf("hidden");
      if (!v.is_array()) FailType(hidden_path, v, "a list of hidden-layer widths, each an integer >= 1");
      m.hidden.clear();
      for (size_t i = 0; i < v.size(); ++i) {
        m.hidden.push_back(ReadInt(v[i], Index(hidden_path, i), 1, "an integer >= 1"));
      }
    }
  } else {
    f.Forbid("hidden", "for arch " + arch + " (hidden widths are for arch mlp)");
  }
  return m;
}

SplitSpec ReadSplit(const json* object, const std::string& path, DataKind kind, bool test_from_elsewhere) {
  const Fields f(object, path, {"train", "val", "test", "column"});
  SplitSpec s;
  if (kind == DataKind::kGeneric && f.Has("column")) {
    s.column = f.RequiredString("column", "the name of a column whose values are train | val | test");
    for (const char* key : {"train", "val", "test"}) {
      f.Forbid(key, "with " + f.PathOf("column") + " set (the column decides the split)");
    }
    return s;
  }
  f.Forbid("column", std::string("for data.kind ") + DataKindName(kind) + " (a split column is for data.kind generic)");
  if (kind == DataKind::kGeneric) {
    // The generic layout's split comes from its files; fractions would be recorded but never used.
    for (const char* key : {"train", "val", "test"}) {
      f.Forbid(key, "for data.kind generic (its split comes from its files: a split column of stimuli.csv, "
                    "split.npy, or the column named by data.split.column)");
    }
    return s;
  }

  const std::string fraction = "a fraction in (0, 1)";
  const double default_train = test_from_elsewhere ? 0.8 : 0.6;
  s.train = f.Double("train", default_train, fraction, kFraction);
  s.val = f.Double("val", 0.2, fraction, kFraction);
  if (test_from_elsewhere) {
    const std::string why = kind == DataKind::kNsd ? "the shared1000 stimuli" : "data.test_images";
    if (f.Has("test")) {
      ReadDouble(f.Get("test"), f.PathOf("test"), "0 (the test split is " + why + ")", [](double x) { return x == 0; });
    }
    s.test = 0.0;
  } else {
    s.test = f.Double("test", 0.2, fraction, kFraction);
  }
  const double sum = s.train + s.val + s.test;
  if (std::abs(sum - 1.0) > 1e-9) {
    std::ostringstream os;
    os << path << ": train + val" << (test_from_elsewhere ? "" : " + test") << " = " << s.train << " + " << s.val;
    if (!test_from_elsewhere) os << " + " << s.test;
    os << " = " << sum << "; expected fractions summing to 1";
    if (test_from_elsewhere) {
      os << " (the test split is " << (kind == DataKind::kNsd ? "the shared1000 stimuli" : "data.test_images") << ")";
    }
    Fail(path, os.str());
  }
  return s;
}

SyntheticSpec ReadSynthetic(const json* object, const std::string& path) {
  const Fields f(object, path,
                 {"targets", "warp_dim", "warp_scale", "noise", "teacher", "seed", "warp", "warp_epochs", "warp_lr",
                  "categories"});
  SyntheticSpec s;
  s.targets = f.Int("targets", s.targets, 1);
  s.warp_dim = f.Int("warp_dim", s.warp_dim, 1);
  s.warp_scale = f.Double("warp_scale", s.warp_scale, "a number >= 0", kNonNegative);
  s.noise = f.Double("noise", s.noise, "a number >= 0", kNonNegative);
  if (f.Has("warp")) {
    static const std::vector<std::string> kWarps = {"random", "trained"};
    s.trained_warp = ReadChoice(f.Get("warp"), f.PathOf("warp"), kWarps) == 1;
  }
  if (s.trained_warp) {
    s.warp_epochs = f.Int("warp_epochs", s.warp_epochs, 1);
    s.warp_lr = f.Double("warp_lr", s.warp_lr, "a number > 0", kPositive);
  } else {
    f.Forbid("warp_epochs", "with a random warp (warp_epochs is for warp: trained)");
    f.Forbid("warp_lr", "with a random warp (warp_lr is for warp: trained)");
  }
  s.categories = f.Double("categories", s.categories, "a fraction in [0, 1]", [](double x) { return x >= 0 && x <= 1; });
  if (f.Has("teacher")) s.teacher = ReadModel(f.Child("teacher"), f.PathOf("teacher"));
  s.seed = static_cast<uint64_t>(f.Int("seed", 0, 0));
  return s;
}

// data.coords (the coordinate names the netCDF loaders read) and data.nan, for majaj_hong and nsd.
const std::vector<std::string>& NanPolicyNames() {
  static const std::vector<std::string> names = {"refuse", "drop_targets"};
  return names;
}

void ReadCoordsAndNan(const Fields& data, DataKind kind, DataSpec* d) {
  const bool majaj = kind == DataKind::kMajajHong;
  if (!majaj && kind != DataKind::kNsd) {
    const std::string why = std::string("for data.kind ") + DataKindName(kind) + " (it is for majaj_hong and nsd)";
    data.Forbid("coords", why);
    data.Forbid("nan", why);
    return;
  }
  const Fields f(data.Child("coords"), data.PathOf("coords"), {"image_id", "image_name", "region"});
  const std::string name = "a coordinate name";
  d->coords.image_id = f.Has("image_id") ? f.String("image_id", name) : (majaj ? "image_id" : "stimulus_id");
  if (majaj) {
    d->coords.image_name = f.Has("image_name") ? f.String("image_name", name) : "image_name";
  } else {
    f.Forbid("image_name", "for data.kind nsd (its file names come from metadata.csv)");
  }
  d->coords.region = f.Has("region") ? f.String("region", name) : (majaj ? "region" : "roi");
  if (data.Has("nan")) d->nan = static_cast<NanPolicy>(ReadChoice(data.Get("nan"), data.PathOf("nan"), NanPolicyNames()));
}

// The research code's data keys (its Hydra data configs), accepted as aliases of dwarp's keys per data kind.
struct DataKeyAlias {
  const char* alias;
  const char* key;
  DataKind kind;
};
const std::vector<DataKeyAlias>& DataKeyAliases() {
  static const std::vector<DataKeyAlias> aliases = {
      {"data_path", "file", DataKind::kMajajHong},      {"stimuli_dir", "stimuli", DataKind::kMajajHong},
      {"nsd_dir", "root", DataKind::kNsd},              {"stimuli_dir", "stimuli", DataKind::kNsd},
      {"data_dir", "root", DataKind::kImageFolder}};
  return aliases;
}

// `object` with each research-code alias of its kind renamed to dwarp's key. An alias given with its key, or
// an alias of another kind, fails naming it; a bad or missing kind is left for the reader to report.
json WithDataAliasesResolved(const json& object, const std::string& path) {
  json out = object;
  // Research-code keys that are no alias, with what to write instead.
  if (out.is_object() && out.contains("neural_dir") && !out["neural_dir"].is_null()) {
    FailValue(Join(path, "neural_dir"), out["neural_dir"],
              "no neural_dir (the research code's folder of neural.nc and metadata.csv): set " + Join(path, "file") +
                  " to <neural_dir>/neural.nc, with kind majaj_hong and stimuli");
  }
  if (out.is_object() && out.contains("name") && out["name"].is_string()) {
    FailValue(Join(path, "name"), out["name"],
              "no name in a job's data block (the research code's dataset name): set " + Join(path, "kind") +
                  " (majaj -> majaj_hong, nsd -> nsd, imagenet21k-fewshot -> image_folder)");
  }
  if (!out.is_object() || !out.contains("kind") || !out["kind"].is_string()) return out;
  const std::string kind = out["kind"].get<std::string>();
  const auto& kinds = DataKindNames();
  if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) return out;
  for (const char* alias : {"data_path", "stimuli_dir", "nsd_dir", "data_dir"}) {
    if (!out.contains(alias) || out[alias].is_null()) continue;
    std::vector<std::string> kinds_of_alias;
    const DataKeyAlias* match = nullptr;
    for (const DataKeyAlias& a : DataKeyAliases()) {
      if (std::string(a.alias) != alias) continue;
      kinds_of_alias.push_back(std::string(DataKindName(a.kind)) + " (" + a.key + ")");
      if (DataKindName(a.kind) == kind) match = &a;
    }
    const std::string alias_path = Join(path, alias);
    if (match == nullptr) {
      FailValue(alias_path, out[alias],
                "no " + std::string(alias) + " for data.kind " + kind + " (" + alias +
                    " is the research code's key, read as dwarp's key for data.kind " + JoinWords(kinds_of_alias, ", ") +
                    "; see the README's data section)");
    }
    if (out.contains(match->key) && !out[match->key].is_null()) {
      Fail(alias_path, alias_path + " and " + Join(path, match->key) + " are both given; " + alias +
                           " is the research code's name of " + Join(path, match->key) + ": expected one of them");
    }
    out[match->key] = out[alias];
    out.erase(alias);
  }
  return out;
}

DataSpec ReadData(const json* raw_object, const std::string& path, const ModelSpec& model) {
  const json resolved = raw_object == nullptr ? json() : WithDataAliasesResolved(*raw_object, path);
  const json* object = raw_object == nullptr ? nullptr : &resolved;
  const Fields f(object, path,
                 {"kind", "root", "file", "stimuli", "images", "labels", "test_images", "test_labels", "roi", "split",
                  "limit_stimuli", "limit_classes", "limit_samples", "image_size", "transform", "mean", "std",
                  "synthetic", "coords", "nan"});
  if (object == nullptr || object->is_null()) {
    Fail(path, path + ": missing; expected a mapping with at least kind and the kind's paths");
  }
  DataSpec d;
  f.Require("kind", "one of " + JoinWords(DataKindNames(), " | "));
  d.kind = static_cast<DataKind>(ReadChoice(f.Get("kind"), f.PathOf("kind"), DataKindNames()));
  const std::string kind = DataKindName(d.kind);
  const std::string for_kind = "for data.kind " + kind;

  // Paths: required ones, and every other one forbidden.
  struct PathKey {
    const char* key;
    std::string* field;
    const char* what;
  };
  const std::vector<PathKey> path_keys = {
      {"root", &d.root, "a folder"},          {"file", &d.file, "a netCDF file"},
      {"stimuli", &d.stimuli, "an image folder"}, {"images", &d.images, "an IDX images file"},
      {"labels", &d.labels, "an IDX labels file"}, {"test_images", &d.test_images, "an IDX images file"},
      {"test_labels", &d.test_labels, "an IDX labels file"}};
  std::vector<std::string> required, optional;
  switch (d.kind) {
    case DataKind::kNsd: required = {"root", "stimuli"}; break;
    case DataKind::kMajajHong: required = {"file", "stimuli"}; break;
    case DataKind::kGeneric: required = {"root"}; break;
    case DataKind::kImageFolder: required = {"root"}; break;
    case DataKind::kIdx: required = {"images", "labels"}, optional = {"test_images", "test_labels"}; break;
    case DataKind::kSynthetic: optional = {"images", "stimuli", "labels"}; break;
  }
  std::vector<std::string> used = required;
  used.insert(used.end(), optional.begin(), optional.end());
  for (const PathKey& p : path_keys) {
    const bool is_used = std::find(used.begin(), used.end(), p.key) != used.end();
    if (!is_used) {
      f.Forbid(p.key, for_kind + " (its paths: " + JoinWords(used) + ")");
      continue;
    }
    const bool is_required = std::find(required.begin(), required.end(), p.key) != required.end();
    *p.field = is_required ? f.RequiredString(p.key, std::string(p.what) + " (required " + for_kind + ")")
                           : f.String(p.key, std::string(p.what));
  }
  if (d.kind == DataKind::kIdx && d.test_images.empty() != d.test_labels.empty()) {
    const std::string missing = d.test_images.empty() ? "test_images" : "test_labels";
    Fail(f.PathOf(missing), f.PathOf(missing) + ": missing; expected test_images and test_labels together");
  }
  if (d.kind == DataKind::kSynthetic && d.images.empty() == d.stimuli.empty()) {
    Fail(path, path + ": data.kind synthetic takes exactly one source of real images, images (an IDX file) or "
                      "stimuli (an image folder); got " + (d.images.empty() ? "neither" : "both"));
  }

  // Regions of interest; majaj_hong's are whatever its file's region coordinate holds, checked on loading.
  if (d.kind == DataKind::kMajajHong) {
    d.roi = {"IT"};
    if (f.Has("roi")) {
      const std::string expected = "a region of the file (e.g. IT, V4) or a list of them";
      d.roi = ReadStringList(f.Get("roi"), f.PathOf("roi"), expected);
      if (d.roi.empty()) FailValue(f.PathOf("roi"), f.Get("roi"), expected);
    }
  } else if (d.kind == DataKind::kNsd) {
    if (f.Has("roi")) d.roi = ReadStringList(f.Get("roi"), f.PathOf("roi"), "an ROI name or a list of them");
  } else {
    f.Forbid("roi", for_kind + " (roi is for nsd and majaj_hong)");
  }
  for (size_t i = 0; i < d.roi.size(); ++i) {
    const auto first = std::find(d.roi.begin(), d.roi.begin() + static_cast<std::ptrdiff_t>(i), d.roi[i]);
    if (first != d.roi.begin() + static_cast<std::ptrdiff_t>(i)) {
      FailValue(Index(f.PathOf("roi"), i), json(d.roi[i]),
                "each region once (it is also data.roi[" + std::to_string(first - d.roi.begin()) + "])");
    }
  }

  ReadCoordsAndNan(f, d.kind, &d);

  const bool test_from_elsewhere = d.kind == DataKind::kNsd || (d.kind == DataKind::kIdx && !d.test_images.empty());
  d.split = ReadSplit(f.Child("split"), f.PathOf("split"), d.kind, test_from_elsewhere);

  if (d.kind == DataKind::kGeneric || d.kind == DataKind::kImageFolder) {
    f.Forbid("limit_stimuli", for_kind + (d.kind == DataKind::kGeneric
                                              ? " (the generic loader reads every stimulus of its files)"
                                              : " (an image folder is limited per class: limit_classes, limit_samples)"));
  }
  d.limit_stimuli = f.Int("limit_stimuli", 0, 0);
  if (IsClassificationKind(d.kind)) {
    d.limit_classes = f.Int("limit_classes", 0, 0);
    d.limit_samples = f.Int("limit_samples", 0, 0);
  } else {
    f.Forbid("limit_classes", for_kind + " (class limits are for image_folder and idx)");
    f.Forbid("limit_samples", for_kind + " (class limits are for image_folder and idx)");
  }

  d.image_size = f.Int("image_size", model.input_size, 1);
  if (model.arch == ModelArch::kMlp && d.image_size != model.input_size) {
    FailValue(f.PathOf("image_size"), f.Get("image_size"),
              "model.input_size = " + std::to_string(model.input_size) +
                  " (an mlp reads exactly input_size x input_size images)");
  }
  // IDX images are arrays, resized to a square; the transforms are for image files.
  const bool idx_images = d.kind == DataKind::kIdx || (d.kind == DataKind::kSynthetic && !d.images.empty());
  d.transform = model.arch == ModelArch::kResnet18 && !idx_images ? DataTransform::kWeights : DataTransform::kSquash;
  if (f.Has("transform")) {
    d.transform = static_cast<DataTransform>(ReadChoice(f.Get("transform"), f.PathOf("transform"), DataTransformNames()));
    if (idx_images && d.transform != DataTransform::kSquash) {
      FailValue(f.PathOf("transform"), f.Get("transform"),
                "squash or no value for IDX images (data.images: arrays resized to image_size x image_size; "
                "weights is for image files)");
    }
  }
  const int64_t channels = model.input_channels;
  if (channels == 3) {
    d.mean = {0.485, 0.456, 0.406};
    d.std = {0.229, 0.224, 0.225};
  } else {
    d.mean.assign(static_cast<size_t>(channels), 0.0);
    d.std.assign(static_cast<size_t>(channels), 1.0);
  }
  const std::string per_channel = "a list of 1 or model.input_channels = " + std::to_string(channels) + " numbers";
  if (f.Has("mean")) {
    d.mean = ReadDoubleList(f.Get("mean"), f.PathOf("mean"), per_channel, "a number", [](double) { return true; });
  }
  if (f.Has("std")) d.std = ReadDoubleList(f.Get("std"), f.PathOf("std"), per_channel, "a number > 0", kPositive);
  for (const char* key : {"mean", "std"}) {
    const size_t n = std::string(key) == "mean" ? d.mean.size() : d.std.size();
    if (n != 1 && static_cast<int64_t>(n) != channels) FailValue(f.PathOf(key), f.Get(key), per_channel);
  }

  if (d.kind == DataKind::kSynthetic) {
    d.synthetic = ReadSynthetic(f.Child("synthetic"), f.PathOf("synthetic"));
    // The labels are what a trained warp learns to classify and what category-selective neuroids respond
    // to; nothing else reads them.
    const bool labelled = d.synthetic->trained_warp || d.synthetic->categories > 0;
    if (labelled && (d.labels.empty() || d.images.empty())) {
      Fail(f.PathOf("labels"), f.PathOf("labels") + ": missing; expected an IDX labels file for the IDX images "
                               "(synthetic.warp trained learns to classify them; synthetic.categories responds to them)");
    }
    if (!labelled && !d.labels.empty()) {
      FailValue(f.PathOf("labels"), json(d.labels), "no value with synthetic.warp random and no synthetic.categories "
                                                    "(labels are read only by those)");
    }
  } else {
    f.Forbid("synthetic", for_kind + " (the synthetic block is for data.kind synthetic)");
  }
  return d;
}

TrainSpec ReadTrain(const json* object, const std::string& path) {
  const Fields f(object, path,
                 {"lr", "low_dim_lr", "low_dim_lr_scaling", "schedule", "weight_decay", "batch_size", "max_epochs",
                  "patience", "min_delta", "freeze_head", "head_init", "seed", "device", "threads"});
  TrainSpec t;
  t.lr = f.Double("lr", t.lr, "a number > 0", kPositive);
  if (f.Has("low_dim_lr")) t.low_dim_lr = f.Double("low_dim_lr", 0, "a number > 0", kPositive);
  if (f.Has("low_dim_lr_scaling")) {
    t.low_dim_lr_scaling = static_cast<LowDimLrScaling>(
        ReadChoice(f.Get("low_dim_lr_scaling"), f.PathOf("low_dim_lr_scaling"), LowDimLrScalingNames()));
  }
  if (f.Has("schedule")) {
    t.schedule = static_cast<LrSchedule>(ReadChoice(f.Get("schedule"), f.PathOf("schedule"), LrScheduleNames()));
  }
  t.weight_decay = f.Double("weight_decay", t.weight_decay, "a number >= 0", kNonNegative);
  t.batch_size = f.Int("batch_size", t.batch_size, 1);
  t.max_epochs = f.Int("max_epochs", t.max_epochs, 1);
  t.patience = f.Int("patience", t.patience, 0);
  t.min_delta = f.Double("min_delta", t.min_delta, "a number >= 0", kNonNegative);
  t.freeze_head = f.Bool("freeze_head", t.freeze_head);
  if (f.Has("head_init")) {
    t.head_init = static_cast<HeadInit>(ReadChoice(f.Get("head_init"), f.PathOf("head_init"), HeadInitNames()));
  }
  t.seed = static_cast<uint64_t>(f.Int("seed", 0, 0));
  if (f.Has("device")) {
    const json& v = f.Get("device");
    const std::string expected = "cpu, cuda or cuda:N (N a device index)";
    if (!v.is_string()) FailType(f.PathOf("device"), v, expected);
    t.device = v.get<std::string>();
    // cpu | cuda | cuda:[0-9]+, checked by hand (std::regex recurses per character).
    const std::string_view index = std::string_view(t.device).substr(std::min<size_t>(t.device.size(), 5));
    const bool cuda_index = t.device.compare(0, 5, "cuda:") == 0 && !index.empty() &&
                            std::all_of(index.begin(), index.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (t.device != "cpu" && t.device != "cuda" && !cuda_index) FailValue(f.PathOf("device"), v, expected);
  }
  t.threads = f.Int("threads", t.threads, 0);
  return t;
}

RidgeSpec ReadRidge(const json* object, const std::string& path) {
  const Fields f(object, path, {"alphas", "per_target", "folds"});
  RidgeSpec r;
  if (f.Has("alphas")) {
    r.alphas = ReadDoubleList(f.Get("alphas"), f.PathOf("alphas"), "a non-empty list of ridge penalties > 0",
                              "a number > 0", kPositive);
  }
  r.per_target = f.Bool("per_target", r.per_target);
  r.folds = f.Int("folds", r.folds, 0);
  if (r.folds == 1) {
    FailValue(f.PathOf("folds"), f.Get("folds"),
              "0 (choose alpha on the validation split) or an integer >= 2 (k-fold cross-validation)");
  }
  return r;
}

SubspaceDim ReadD(const Fields& f) {
  const std::string expected = "0 (linear readout), a positive integer (subspace dimension) or full";
  f.Require("d", expected);
  const json& v = f.Get("d");
  StatusOr<SubspaceDim> d = Status(StatusCode::kInternal, "unset");
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      FailValue("d", v, expected);
    }
    d = SubspaceDim::FromInt(v.get<int64_t>());
  } else if (v.is_string()) {
    d = SubspaceDim::Parse(v.get<std::string>());
  } else {
    FailType("d", v, expected);
  }
  if (!d.ok()) Fail("d", d.status().message());  // SubspaceDim's message already reads "d = <value>; expected ..."
  return *d;
}

// spec_version, when a document gives it: kJobSpecVersion, the only format this build reads.
void CheckSpecVersion(const json& v) {
  if (v.is_number_integer() && v == json(kJobSpecVersion)) return;
  Fail("spec_version", "spec_version = " + v.dump() + ": a job spec format this dwarp does not read; it reads "
                           "spec_version " + std::to_string(kJobSpecVersion) +
                           " (run workers of the coordinator's dwarp release)");
}

// Sets a SettingsUnusedBy path back to its default, so a dropped setting leaves no trace in the job.
void ResetToDefault(const std::string& path, JobSpec& job) {
  const TrainSpec train;
  const ModelSpec model;
  if (path == "train.lr") job.train.lr = train.lr;
  else if (path == "train.low_dim_lr") job.train.low_dim_lr = train.low_dim_lr;
  else if (path == "train.low_dim_lr_scaling") job.train.low_dim_lr_scaling = train.low_dim_lr_scaling;
  else if (path == "train.schedule") job.train.schedule = train.schedule;
  else if (path == "train.weight_decay") job.train.weight_decay = train.weight_decay;
  else if (path == "train.batch_size") job.train.batch_size = train.batch_size;
  else if (path == "train.max_epochs") job.train.max_epochs = train.max_epochs;
  else if (path == "train.patience") job.train.patience = train.patience;
  else if (path == "train.min_delta") job.train.min_delta = train.min_delta;
  else if (path == "model.projection") job.model.projection = model.projection;
  else if (path == "model.layer_groups") job.model.layer_groups = model.layer_groups;
  else if (path == "model.seed") job.model.seed = model.seed;
}

JobSpec ReadJob(const json& document, UnusedSettings unused) {
  if (!document.is_object()) {
    FailType("the document", document, "a mapping with keys model, data, d, objective, readout, ridge, train");
  }
  const Fields f(&document, "", {"spec_version", "model", "data", "d", "objective", "readout", "ridge", "train"});
  if (f.Has("spec_version")) CheckSpecVersion(f.Get("spec_version"));
  JobSpec job;
  job.model = ReadModel(f.Child("model"), "model");
  job.data = ReadData(f.Child("data"), "data", job.model);
  job.d = ReadD(f);
  job.train = ReadTrain(f.Child("train"), "train");

  const bool labelled = IsClassificationKind(job.data.kind);
  job.objective = labelled ? Objective::kClassification : Objective::kRegression;
  if (f.Has("objective")) {
    job.objective = static_cast<Objective>(ReadChoice(f.Get("objective"), "objective", ObjectiveNames()));
    if ((job.objective == Objective::kClassification) != labelled) {
      FailValue("objective", f.Get("objective"),
                std::string(labelled ? "classification" : "regression or rsa") + " for data.kind " +
                    DataKindName(job.data.kind) +
                    " (classification needs class labels: data.kind image_folder or idx)");
    }
  }
  if (job.objective == Objective::kRsa) {
    // No readout head: what would configure one would be recorded unused.
    const std::string why = " with objective rsa (no readout head: theta_d alone moves the model's RDM towards the "
                            "brain's)";
    if (job.d.is_full()) FailValue("d", f.Get("d"), "0 or a subspace d > 0" + why);
    if (job.train.weight_decay != 0.0) FailValue("train.weight_decay", json(job.train.weight_decay), "0" + why);
    if (job.train.freeze_head) FailValue("train.freeze_head", json(true), "false" + why);
    if (job.train.head_init != HeadInit::kDefault) FailValue("train.head_init", json("ridge"), "default" + why);
  }

  if (f.Has("readout")) job.readout = static_cast<Readout>(ReadChoice(f.Get("readout"), "readout", ReadoutNames()));
  if (job.readout == Readout::kRidge) {
    if (!job.d.is_linear()) {
      FailValue("readout", f.Get("readout"),
                "sgd when d = " + job.d.ToString() +
                    " (ridge is a closed-form readout on frozen features: it needs d = 0 and objective regression)");
    }
    if (job.objective != Objective::kRegression) {
      FailValue("readout", f.Get("readout"),
                std::string("sgd when objective = ") + ObjectiveName(job.objective) +
                    " (ridge is a closed-form readout on frozen features: it needs d = 0 and objective regression)");
    }
    job.ridge = ReadRidge(f.Child("ridge"), "ridge");
  } else if (job.readout == Readout::kPrefitWarped) {
    job.ridge = ReadRidge(f.Child("ridge"), "ridge");  // the prefit's alphas, folds and per-target choice
  } else {
    f.Forbid("ridge", "with readout sgd (the ridge block is for readout: ridge or prefit_warped)");
  }
  if (job.readout == Readout::kPrefitWarped) {
    const std::string why = " (prefit_warped fits the linear head by ridge, then warps network and head together "
                            "through the subspace: it needs a subspace d > 0 and objective regression)";
    if (!job.d.is_subspace()) FailValue("readout", f.Get("readout"), "sgd or ridge when d = " + job.d.ToString() + why);
    if (job.objective != Objective::kRegression) {
      FailValue("readout", f.Get("readout"), std::string("sgd when objective = ") + ObjectiveName(job.objective) + why);
    }
    // The head moves only through theta_d: settings of a separately trained head would be recorded unused.
    const std::string unused = " (with readout prefit_warped the head starts from the ridge fit and moves only "
                               "through theta_d: it has no optimiser, weight decay or initialisation of its own)";
    if (job.train.freeze_head) FailValue("train.freeze_head", json(true), "false" + unused);
    if (job.train.weight_decay != 0.0) FailValue("train.weight_decay", json(job.train.weight_decay), "0" + unused);
    if (job.train.head_init == HeadInit::kDefault && f.Child("train") != nullptr &&
        f.Child("train")->is_object() && f.Child("train")->contains("head_init") &&
        !(*f.Child("train"))["head_init"].is_null()) {
      FailValue("train.head_init", json("default"), "ridge or no value" + unused);
    }
    job.train.head_init = HeadInit::kRidge;
  }
  if (job.train.head_init == HeadInit::kRidge && job.readout != Readout::kPrefitWarped) {
    // The head of a d = 0 job is the readout itself (readout: ridge fits it in closed form), and a
    // classification head is fitted to cross-entropy, not to the regression targets a ridge fit predicts.
    const std::string why = " (head_init ridge starts the readout head of a d > 0 or d = full regression job "
                            "from the d = 0 ridge solution)";
    if (job.d.is_linear()) {
      FailValue("train.head_init", json("ridge"), "default when d = 0" + why);
    }
    if (job.objective != Objective::kRegression) {
      FailValue("train.head_init", json("ridge"),
                std::string("default when objective = ") + ObjectiveName(job.objective) + why);
    }
  }
  if (job.d.is_linear() && job.train.freeze_head) {
    FailValue("train.freeze_head", json(true), "false when d = 0 (the head is the only thing trained)");
  }
  // Settings given that this job would not use: all named in one error, with the overrides that drop them.
  std::vector<std::pair<UnusedSetting, json>> given_unused;
  for (const UnusedSetting& setting : SettingsUnusedBy(job)) {
    const size_t dot = setting.path.find('.');
    const json* block = f.Child(setting.path.substr(0, dot));
    const std::string key = setting.path.substr(dot + 1);
    if (block == nullptr || !block->is_object() || !block->contains(key) || block->at(key).is_null()) continue;
    given_unused.emplace_back(setting, block->at(key));
    ResetToDefault(setting.path, job);
  }
  if (unused == UnusedSettings::kRefuse && !given_unused.empty()) {
    const auto& [first, value] = given_unused.front();
    std::string others, drop;
    for (const auto& [setting, v] : given_unused) {
      if (&setting != &first) others += (others.empty() ? "" : ", ") + setting.path;
      drop += (drop.empty() ? "~" : " ~") + setting.path;
    }
    FailValue(first.path, value,
              "no value: " + first.why + (others.empty() ? "" : " (unused here too: " + others + ")") + "; drop " +
                  (others.empty() ? "it" : "them") + " (override `" + drop +
                  "`), or run this job's d values as a sweep, whose jobs each take the shared settings that "
                  "apply at their d");
  }
  return job;
}

// ---------------------------------------------------------------------------------------------------------
// Decoding what ToJson wrote (DecodeJobSpec): every field read as written, its type and its own range checked.
// Nothing that ReadJob resolves or checks across fields runs again (defaults that depend on other fields, the
// paths a data kind needs, split fractions summing to 1, the pairings of d, objective and readout, the
// unused-settings rule): the coordinator's validation at submit did that, and ToJson wrote the result with
// every default resolved. Blocks whose readers above check only their own fields (model, train, ridge,
// synthetic) are read by them; a key that ToJson leaves out reads as the default it stood for.

DataSpec ReadWrittenData(const json* object, const std::string& path) {
  const Fields f(object, path,
                 {"kind", "root", "file", "stimuli", "images", "labels", "test_images", "test_labels", "roi", "split",
                  "limit_stimuli", "limit_classes", "limit_samples", "image_size", "transform", "mean", "std",
                  "synthetic", "coords", "nan"});
  if (object == nullptr) Fail(path, path + ": missing; expected the data block ToJson writes");
  DataSpec d;
  f.Require("kind", "one of " + JoinWords(DataKindNames(), " | "));
  d.kind = static_cast<DataKind>(ReadChoice(f.Get("kind"), f.PathOf("kind"), DataKindNames()));
  for (const auto& [key, field] : {std::pair<const char*, std::string*>{"root", &d.root}, {"file", &d.file},
                                   {"stimuli", &d.stimuli}, {"images", &d.images}, {"labels", &d.labels},
                                   {"test_images", &d.test_images}, {"test_labels", &d.test_labels}}) {
    *field = f.String(key, "a path");
  }
  if (f.Has("roi")) d.roi = ReadStringList(f.Get("roi"), f.PathOf("roi"), "a list of region names");
  const Fields split(f.Child("split"), f.PathOf("split"), {"train", "val", "test", "column"});
  d.split.column = split.String("column", "the name of a split column");
  for (const auto& [key, field] : {std::pair<const char*, double*>{"train", &d.split.train},
                                   {"val", &d.split.val}, {"test", &d.split.test}}) {
    *field = split.Double(key, 0.0, "a fraction in [0, 1)", [](double x) { return x >= 0 && x < 1; });
  }
  d.limit_stimuli = f.Int("limit_stimuli", 0, 0);
  d.limit_classes = f.Int("limit_classes", 0, 0);
  d.limit_samples = f.Int("limit_samples", 0, 0);
  f.Require("image_size", "an integer >= 1");
  d.image_size = f.Int("image_size", 0, 1);
  f.Require("transform", "one of " + JoinWords(DataTransformNames(), " | "));
  d.transform = static_cast<DataTransform>(ReadChoice(f.Get("transform"), f.PathOf("transform"), DataTransformNames()));
  f.Require("mean", "a list of numbers");
  d.mean = ReadDoubleList(f.Get("mean"), f.PathOf("mean"), "a list of numbers", "a number", [](double) { return true; });
  f.Require("std", "a list of numbers > 0");
  d.std = ReadDoubleList(f.Get("std"), f.PathOf("std"), "a list of numbers > 0", "a number > 0", kPositive);
  if (f.Has("synthetic")) d.synthetic = ReadSynthetic(f.Child("synthetic"), f.PathOf("synthetic"));
  const Fields coords(f.Child("coords"), f.PathOf("coords"), {"image_id", "image_name", "region"});
  d.coords.image_id = coords.String("image_id", "a coordinate name");
  d.coords.image_name = coords.String("image_name", "a coordinate name");
  d.coords.region = coords.String("region", "a coordinate name");
  if (f.Has("nan")) d.nan = static_cast<NanPolicy>(ReadChoice(f.Get("nan"), f.PathOf("nan"), NanPolicyNames()));
  return d;
}

JobSpec ReadWrittenJob(const json& document) {
  const Fields f(&document, "", {"spec_version", "model", "data", "d", "objective", "readout", "ridge", "train"});
  JobSpec job;
  job.model = ReadModel(f.Child("model"), "model");
  job.data = ReadWrittenData(f.Child("data"), "data");
  job.d = ReadD(f);
  f.Require("objective", "one of " + JoinWords(ObjectiveNames(), " | "));
  job.objective = static_cast<Objective>(ReadChoice(f.Get("objective"), "objective", ObjectiveNames()));
  f.Require("readout", "one of " + JoinWords(ReadoutNames(), " | "));
  job.readout = static_cast<Readout>(ReadChoice(f.Get("readout"), "readout", ReadoutNames()));
  if (f.Has("ridge")) job.ridge = ReadRidge(f.Child("ridge"), "ridge");
  job.train = ReadTrain(f.Child("train"), "train");
  return job;
}

StatusOr<JobSpec> Validate(const json& document, const std::vector<SpecOverride>& overrides,
                           UnusedSettings unused = UnusedSettings::kRefuse) {
  try {
    return ReadJob(document, unused);
  } catch (const SpecFieldError& e) {
    return SpecErrorStatus(e, overrides);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Writing.

json ModelToJson(const ModelSpec& m) {
  json out = {{"arch", ModelArchName(m.arch)}};
  if (!m.layer.empty()) out["layer"] = m.layer;
  if (!m.weights.empty()) out["weights"] = m.weights;
  out["layer_groups"] = m.layer_groups ? json(*m.layer_groups) : json(nullptr);
  out["input_channels"] = m.input_channels;
  out["input_size"] = m.input_size;
  if (m.arch == ModelArch::kMlp) out["hidden"] = m.hidden;
  if (m.seed) out["seed"] = *m.seed;
  out["projection"] = ProjectionName(m.projection);
  return out;
}

}  // namespace

const char* ModelArchName(ModelArch arch) { return ModelArchNames()[static_cast<size_t>(arch)].c_str(); }
const char* DataKindName(DataKind kind) { return DataKindNames()[static_cast<size_t>(kind)].c_str(); }
const char* ObjectiveName(Objective objective) { return ObjectiveNames()[static_cast<size_t>(objective)].c_str(); }
const char* ReadoutName(Readout readout) { return ReadoutNames()[static_cast<size_t>(readout)].c_str(); }
const char* ProjectionName(Projection projection) {
  return ProjectionNames()[static_cast<size_t>(projection)].c_str();
}
const char* LowDimLrScalingName(LowDimLrScaling scaling) {
  return LowDimLrScalingNames()[static_cast<size_t>(scaling)].c_str();
}
const char* LrScheduleName(LrSchedule schedule) { return LrScheduleNames()[static_cast<size_t>(schedule)].c_str(); }
const char* NanPolicyName(NanPolicy policy) { return NanPolicyNames()[static_cast<size_t>(policy)].c_str(); }

double LowDimLearningRate(double low_dim_lr, int64_t d, LowDimLrScaling scaling) {
  if (scaling == LowDimLrScaling::kNone || d < 1) return low_dim_lr;
  return low_dim_lr * static_cast<double>(kLowDimLrReferenceDim) / static_cast<double>(d);
}
const char* HeadInitName(HeadInit head_init) { return HeadInitNames()[static_cast<size_t>(head_init)].c_str(); }
const char* DataTransformName(DataTransform transform) {
  return DataTransformNames()[static_cast<size_t>(transform)].c_str();
}

std::vector<UnusedSetting> SettingsUnusedBy(const JobSpec& spec) {
  std::vector<UnusedSetting> out;
  const bool closed_form = spec.d.is_linear() && spec.readout == Readout::kRidge;
  const bool scoring_only = spec.d.is_linear() && spec.objective == Objective::kRsa;
  if (closed_form || scoring_only) {
    const std::string why = closed_form ? "at d = 0 with readout ridge the readout is fitted in closed form, so "
                                          "nothing trains by epochs"
                                        : "objective rsa at d = 0 scores the frozen model's RDMs, so nothing trains";
    for (const char* key : {"lr", "schedule", "batch_size", "max_epochs", "patience", "min_delta"}) {
      out.push_back({std::string("train.") + key, why});
    }
    if (closed_form) out.push_back({"train.weight_decay", "readout ridge's penalty is ridge.alphas"});
  } else if (spec.train.low_dim_lr.has_value() &&
             (spec.objective == Objective::kRsa || spec.readout == Readout::kPrefitWarped)) {
    out.push_back({"train.lr", std::string("with ") +
                                   (spec.objective == Objective::kRsa ? "objective rsa" : "readout prefit_warped") +
                                   " there is no head of its own to train, so lr serves only as low_dim_lr's "
                                   "default, and low_dim_lr is set"});
  }
  if (spec.model.arch == ModelArch::kTorchscript || !spec.model.weights.empty()) {
    out.push_back({"model.seed", "model.weights sets every parameter of the network, so no initialisation is "
                                 "drawn"});
  }
  if (!spec.d.is_subspace()) {
    const std::string at = "d = " + spec.d.ToString() + " has no theta_d (" +
                           (spec.d.is_linear() ? "d = 0 trains only a readout" : "d = full trains every parameter") +
                           " at train.lr)";
    out.push_back({"train.low_dim_lr", "the rate of theta_d applies to a subspace d > 0 only; " + at});
    out.push_back({"train.low_dim_lr_scaling", "the rate of theta_d applies to a subspace d > 0 only; " + at});
    const bool shapes_brain = spec.data.synthetic.has_value() && !spec.data.synthetic->teacher.has_value();
    if (!shapes_brain) {
      out.push_back({"model.projection", "the projection of theta_d applies to a subspace d > 0 only; " + at});
    }
    out.push_back({"model.layer_groups", "layer scalars move with theta_d, in a subspace d > 0 only; " + at});
  }
  return out;
}

StatusOr<JobSpec> JobSpecFromJson(const json& document, UnusedSettings unused) {
  return Validate(document, {}, unused);
}

StatusOr<JobSpec> DecodeJobSpec(const json& document) {
  if (!document.is_object()) {
    return InvalidArgumentError("the job spec is " + document.dump().substr(0, 200) +
                                "; expected a JSON object as ToJson writes it");
  }
  auto version = document.find("spec_version");
  if (version == document.end() || version->is_null()) {
    // Written by a coordinator from before the field: validated in full, as such specs always were, with the
    // settings the job does not use dropped (the coordinator expanded the sweep that way).
    return JobSpecFromJson(document, UnusedSettings::kDrop);
  }
  try {
    CheckSpecVersion(*version);
    return ReadWrittenJob(document);
  } catch (const SpecFieldError& e) {
    return InvalidArgumentError(e.message);
  }
}

StatusOr<JobSpec> JobSpecFromDocument(const json& document, SpecFieldError* error, UnusedSettings unused) {
  try {
    return ReadJob(document, unused);
  } catch (const SpecFieldError& e) {
    if (error != nullptr) *error = e;
    return InvalidArgumentError(e.message);
  }
}

StatusOr<JobSpec> ParseJobSpec(std::string_view text, SpecFormat format, const std::vector<std::string>& overrides) {
  StatusOr<json> document = ParseSpecDocument(text, format, "job spec");
  if (!document.ok()) return document.status();
  StatusOr<std::vector<SpecOverride>> applied = ApplySpecOverrides(*document, overrides);
  if (!applied.ok()) return applied.status();
  return Validate(*document, *applied);
}

StatusOr<JobSpec> LoadJobSpecFile(const std::string& path, const std::vector<std::string>& overrides) {
  StatusOr<SpecFormat> format = SpecFormatOfPath(path, "job spec file");
  if (!format.ok()) return format.status();
  StatusOr<std::string> text = ReadSpecFileText(path, "job spec file");
  if (!text.ok()) return text.status();
  StatusOr<JobSpec> spec = ParseJobSpec(*text, *format, overrides);
  if (!spec.ok()) return Status(spec.status().code(), path + ": " + spec.status().message());
  return spec;
}

json ToJson(const JobSpec& spec) {
  const DataSpec& d = spec.data;
  json data = {{"kind", DataKindName(d.kind)}};
  for (const auto& [key, value] : {std::pair<const char*, const std::string*>{"root", &d.root},
                                   {"file", &d.file}, {"stimuli", &d.stimuli}, {"images", &d.images},
                                   {"labels", &d.labels}, {"test_images", &d.test_images},
                                   {"test_labels", &d.test_labels}}) {
    if (!value->empty()) data[key] = *value;
  }
  if (d.kind == DataKind::kNsd || d.kind == DataKind::kMajajHong) data["roi"] = d.roi;
  if (d.kind == DataKind::kNsd || d.kind == DataKind::kMajajHong) {
    data["coords"] = {{"image_id", d.coords.image_id}, {"region", d.coords.region}};
    if (!d.coords.image_name.empty()) data["coords"]["image_name"] = d.coords.image_name;
    data["nan"] = NanPolicyName(d.nan);
  }
  if (!d.split.column.empty()) {
    data["split"] = {{"column", d.split.column}};
  } else if (d.kind == DataKind::kGeneric) {
    // The split comes from the files: nothing to record.
  } else {
    data["split"] = {{"train", d.split.train}, {"val", d.split.val}, {"test", d.split.test}};
  }
  if (d.kind != DataKind::kGeneric && d.kind != DataKind::kImageFolder) data["limit_stimuli"] = d.limit_stimuli;
  if (IsClassificationKind(d.kind)) {
    data["limit_classes"] = d.limit_classes;
    data["limit_samples"] = d.limit_samples;
  }
  data["image_size"] = d.image_size;
  data["transform"] = DataTransformName(d.transform);
  data["mean"] = d.mean;
  data["std"] = d.std;
  if (d.synthetic) {
    const SyntheticSpec& s = *d.synthetic;
    data["synthetic"] = {
        {"targets", s.targets}, {"warp_dim", s.warp_dim}, {"warp_scale", s.warp_scale}, {"noise", s.noise},
        {"warp", s.trained_warp ? "trained" : "random"},
        {"seed", s.seed}};
    if (s.teacher) data["synthetic"]["teacher"] = ModelToJson(*s.teacher);
    if (s.categories > 0) data["synthetic"]["categories"] = s.categories;
    if (s.trained_warp) {
      data["synthetic"]["warp_epochs"] = s.warp_epochs;
      data["synthetic"]["warp_lr"] = s.warp_lr;
    }
  }

  const TrainSpec& t = spec.train;
  json train = {{"lr", t.lr},
                {"low_dim_lr", t.low_dim_lr ? json(*t.low_dim_lr) : json(nullptr)},
                {"low_dim_lr_scaling", LowDimLrScalingName(t.low_dim_lr_scaling)},
                {"schedule", LrScheduleName(t.schedule)},
                {"weight_decay", t.weight_decay},
                {"batch_size", t.batch_size},
                {"max_epochs", t.max_epochs},
                {"patience", t.patience},
                {"min_delta", t.min_delta},
                {"freeze_head", t.freeze_head},
                {"head_init", HeadInitName(t.head_init)},
                {"seed", t.seed},
                {"device", t.device},
                {"threads", t.threads}};

  json model = ModelToJson(spec.model);
  for (const UnusedSetting& setting : SettingsUnusedBy(spec)) {
    const size_t dot = setting.path.find('.');
    json& block = setting.path.compare(0, dot, "train") == 0 ? train : model;
    block.erase(setting.path.substr(dot + 1));
  }
  json out = {{"spec_version", kJobSpecVersion},
              {"model", std::move(model)},
              {"data", std::move(data)},
              {"d", spec.d.is_subspace() || spec.d.is_linear() ? json(spec.d.value) : json(spec.d.ToString())},
              {"objective", ObjectiveName(spec.objective)},
              {"readout", ReadoutName(spec.readout)},
              {"train", std::move(train)}};
  if (spec.ridge) {
    out["ridge"] = {
        {"alphas", spec.ridge->alphas}, {"per_target", spec.ridge->per_target}, {"folds", spec.ridge->folds}};
  }
  return out;
}

bool operator==(const ModelSpec& a, const ModelSpec& b) {
  return std::tie(a.arch, a.weights, a.layer, a.layer_groups, a.input_channels, a.input_size, a.hidden, a.seed,
                  a.projection) ==
         std::tie(b.arch, b.weights, b.layer, b.layer_groups, b.input_channels, b.input_size, b.hidden, b.seed,
                  b.projection);
}
bool operator==(const SplitSpec& a, const SplitSpec& b) {
  return std::tie(a.train, a.val, a.test, a.column) == std::tie(b.train, b.val, b.test, b.column);
}
bool operator==(const SyntheticSpec& a, const SyntheticSpec& b) {
  return std::tie(a.targets, a.warp_dim, a.warp_scale, a.noise, a.teacher, a.seed, a.trained_warp, a.warp_epochs,
                  a.warp_lr, a.categories) ==
         std::tie(b.targets, b.warp_dim, b.warp_scale, b.noise, b.teacher, b.seed, b.trained_warp, b.warp_epochs,
                  b.warp_lr, b.categories);
}
bool operator==(const DataCoordsSpec& a, const DataCoordsSpec& b) {
  return std::tie(a.image_id, a.image_name, a.region) == std::tie(b.image_id, b.image_name, b.region);
}
bool operator==(const DataSpec& a, const DataSpec& b) {
  return std::tie(a.kind, a.root, a.file, a.stimuli, a.images, a.labels, a.test_images, a.test_labels, a.roi, a.split,
                  a.limit_stimuli, a.limit_classes, a.limit_samples, a.image_size, a.transform, a.mean, a.std,
                  a.synthetic) ==
         std::tie(b.kind, b.root, b.file, b.stimuli, b.images, b.labels, b.test_images, b.test_labels, b.roi, b.split,
                  b.limit_stimuli, b.limit_classes, b.limit_samples, b.image_size, b.transform, b.mean, b.std,
                  b.synthetic) &&
         a.coords == b.coords && a.nan == b.nan;
}
bool operator==(const TrainSpec& a, const TrainSpec& b) {
  return std::tie(a.lr, a.low_dim_lr, a.low_dim_lr_scaling, a.schedule, a.weight_decay, a.batch_size, a.max_epochs,
                  a.patience, a.min_delta, a.freeze_head, a.head_init, a.seed, a.device, a.threads) ==
         std::tie(b.lr, b.low_dim_lr, b.low_dim_lr_scaling, b.schedule, b.weight_decay, b.batch_size, b.max_epochs,
                  b.patience, b.min_delta, b.freeze_head, b.head_init, b.seed, b.device, b.threads);
}
bool operator==(const RidgeSpec& a, const RidgeSpec& b) {
  return std::tie(a.alphas, a.per_target, a.folds) == std::tie(b.alphas, b.per_target, b.folds);
}
bool operator==(const JobSpec& a, const JobSpec& b) {
  return std::tie(a.model, a.data, a.d, a.objective, a.readout, a.ridge, a.train) ==
         std::tie(b.model, b.data, b.d, b.objective, b.readout, b.ridge, b.train);
}

}  // namespace dwarp
