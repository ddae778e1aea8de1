#include "common/sweep_spec.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <optional>
#include <utility>

#include "common/spec_document.h"

namespace dwarp {
namespace {

using nlohmann::json;

// As in job_spec.cpp: a SpecFieldError is thrown only inside this file's readers and turned into a Status
// in one place (ReadSweep). A limit exceeded is thrown as its (ResourceExhausted) Status.
[[noreturn]] void Throw(SpecFieldError error) { throw std::move(error); }
[[noreturn]] void FailValue(const std::string& path, const json& v, const std::string& expected) {
  Throw(SpecValueError(path, v, expected));
}
[[noreturn]] void FailType(const std::string& path, const json& v, const std::string& expected) {
  Throw(SpecTypeError(path, v, expected));
}
void Check(std::optional<SpecFieldError> error) {
  if (error) Throw(std::move(*error));
}

const std::vector<std::string>& ThresholdKindNames() {  // in enum order, from 1
  static const std::vector<std::string> names = {"absolute", "fraction_of_group_best", "fraction_of_dataset_best",
                                                 "fraction_of_full", "fraction_of_noise_ceiling"};
  return names;
}

const char* kNameExpected = "a name of letters, digits, _, . and - ([A-Za-z0-9_.-]+)";

// Names (of the sweep, its models, datasets and layers) key the jobs and the d_warp groups and are shown in
// every table: at most kMaxSpecNameBytes bytes.
void CheckNameLength(const std::string& name, const std::string& path) {
  if (name.size() <= kMaxSpecNameBytes) return;
  Throw({path, path + ": a name of " + std::to_string(name.size()) + " bytes (" +
                   DescribeSpecValue(json(name.substr(0, 37) + "...")) + "); at most " +
                   std::to_string(kMaxSpecNameBytes) + " bytes are allowed"});
}

std::string ReadName(const json& v, const std::string& path) {
  if (v.is_null()) Throw({path, path + ": missing; expected " + kNameExpected});
  if (!v.is_string()) FailType(path, v, kNameExpected);
  const std::string name = v.get<std::string>();
  CheckNameLength(name, path);
  if (!IsSpecName(name)) FailValue(path, v, kNameExpected);
  return name;
}

int64_t ReadInt(const json& v, const std::string& path, int64_t min, int64_t max) {
  const std::string expected = max == std::numeric_limits<int64_t>::max()
                                   ? "an integer >= " + std::to_string(min)
                                   : "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
  if (!v.is_number_integer()) FailType(path, v, expected);
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    FailValue(path, v, expected);
  }
  const int64_t x = v.get<int64_t>();
  if (x < min || x > max) FailValue(path, v, expected);
  return x;
}

bool ReadBool(const json& v, const std::string& path) {
  if (!v.is_boolean()) FailType(path, v, "true or false");
  return v.get<bool>();
}

// The value of `key` in `object` (a mapping or null); null when absent.
const json& Get(const json& object, const std::string& key) {
  static const json kNull;
  return object.is_object() && object.contains(key) ? object.at(key) : kNull;
}

// a * b, saturating at int64's maximum (job counts are compared with a limit, never used past it).
int64_t SaturatingMultiply(int64_t a, int64_t b) {
  if (a != 0 && b > std::numeric_limits<int64_t>::max() / a) return std::numeric_limits<int64_t>::max();
  return a * b;
}

Status TooManyJobs(int64_t count) {
  const std::string number =
      count == std::numeric_limits<int64_t>::max() ? "more than 9223372036854775806" : std::to_string(count);
  return ResourceExhaustedError("sweep expands to " + number + " jobs; the limit is " +
                                std::to_string(kMaxJobsPerSweep) + " jobs per sweep (split it into several sweeps)");
}

// ---------------------------------------------------------------------------------------------------------
// Paths: relative ones resolved against the sweep file's folder.

void ResolvePath(json& block, const std::string& key, const std::string& base_dir) {
  if (base_dir.empty() || !block.is_object() || !block.contains(key) || !block[key].is_string()) return;
  const std::string value = block[key].get<std::string>();
  if (value.empty() || std::filesystem::path(value).is_absolute()) return;
  block[key] = (std::filesystem::path(base_dir) / value).lexically_normal().string();
}

void ResolveModelPaths(json& model, const std::string& base_dir) { ResolvePath(model, "weights", base_dir); }

void ResolveDataPaths(json& data, const std::string& base_dir) {
  // dwarp's path keys and the research code's aliases of them (common/job_spec.h DataSpec).
  for (const char* key : {"root", "file", "stimuli", "images", "labels", "test_images", "test_labels", "data_path",
                          "stimuli_dir", "nsd_dir", "data_dir"}) {
    ResolvePath(data, key, base_dir);
  }
  if (data.is_object() && data.contains("synthetic") && data["synthetic"].is_object() &&
      data["synthetic"].contains("teacher")) {
    ResolveModelPaths(data["synthetic"]["teacher"], base_dir);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Sweep-level readers.

// A required non-empty list of mappings, each with a unique `name`; the name and the rest of each entry.
std::vector<std::pair<std::string, json>> ReadNamedBlocks(const json& list, const std::string& path,
                                                          const std::string& entry_expected) {
  const std::string expected = "a non-empty list of " + entry_expected;
  if (list.is_null()) Throw({path, path + ": missing; expected " + expected});
  if (!list.is_array() || list.empty()) FailType(path, list, expected);
  std::vector<std::pair<std::string, json>> out;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string entry_path = SpecIndexPath(path, i);
    if (!list[i].is_object()) FailType(entry_path, list[i], entry_expected);
    const std::string name_path = SpecFieldPath(entry_path, "name");
    const std::string name = ReadName(Get(list[i], "name"), name_path);
    for (size_t j = 0; j < out.size(); ++j) {
      if (out[j].first == name) {
        FailValue(name_path, json(name), "a name not used by " + SpecIndexPath(path, j) + " (names are unique)");
      }
    }
    json rest = list[i];
    rest.erase("name");
    out.emplace_back(name, std::move(rest));
  }
  return out;
}

std::vector<SweepModel> ReadModels(const json& list, const std::string& base_dir) {
  std::vector<SweepModel> models;
  const auto blocks = ReadNamedBlocks(list, "models", "mappings with name, arch and the model's settings");
  for (size_t i = 0; i < blocks.size(); ++i) {
    const std::string path = SpecIndexPath("models", i);
    SweepModel m;
    m.name = blocks[i].first;
    json block = blocks[i].second;
    // The arch is checked here so that its error names the sweep's field; the rest of the block is checked
    // by the job validation of the expanded jobs.
    const json& arch = Get(block, "arch");
    if (arch.is_null()) {
      Throw({SpecFieldPath(path, "arch"),
             SpecFieldPath(path, "arch") + ": missing; expected one of mlp | lenet | small_cnn | resnet18 | torchscript"});
    }
    size_t unused = 0;
    Check(CheckSpecChoice(arch, SpecFieldPath(path, "arch"), ModelArchNames(), &unused));
    if (!Get(block, "layer").is_null()) {
      FailValue(SpecFieldPath(path, "layer"), block["layer"],
                "no layer in a sweep's model (list the read-out layers as layers: [...])");
    }
    block.erase("layer");  // a null `layer:` counts as not given

    const std::string layers_path = SpecFieldPath(path, "layers");
    const json& layers = Get(block, "layers");
    const std::string layers_expected = "a layer name or a non-empty list of them (default: the arch's default layer)";
    if (layers.is_null()) {
      m.layers = {""};
    } else {
      const json list_form = layers.is_string() ? json::array({layers}) : layers;
      if (!list_form.is_array() || list_form.empty()) FailType(layers_path, layers, layers_expected);
      for (size_t k = 0; k < list_form.size(); ++k) {
        const std::string item_path = layers.is_string() ? layers_path : SpecIndexPath(layers_path, k);
        const json& item = list_form[k];
        if (!item.is_string() || item.get<std::string>().empty()) {
          FailType(item_path, item, "a layer name (or default for the arch's default layer)");
        }
        CheckNameLength(item.get<std::string>(), item_path);
        const std::string name = item.get<std::string>() == "default" ? "" : item.get<std::string>();
        if (std::find(m.layers.begin(), m.layers.end(), name) != m.layers.end()) {
          FailValue(item_path, item, "a layer not listed before in " + layers_path);
        }
        m.layers.push_back(name);
      }
    }
    block.erase("layers");
    ResolveModelPaths(block, base_dir);
    m.model = std::move(block);
    models.push_back(std::move(m));
  }
  return models;
}

std::vector<SweepDataset> ReadDatasets(const json& list, const std::string& base_dir) {
  std::vector<SweepDataset> datasets;
  const auto blocks = ReadNamedBlocks(list, "datasets", "mappings with name, kind and the data's paths");
  for (size_t i = 0; i < blocks.size(); ++i) {
    const std::string kind_path = SpecFieldPath(SpecIndexPath("datasets", i), "kind");
    json block = blocks[i].second;
    const json& kind = Get(block, "kind");
    if (kind.is_null()) {
      Throw({kind_path, kind_path + ": missing; expected one of nsd | majaj_hong | generic | image_folder | idx | "
                                    "synthetic"});
    }
    size_t unused = 0;
    Check(CheckSpecChoice(kind, kind_path, DataKindNames(), &unused));
    ResolveDataPaths(block, base_dir);
    datasets.push_back({blocks[i].first, std::move(block)});
  }
  return datasets;
}

std::vector<SubspaceDim> ReadDims(const json& v) {
  const std::string list_expected = "a list of dimensions (0, positive integers, full)";
  const std::string expected = "a mapping {max, samples, full} (the seed's grid) or " + list_expected;
  if (v.is_null()) Throw({"dims", "dims: missing; expected " + expected});
  std::vector<SubspaceDim> dims;
  if (v.is_object()) {
    Check(CheckSpecKeys(v, "dims", {"max", "samples", "full"}));
    for (const char* key : {"max", "samples"}) {
      if (Get(v, key).is_null()) {
        Throw({SpecFieldPath("dims", key), "dims." + std::string(key) + ": missing; expected an integer (the grid " +
                                               "has samples - 1 log-spaced points from 10 to max, after 0)"});
      }
    }
    const int64_t max = ReadInt(v["max"], "dims.max", 10, std::numeric_limits<int64_t>::max());
    const int64_t samples = ReadInt(v["samples"], "dims.samples", 2, kMaxJobsPerSweep);
    StatusOr<std::vector<int64_t>> grid = DefaultDimGrid(max, samples);
    if (!grid.ok()) Throw({"dims", "dims: " + grid.status().message()});
    for (int64_t d : *grid) dims.push_back(d == 0 ? SubspaceDim::Linear() : SubspaceDim::Subspace(d));
    if (!Get(v, "full").is_null() && ReadBool(v["full"], "dims.full")) dims.push_back(SubspaceDim::Full());
    return dims;
  }
  if (!v.is_array() || v.empty()) FailType("dims", v, expected);
  const std::string item_expected = "0 (linear readout), a positive integer (subspace dimension) or full";
  std::vector<size_t> positions;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string path = SpecIndexPath("dims", i);
    StatusOr<SubspaceDim> d = InvalidArgumentError("unset");
    if (v[i].is_number_integer()) {
      if (v[i].is_number_unsigned() &&
          v[i].get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        FailValue(path, v[i], item_expected);
      }
      d = SubspaceDim::FromInt(v[i].get<int64_t>());
    } else if (v[i].is_string()) {
      d = SubspaceDim::Parse(v[i].get<std::string>());
    } else {
      FailType(path, v[i], item_expected);
    }
    if (!d.ok()) FailValue(path, v[i], item_expected);
    for (size_t j = 0; j < dims.size(); ++j) {
      if (dims[j] == *d) FailValue(path, v[i], "a dimension not listed before (" + SpecIndexPath("dims", j) + " is the same)");
    }
    dims.push_back(*d);
  }
  // Ascending, full last.
  std::sort(dims.begin(), dims.end(), [](const SubspaceDim& a, const SubspaceDim& b) {
    if (a.is_full() != b.is_full()) return b.is_full();
    return a.value < b.value;
  });
  return dims;
}

std::vector<uint64_t> ReadSeeds(const json& v) {
  const std::string expected = "a list of seeds (integers >= 0) or a count n >= 1 meaning 0 .. n-1";
  if (v.is_null()) return {0};
  if (v.is_number_integer()) {
    const int64_t n = ReadInt(v, "seeds", 1, std::numeric_limits<int64_t>::max());
    // Every seed is at least one job: a count past the job limit is a sweep past it (and is not materialised).
    if (n > kMaxJobsPerSweep) throw TooManyJobs(n);
    std::vector<uint64_t> seeds;
    for (int64_t s = 0; s < n; ++s) seeds.push_back(static_cast<uint64_t>(s));
    return seeds;
  }
  if (!v.is_array() || v.empty()) FailType("seeds", v, expected);
  std::vector<uint64_t> seeds;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string path = SpecIndexPath("seeds", i);
    const uint64_t seed = static_cast<uint64_t>(ReadInt(v[i], path, 0, std::numeric_limits<int64_t>::max()));
    const auto it = std::find(seeds.begin(), seeds.end(), seed);
    if (it != seeds.end()) {
      FailValue(path, v[i], "a seed not listed before (" + SpecIndexPath("seeds", static_cast<size_t>(it - seeds.begin())) + " is the same)");
    }
    seeds.push_back(seed);
  }
  return seeds;
}

