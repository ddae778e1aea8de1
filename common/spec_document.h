// Spec documents: the pieces that every YAML/JSON file dwarp reads (job specs, common/job_spec.h; sweep
// specs, common/sweep_spec.h) shares, so both follow one set of rules:
//   - text -> nlohmann::json, YAML plain scalars typed by the YAML 1.2 core schema, duplicate keys errors;
//   - Hydra-style overrides (`train.lr=0.01`, `~key`, `+key=value`) applied to the parsed document;
//   - every key of a mapping checked, unknown ones reported with the valid keys and the nearest one;
//   - messages of the form `<field path> = <value>; expected <what>`, and a validation error caused by an
//     override reported as the override's;
//   - limits on what a document may hold, so that no input, however long or deep, can exhaust the stack
//     of the process reading it (a coordinator serving everyone, or the CLI):
//       every string (keys, values, plain YAML scalars, override keys): at most kMaxSpecStringBytes bytes;
//       nesting of lists and mappings: at most kMaxSpecDepth levels (the document itself is level 1, so
//         `train: {lr: 0.1}` is 2 levels deep), overrides counted at the depth of the key they set;
//       names (sweep, model, dataset and layer names, in sweep_spec.cpp): at most kMaxSpecNameBytes bytes.
//     A document past a limit is refused (InvalidArgument) with the field path, the length or depth found
//     and the limit. Character classes are checked by loops, never std::regex (libstdc++'s matcher recurses
//     once per character and overflows the stack on strings of some ten thousand characters).
//
// A validation error is a SpecFieldError (the field path it concerns plus the whole message) until it is
// turned into a Status by SpecErrorStatus, which needs the path to find the override responsible.
//
// Thread-safety: free functions on values; safe to call concurrently.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/job_spec.h"
#include "common/status.h"

namespace dwarp {

// Limits every spec document is held to (see the top of this file).
inline constexpr size_t kMaxSpecStringBytes = 4096;  // PATH_MAX: the longest value a spec needs is a path
inline constexpr size_t kMaxSpecNameBytes = 128;
inline constexpr size_t kMaxSpecDepth = 32;  // the deepest shipped spec (configs/) is 5 levels deep

// `s` is a non-empty string of letters, digits, _, . and - ([A-Za-z0-9_.-]+).
bool IsSpecName(std::string_view s);
// `s` is an identifier ([A-Za-z_][A-Za-z0-9_]*).
bool IsSpecIdentifier(std::string_view s);

// A validation failure: the field path (`train.lr`, `models[1].arch`; empty for the whole document) and the
// complete message, which already names the path.
struct SpecFieldError {
  std::string path;
  std::string message;
};

// One applied override: its text as given, and the dotted path it set or removed.
struct SpecOverride {
  std::string text;
  std::string path;
};

// "a.b" from ("a", "b"); "b" from ("", "b").  "a[3]" from ("a", 3).
std::string SpecFieldPath(const std::string& path, const std::string& key);
std::string SpecIndexPath(const std::string& path, size_t index);

// A value as messages show it: compact JSON, cut at 80 characters.
std::string DescribeSpecValue(const nlohmann::json& value);
// "an integer", "a string", "a mapping", ...
const char* SpecTypeName(const nlohmann::json& value);

// "train.lr = -0.01; expected a number > 0"
SpecFieldError SpecValueError(const std::string& path, const nlohmann::json& value, const std::string& expected);
// "train.batch_size = "abc" (a string); expected an integer >= 1"
SpecFieldError SpecTypeError(const std::string& path, const nlohmann::json& value, const std::string& expected);

// The closest of `candidates` to `word` when it is a plausible typo (at most 2 edits, or a third of its
// length for long words); empty otherwise.
std::string NearestSpecWord(const std::string& word, const std::vector<std::string>& candidates);

// Checks that `object` is a mapping (null counts as an absent, empty one) whose keys are all in `valid`.
// The error names the first unknown key, the nearest valid one and every valid key at that level.
std::optional<SpecFieldError> CheckSpecKeys(const nlohmann::json& object, const std::string& path,
                                            const std::vector<std::string>& valid);

// `value` must be one of `names` (a string); sets *index to its position. The error lists the names and
// suggests the nearest.
std::optional<SpecFieldError> CheckSpecChoice(const nlohmann::json& value, const std::string& path,
                                              const std::vector<std::string>& names, size_t* index);

// The spellings of ModelArch and DataKind, in enum order (ModelArchName / DataKindName index into them).
const std::vector<std::string>& ModelArchNames();
const std::vector<std::string>& DataKindNames();

// Parses YAML or JSON into a document. `what` names the document in syntax errors ("job spec is not valid
// YAML: ..."). InvalidArgument for a syntax error or a repeated key.
StatusOr<nlohmann::json> ParseSpecDocument(std::string_view text, SpecFormat format, std::string_view what);

// The format of a spec file from its extension (.yaml, .yml, .json); InvalidArgument naming the file
// otherwise. `what` names the kind of file in the message ("job spec file").
StatusOr<SpecFormat> SpecFormatOfPath(const std::string& path, std::string_view what);
// The whole file (common/file_io.h ReadWholeFile): NotFound naming `what` and the path when there is no
// such file, InvalidArgument for a folder, Unavailable when it cannot be read.
StatusOr<std::string> ReadSpecFileText(const std::string& path, std::string_view what);

// Applies `overrides` in order to `document` (see job_spec.h for the syntax) and returns what each set.
// InvalidArgument naming the override that cannot be applied.
StatusOr<std::vector<SpecOverride>> ApplySpecOverrides(nlohmann::json& document,
                                                       const std::vector<std::string>& overrides);

// Whether a validation error at `error_path` concerns a value set at `set_path`: the same field, a field
// inside it, or (a new key under an unknown one) a field above it. "train" concerns "train.lr".
bool SpecPathConcerns(const std::string& set_path, const std::string& error_path);

// The status for a validation error: attributed to the last override that set the failing field (or a
// field inside or above it), else the plain message, listing the overrides when there were some.
Status SpecErrorStatus(const SpecFieldError& error, const std::vector<SpecOverride>& overrides);

// As JobSpecFromJson (defined in job_spec.cpp), but a validation error also comes back with its field path,
// so a document that embeds job specs (a sweep) can say which of its own fields caused it. `error` may be
// null; it is set only when the result is an error from validation.
StatusOr<JobSpec> JobSpecFromDocument(const nlohmann::json& document, SpecFieldError* error,
                                      UnusedSettings unused = UnusedSettings::kRefuse);

}  // namespace dwarp