ThresholdSpec ReadThreshold(const json& v, const std::vector<SubspaceDim>& dims) {
  ThresholdSpec t;
  if (v.is_null()) return t;
  Check(CheckSpecKeys(v, "threshold", {"kind", "value"}));
  if (!Get(v, "kind").is_null()) {
    size_t index = 0;
    Check(CheckSpecChoice(v["kind"], "threshold.kind", ThresholdKindNames(), &index));
    t.kind = static_cast<ThresholdKind>(index + 1);
  }
  const bool fraction = t.kind != ThresholdKind::kAbsolute;
  const std::string expected = fraction ? "a fraction in (0, 1] of the threshold's reference score" : "a finite number";
  if (Get(v, "value").is_null()) {
    if (!fraction) Throw({"threshold.value", "threshold.value: missing; expected " + expected + " (the score d_warp must reach)"});
  } else {
    const json& value = v["value"];
    if (!value.is_number()) FailType("threshold.value", value, expected);
    t.value = value.get<double>();
    if (!std::isfinite(t.value) || (fraction && !(t.value > 0 && t.value <= 1))) {
      FailValue("threshold.value", value, expected);
    }
  }
  if (t.kind == ThresholdKind::kFractionOfFull &&
      std::none_of(dims.begin(), dims.end(), [](const SubspaceDim& d) { return d.is_full(); })) {
    FailValue("threshold.kind", v["kind"],
              "a kind whose reference the sweep measures: fraction_of_full needs d = full in dims "
              "(dims: {..., full: true} or full in the list)");
  }
  return t;
}

const std::vector<std::string>& SearchModeNames() {  // in enum order, from 1
  static const std::vector<std::string> names = {"grid", "adaptive"};
  return names;
}

SearchSpec ReadSearch(const json& v, size_t seed_count) {
  SearchSpec search;
  search.max_seeds = static_cast<int64_t>(seed_count);
  if (v.is_null()) return search;
  const json* mode = &v;
  if (v.is_object()) {
    Check(CheckSpecKeys(v, "search", {"mode", "rel_width", "max_jobs", "max_seeds"}));
    mode = &Get(v, "mode");
  } else if (!v.is_string()) {
    FailType("search", v, "grid, adaptive or a mapping {mode, rel_width, max_jobs, max_seeds}");
  }
  if (!mode->is_null()) {
    size_t index = 0;
    Check(CheckSpecChoice(*mode, v.is_object() ? "search.mode" : "search", SearchModeNames(), &index));
    search.mode = static_cast<SearchMode>(index + 1);
  }
  if (!v.is_object()) return search;
  for (const char* key : {"rel_width", "max_jobs", "max_seeds"}) {
    if (search.mode != SearchMode::kAdaptive && !Get(v, key).is_null())
      FailValue(SpecFieldPath("search", key), v[key], "no value: search." + std::string(key) +
                                                         " is a setting of search.mode adaptive, and the mode is grid");
  }
  if (!Get(v, "rel_width").is_null()) {
    const json& width = v["rel_width"];
    const std::string expected = "a number > 0 (0.25: the bracket's ends within 25% of each other)";
    if (!width.is_number()) FailType("search.rel_width", width, expected);
    search.rel_width = width.get<double>();
    if (!std::isfinite(search.rel_width) || search.rel_width <= 0) FailValue("search.rel_width", width, expected);
  }
  if (!Get(v, "max_jobs").is_null())
    search.max_jobs = ReadInt(v["max_jobs"], "search.max_jobs", 0, kMaxJobsPerSweep);
  if (!Get(v, "max_seeds").is_null()) {
    const int64_t max_seeds = ReadInt(v["max_seeds"], "search.max_seeds", 1, kMaxJobsPerSweep);
    if (max_seeds < static_cast<int64_t>(seed_count))
      FailValue("search.max_seeds", v["max_seeds"],
                "an integer >= the number of seeds every d starts with (" + std::to_string(seed_count) + ")");
    search.max_seeds = max_seeds;
  }
  return search;
}

json ReadJobDefaults(const json& document) {
  json defaults = json::object();
  for (const char* key : {"objective", "readout", "ridge", "train"}) {
    if (!Get(document, key).is_null()) defaults[key] = document[key];
  }
  if (defaults.contains("train") && !Get(defaults["train"], "seed").is_null()) {
    FailValue("train.seed", defaults["train"]["seed"], "no train.seed in a sweep (seeds sets each job's seed)");
  }
  return defaults;
}

SweepSpec ReadSweepFields(const json& document, const std::string& base_dir) {
  if (!document.is_object()) {
    FailType("the document", document, "a mapping with at least name, models, datasets and dims");
  }
  Check(CheckSpecKeys(document, "",
                      {"name", "models", "datasets", "dims", "seeds", "objective", "readout", "ridge", "train",
                       "threshold", "early_stop", "max_attempts", "search"}));
  SweepSpec s;
  s.name = ReadName(Get(document, "name"), "name");
  s.models = ReadModels(Get(document, "models"), base_dir);
  s.datasets = ReadDatasets(Get(document, "datasets"), base_dir);
  s.dims = ReadDims(Get(document, "dims"));
  s.seeds = ReadSeeds(Get(document, "seeds"));
  s.job_defaults = ReadJobDefaults(document);
  s.threshold = ReadThreshold(Get(document, "threshold"), s.dims);
  if (!Get(document, "early_stop").is_null()) s.early_stop = ReadBool(document["early_stop"], "early_stop");
  if (!Get(document, "max_attempts").is_null()) {
    s.max_attempts = static_cast<int32_t>(
        ReadInt(document["max_attempts"], "max_attempts", 1, std::numeric_limits<int32_t>::max()));
  }
  s.search = ReadSearch(Get(document, "search"), s.seeds.size());
  const int64_t coarse_jobs = SaturatingMultiply(static_cast<int64_t>(s.dims.size()), static_cast<int64_t>(s.seeds.size()));
  if (s.search.max_jobs > 0 && s.search.max_jobs < coarse_jobs) {
    FailValue("search.max_jobs", document["search"]["max_jobs"],
              "0 (no budget) or an integer >= the coarse grid's jobs per group (dims x seeds = " +
                  std::to_string(coarse_jobs) + "), which every group runs");
  }
  return s;
}

// ---------------------------------------------------------------------------------------------------------
// Composition (sweep_spec.h "Composition"): a defaults list of config groups merged into one document.

// Which file set each part of the composed document, in merge order: a path and the group file ("" for the
// sweep file itself). A later entry shadows an earlier one it concerns.
using Provenance = std::vector<std::pair<std::string, std::string>>;

struct DefaultsEntry {
  std::string group;   // empty for _self_
  std::string option;  // empty: left out (`group: null`)
  std::string origin;  // what chose the option, for messages: "defaults[1]" or "override `data=nsd`"
};

constexpr char kSelf[] = "_self_";

// The seed's group names over this format's keys; any other group is its own key (Hydra's default package).
std::string GroupKey(const std::string& group) {
  if (group == "data") return "datasets";
  if (group == "model") return "models";
  return group;
}

std::string JoinNames(const std::vector<std::string>& names, const char* separator) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += (i ? separator : "") + names[i];
  return out;
}

// The folders a group folder is looked for in, in order.
std::vector<std::filesystem::path> GroupSearchDirs(const std::string& base_dir, const std::string& config_dir) {
  namespace fs = std::filesystem;
  if (!config_dir.empty()) return {fs::path(config_dir)};
  if (base_dir.empty()) return {};
  std::error_code error;
  fs::path base = fs::absolute(fs::path(base_dir), error).lexically_normal();
  if (error) base = fs::path(base_dir).lexically_normal();
  if (!base.has_filename() && base.has_parent_path()) base = base.parent_path();  // "configs/" -> "configs"
  std::vector<fs::path> dirs = {base};
  if (base.has_parent_path() && base.parent_path() != base) dirs.push_back(base.parent_path());
  return dirs;
}

std::string FindGroupDir(const std::string& group, const std::vector<std::filesystem::path>& dirs) {
  for (const auto& dir : dirs) {
    std::error_code error;
    if (std::filesystem::is_directory(dir / group, error)) return (dir / group).string();
  }
  return "";
}

// The options of a group: the stems of its folder's .yaml files, sorted.
std::vector<std::string> GroupOptions(const std::string& group_dir) {
  std::vector<std::string> options;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(group_dir, error)) {
    if (entry.path().extension() == ".yaml") options.push_back(entry.path().stem().string());
  }
  std::sort(options.begin(), options.end());
  return options;
}

// The sub-folders of the searched folders that hold options (the groups a misspelt one may have meant),
// sorted, unique.
std::vector<std::string> GroupsThere(const std::vector<std::filesystem::path>& dirs) {
  std::vector<std::string> groups;
  for (const auto& dir : dirs) {
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
      const std::string name = entry.path().filename().string();
      if (entry.is_directory(error) && IsSpecIdentifier(name) &&
          !GroupOptions(entry.path().string()).empty() &&
          std::find(groups.begin(), groups.end(), name) == groups.end()) {
        groups.push_back(name);
      }
    }
  }
  std::sort(groups.begin(), groups.end());
  return groups;
}

bool IsOptionName(const std::string& option) {
  return IsSpecName(option) && option != "." && option != "..";
}

// A defaults entry's group folder, or an error naming the folders searched and the groups they hold.
StatusOr<std::string> GroupDir(const DefaultsEntry& entry, const std::vector<std::filesystem::path>& dirs) {
  const std::string dir = FindGroupDir(entry.group, dirs);
  if (!dir.empty()) return dir;
  std::vector<std::string> searched;
  for (const auto& d : dirs) searched.push_back((d / entry.group).string());
  const std::vector<std::string> groups = GroupsThere(dirs);
  const std::string near = NearestSpecWord(entry.group, groups);
  return InvalidArgumentError(
      entry.origin + ": unknown config group \"" + entry.group + "\"" +
      (near.empty() ? "" : " (did you mean \"" + near + "\"?)") + "; no folder " +
      (searched.empty() ? std::string("(no sweep file folder to look in)") : JoinNames(searched, " or ")) +
      "; groups there: " + (groups.empty() ? std::string("none") : JoinNames(groups, ", ")));
}

// The group file of an entry, or an error naming the group and the options it has.
StatusOr<std::string> GroupFile(const DefaultsEntry& entry, const std::vector<std::filesystem::path>& dirs) {
  StatusOr<std::string> dir = GroupDir(entry, dirs);
  if (!dir.ok()) return dir.status();
  const std::filesystem::path file = std::filesystem::path(*dir) / (entry.option + ".yaml");
  std::error_code error;
  if (IsOptionName(entry.option) && std::filesystem::is_regular_file(file, error)) return file.string();
  const std::vector<std::string> options = GroupOptions(*dir);
  const std::string near = NearestSpecWord(entry.option, options);
  return InvalidArgumentError(entry.origin + ": group " + entry.group + " has no option \"" + entry.option +
                              "\"" + (near.empty() ? "" : " (did you mean \"" + near + "\"?)") + "; options in " +
                              *dir + ": " + (options.empty() ? std::string("none") : JoinNames(options, " | ")));
}

StatusOr<std::vector<DefaultsEntry>> ReadDefaultsList(const json& list) {
  const std::string expected = "a list of `group: option` entries and at most one _self_";
  if (!list.is_array()) return InvalidArgumentError(SpecTypeError("defaults", list, expected).message);
  std::vector<DefaultsEntry> entries;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string path = SpecIndexPath("defaults", i);
    const json& item = list[i];
    DefaultsEntry entry;
    entry.origin = path;
    if (item.is_string() && item.get<std::string>() == kSelf) {
      for (const DefaultsEntry& e : entries) {
        if (e.group.empty()) return InvalidArgumentError(path + ": a second _self_; expected it at most once");
      }
      entries.push_back(entry);
      continue;
    }
    if (!item.is_object() || item.size() != 1) {
      return InvalidArgumentError(SpecTypeError(path, item, "`group: option` (one key) or _self_").message);
    }
    entry.group = item.begin().key();
    const json& option = item.begin().value();
    if (!IsSpecIdentifier(entry.group)) {
      return InvalidArgumentError(path + ": group \"" + entry.group +
                                  "\"; expected a group name ([A-Za-z_][A-Za-z0-9_]*, a folder of the configs root)");
    }
    if (!option.is_null()) {
      if (!option.is_string() || !IsOptionName(option.get<std::string>())) {
        return InvalidArgumentError(SpecTypeError(SpecFieldPath(path, entry.group), option,
                                                  "an option name (a file <group>/<option>.yaml without .yaml) or null")
                                        .message);
      }
      entry.option = option.get<std::string>();
    }
    for (size_t j = 0; j < entries.size(); ++j) {
      if (entries[j].group == entry.group) {
        return InvalidArgumentError(path + ": group " + entry.group + " is listed before (" + entries[j].origin +
                                    "); expected each group once");
      }
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

// Applies the overrides that choose group options (`group=option`, `+group=option`) to `entries`; returns the
// others (key=value overrides), in order.
StatusOr<std::vector<std::string>> ApplyGroupOverrides(const std::vector<std::string>& overrides,
                                                       const std::vector<std::filesystem::path>& dirs,
                                                       std::vector<DefaultsEntry>* entries) {
  std::vector<std::string> key_overrides;
  for (const std::string& text : overrides) {
    const size_t plus = text.find_first_not_of('+');
    const size_t eq = text.find('=');
    const std::string group = plus == std::string::npos || eq == std::string::npos ? "" : text.substr(plus, eq - plus);
    if (group.empty() || !IsSpecIdentifier(group)) {
      key_overrides.push_back(text);
      continue;
    }
    auto it = std::find_if(entries->begin(), entries->end(), [&](const DefaultsEntry& e) { return e.group == group; });
    const bool add = plus > 0;
    if (it == entries->end() && !(add && !FindGroupDir(group, dirs).empty())) {
      key_overrides.push_back(text);  // no group of that name: a key override
      continue;
    }
    const std::string origin = "override `" + (text.size() > 80 ? text.substr(0, 77) + "..." : text) + "`";
    if (it != entries->end() && add) {
      return InvalidArgumentError(origin + ": group " + group + " is in the defaults list already (" + it->origin +
                                  "); use " + group + "=OPTION to choose another option");
    }
    std::string option = text.substr(eq + 1);
    if (option == "null" || option == "~") option.clear();
    if (!option.empty() && !IsOptionName(option)) {
      return InvalidArgumentError(origin + ": option " + DescribeSpecValue(json(option)) +
                                  "; expected an option name (a file " + group + "/<option>.yaml without .yaml) or null");
    }
    if (it == entries->end()) {
      entries->push_back({group, option, origin});
    } else {
      it->option = option;
      it->origin = origin;
    }
  }
  return key_overrides;
}

void Record(Provenance& provenance, const std::string& path, const std::string& file) {
  provenance.erase(std::remove_if(provenance.begin(), provenance.end(),
                                  [&](const auto& entry) {
                                    return entry.first == path ||
                                           (entry.first.size() > path.size() &&
                                            entry.first.compare(0, path.size(), path) == 0 &&
                                            (path.empty() || entry.first[path.size()] == '.'));
                                  }),
                   provenance.end());
  provenance.emplace_back(path, file);
}

// Hydra's merge: mappings key by key, recursively; anything else replaces.
void Merge(json& into, const json& from, const std::string& path, const std::string& file, Provenance& provenance) {
  if (!into.is_object() || !from.is_object()) {
    into = from;
    Record(provenance, path, file);
    return;
  }
  for (const auto& [key, value] : from.items()) {
    const std::string child = SpecFieldPath(path, key);
    if (into.contains(key)) {
      Merge(into[key], value, child, file, provenance);
    } else {
      into[key] = value;
      Record(provenance, child, file);
    }
  }
}

// The group file that set the value a validation error at `error_path` is about; "" for the sweep file.
std::string FileOf(const Provenance& provenance, const std::string& error_path) {
  for (auto it = provenance.rbegin(); it != provenance.rend(); ++it) {
    if (SpecPathConcerns(it->first, error_path)) return it->second;
  }
  return "";
}

// Composes `document` in place when it has a defaults list or an override adds a group; returns the
// key=value overrides still to apply.
StatusOr<std::vector<std::string>> Compose(json& document, const std::vector<std::string>& overrides,
                                           const std::string& base_dir, const std::string& config_dir,
                                           Provenance* provenance) {
  const std::vector<std::filesystem::path> dirs = GroupSearchDirs(base_dir, config_dir);
  std::vector<DefaultsEntry> entries;
  const bool has_defaults = document.is_object() && document.contains("defaults");
  if (has_defaults) {
    StatusOr<std::vector<DefaultsEntry>> read = ReadDefaultsList(document["defaults"]);
    if (!read.ok()) return read.status();
    entries = std::move(*read);
    document.erase("defaults");
  }
  StatusOr<std::vector<std::string>> key_overrides = ApplyGroupOverrides(overrides, dirs, &entries);
  if (!key_overrides.ok() || (!has_defaults && entries.empty())) return key_overrides;
  if (dirs.empty()) {
    return InvalidArgumentError("defaults: a defaults list needs the sweep file's folder (base_dir) or a config_dir "
                                "to find its group files");
  }
  if (std::none_of(entries.begin(), entries.end(), [](const DefaultsEntry& e) { return e.group.empty(); })) {
    entries.push_back({"", "", "_self_"});  // the file's own keys win (Hydra >= 1.1)
  }
  json composed = json::object();
  for (const DefaultsEntry& entry : entries) {
    if (entry.group.empty()) {
      Merge(composed, document.is_null() ? json::object() : document, "", "", *provenance);
      continue;
    }
    if (entry.option.empty()) continue;
    StatusOr<std::string> file = GroupFile(entry, dirs);
    if (!file.ok()) return file.status();
    StatusOr<std::string> text = ReadSpecFileText(*file, "group file");
    if (!text.ok()) return text.status();
    StatusOr<json> content = ParseSpecDocument(*text, SpecFormat::kYaml, "group file " + *file);
    if (!content.ok()) return content.status();
    Merge(composed, json{{GroupKey(entry.group), std::move(*content)}}, "", *file, *provenance);
  }
  document = std::move(composed);
  return key_overrides;
}

// ---------------------------------------------------------------------------------------------------------
// Expansion.

std::string JobKey(const std::string& model, const std::string& layer, const std::string& dataset,
                   const SubspaceDim& d, uint64_t seed) {
  return "model " + model + ", layer " + layer + ", dataset " + dataset + ", d " + d.ToString() + ", seed " +
         std::to_string(seed);
}

// The sweep field a job's field comes from, so that a job's validation error can be attributed to the
// override that set it.
std::string SweepPathOf(const std::string& job_path, size_t model_index, size_t dataset_index) {
  auto starts = [&](const std::string& prefix) {
    return job_path.compare(0, prefix.size(), prefix) == 0 &&
           (job_path.size() == prefix.size() || job_path[prefix.size()] == '.' || job_path[prefix.size()] == '[');
  };
  if (job_path == "model.layer") return SpecFieldPath(SpecIndexPath("models", model_index), "layers");
  if (starts("model")) return SpecIndexPath("models", model_index) + job_path.substr(5);
  if (starts("data")) return SpecIndexPath("datasets", dataset_index) + job_path.substr(4);
  if (job_path == "d") return "dims";
  if (job_path == "train.seed") return "seeds";
  return job_path;  // objective, readout, ridge, train: the sweep's own top-level fields
}

int64_t JobCount(const SweepSpec& spec) {
  int64_t layers = 0;
  for (const SweepModel& m : spec.models) layers += static_cast<int64_t>(std::max<size_t>(m.layers.size(), 1));
  int64_t count = SaturatingMultiply(layers, static_cast<int64_t>(spec.datasets.size()));
  count = SaturatingMultiply(count, static_cast<int64_t>(spec.dims.size()));
  return SaturatingMultiply(count, static_cast<int64_t>(spec.seeds.size()));
}

// A model's job-spec block read out at `layer` ("" = the arch's default).
json ModelBlock(const SweepModel& model, const std::string& layer) {
  json block = model.model;
  if (!layer.empty()) block["layer"] = layer;
  return block;
}

// The job document of one (model block, dataset, d) point, without train.seed.
json JobDocument(const SweepSpec& spec, const json& model_block, const SweepDataset& dataset, const SubspaceDim& d) {
  json document = spec.job_defaults.is_object() ? spec.job_defaults : json::object();
  document["model"] = model_block;
  document["data"] = dataset.data;
  document["d"] = d.is_full() ? json("full") : json(d.value);
  const bool prefit_warped = document.contains("readout") && document["readout"] == "prefit_warped";
  if (prefit_warped && d.is_linear()) {
    // prefit_warped's start is the d = 0 ridge fit, so the sweep's d = 0 jobs are that fit.
    document["readout"] = "ridge";
  }
  if (!d.is_linear() && !(prefit_warped && d.is_subspace())) {
    // The closed-form readout is for frozen features only; warped and full jobs train by SGD.
    document.erase("readout");
    document.erase("ridge");
  }
  if (d.is_linear() && document.contains("train") && document["train"].is_object()) {
    // freeze_head and head_init are about d > 0 (train only theta_d; start the head from the d = 0
    // ridge fit); at d = 0 the head is all there is to train.
    document["train"].erase("freeze_head");
    document["train"].erase("head_init");
  }
  if (!document.contains("train") || document["train"].is_null()) document["train"] = json::object();
  return document;
}

// ExpandSweep; a job's validation error also comes back in *field_error with the sweep field it concerns.
StatusOr<std::vector<PlannedJob>> Expand(const SweepSpec& spec, std::optional<SpecFieldError>* field_error) {
  const int64_t count = JobCount(spec);
  if (count > kMaxJobsPerSweep) return TooManyJobs(count);
  std::vector<PlannedJob> jobs;
  jobs.reserve(static_cast<size_t>(count));
  for (size_t mi = 0; mi < spec.models.size(); ++mi) {
    const SweepModel& model = spec.models[mi];
    const std::vector<std::string> layers = model.layers.empty() ? std::vector<std::string>{""} : model.layers;
    for (const std::string& layer : layers) {
      const json model_block = ModelBlock(model, layer);
      for (size_t di = 0; di < spec.datasets.size(); ++di) {
        const SweepDataset& dataset = spec.datasets[di];
        for (const SubspaceDim& d : spec.dims) {
          json document = JobDocument(spec, model_block, dataset, d);
          for (uint64_t seed : spec.seeds) {
            PlannedJob job;
            job.model = model.name;
            job.layer = layer.empty() ? "default" : layer;
            job.dataset = dataset.name;
            job.d = d;
            job.seed = seed;
            if (document["train"].is_object()) document["train"]["seed"] = seed;
            SpecFieldError error;
            StatusOr<JobSpec> validated = JobSpecFromDocument(document, &error, UnusedSettings::kDrop);
            if (!validated.ok()) {
              const std::string key = JobKey(job.model, job.layer, job.dataset, d, seed);
              if (field_error != nullptr) {
                *field_error = SpecFieldError{SweepPathOf(error.path, mi, di), key + ": " + validated.status().message()};
              }
              return Status(validated.status().code(), key + ": " + validated.status().message());
            }
            job.spec = std::move(*validated);
            jobs.push_back(std::move(job));
          }
        }
      }
    }
  }
  return jobs;
}

// The status of a validation error: the override that set the field, else the group file it came from.
Status SweepErrorStatus(SpecFieldError error, const std::vector<SpecOverride>& overrides,
                        const Provenance& provenance) {
  const bool by_override = std::any_of(overrides.begin(), overrides.end(),
                                       [&](const SpecOverride& o) { return SpecPathConcerns(o.path, error.path); });
  const std::string file = by_override ? "" : FileOf(provenance, error.path);
  if (!file.empty()) error.message += " (from " + file + ")";
  return SpecErrorStatus(error, overrides);
}

// Reads and validates a parsed (composed, overrides applied) sweep document, and expands it: every job is
// validated by its expansion.
StatusOr<ExpandedSweep> ReadSweep(const json& document, const std::vector<SpecOverride>& overrides,
                                  const std::string& base_dir, const Provenance& provenance = {}) {
  ExpandedSweep out;
  try {
    out.spec = ReadSweepFields(document, base_dir);
  } catch (const SpecFieldError& e) {
    return SweepErrorStatus(e, overrides, provenance);
  } catch (const Status& limit) {
    return limit;
  }
  std::optional<SpecFieldError> field_error;
  StatusOr<std::vector<PlannedJob>> jobs = Expand(out.spec, &field_error);
  if (!jobs.ok()) return field_error ? SweepErrorStatus(*field_error, overrides, provenance) : jobs.status();
  out.jobs = std::move(*jobs);
  return out;
}

StatusOr<SweepSpec> SpecOf(StatusOr<ExpandedSweep> expanded) {
  if (!expanded.ok()) return expanded.status();
  return std::move(expanded->spec);
}

}  // namespace

const char* SearchModeName(SearchMode mode) {
  const size_t index = static_cast<size_t>(mode) - 1;
  return index < SearchModeNames().size() ? SearchModeNames()[index].c_str() : "unknown";
}

const char* ThresholdKindName(ThresholdKind kind) {
  const size_t index = static_cast<size_t>(kind) - 1;
  return index < ThresholdKindNames().size() ? ThresholdKindNames()[index].c_str() : "unknown";
}

StatusOr<std::vector<int64_t>> DefaultDimGrid(int64_t max, int64_t samples) {
  if (max < 10) {
    return InvalidArgumentError("max = " + std::to_string(max) + "; expected an integer >= 10 (the grid's "
                                "log-spaced points run from 10 to max)");
  }
  if (samples < 2) {
    return InvalidArgumentError("samples = " + std::to_string(samples) + "; expected an integer >= 2 (d = 0 and "
                                "samples - 1 log-spaced points)");
  }
  // numpy.logspace(1, log10(max), samples - 1): exponents evenly spaced from 1 to log10(max), the last
  // exactly log10(max). Rounded to the nearest integer (the seed's grid values are taken as the nearest
  // integers; truncation would turn 10000 into 9999 through floating-point error).
  const int64_t points = samples - 1;
  const double top = std::log10(static_cast<double>(max));
  std::vector<int64_t> grid = {0};
  for (int64_t i = 0; i < points; ++i) {
    int64_t d = max;
    if (i + 1 < points) d = std::llround(std::pow(10.0, 1.0 + (top - 1.0) * static_cast<double>(i) / (points - 1)));
    if (d != grid.back()) grid.push_back(d);  // increasing, so equal values are adjacent
  }
  return grid;
}

StatusOr<ExpandedSweep> ParseAndExpandSweepSpec(std::string_view text, SpecFormat format,
                                                const std::vector<std::string>& overrides, const std::string& base_dir,
                                                const std::string& config_dir) {
  StatusOr<json> document = ParseSpecDocument(text, format, "sweep spec");
  if (!document.ok()) return document.status();
  Provenance provenance;
  StatusOr<std::vector<std::string>> key_overrides = Compose(*document, overrides, base_dir, config_dir, &provenance);
  if (!key_overrides.ok()) return key_overrides.status();
  StatusOr<std::vector<SpecOverride>> applied = ApplySpecOverrides(*document, *key_overrides);
  if (!applied.ok()) return applied.status();
  return ReadSweep(*document, *applied, base_dir, provenance);
}

StatusOr<SweepSpec> ParseSweepSpec(std::string_view text, SpecFormat format, const std::vector<std::string>& overrides,
                                   const std::string& base_dir, const std::string& config_dir) {
  return SpecOf(ParseAndExpandSweepSpec(text, format, overrides, base_dir, config_dir));
}

StatusOr<SweepSpec> LoadSweepSpecFile(const std::string& path, const std::vector<std::string>& overrides,
                                      const std::string& config_dir) {
  StatusOr<SpecFormat> format = SpecFormatOfPath(path, "sweep spec file");
  if (!format.ok()) return format.status();
  StatusOr<std::string> text = ReadSpecFileText(path, "sweep spec file");
  if (!text.ok()) return text.status();
  std::error_code error;
  const std::filesystem::path absolute = std::filesystem::absolute(path, error);
  const std::string base_dir = (error ? std::filesystem::path(path) : absolute).parent_path().string();
  StatusOr<SweepSpec> spec = ParseSweepSpec(*text, *format, overrides, base_dir, config_dir);
  if (!spec.ok()) return Status(spec.status().code(), path + ": " + spec.status().message());
  return spec;
}

StatusOr<std::vector<PlannedJob>> ExpandSweep(const SweepSpec& spec) { return Expand(spec, nullptr); }

json ToJson(const SweepSpec& spec) {
  json models = json::array();
  for (const SweepModel& m : spec.models) {
    json entry = m.model.is_object() ? m.model : json::object();
    entry["name"] = m.name;
    json layers = json::array();
    for (const std::string& layer : m.layers) layers.push_back(layer.empty() ? "default" : layer);
    entry["layers"] = std::move(layers);
    models.push_back(std::move(entry));
  }
  json datasets = json::array();
  for (const SweepDataset& d : spec.datasets) {
    json entry = d.data.is_object() ? d.data : json::object();
    entry["name"] = d.name;
    datasets.push_back(std::move(entry));
  }
  json dims = json::array();
  for (const SubspaceDim& d : spec.dims) dims.push_back(d.is_full() ? json("full") : json(d.value));

  json out = spec.job_defaults.is_object() ? spec.job_defaults : json::object();
  out["name"] = spec.name;
  out["models"] = std::move(models);
  out["datasets"] = std::move(datasets);
  out["dims"] = std::move(dims);
  out["seeds"] = spec.seeds;
  out["threshold"] = {{"kind", ThresholdKindName(spec.threshold.kind)}, {"value", spec.threshold.value}};
  out["early_stop"] = spec.early_stop;
  out["max_attempts"] = spec.max_attempts;
  if (spec.search.mode == SearchMode::kAdaptive) {
    out["search"] = {{"mode", SearchModeName(spec.search.mode)},
                     {"rel_width", spec.search.rel_width},
                     {"max_jobs", spec.search.max_jobs},
                     {"max_seeds", spec.search.max_seeds}};
  }
  return out;
}

StatusOr<PlannedJob> PlanSweepJob(const SweepSpec& spec, const std::string& model, const std::string& layer,
                                  const std::string& dataset, const SubspaceDim& d, uint64_t seed) {
  const std::string key = JobKey(model, layer, dataset, d, seed);
  auto found_model = std::find_if(spec.models.begin(), spec.models.end(),
                                  [&](const SweepModel& m) { return m.name == model; });
  auto found_dataset = std::find_if(spec.datasets.begin(), spec.datasets.end(),
                                    [&](const SweepDataset& s) { return s.name == dataset; });
  if (found_model == spec.models.end() || found_dataset == spec.datasets.end())
    return InvalidArgumentError(key + ": no such model or dataset in sweep '" + spec.name + "'");
  const std::string model_layer = layer == "default" ? "" : layer;
  const bool known_layer = found_model->layers.empty()
                               ? model_layer.empty()
                               : std::find(found_model->layers.begin(), found_model->layers.end(), model_layer) !=
                                     found_model->layers.end();
  if (!known_layer) return InvalidArgumentError(key + ": model " + model + " has no read-out layer " + layer);
  json document = JobDocument(spec, ModelBlock(*found_model, model_layer), *found_dataset, d);
  if (document["train"].is_object()) document["train"]["seed"] = seed;
  StatusOr<JobSpec> validated = JobSpecFromDocument(document, nullptr, UnusedSettings::kDrop);
  if (!validated.ok()) return Status(validated.status().code(), key + ": " + validated.status().message());
  PlannedJob job;
  job.model = model;
  job.layer = model_layer.empty() ? "default" : model_layer;
  job.dataset = dataset;
  job.d = d;
  job.seed = seed;
  job.spec = std::move(*validated);
  return job;
}

StatusOr<SweepSpec> SweepSpecFromJson(const json& document) { return SpecOf(ReadSweep(document, {}, "")); }

std::string CanonicalSweepJson(const SweepSpec& spec) { return ToJson(spec).dump(); }

}  // namespace dwarp
